// A new tenant's fill (flows/backfill.ts) reads the claims a page of keys at a time: it must queue
// what reading them all at once queued, hold one page at most, and survive a crash mid-fill.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { effectiveClaim } from '../../src/core/claims.js';
import type { SinkRoute } from '../../src/core/router.js';
import type { Store } from '../../src/core/store.js';
import type { Claim } from '../../src/core/types.js';
import { backfill, backfillMarker } from '../../src/flows/backfill.js';
import { SqliteStore } from '../../src/store/sqlite.js';

const SINK = 'defender:added';
const PAGE = 4;

/** Upserts what scores 50 or more, deletes the rest (never queued by a fill); ignores the `x` source. */
const route: SinkRoute = {
  sink: SINK,
  route: (key, claim) => ({
    sink: SINK,
    reason: 'test',
    op: { sink: SINK, key, op: (claim?.change.score ?? 0) >= 50 ? 'upsert' : 'delete', payload: { from: claim?.sourceId }, sourceRef: null },
  }),
  accepts: (c) => !c.sourceId.startsWith('x'),
};

/** 30 keys; some claimed by several sources, some only by the ignored one, several below the score. */
function claims(): Claim[] {
  const at = (key: string, sourceId: string, score: number): Claim =>
    ({ key, sourceId, change: { score, observable: { type: 'domain', value: key } } as never, updatedAt: 1 });
  return Array.from({ length: 30 }, (_, i) => {
    const key = `domain:k${String(i).padStart(2, '0')}.example`;
    return [
      ...(i % 7 === 6 ? [] : [at(key, 'opencti:a', (i * 13) % 100)]),
      ...(i % 3 === 0 ? [at(key, 'misp:b', 60)] : []),
      ...(i % 5 === 0 ? [at(key, 'x:c', 99)] : []),
    ];
  }).flat();
}

/** The fill as it was, every claim read at once: the reference for what a fill queues. */
async function oneReadFill(store: Store): Promise<string[]> {
  const byKey = new Map<string, Claim[]>();
  for (const c of await store.loadClaims([], [], [''])) {
    if (route.accepts!(c)) byKey.set(c.key, [...(byKey.get(c.key) ?? []), c]);
  }
  return [...byKey].map(([key, cs]) => route.route(key, effectiveClaim(cs), 0).op!)
    .filter((op) => op.op === 'upsert').map((op) => `${op.key} ${JSON.stringify(op.payload)}`).sort();
}

/** The store, recording the most keys one page held, and failing `setCheckpoint` at the given call. */
function watched(store: Store, failCheckpointAt = 0): Store & { largestPage: number } {
  let checkpoints = 0;
  const seen = { largestPage: 0 };
  return new Proxy(store, {
    get(target, name) {
      if (name === 'largestPage') return seen.largestPage;
      if (name === 'loadClaims') throw new Error('the fill must not read every claim at once');
      if (name === 'claimsAfter') {
        return async (after: string | null, limit: number) => {
          const page = await target.claimsAfter(after, limit);
          seen.largestPage = Math.max(seen.largestPage, new Set(page.map((c) => c.key)).size);
          return page;
        };
      }
      if (name === 'setCheckpoint') {
        return async (...args: Parameters<Store['setCheckpoint']>) => {
          if (++checkpoints === failCheckpointAt) throw new Error('crash');
          return target.setCheckpoint(...args);
        };
      }
      const value = Reflect.get(target, name) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as Store & { largestPage: number };
}

describe('a new tenant\'s fill, page by page', () => {
  let store: SqliteStore;
  const queued = async () => (await store.claimDue(SINK, 1000, Date.now(), 60_000))
    .map((item) => `${item.key} ${JSON.stringify(item.payload)}`).sort();

  beforeEach(async () => {
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-backfill-')));
    await store.commit({ source: 'opencti', checkpoint: null, ops: [], deadLetters: [], claimDeletes: [], claimUpserts: claims() });
  });
  afterEach(async () => { await store.close(); });

  it('queues what reading every claim at once queued, never holding more than one page', async () => {
    const expected = await oneReadFill(store);
    expect(expected.length).to.be.greaterThan(2 * PAGE);
    const watching = watched(store);
    expect(await backfill(watching, route, 0, PAGE)).to.equal(expected.length);
    expect(watching.largestPage).to.equal(PAGE);
    expect(await queued()).to.deep.equal(expected);
    expect((await store.getCheckpoint(backfillMarker(SINK)))?.state).to.deep.equal({ enqueued: expected.length });
  });

  it('after a crash mid-fill, the next start carries on: every selected key queued once, none delivered re-sent', async () => {
    const expected = await oneReadFill(store);
    // The third page is queued, then the process dies before recording it.
    await backfill(watched(store, 3), route, 0, PAGE).then(() => expect.fail('no crash'), (err: Error) => expect(err.message).to.equal('crash'));
    // The tenant's worker had delivered the oldest ones: the sink holds something now.
    const delivered = await store.claimDue(SINK, 2, Date.now(), 60_000);
    await store.ack(delivered.map((item) => ({ item, externalId: `id-${item.key}` })));
    const waitingAtCrash = await store.claimDue(SINK, 1000, Date.now(), 60_000);
    expect(waitingAtCrash.length).to.be.greaterThan(0);
    expect(delivered.length + waitingAtCrash.length).to.be.lessThan(expected.length);
    await store.retry(waitingAtCrash, 0, 'lease given back');

    await backfill(watched(store), route, 0, PAGE);
    const waiting = await queued();
    expect(waiting).to.have.length(expected.length - delivered.length);
    expect([...waiting, ...delivered.map((item) => `${item.key} ${JSON.stringify(item.payload)}`)].sort()).to.deep.equal(expected);
    // Finished: a later start queues nothing.
    expect(await backfill(store, route, 0, PAGE)).to.equal(0);
  });
});
