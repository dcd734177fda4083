import { expect } from 'chai';
import { backoffMs, decide, parseRetryAfter } from '../../src/net/retry.js';

describe('retry policy', () => {
  it('honours Retry-After in seconds and as a date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('7', now)).to.equal(7000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).to.equal(30_000);
    expect(parseRetryAfter('soon', now)).to.equal(null);
    const d = decide(429, { 'retry-after': '12' }, 0, {}, now);
    expect(d).to.deep.include({ kind: 'retry', afterMs: 12_000, throttled: true });
  });

  it('retries server errors and silence, re-authenticates on 401, rejects other 4xx', () => {
    expect(decide(503, {}, 0).kind).to.equal('retry');
    expect(decide(0, {}, 0).kind).to.equal('retry');
    expect(decide(401, {}, 0).kind).to.equal('reauth');
    expect(decide(400, {}, 0).kind).to.equal('reject');
    expect(decide(204, {}, 0).kind).to.equal('ok');
  });

  it('backs off exponentially within the cap', () => {
    const max = () => 1;
    expect(backoffMs(0, { random: max })).to.equal(1000);
    expect(backoffMs(3, { random: max })).to.equal(8000);
    expect(backoffMs(40, { random: max, maxMs: 60_000 })).to.equal(60_000);
    expect(backoffMs(5, { random: () => 0 })).to.equal(500);
  });
});
