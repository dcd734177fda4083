import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { SinkOp } from '../../src/core/types.js';

const op = (key: string, kind: 'upsert' | 'delete', payload: unknown = { v: key }): SinkOp =>
  ({ sink: 'defender', key, op: kind, payload, sourceRef: { system: 'opencti', id: `src-${key}` } });

const commit = (store: SqliteStore, ops: SinkOp[], position = '1-0') =>
  store.commit({ source: 'opencti', checkpoint: { position, state: { start_from: position } }, claimUpserts: [], claimDeletes: [], ops, deadLetters: [] });

describe('SQLite store', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tb-store-'));
    store = new SqliteStore(dir);
  });
  afterEach(() => store.close());

  it('writes operations and the checkpoint together and survives reopening', async () => {
    await commit(store, [op('ipv4:1.2.3.4', 'upsert')], '5-0');
    await store.close();
    store = new SqliteStore(dir);
    expect(await store.getCheckpoint('opencti')).to.deep.equal({ position: '5-0', state: { start_from: '5-0' } });
    const due = await store.claimDue('defender', 10, Date.now(), 1000);
    expect(due.map((d) => d.key)).to.deep.equal(['ipv4:1.2.3.4']);
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

  it('does not lose an operation that arrives while an older one is in flight', async () => {
    await commit(store, [op('k', 'upsert', { n: 1 })]);
    const [inFlight] = await store.claimDue('defender', 10, Date.now(), 60_000);
    await commit(store, [op('k', 'delete', { n: 2 })]);
    // Leased key: the newer op waits for the older call to finish.
    expect(await store.claimDue('defender', 10, Date.now(), 60_000)).to.have.length(0);
    await store.ack([{ item: inFlight!, externalId: '42' }]);
    expect((await store.getSinkIds('defender', ['k'])).get('k')).to.equal('42');
    const next = await store.claimDue('defender', 10, Date.now(), 60_000);
    expect(next.map((n) => [n.op, n.payload])).to.deep.equal([['delete', { n: 2 }]]);
    await store.ack([{ item: next[0]!, externalId: null }]);
    expect((await store.getSinkIds('defender', ['k'])).size).to.equal(0);
    expect(await store.claimDue('defender', 10, Date.now(), 60_000)).to.have.length(0);
  });

  it('reschedules retries and dead-letters with the reason', async () => {
    await commit(store, [op('a', 'upsert'), op('b', 'upsert')]);
    const [a, b] = await store.claimDue('defender', 10, Date.now(), 60_000);
    await store.retry([a!], Date.now() + 60_000, 'HTTP 503');
    await store.deadLetter([{ item: b!, reason: 'InvalidIpAddress' }]);
    expect(await store.claimDue('defender', 10, Date.now(), 60_000)).to.have.length(0);
    expect(await store.nextDueAt('defender')).to.be.greaterThan(Date.now() + 50_000);
    const dl = await store.listDeadLetters();
    expect(dl.map((d) => [d.key, d.reason, d.attempts])).to.deep.equal([['b', 'InvalidIpAddress', 1]]);
    const taken = await store.takeDeadLetters('all');
    expect(taken).to.have.length(1);
    expect(await store.listDeadLetters()).to.have.length(0);
    expect(await store.enqueue([op('b', 'upsert')])).to.equal(1);
  });

  it('frees leases of a crashed run when reopened', async () => {
    await commit(store, [op('a', 'upsert')]);
    await store.claimDue('defender', 10, Date.now(), 3_600_000);
    await store.close();
    store = new SqliteStore(dir);
    expect(await store.claimDue('defender', 10, Date.now(), 1000)).to.have.length(1);
  });

  it('loads claims by key and by source object', async () => {
    const change = { observable: { type: 'ipv4', value: '1.2.3.4' } } as never;
    await store.commit({ source: 'opencti', checkpoint: null, ops: [], deadLetters: [], claimDeletes: [],
      claimUpserts: [{ key: 'ipv4:1.2.3.4', sourceId: 'indicator--a', change, updatedAt: 1 }, { key: 'ipv4:5.6.7.8', sourceId: 'indicator--b', change, updatedAt: 1 }] });
    expect((await store.loadClaims([], ['indicator--a'])).map((c) => c.key)).to.deep.equal(['ipv4:1.2.3.4']);
    expect((await store.loadClaims(['ipv4:5.6.7.8'], [])).map((c) => c.sourceId)).to.deep.equal(['indicator--b']);
  });
});
