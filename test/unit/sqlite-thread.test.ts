// The SQLite store on its own thread, beyond the store contract it shares with the other engines
// (store.test.ts): errors judged as in-thread, a clean exit after close, and a worker lost mid-run.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Store } from '../../src/core/store.js';
import type { CommitUnit } from '../../src/core/types.js';
import { refusedData } from '../../src/store/errors.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { fromWire, openSqliteThread, toWire } from '../../src/store/sqlite-thread.js';
import { capturingLogger } from '../support/log-capture.js';

const unit = (position: string, payload: unknown = { v: position }): CommitUnit => ({
  source: 'opencti', checkpoint: { position, state: {} }, claimUpserts: [], claimDeletes: [],
  ops: [{ sink: 'defender', key: `k${position}`, op: 'upsert', payload, sourceRef: null }], deadLetters: [],
});

const failure = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a failure'); }, (err: unknown) => err);

describe('SQLite store on its own thread', function () {
  this.timeout(30_000);
  let dir: string;
  let store: Store;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'tb-thread-')); });
  afterEach(async () => { await store?.close(); });

  it('an error crossing the thread is judged as the same error in the thread', () => {
    const errors = [
      Object.assign(new Error('string or blob too big'), { name: 'SqliteError', code: 'SQLITE_TOOBIG' }),
      Object.assign(new Error('UNIQUE constraint failed'), { name: 'SqliteError', code: 'SQLITE_CONSTRAINT_UNIQUE' }),
      Object.assign(new Error('database or disk is full'), { name: 'SqliteError', code: 'SQLITE_FULL' }),
      new TypeError('The database connection is not open'),
      new TypeError('Do not know how to serialize a BigInt'),
      new TypeError('Converting circular structure to JSON'),
      new RangeError('Invalid string length'),
    ];
    for (const err of errors) {
      const crossed = fromWire(toWire(err));
      expect(refusedData(crossed), err.message).to.equal(refusedData(err));
      expect([crossed.name, crossed.message, (crossed as { code?: string }).code]).to.deep.equal([err.name, err.message, (err as { code?: string }).code]);
    }
  });

  it('a constraint or an unserialisable value is the data\'s fault; a closed store is not', async () => {
    store = await openSqliteThread(dir, { owner: true });
    const big = await failure(store.commit(unit('1-0', { n: 10n })));
    expect(big).to.be.instanceOf(TypeError);
    expect(store.refusedData(big)).to.equal(true);

    const db = new Database(join(dir, 'threatbridge.db'));
    db.exec("CREATE TRIGGER no_ops BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'refused'); END");
    db.close();
    const constraint = await failure(store.commit(unit('2-0')));
    expect((constraint as { code?: string }).code).to.match(/^SQLITE_CONSTRAINT/);
    expect(store.refusedData(constraint)).to.equal(true);

    await store.close();
    const closed = await failure(store.getCheckpoint('opencti'));
    expect(store.refusedData(closed)).to.equal(false);
  });

  it('close waits for the calls in flight and lets the process exit', () => {
    const script = `
      import { openSqliteThread } from ${JSON.stringify(new URL('../../src/store/sqlite-thread.js', import.meta.url).href)};
      const store = await openSqliteThread(${JSON.stringify(dir)}, { owner: true });
      void store.commit({ source: 'opencti', checkpoint: { position: '7-0', state: {} }, claimUpserts: [], claimDeletes: [], ops: [], deadLetters: [] });
      await store.close();`;
    const file = join(dir, 'close.mjs');
    writeFileSync(file, script);
    const child = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 10_000 });
    expect(child.error, 'the process exits within 10 s').to.equal(undefined);
    expect([child.status, child.stderr]).to.deep.equal([0, '']);
    const check = new SqliteStore(dir);
    return check.getCheckpoint('opencti').then(async (cp) => { await check.close(); expect(cp?.position).to.equal('7-0'); });
  });

  it('a worker lost mid-run fails the calls in flight, says so, and the next call opens the store on a new thread with its leases kept', async () => {
    const { log, lines } = capturingLogger('info');
    store = await openSqliteThread(dir, { owner: true, log, entry: new URL('../support/crashing-store-worker.js', import.meta.url) });
    await store.commit(unit('1-0'));
    const leased = await store.claimDue('defender', 10, Date.now(), 60_000);
    expect(leased.map((i) => i.key)).to.deep.equal(['k1-0']);

    const [crash, inFlight] = await Promise.all([failure(store.ping()), failure(store.commit(unit('2-0')))]);
    for (const err of [crash, inFlight]) {
      expect((err as Error).message).to.match(/SQLite store thread stopped unexpectedly \(.*exit code 3/);
      expect(store.refusedData(err), 'the store\'s fault: the batch stays queued').to.equal(false);
    }
    expect(lines.filter((l) => l.level === 'error').map((l) => l.msg)).to.have.length(1);

    await store.commit(unit('3-0'));
    expect(await store.getCheckpoint('opencti')).to.deep.equal({ position: '3-0', state: {} });
    // The lease taken before the crash still holds: an in-flight delivery is not handed out twice.
    expect((await store.claimDue('defender', 10, Date.now(), 60_000)).map((i) => i.key)).to.deep.equal(['k3-0']);
  });
});
