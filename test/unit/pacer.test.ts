// The pacer keeps calls under a per-minute quota in any sliding minute, not only per fixed window.
import { expect } from 'chai';
import { Pacer } from '../../src/net/pacer.js';

describe('Pacer', () => {
  it('spaces calls evenly under a per-minute quota, so no burst straddles two windows', async () => {
    // 6 a minute on a clock 60× fast: one call per 166 ms, a window of 1 s.
    const pacer = new Pacer({ import: { perMinute: 6 } }, 60);
    const start = Date.now();
    const since: number[] = [];
    for (let i = 0; i < 5; i++) {
      await pacer.take('import');
      since.push(Date.now() - start);
    }
    // Slots are 166⅔ ms apart from the first call: call k never comes before k slots have passed.
    // (A timer that fires late delays one call and can shorten the gap to the next, which keeps its
    // slot, so single gaps are not the guarantee, and an upper bound would flake on a loaded machine.)
    const slot = (k: number) => Math.floor((k * 1000) / 6) - 1; // -1: whole-ms clocks
    since.forEach((ms, k) => expect(ms, `ms since the start: ${since.join(', ')}`).to.be.at.least(slot(k)));
  });

  it('lets a caller wait for the next slot without using it', async () => {
    // 1 a minute on a clock 60× fast: one call per second. A slot used by the wait would cost the
    // next take a whole second; half of one leaves room for a loaded machine's timer lag.
    const pacer = new Pacer({ import: { perMinute: 1 } }, 60);
    await pacer.take('import');
    const before = Date.now();
    await pacer.whenAvailable('import');
    expect(Date.now() - before).to.be.at.least(950);
    const taken = Date.now();
    await pacer.take('import');
    expect(Date.now() - taken, 'the slot waited for is still free').to.be.below(500);
  });

  it('holds every call during a Retry-After pause', async () => {
    const pacer = new Pacer({ list: { perHour: 1000 } });
    pacer.pauseFor(200);
    const before = Date.now();
    await pacer.take('list');
    expect(Date.now() - before).to.be.at.least(190);
  });
});
