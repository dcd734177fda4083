// The breaker, the cap's plan and the decision log on a real store of each engine: durable across
// a restart, released only by a resume, ranking by documented value.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Breaker } from '../../src/guard/breaker.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { compareValue, IndicatorCap } from '../../src/sinks/defender/cap.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { OutboxItem } from '../../src/core/types.js';
import type { GuardDecision, Store } from '../../src/core/store.js';
import { dropSchema, freshSchemaName, requirePostgres, TEST_PG_URL } from '../support/postgres.js';

const log = createLogger('silent');
const allow = (source: string, at: number, key: string): GuardDecision => ({
  at, sink: 'defender', key, source, sourceRef: null, wanted: 'Block', action: 'Block', outcome: 'allow', reason: 'test', fresh: true,
});

const ENGINES = [
  { name: 'sqlite', before: null, fresh: () => mkdtempSync(join(tmpdir(), 'tb-gs-')), open: async (dir: string): Promise<Store> => new SqliteStore(dir),
    dispose: async () => undefined },
  { name: 'postgres', before: requirePostgres, fresh: freshSchemaName, open: (schema: string): Promise<Store> => PostgresStore.open({ url: TEST_PG_URL, schema }),
    dispose: dropSchema },
];

for (const engine of ENGINES) describe(`guard state in the store: ${engine.name}`, function () {
  this.timeout(30_000);
  let dir: string;
  let store: Store;
  before(async function () { if (engine.before) await engine.before(this); });
  beforeEach(async () => { dir = engine.fresh(); store = await engine.open(dir); });
  afterEach(async () => { await store.close(); await engine.dispose(dir); });

  it('breaker: counts the last hour durably, survives a restart, and counts again from a resume', async () => {
    const now = Date.now();
    await store.recordDecisions([allow('opencti', now - 2 * 3_600_000, 'ipv4:1.0.0.9'), ...[1, 2, 3].map((n) => allow('opencti', now - 1000, `ipv4:9.9.9.${n}`))]);
    let breaker = new Breaker(store, log, new Metrics(), 5, 1000);
    expect(await breaker.admit('opencti', 2, now)).to.equal(2, 'three in the last hour, two more fit');
    await store.recordDecisions([allow('opencti', now, 'ipv4:9.9.9.4'), allow('opencti', now, 'ipv4:9.9.9.5')]);
    // Restart: a new instance reads the same store.
    await store.close();
    store = await engine.open(dir);
    breaker = new Breaker(store, log, new Metrics(), 5, 1000);
    await breaker.refresh(true, now);
    expect(await breaker.admit('misp', 3, now)).to.equal(3, 'another source has its own budget');
    expect(await breaker.admit('opencti', 1, now)).to.equal(0);
    expect([...breaker.paused]).to.deep.equal(['opencti']);
    await store.close();
    store = await engine.open(dir);
    breaker = new Breaker(store, log, new Metrics(), 5, 1000);
    await breaker.refresh(true, now);
    expect([...breaker.paused], 'still open after a restart').to.deep.equal(['opencti']);

    expect(await store.resumeBreakers('opencti', now + 10)).to.deep.equal(['opencti']);
    expect(await store.resumeBreakers(null, now + 11)).to.deep.equal([], 'nothing left open');
    await breaker.refresh(true, now + 20);
    expect(breaker.paused.size).to.equal(0);
    expect(await breaker.admit('opencti', 5, now + 20)).to.equal(5, 'counting starts again at the resume');
  });

  it('decision log: newest first, filtered by source and time, pruned by age', async () => {
    const now = Date.now();
    await store.recordDecisions([allow('opencti', now - 5000, 'a:1'), allow('misp', now - 3000, 'a:2'), allow('opencti', now - 1000, 'a:3')]);
    expect((await store.listDecisions()).map((d) => d.key)).to.deep.equal(['a:3', 'a:2', 'a:1']);
    expect((await store.listDecisions({ source: 'opencti', since: now - 2000 })).map((d) => d.key)).to.deep.equal(['a:3']);
    expect(await store.pruneDecisions(now - 2000)).to.equal(2);
    expect((await store.listDecisions()).map((d) => d.key)).to.deep.equal(['a:3']);
  });

  it('cap: ranks by score, then later expiry, then freshness; forgets expired; evicts only for something worth more', async () => {
    const now = Date.now();
    expect(compareValue({ score: 10, expiresAt: null, updatedAt: 0 }, { score: null, expiresAt: null, updatedAt: 0 })).to.be.above(0);
    expect(compareValue({ score: 50, expiresAt: now + 1, updatedAt: 9 }, { score: 50, expiresAt: now + 2, updatedAt: 0 })).to.be.below(0);
    expect(compareValue({ score: 50, expiresAt: null, updatedAt: 1 }, { score: 50, expiresAt: null, updatedAt: 2 })).to.be.below(0);

    await store.putHeld('defender', [
      { key: 'ipv4:1.1.1.10', externalId: '10', score: 40, expiresAt: now + 86_400_000, updatedAt: now },
      { key: 'ipv4:1.1.1.11', externalId: '11', score: 40, expiresAt: now + 3_600_000, updatedAt: now },
      { key: 'ipv4:1.1.1.12', externalId: '12', score: 90, expiresAt: now + 86_400_000, updatedAt: now },
      { key: 'ipv4:1.1.1.13', externalId: '13', score: 99, expiresAt: now - 1, updatedAt: now },
    ]);
    const cap = new IndicatorCap('defender', 3, store, log, new Metrics());
    const held = await cap.active(now);
    expect([...held.keys()].sort()).to.deep.equal(['ipv4:1.1.1.10', 'ipv4:1.1.1.11', 'ipv4:1.1.1.12']);
    expect((await store.listHeld('defender')).map((h) => h.key), 'expired one forgotten').to.not.include('ipv4:1.1.1.13');

    const claim = (key: string, score: number) => ({ key, sourceId: `src-${key}`, updatedAt: now,
      change: { observable: { type: 'ipv4' as const, value: key.slice(5) }, score, labels: [], tlp: null, title: '', description: '', validFrom: null, validUntil: null,
        sourceRef: { system: 'opencti' as const, id: `src-${key}` } } });
    await store.commit({ source: 't', checkpoint: null, claimUpserts: [claim('ipv4:2.2.2.1', 80), claim('ipv4:2.2.2.2', 5), claim('ipv4:1.1.1.12', 90)], claimDeletes: [], ops: [], deadLetters: [] });
    const item = (key: string, seq: number): OutboxItem => ({ sink: 'defender', key, op: 'upsert', seq, attempts: 0, enqueuedAt: now, unconfirmedSend: false,
      sourceRef: { system: 'opencti', id: `src-${key}` }, payload: { action: 'Block', expirationTime: new Date(now + 86_400_000).toISOString() } });
    const plan = await cap.plan([item('ipv4:2.2.2.2', 1), item('ipv4:2.2.2.1', 2), item('ipv4:1.1.1.12', 3)], held, now);
    expect(plan.admit.map((i) => i.key).sort()).to.deep.equal(['ipv4:1.1.1.12', 'ipv4:2.2.2.1'], 'the update of a held key needs no slot');
    expect(plan.evict.map((e) => e.key), 'same score: the nearer expiry goes first').to.deep.equal(['ipv4:1.1.1.11']);
    expect(plan.refuse.map((i) => i.key)).to.deep.equal(['ipv4:2.2.2.2']);
  });
});
