import { expect } from 'chai';
import { ClaimSet, effectiveClaim, observableKey } from '../../src/core/claims.js';
import type { IndicatorChange } from '../../src/core/types.js';

const ch = (value: string, score: number | null, type: 'ipv4' | 'domain' | 'hostname' = 'ipv4'): IndicatorChange => ({
  observable: { type, value }, score, labels: [], tlp: null, title: value, description: '', validFrom: null, validUntil: null,
  sourceRef: { system: 'opencti', id: 'x' },
});

describe('claims', () => {
  it('treats hostname and domain as one key', () => {
    expect(observableKey({ type: 'hostname', value: 'a.com' })).to.equal(observableKey({ type: 'domain', value: 'a.com' }));
  });

  it('follows the strongest claim, then the newest', () => {
    const best = effectiveClaim([
      { key: 'k', sourceId: 'a', change: ch('1.1.1.1', 40), updatedAt: 5 },
      { key: 'k', sourceId: 'b', change: ch('1.1.1.1', 80), updatedAt: 1 },
      { key: 'k', sourceId: 'c', change: ch('1.1.1.1', null), updatedAt: 9 },
    ]);
    expect(best?.sourceId).to.equal('b');
    // A tie on score goes to the newest claim, in whichever order the claims come.
    const older = { key: 'k', sourceId: 'older', change: ch('1.1.1.1', 80), updatedAt: 3 };
    const newer = { key: 'k', sourceId: 'newer', change: ch('1.1.1.1', 80), updatedAt: 7 };
    expect(effectiveClaim([older, newer])?.sourceId).to.equal('newer');
    expect(effectiveClaim([newer, older])?.sourceId).to.equal('newer');
    const unscoredOld = { key: 'k', sourceId: 'unscored-old', change: ch('1.1.1.1', null), updatedAt: 1 };
    const unscoredNew = { key: 'k', sourceId: 'unscored-new', change: ch('1.1.1.1', null), updatedAt: 2 };
    expect(effectiveClaim([unscoredOld, unscoredNew])?.sourceId).to.equal('unscored-new');
  });

  it('keeps an observable while another object still claims it', () => {
    const set = new ClaimSet([]);
    set.replace('indicator--1', [ch('1.1.1.1', 80)], 1);
    set.replace('ipv4-addr--2', [ch('1.1.1.1', 30)], 2);
    set.retract('indicator--1');
    expect(effectiveClaim(set.claimsOn('ipv4:1.1.1.1'))?.sourceId).to.equal('ipv4-addr--2');
    set.retract('ipv4-addr--2');
    expect(effectiveClaim(set.claimsOn('ipv4:1.1.1.1'))).to.equal(null);
    expect([...set.touched]).to.deep.equal(['ipv4:1.1.1.1']);
  });

  it('drops claims an updated object no longer makes', () => {
    const set = new ClaimSet([{ key: 'ipv4:1.1.1.1', sourceId: 'i', change: ch('1.1.1.1', 50), updatedAt: 0 }]);
    set.replace('i', [ch('2.2.2.2', 50)], 1);
    expect(effectiveClaim(set.claimsOn('ipv4:1.1.1.1'))).to.equal(null);
    expect(effectiveClaim(set.claimsOn('ipv4:2.2.2.2'))?.sourceId).to.equal('i');
    const { upserts, deletes } = set.changes();
    expect(upserts.map((u) => u.key)).to.deep.equal(['ipv4:2.2.2.2']);
    expect(deletes).to.deep.equal([{ key: 'ipv4:1.1.1.1', sourceId: 'i' }]);
  });
});
