// One contract for every store engine: the same tests run against SQLite and PostgreSQL (each
// PostgreSQL test in a fresh schema; skipped with the reason when no server is reachable).
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { openSqliteThread } from '../../src/store/sqlite-thread.js';
import type { Store } from '../../src/core/store.js';
import type { SinkOp } from '../../src/core/types.js';
import { dropSchema, freshSchemaName, requirePostgres, TEST_PG_URL } from '../support/postgres.js';

const op = (key: string, kind: 'upsert' | 'delete', payload: unknown = { v: key }): SinkOp =>
  ({ sink: 'defender', key, op: kind, payload, sourceRef: { system: 'opencti', id: `src-${key}` } });

const commit = (store: Store, ops: SinkOp[], position = '1-0') =>
  store.commit({ source: 'opencti', checkpoint: { position, state: { start_from: position } }, claimUpserts: [], claimDeletes: [], ops, deadLetters: [] });

interface Engine {
  name: string;
  engine: Store['engine'];
  before?(ctx: Mocha.Context): Promise<void>;
  /** A new location for a test. */
  fresh(): string;
  open(where: string): Promise<Store>;
  dispose(where: string): Promise<void>;
  /** From another connection: every later insert or update of `table` fails (a trigger), to break a commit midway. */
  breakWrites(where: string, table: 'outbox' | 'checkpoints'): Promise<void>;
}

const sqliteFiles = {
  fresh: () => mkdtempSync(join(tmpdir(), 'tb-store-')),
  dispose: async () => undefined,
  breakWrites: async (dir: string, table: string) => {
    const db = new Database(join(dir, 'threatbridge.db'));
    for (const event of ['INSERT', 'UPDATE']) {
      db.exec(`CREATE TRIGGER fail_${table}_${event} BEFORE ${event} ON ${table} BEGIN SELECT RAISE(ABORT, 'injected failure'); END`);
    }
    db.close();
  },
};

const ENGINES: Engine[] = [
  {
    name: 'sqlite',
    engine: 'sqlite',
    ...sqliteFiles,
    // The service's view: it owns the file and voids a crashed run's leases.
    open: async (dir) => new SqliteStore(dir, undefined, { owner: true }),
  },
  {
    // What the service runs: the same store on its own thread.
    name: 'sqlite on its thread',
    engine: 'sqlite',
    ...sqliteFiles,
    open: (dir) => openSqliteThread(dir, { owner: true }),
  },
  {
    name: 'postgres',
    engine: 'postgres',
    before: requirePostgres,
    fresh: freshSchemaName,
    open: (schema) => PostgresStore.open({ url: TEST_PG_URL, schema }),
    dispose: dropSchema,
    breakWrites: async (schema, table) => {
      const client = new pg.Client({ connectionString: TEST_PG_URL });
      await client.connect();
      try {
        await client.query(`CREATE FUNCTION "${schema}".fail_${table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`);
        await client.query(`CREATE TRIGGER fail_${table} BEFORE INSERT OR UPDATE ON "${schema}".${table} FOR EACH ROW EXECUTE FUNCTION "${schema}".fail_${table}()`);
      } finally {
        await client.end();
      }
    },
  },
];

for (const engine of ENGINES) {
  describe(`store contract: ${engine.name}`, function () {
    this.timeout(30_000);
    let where: string;
    let store: Store;
    const reopen = async () => { await store.close(); store = await engine.open(where); };
    before(async function () { if (engine.before) await engine.before(this); });
    beforeEach(async () => {
      where = engine.fresh();
      store = await engine.open(where);
    });
    afterEach(async () => {
      await store?.close();
      await engine.dispose(where);
    });

    it('writes operations and the checkpoint together and survives reopening', async () => {
      await commit(store, [op('ipv4:1.2.3.4', 'upsert')], '5-0');
      await reopen();
      expect(store.engine).to.equal(engine.engine);
      expect(await store.getCheckpoint('opencti')).to.deep.equal({ position: '5-0', state: { start_from: '5-0' } });
      const due = await store.claimDue('defender', 10, Date.now(), 1000);
      expect(due.map((d) => d.key)).to.deep.equal(['ipv4:1.2.3.4']);
      expect(due[0]!.sourceRef).to.deep.equal({ system: 'opencti', id: 'src-ipv4:1.2.3.4' });
      expect(await store.resetCheckpoint('opencti')).to.equal(true);
      expect(await store.getCheckpoint('opencti')).to.equal(null);
    });

    // The transaction itself: a failure between the operations and the checkpoint leaves neither, whichever
    // of the two is written first (a checkpoint written outside the transaction fails one of these).
    it('keeps the old checkpoint when writing the operations fails', async () => {
      await commit(store, [op('a', 'upsert')], '1-0');
      await engine.breakWrites(where, 'outbox');
      let failed = false;
      await commit(store, [op('b', 'upsert')], '2-0').catch(() => { failed = true; });
      expect(failed, 'the commit reports the failure').to.equal(true);
      expect(await store.getCheckpoint('opencti')).to.deep.equal({ position: '1-0', state: { start_from: '1-0' } });
    });

    it('writes no operation when writing the checkpoint fails', async () => {
      await commit(store, [op('a', 'upsert')], '1-0');
      await engine.breakWrites(where, 'checkpoints');
      let failed = false;
      await commit(store, [op('b', 'upsert'), op('a', 'delete')], '2-0').catch(() => { failed = true; });
      expect(failed, 'the commit reports the failure').to.equal(true);
      const due = await store.claimDue('defender', 10, Date.now(), 1000);
      expect(due.map((d) => [d.key, d.op])).to.deep.equal([['a', 'upsert']]);
    });

    it('lets a newer operation supersede a waiting one for the same key', async () => {
      await commit(store, [op('k', 'upsert', { n: 1 })]);
      await commit(store, [op('k', 'upsert', { n: 2 })]);
      await commit(store, [op('k', 'delete', { n: 3 })]);
      const due = await store.claimDue('defender', 10, Date.now(), 1000);
      expect(due).to.have.length(1);
      expect(due[0]!.op).to.equal('delete');
      expect(due[0]!.payload).to.deep.equal({ n: 3 });
    });

    it('keeps the stored form of an operation instead of its payload, in commits and in enqueues (the sink rebuilds the payload)', async () => {
      await commit(store, [{ ...op('a', 'upsert', { body: 'large' }), stored: { claim: 'src-a', at: 5 } }, op('b', 'upsert', { body: 'kept' })]);
      await store.enqueue([{ ...op('c', 'upsert', { body: 'large' }), stored: { claim: 'src-c', at: 6 } }]);
      const due = await store.claimDue('defender', 10, Date.now(), 1000);
      expect(due.map((d) => [d.key, d.payload])).to.deep.equal([['a', { claim: 'src-a', at: 5 }], ['b', { body: 'kept' }], ['c', { claim: 'src-c', at: 6 }]]);
      // The stored form stands for the source ref too: the sink rebuilds it from the claim.
      expect(due.map((d) => d.sourceRef)).to.deep.equal([null, { system: 'opencti', id: 'src-b' }, null]);
    });

    it('keeps the last of several operations for one key in one commit, and the arrival order across keys', async () => {
      await commit(store, [op('b', 'upsert', { n: 1 }), op('a', 'upsert', { n: 2 }), op('b', 'delete', { n: 3 })]);
      const due = await store.claimDue('defender', 10, Date.now(), 1000);
      // b's newest op came last, so it is younger than a's.
      expect(due.map((d) => [d.key, d.op, d.payload])).to.deep.equal([['a', 'upsert', { n: 2 }], ['b', 'delete', { n: 3 }]]);
    });

    it('does not lose an operation that arrives while an older one is in flight', async () => {
      await commit(store, [op('k', 'upsert', { n: 1 })]);
      const [inFlight] = await store.claimDue('defender', 10, Date.now(), 60_000);
      await commit(store, [op('k', 'delete', { n: 2 })]);
      // Leased key: the newer op waits for the older call to finish.
      expect(await store.claimDue('defender', 10, Date.now(), 60_000)).to.have.length(0);
      await store.ack([{ item: inFlight!, externalId: '42' }]);
      expect((await store.getSinkIds('defender', ['k'])).get('k')).to.equal('42');
      expect(await store.countSinkIds('defender')).to.equal(1);
      const next = await store.claimDue('defender', 10, Date.now(), 60_000);
      expect(next.map((n) => [n.op, n.payload])).to.deep.equal([['delete', { n: 2 }]]);
      await store.ack([{ item: next[0]!, externalId: null }]);
      expect((await store.getSinkIds('defender', ['k'])).size).to.equal(0);
      expect(await store.claimDue('defender', 10, Date.now(), 60_000)).to.have.length(0);
    });

    it('hands a leased operation out again only after its lease expires', async () => {
      await commit(store, [op('a', 'upsert')]);
      const now = Date.now();
      expect(await store.claimDue('defender', 10, now, 1000)).to.have.length(1);
      expect(await store.claimDue('defender', 10, now + 500, 1000)).to.have.length(0);
      expect(await store.nextDueAt('defender')).to.equal(now + 1000);
      expect(await store.claimDue('defender', 10, now + 1001, 1000)).to.have.length(1);
    });

    it('reschedules retries and dead-letters with the reason', async () => {
      await commit(store, [op('a', 'upsert'), op('b', 'upsert')]);
      const [a, b] = await store.claimDue('defender', 10, Date.now(), 60_000);
      await store.retry([a!], Date.now() + 60_000, 'HTTP 503');
      await store.deadLetter([{ item: b!, reason: 'InvalidIpAddress' }]);
      expect(await store.claimDue('defender', 10, Date.now(), 60_000)).to.have.length(0);
      expect(await store.nextDueAt('defender')).to.be.greaterThan(Date.now() + 50_000);
      const [again] = await store.claimDue('defender', 10, Date.now() + 61_000, 60_000);
      expect(again!.attempts).to.equal(1);
      const dl = await store.listDeadLetters();
      expect(dl.map((d) => [d.key, d.reason, d.attempts, d.payload])).to.deep.equal([['b', 'InvalidIpAddress', 1, { v: 'b' }]]);
      const taken = await store.takeDeadLetters('all');
      expect(taken).to.have.length(1);
      expect(await store.listDeadLetters()).to.have.length(0);
      expect(await store.listDeadLetters({ includeReplayed: true })).to.have.length(1);
      expect(await store.enqueue([op('b', 'upsert')])).to.equal(1);
      expect(await store.enqueue([op('b', 'upsert')])).to.equal(0);
    });

    it('dead-letters only the failed operation when a newer one for the key waits', async () => {
      await commit(store, [op('k', 'upsert', { n: 1 })]);
      const [old] = await store.claimDue('defender', 10, Date.now(), 60_000);
      await commit(store, [op('k', 'upsert', { n: 2 })]);
      await store.deadLetter([{ item: old!, reason: 'bad' }]);
      expect(await store.listDeadLetters()).to.have.length(0);
      const [next] = await store.claimDue('defender', 10, Date.now(), 60_000);
      expect(next!.payload).to.deep.equal({ n: 2 });
      expect(next!.attempts).to.equal(0);
    });

    it('stores dead letters from a commit and takes them by id', async () => {
      await store.commit({ source: 'opencti', checkpoint: null, claimUpserts: [], claimDeletes: [], ops: [], deadLetters: [
        { sink: 'defender', key: 'x', op: 'upsert', payload: { a: 1 }, sourceRef: null, reason: 'unmappable' },
        { sink: 'other', key: 'y', op: 'upsert', payload: { b: 2 }, sourceRef: null, reason: 'unmappable' },
      ] });
      const all = await store.listDeadLetters();
      expect(all.map((d) => d.key)).to.deep.equal(['x', 'y']);
      expect((await store.listDeadLetters({ sink: 'other' })).map((d) => d.key)).to.deep.equal(['y']);
      expect((await store.takeDeadLetters([all[1]!.id])).map((d) => d.key)).to.deep.equal(['y']);
      expect((await store.takeDeadLetters('all', 'defender')).map((d) => d.key)).to.deep.equal(['x']);
      expect(await store.takeDeadLetters('all')).to.have.length(0);
    });

    it('reports outbox statistics per sink', async () => {
      await store.commit({ source: 'opencti', checkpoint: null, claimUpserts: [], claimDeletes: [], deadLetters: [],
        ops: [op('a', 'upsert'), op('b', 'upsert'), { ...op('c', 'upsert'), sink: 'other' }] });
      const stats = await store.outboxStats(Date.now());
      expect(stats.map((s) => [s.sink, s.pending, s.due]).sort()).to.deep.equal([['defender', 2, 2], ['other', 1, 1]]);
      await store.ping();
    });

    it('tells a later operation that an earlier send for its key was never confirmed', async () => {
      await commit(store, [op('never-sent', 'upsert'), op('crashed', 'upsert')]);
      await commit(store, [op('never-sent', 'delete')]);
      const first = await store.claimDue('defender', 10, Date.now(), 3_600_000);
      expect(first.map((i) => [i.key, i.op, i.unconfirmedSend])).to.deep.equal([['crashed', 'upsert', false], ['never-sent', 'delete', false]]);
      await store.ack([{ item: first[1]!, externalId: null }]);
      // The upload of 'crashed' was out when the process died; the delete that replaces it must know.
      await reopen();
      await commit(store, [op('crashed', 'delete')]);
      const [del] = await store.claimDue('defender', 10, Date.now(), 1000);
      expect([del!.key, del!.op, del!.unconfirmedSend]).to.deep.equal(['crashed', 'delete', true]);
      await store.ack([{ item: del!, externalId: null }]);
      await commit(store, [op('crashed', 'upsert')]);
      expect((await store.claimDue('defender', 10, Date.now(), 1000))[0]!.unconfirmedSend, 'a confirmed op clears the mark').to.equal(false);
    });

    it('frees leases of a crashed run when reopened', async () => {
      await commit(store, [op('a', 'upsert')]);
      await store.claimDue('defender', 10, Date.now(), 3_600_000);
      await reopen();
      expect(await store.claimDue('defender', 10, Date.now(), 1000)).to.have.length(1);
    });

    it('loads claims by key and by source object', async () => {
      const change = { observable: { type: 'ipv4', value: '1.2.3.4' } } as never;
      await store.commit({ source: 'opencti', checkpoint: null, ops: [], deadLetters: [], claimDeletes: [],
        claimUpserts: [
          { key: 'ipv4:1.2.3.4', sourceId: 'indicator--a', change, updatedAt: 1 },
          { key: 'ipv4:5.6.7.8', sourceId: 'indicator--b', change, updatedAt: 1 },
          { key: 'ipv4:1.2.3.4', sourceId: 'indicator--c', change, updatedAt: 2 },
        ] });
      expect((await store.loadClaims([], ['indicator--a'])).map((c) => c.sourceId).sort()).to.deep.equal(['indicator--a', 'indicator--c']);
      expect((await store.loadClaims(['ipv4:5.6.7.8'], [])).map((c) => c.sourceId)).to.deep.equal(['indicator--b']);
      await store.commit({ source: 'opencti', checkpoint: null, ops: [], deadLetters: [], claimUpserts: [],
        claimDeletes: [{ key: 'ipv4:1.2.3.4', sourceId: 'indicator--a' }] });
      expect((await store.loadClaims(['ipv4:1.2.3.4'], [])).map((c) => [c.sourceId, c.updatedAt])).to.deep.equal([['indicator--c', 2]]);
    });

    it('loads claims and sink ids for more keys than one SQL statement can bind (a 10,000-event batch)', async () => {
      // SQLite binds at most 32,766 parameters per statement: the list must not become one each.
      const keys = Array.from({ length: 40_000 }, (_, i) => `ipv4:10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
      const change = { observable: { type: 'ipv4', value: '10.0.0.0' } } as never;
      await store.commit({ source: 'opencti', checkpoint: null, ops: [], deadLetters: [], claimDeletes: [],
        claimUpserts: [keys[0]!, keys[39_999]!].map((key, i) => ({ key, sourceId: `indicator--${i}`, change, updatedAt: 1 })) });
      await store.setSinkIds('defender', [{ key: keys[20_000]!, externalId: '77' }]);
      const ids = keys.map((_, i) => `indicator--${i}`);
      expect((await store.loadClaims(keys, ids)).map((c) => c.key).sort()).to.deep.equal([keys[0], keys[39_999]].sort());
      expect([...(await store.getSinkIds('defender', keys)).entries()]).to.deep.equal([[keys[20_000], '77']]);
    });

    it('loads the claims of every source id under a prefix (a MISP event), with the other claims on their keys', async () => {
      const change = { observable: { type: 'domain', value: 'x.example' } } as never;
      await store.commit({ source: 'misp', checkpoint: null, ops: [], deadLetters: [], claimDeletes: [],
        claimUpserts: [
          { key: 'domain:a.example', sourceId: 'misp:1:aaa', change, updatedAt: 1 },
          { key: 'domain:b.example', sourceId: 'misp:1:bbb', change, updatedAt: 1 },
          { key: 'domain:c.example', sourceId: 'misp:10:ccc', change, updatedAt: 1 },
          { key: 'domain:a.example', sourceId: 'indicator--z', change, updatedAt: 1 },
          { key: 'domain:d.example', sourceId: 'misp%1:ddd', change, updatedAt: 1 },
        ] });
      const found = (await store.loadClaims([], [], ['misp:1:'])).map((c) => `${c.key} ${c.sourceId}`).sort();
      expect(found).to.deep.equal(['domain:a.example indicator--z', 'domain:a.example misp:1:aaa', 'domain:b.example misp:1:bbb']);
    });

    describe('claims page by page (a new tenant\'s fill)', () => {
      // Keys of one length differing in their last letter: the same order under any collation.
      const stored = [['k:b', 's3'], ['k:a', 's1'], ['k:b', 's1'], ['k:d', 's2'], ['k:c', 's1'], ['k:b', 's2'], ['k:d', 's1']];
      const change = { observable: { type: 'domain', value: 'x.example' } } as never;
      /** Every page until the empty one (a bounded walk: a page that repeats fails, not hangs), each as "key sourceId". */
      const pages = async (limit: number) => {
        const found: string[][] = [];
        let after: string | null = null;
        while (found.length <= stored.length) {
          const page = await store.claimsAfter(after, limit);
          if (page.length === 0) break;
          found.push(page.map((c) => `${c.key} ${c.sourceId}`));
          after = page[page.length - 1]!.key;
        }
        return found;
      };
      beforeEach(() => store.commit({ source: 'opencti', checkpoint: null, ops: [], deadLetters: [], claimDeletes: [],
        claimUpserts: stored.map(([key, sourceId]) => ({ key: key!, sourceId: sourceId!, change, updatedAt: 1 })) }));

      it('keeps every claim of a key on one page, in key order, whatever the page size', async () => {
        expect(await pages(2)).to.deep.equal([['k:a s1', 'k:b s1', 'k:b s2', 'k:b s3'], ['k:c s1', 'k:d s1', 'k:d s2']]);
        expect(await pages(1)).to.deep.equal([['k:a s1'], ['k:b s1', 'k:b s2', 'k:b s3'], ['k:c s1'], ['k:d s1', 'k:d s2']]);
        expect((await store.claimsAfter('k:b', 1))[0]).to.deep.include({ key: 'k:c', sourceId: 's1', change, updatedAt: 1 });
      });

      it('gives an empty page past the last key and on an empty store', async () => {
        expect(await store.claimsAfter('k:d', 10)).to.deep.equal([]);
        await store.commit({ source: 'opencti', checkpoint: null, ops: [], deadLetters: [], claimUpserts: [],
          claimDeletes: stored.map(([key, sourceId]) => ({ key: key!, sourceId: sourceId! })) });
        expect(await store.claimsAfter(null, 10)).to.deep.equal([]);
      });
    });

    it('lists the ids a sink holds for us', async () => {
      await commit(store, [op('k1', 'upsert'), op('k2', 'upsert')]);
      const items = await store.claimDue('defender', 10, Date.now(), 60_000);
      await store.ack(items.map((item) => ({ item, externalId: `id-${item.key}` })));
      expect((await store.listSinkIds('defender')).map((r) => [r.key, r.externalId])).to.deep.equal([['k1', 'id-k1'], ['k2', 'id-k2']]);
    });

    it('records sink ids ahead of an ack, the last per key, and the ack replaces them', async () => {
      await store.setSinkIds('car', [{ key: 'k1', externalId: 'early' }, { key: 'k2', externalId: 'x' }, { key: 'k2', externalId: 'y' }]);
      await store.setSinkIds('car', []);
      expect([...(await store.getSinkIds('car', ['k1', 'k2']))]).to.deep.equal([['k1', 'early'], ['k2', 'y']]);
      await commit(store, [{ ...op('k1', 'upsert'), sink: 'car' }]);
      const items = await store.claimDue('car', 10, Date.now(), 60_000);
      await store.ack(items.map((item) => ({ item, externalId: 'acked' })));
      expect((await store.getSinkIds('car', ['k1'])).get('k1')).to.equal('acked');
    });

    it('grants the source lock to its holder', async () => {
      const lock = await store.acquireSourceLock('opencti');
      expect(lock).to.not.equal(null);
      await lock!.release();
    });
  });
}

describe('SQLite store upgrade', () => {
  it('upgrades a store written by the previous schema and keeps its queued work', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-store-'));
    const old = new SqliteStore(dir, undefined, { owner: true });
    await commit(old, [op('queued', 'upsert')]);
    await old.close();
    // Make the file what schema 2 wrote: no unconfirmed_send column.
    const raw = new Database(join(dir, 'threatbridge.db'));
    raw.exec("ALTER TABLE outbox DROP COLUMN unconfirmed_send; UPDATE meta SET value = '2' WHERE key = 'schema_version'");
    raw.close();
    const upgraded = new SqliteStore(dir, undefined, { owner: true });
    const items = await upgraded.claimDue('defender', 10, Date.now(), 1000);
    expect(items.map((i) => [i.key, i.unconfirmedSend])).to.deep.equal([['queued', false]]);
    await upgraded.close();
  });
});

describe('SQLite store opened by a CLI command beside the running service', () => {
  it('leaves the service\'s in-flight leases alone, and what it queues is delivered after them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-store-cli-'));
    const service = new SqliteStore(dir, undefined, { owner: true });
    await commit(service, [op('a', 'upsert')]);
    const inFlight = await service.claimDue('defender', 10, Date.now(), 3_600_000);
    const cli = new SqliteStore(dir);
    expect(await cli.claimDue('defender', 10, Date.now(), 1000), 'still leased by the service').to.have.length(0);
    expect(await cli.enqueue([op('b', 'upsert', { v: 'replayed' })])).to.equal(1);
    await cli.close();
    await service.ack(inFlight.map((item) => ({ item, externalId: 'id-a' })));
    const next = await service.claimDue('defender', 10, Date.now(), 1000);
    expect(next.map((i) => [i.key, i.payload])).to.deep.equal([['b', { v: 'replayed' }]]);
    expect(next[0]!.seq).to.be.above(inFlight[0]!.seq);
    await service.close();
  });
});

describe('PostgreSQL store between replicas', function () {
  this.timeout(30_000);
  let schema: string;
  const stores: PostgresStore[] = [];
  const open = async () => { const s = await PostgresStore.open({ url: TEST_PG_URL, schema, sessionCheckMs: 200 }); stores.push(s); return s; };
  before(async function () { await requirePostgres(this); });
  beforeEach(() => { schema = freshSchemaName(); });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await dropSchema(schema);
  });

  it('migrates once when replicas start at the same time', async () => {
    const [a, b, c] = await Promise.all([open(), open(), open()]);
    const client = new pg.Client({ connectionString: TEST_PG_URL });
    await client.connect();
    const r = await client.query(`SELECT version FROM "${schema}".schema_version`);
    await client.end();
    expect(r.rows).to.deep.equal([{ version: 3 }]);
    await commit(a!, [op('k', 'upsert')]);
    expect(await b!.getCheckpoint('opencti')).to.not.equal(null);
    expect(await c!.claimDue('defender', 10, Date.now(), 1000)).to.have.length(1);
  });

  it('never leases one operation to two replicas claiming at once', async () => {
    const [a, b] = await Promise.all([open(), open()]);
    await commit(a!, Array.from({ length: 200 }, (_, i) => op(`k${i}`, 'upsert')));
    const seen: string[] = [];
    await Promise.all([a!, b!].map(async (s) => {
      for (;;) {
        const items = await s.claimDue('defender', 7, Date.now(), 60_000);
        if (items.length === 0) return;
        seen.push(...items.map((i) => i.key));
        await s.ack(items.map((item) => ({ item, externalId: `id-${item.key}` })));
      }
    }));
    expect(seen).to.have.length(200);
    expect(new Set(seen).size).to.equal(200);
    expect(await a!.countSinkIds('defender')).to.equal(200);
  });

  it('gives a source to one replica and hands it over when the holder dies', async () => {
    const [a, b] = await Promise.all([open(), open()]);
    const held = await a!.acquireSourceLock('opencti');
    expect(held).to.not.equal(null);
    expect(await b!.acquireSourceLock('opencti')).to.equal(null);
    const other = await b!.acquireSourceLock('misp');
    expect(other).to.not.equal(null, 'another source is free');
    await other!.release();
    // The holder's session dies (as with kill -9): the lock goes with it, and the holder hears so.
    await commit(a!, [op('k', 'upsert')]);
    expect(await a!.claimDue('defender', 10, Date.now(), 3_600_000)).to.have.length(1);
    const killer = new pg.Client({ connectionString: TEST_PG_URL });
    await killer.connect();
    await killer.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'threatbridge-session'
      AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)`);
    await killer.end();
    expect(await held!.lost).to.match(/session/);
    let taken = null;
    for (let i = 0; i < 100 && !taken; i++) {
      taken = await b!.acquireSourceLock('opencti');
      if (!taken) await new Promise((r) => setTimeout(r, 50));
    }
    expect(taken).to.not.equal(null);
    // The dead session's lease is void at once, not after an hour.
    expect((await b!.claimDue('defender', 10, Date.now(), 60_000)).map((i) => i.key)).to.deep.equal(['k']);
  });

  it('takes a lock on a fresh session when its own session was killed before it noticed', async () => {
    const a = await open();
    const first = await a.acquireSourceLock('misp');
    const killer = new pg.Client({ connectionString: TEST_PG_URL });
    await killer.connect();
    await killer.query(`SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid
      WHERE s.application_name = 'threatbridge-session' AND l.locktype = 'advisory' AND l.granted`);
    // No wait: the next request reaches the dead session before its error event does.
    const again = await a.acquireSourceLock('opencti');
    await killer.end();
    expect(again, 'a lock from a new session').to.not.equal(null);
    expect(await first!.lost).to.match(/session/);
  });
});
