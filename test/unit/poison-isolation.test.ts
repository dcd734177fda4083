// One event cannot hold the others (issue 13, the core's part), against a real SQLite store (and its thread): an
// event whose routing throws, or whose rows the store refuses, becomes one dead letter and the rest
// of its batch is stored; a store outage holds the source, /readyz names it, and nothing is lost.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import { IngestLoop } from '../../src/core/ingest-loop.js';
import { normaliseSafely, Pipeline, type IngestItem } from '../../src/core/pipeline.js';
import { Router, type RecordRoute, type SinkRoute } from '../../src/core/router.js';
import type { ClaimStore, Store } from '../../src/core/store.js';
import type { CommitUnit, IndicatorChange } from '../../src/core/types.js';
import { leadingSourcePart } from '../../src/flows/source-leadership.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { openSqliteThread } from '../../src/store/sqlite-thread.js';
import { dropSchema, freshSchemaName, requirePostgres, TEST_PG_URL } from '../support/postgres.js';

const log = createLogger('silent');
const POISON = '203.0.113.66';

/** Passes every claim on as an upsert of its change; throws on the poison value, as a buggy mapper would. */
const route: SinkRoute = {
  sink: 'test',
  route(key, claim) {
    if (claim?.change.observable.value === POISON) throw new TypeError("Cannot read properties of undefined (reading 'toUpperCase')");
    return { sink: 'test', op: claim ? { sink: 'test', key, op: 'upsert', payload: claim.change, sourceRef: claim.change.sourceRef } : null, reason: 'test' };
  },
};

const change = (id: string, value: string, extra: Partial<IndicatorChange> = {}): IndicatorChange => ({
  observable: { type: 'ipv4', value }, score: 80, labels: [], tlp: null, title: id, description: '', validFrom: null, validUntil: null,
  sourceRef: { system: 'opencti', id }, ...extra,
});

const item = (n: number, value: string, extra: Partial<IndicatorChange> = {}): IngestItem => ({
  normalised: { sourceRef: { system: 'opencti', id: `indicator--${n}` }, changes: [change(`indicator--${n}`, value, extra)], retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: null },
  raw: { n, value }, event: 'create', position: `${n}-0`, checkpoint: { position: `${n}-0`, state: {} },
});

describe('poison isolation in the core', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'tb-poison-')); store = new SqliteStore(dir); });
  afterEach(async () => { await store.close(); });

  const pipeline = (s: ClaimStore = store) => new Pipeline(s, new Router([route]), log, new Metrics());
  const queuedValues = async () => (await store.claimDue('test', 1000, Date.now(), 60_000)).map((i) => i.key).sort();

  it('an event whose routing throws becomes one dead letter; its neighbours in the batch are stored and the checkpoint moves past it', async () => {
    const items = [item(1, '198.51.100.1'), item(2, '198.51.100.2'), item(3, POISON), item(4, '198.51.100.4'), item(5, '198.51.100.5')];
    const r = await pipeline().ingest('opencti', items);
    expect(r).to.include({ events: 5, deadLetters: 1 });
    expect(await queuedValues()).to.deep.equal(['ipv4:198.51.100.1', 'ipv4:198.51.100.2', 'ipv4:198.51.100.4', 'ipv4:198.51.100.5']);
    const letters = await store.listDeadLetters();
    expect(letters.map((d) => [d.sink, d.key, d.op])).to.deep.equal([['source:opencti', 'indicator--3', 'create']]);
    expect(letters[0]!.reason).to.match(/^processing_failed: .*toUpperCase/);
    expect(letters[0]!.payload).to.deep.equal({ n: 3, value: POISON });
    expect((await store.getCheckpoint('opencti'))?.position).to.equal('5-0');
  });

  it('a batch the store refuses because of one event is split until that event is found; the others are stored', async () => {
    // A value SQLite cannot be given (JSON has no BigInt): the commit of any batch holding it fails.
    const bad = item(6, '198.51.100.6', { description: 10n as unknown as string });
    const good = [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16].map((n) => item(n, `198.51.100.${n}`));
    const items = [...good.slice(0, 5), bad, ...good.slice(5)];
    const commits: number[] = [];
    const counting: ClaimStore = {
      loadClaims: (k, s, p) => store.loadClaims(k, s, p),
      commit: (u: CommitUnit) => { commits.push(u.ops.length + u.deadLetters.length); return store.commit(u); },
      refusedData: (e) => store.refusedData(e),
    };
    const r = await pipeline(counting).ingest('opencti', items);
    expect(r.deadLetters).to.equal(1);
    expect(await queuedValues()).to.deep.equal(good.map((g) => `ipv4:198.51.100.${(g.raw as { n: number }).n}`).sort());
    const letters = await store.listDeadLetters();
    expect(letters.map((d) => d.key)).to.deep.equal(['indicator--6']);
    expect(letters[0]!.reason).to.match(/^store_refused: .*BigInt/);
    // Halves: 1 + 2 per level (log2 16 = 4) + the dead letter, not a commit per event.
    expect(commits.length).to.equal(10);
    expect((await store.getCheckpoint('opencti'))?.position).to.equal('16-0');
  });

  it('a poller\'s record whose route throws costs that record alone', async () => {
    const records: RecordRoute = {
      sink: 'test', types: ['machine'],
      route: (c) => {
        if (c.id === 'm-bad') throw new RangeError('Invalid time value');
        return [{ sink: 'test', key: `machine:${c.id}`, op: 'upsert', payload: c.record, sourceRef: null }];
      },
    };
    const machine = (id: string, checkpoint: string | null): IngestItem => ({
      normalised: { kind: 'record', type: 'machine', id, op: 'upsert', record: { id } }, raw: { id }, event: 'machine', position: id,
      checkpoint: checkpoint ? { position: checkpoint, state: {} } : null,
    });
    const r = await new Pipeline(store, new Router([], [records]), log, new Metrics())
      .ingest('defender_assets', [machine('m1', null), machine('m-bad', null), machine('m3', 'run-1')]);
    expect(r.deadLetters).to.equal(1);
    expect(await queuedValues()).to.deep.equal(['machine:m1', 'machine:m3']);
    expect((await store.listDeadLetters()).map((d) => [d.sink, d.key, d.reason])).to.deep.equal([['source:defender_assets', 'm-bad', 'processing_failed: Invalid time value']]);
    expect((await store.getCheckpoint('defender_assets'))?.position).to.equal('run-1');
  });

  it('a dead letter keeps a bounded copy of a huge event', async () => {
    const huge = { ...item(9, POISON), raw: { body: 'x'.repeat(1_000_000) } };
    await new Pipeline(store, new Router([route]), log, new Metrics(), { rawCopyBytes: 64 * 1024 }).ingest('opencti', [huge]);
    const [letter] = await store.listDeadLetters();
    const payload = letter!.payload as { cut: boolean; bytes: number; head: string };
    expect(payload.cut).to.equal(true);
    expect(payload.bytes).to.be.greaterThan(1_000_000);
    expect(payload.head.length).to.be.below(64 * 1024 + 100);
  });

  it('a normaliser that throws gives a rejection to dead-letter, not an exception', () => {
    const n = normaliseSafely(() => { throw new URIError('URI malformed'); });
    expect(n).to.deep.include({ rejected: { code: 'normalise_failed', detail: 'URI malformed' } });
  });

  it('a store outage holds the source without dead-lettering anything, /readyz names the source, and everything is stored once the store is back', async () => {
    let engine: SqliteStore = store;
    const current: ClaimStore = {
      loadClaims: (k, s, p) => engine.loadClaims(k, s, p),
      commit: (u) => engine.commit(u),
      refusedData: (e) => engine.refusedData(e),
    };
    const loop = new IngestLoop('opencti', pipeline(current), { batchSize: 3, batchMs: 1, queueSize: 100 }, log);
    const ctx = { config: configSchema.parse({}), store, log, metrics: new Metrics() };
    const part = leadingSourcePart(ctx, 'opencti', { start: async () => undefined, stop: () => undefined, health: () => null }, loop, 'not stored');
    await part.start();
    await engine.close(); // the database goes away under the running service
    const stored = loop.store([1, 2, 3, 4, 5, 6, 7].map((n) => item(n, n === 4 ? POISON : `198.51.100.${n}`)));
    await new Promise((r) => setTimeout(r, 300));
    expect(loop.size).to.equal(7);
    expect(await part.health!()).to.match(/cannot store what it read: .*database connection is not open/);

    engine = store = new SqliteStore(dir); // back
    await stored;
    expect(await part.health!()).to.equal(null);
    expect(await queuedValues()).to.have.length(6);
    expect((await store.listDeadLetters()).map((d) => d.key)).to.deep.equal(['indicator--4']); // the poison only
    expect((await store.getCheckpoint('opencti'))?.position).to.equal('7-0');
    loop.stop();
  });

  it('a disk too full for a batch but not for one small row holds the batch: no event is dead-lettered for the store\'s fault', async () => {
    const full = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    const nearlyFull: ClaimStore = {
      loadClaims: (k, s, p) => store.loadClaims(k, s, p),
      commit: async (u) => { if (u.ops.length > 0 || u.claimUpserts.length > 0) throw full; return store.commit(u); },
      refusedData: (e) => store.refusedData(e),
    };
    const err = await pipeline(nearlyFull).ingest('opencti', [item(1, '198.51.100.1'), item(2, '198.51.100.2')]).catch((e: Error) => e);
    expect(err).to.equal(full);
    expect(await store.listDeadLetters()).to.deep.equal([]);
    expect(await store.getCheckpoint('opencti')).to.equal(null);
  });

  it('only data faults count as the data\'s: an outage never costs an event', () => {
    expect(store.refusedData(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }))).to.equal(false);
    expect(store.refusedData(Object.assign(new Error('connection terminated'), { code: '57P01' }))).to.equal(false);
    expect(store.refusedData(new TypeError('The database connection is not open'))).to.equal(false);
    expect(store.refusedData(Object.assign(new Error('string or blob too big'), { code: 'SQLITE_TOOBIG' }))).to.equal(true);
    expect(store.refusedData(Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' }))).to.equal(true);
  });
});

describe('poison isolation in the core, on the SQLite store thread', () => {
  let store: Store;
  beforeEach(async () => { store = await openSqliteThread(mkdtempSync(join(tmpdir(), 'tb-poison-')), { owner: true }); });
  afterEach(async () => { await store.close(); });

  it('an event carrying a value the store thread cannot be handed (a function) becomes one dead letter; its neighbours are stored', async () => {
    const items = [item(1, '198.51.100.1'), item(2, '198.51.100.2', { description: (() => 'x') as unknown as string }), item(3, '198.51.100.3')];
    const r = await new Pipeline(store, new Router([route]), log, new Metrics()).ingest('opencti', items);
    expect(r.deadLetters).to.equal(1);
    expect((await store.claimDue('test', 100, Date.now(), 60_000)).map((i) => i.key).sort()).to.deep.equal(['ipv4:198.51.100.1', 'ipv4:198.51.100.3']);
    const letters = await store.listDeadLetters();
    expect(letters.map((d) => d.key)).to.deep.equal(['indicator--2']);
    expect(letters[0]!.reason).to.match(/^store_refused: .*could not be cloned/);
    expect((await store.getCheckpoint('opencti'))?.position).to.equal('3-0');
  });
});

describe('poison isolation in the core, on PostgreSQL', function () {
  this.timeout(30_000);
  let schema: string;
  let store: PostgresStore;
  before(async function () { await requirePostgres(this); });
  beforeEach(async () => { schema = freshSchemaName(); store = await PostgresStore.open({ url: TEST_PG_URL, schema }); });
  afterEach(async () => { await store.close(); await dropSchema(schema); });

  it('a value PostgreSQL refuses in one event (a NUL character in its title) costs that event alone', async () => {
    const items = [item(1, '198.51.100.1'), item(2, '198.51.100.2', { title: 'evil\u0000name' }), item(3, '198.51.100.3')];
    const r = await new Pipeline(store, new Router([route]), log, new Metrics()).ingest('opencti', items);
    expect(r.deadLetters).to.equal(1);
    expect((await store.claimDue('test', 100, Date.now(), 60_000)).map((i) => i.key).sort()).to.deep.equal(['ipv4:198.51.100.1', 'ipv4:198.51.100.3']);
    const letters = await store.listDeadLetters();
    expect(letters.map((d) => d.key)).to.deep.equal(['indicator--2']);
    expect(letters[0]!.reason).to.match(/^store_refused: /);
    expect((await store.getCheckpoint('opencti'))?.position).to.equal('3-0');
  });
});
