// How the core settles the outcomes a sink's delivery returns, the same for every sink: acks,
// dead letters, retries not before a given time, bisecting a batch refused whole, and a sink-wide
// wait while the sink refuses our set-up. The sink here is a scripted stand-in; the store is real.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliveryWorker, type SinkHandler } from '../../src/core/delivery.js';
import { all, type Outcome, type Settled } from '../../src/core/outcome.js';
import type { SinkOp } from '../../src/core/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { OutboxItem } from '../../src/core/types.js';

const log = createLogger('silent');
const op = (key: string): SinkOp => ({ sink: 's', key, op: 'upsert', payload: { key }, sourceRef: null });

/** A sink that answers each batch with `answer`, and remembers what it was asked. */
class ScriptedSink implements SinkHandler {
  readonly sink = 's';
  readonly batchSize = 100;
  readonly batches: string[][] = [];
  readonly prepared: string[][] = [];
  constructor(private readonly answer: (items: OutboxItem[]) => Outcome | Settled[], withPrepare = false) {
    if (withPrepare) {
      this.prepare = async (items) => {
        this.prepared.push(items.map((i) => i.key));
        return { send: items, settled: [] };
      };
    }
  }

  prepare?: SinkHandler['prepare'];

  async deliver(items: OutboxItem[]): Promise<Settled[]> {
    this.batches.push(items.map((i) => i.key));
    const a = this.answer(items);
    return Array.isArray(a) ? a : all(items, a);
  }
}

describe('delivery outcomes, settled by the core', () => {
  let store: SqliteStore;
  let metrics: Metrics;
  beforeEach(() => {
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-outcome-')));
    metrics = new Metrics();
  });
  afterEach(() => store.close());

  const enqueue = (...keys: string[]) => store.commit({ source: 't', checkpoint: null, claimUpserts: [], claimDeletes: [], ops: keys.map(op), deadLetters: [] });
  const leased = () => store.claimDue('s', 100, Date.now(), 60_000);
  const metric = async (name: string) => (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name)?.values ?? [];

  it('bisects a batch refused whole until the culprit stands alone, preparing it once', async () => {
    await enqueue('a', 'b', 'c', 'bad', 'd');
    const sink = new ScriptedSink((items) => items.some((i) => i.key === 'bad')
      ? { kind: 'split', reason: 'HTTP 400: one bad record', code: 'http_400' }
      : [...items.map((item): Settled => ({ item, outcome: { kind: 'ack', externalId: `id-${item.key}` } }))], true);
    await new DeliveryWorker(store, sink, log, metrics).deliver(await leased());
    expect(sink.prepared).to.deep.equal([['a', 'b', 'c', 'bad', 'd']]);
    expect(sink.batches).to.deep.equal([['a', 'b', 'c', 'bad', 'd'], ['a', 'b', 'c'], ['bad', 'd'], ['bad'], ['d']]);
    expect((await store.listDeadLetters()).map((d) => [d.key, d.reason])).to.deep.equal([['bad', 'HTTP 400: one bad record']]);
    expect(Object.fromEntries(await store.getSinkIds('s', ['a', 'b', 'c', 'd', 'bad']))).to.deep.equal({ a: 'id-a', b: 'id-b', c: 'id-c', d: 'id-d' });
    expect(await store.outboxStats(Date.now() + 3_600_000)).to.deep.equal([]);
    expect((await metric('threatbridge_dead_letters_total')).map((v) => [v.labels['reason'], v.value])).to.deep.equal([['http_400', 1]]);
    expect((await metric('threatbridge_sink_delivered_total')).map((v) => [v.labels['op'], v.value])).to.deep.equal([['upsert', 4]]);
  });

  it('retries not before the time the sink gave, else with backoff, and counts attempts', async () => {
    await enqueue('x', 'y');
    const at = Date.now() + 42_000;
    const sink = new ScriptedSink((items) => [
      { item: items[0]!, outcome: { kind: 'retry', reason: 'throttled (429)', notBefore: at } },
      { item: items[1]!, outcome: { kind: 'retry', reason: 'server error (503)' } },
    ]);
    const before = Date.now();
    await new DeliveryWorker(store, sink, log, metrics).deliver(await leased());
    expect(await store.claimDue('s', 100, at - 1, 60_000).then((i) => i.map((x) => x.key))).to.deep.equal(['y']);
    const later = await store.claimDue('s', 100, at, 60_000);
    expect(later.map((i) => [i.key, i.attempts])).to.deep.equal([['x', 1]]);
    // The backoff of a first attempt is at most a second.
    expect((await store.outboxStats(before + 1000)).length).to.equal(1);
  });

  it('an item the delivery gives no outcome is retried, not lost or acknowledged', async () => {
    await enqueue('p', 'q');
    const sink = new ScriptedSink((items) => [{ item: items[0]!, outcome: { kind: 'ack', externalId: null } }]);
    await new DeliveryWorker(store, sink, log, metrics).deliver(await leased());
    const left = await store.claimDue('s', 100, Date.now() + 3_600_000, 60_000);
    expect(left.map((i) => [i.key, i.attempts])).to.deep.equal([['q', 1]]);
  });

  it('a refused set-up holds the whole sink: nothing else is leased, /readyz says what to fix, an ack clears it', async () => {
    await enqueue('k1');
    let refuse = true;
    const sink = new ScriptedSink(() => (refuse ? { kind: 'wait-for-setup', reason: 'refused (403); grant Ti.ReadWrite.All' } : { kind: 'ack', externalId: null }));
    const worker = new DeliveryWorker(store, sink, log, metrics, { idlePollMs: 20 });
    worker.start();
    try {
      for (let i = 0; i < 100 && sink.batches.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(worker.setupProblem).to.equal('refused (403); grant Ti.ReadWrite.All');
      // New work due now, and a wake-up: still nothing goes out while the sink waits.
      await enqueue('k2');
      worker.wake();
      await new Promise((r) => setTimeout(r, 300));
      expect(sink.batches).to.deep.equal([['k1']]);
      const waiting = await store.claimDue('s', 100, Date.now() + 3_600_000, 60_000);
      expect(waiting.map((i) => [i.key, i.attempts]).sort()).to.deep.equal([['k1', 1], ['k2', 0]]);
      await store.retry(waiting, 0, 'test: due again');
    } finally {
      await worker.stop(1000);
    }
    expect(await store.listDeadLetters()).to.deep.equal([]);
    refuse = false;
    const other = new DeliveryWorker(store, sink, log, metrics);
    other.setupProblem = 'refused (403); grant Ti.ReadWrite.All';
    await other.drainOnce();
    expect(other.setupProblem).to.equal(null);
    expect(await store.outboxStats(Date.now() + 3_600_000)).to.deep.equal([]);
  });

  it('a delivery that throws (no answer) puts back only what it had not settled', async () => {
    await enqueue('m', 'n', 'bad', 'o');
    const sink = new ScriptedSink((items) => {
      if (items.length === 1 && items[0]!.key === 'bad') throw new Error('socket hang up');
      return items.some((i) => i.key === 'bad') ? { kind: 'split', reason: 'HTTP 400' } : { kind: 'ack', externalId: 'ok' };
    });
    const worker = new DeliveryWorker(store, sink, log, metrics);
    await worker.deliver(await leased());
    expect(worker.lastError).to.equal('socket hang up');
    expect(Object.fromEntries(await store.getSinkIds('s', ['m', 'n', 'bad', 'o']))).to.deep.equal({ m: 'ok', n: 'ok' });
    const left = await store.claimDue('s', 100, Date.now() + 3_600_000, 60_000);
    expect(left.map((i) => [i.key, i.attempts]).sort()).to.deep.equal([['bad', 1], ['o', 1]]);
    expect(await store.listDeadLetters()).to.deep.equal([]);
  });

  it('puts back a batch whose outcome the store could not record (full disk) once it takes writes again, not after the lease', async () => {
    await enqueue('a', 'b');
    // The store refuses writes for a moment: the ack of the first answer and its reschedule fail.
    let refuse = 2;
    const full = () => Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    const flaky = new Proxy(store, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver);
        if ((name === 'ack' || name === 'retry') && typeof value === 'function') {
          return async (...args: unknown[]) => {
            if (refuse > 0) { refuse--; throw full(); }
            return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          };
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const sink = new ScriptedSink((items) => all(items, { kind: 'ack', externalId: null }) as Settled[]);
    const worker = new DeliveryWorker(flaky, sink, log, metrics, { leaseMs: 60_000, idlePollMs: 20 });
    const started = Date.now();
    worker.start();
    try {
      while ((await store.outboxStats(Date.now() + 3_600_000)).length > 0 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
    } finally {
      await worker.stop(1000);
    }
    expect(await store.outboxStats(Date.now() + 3_600_000), 'delivered and recorded').to.deep.equal([]);
    expect(Date.now() - started, 'well before the 60 s lease ends').to.be.below(10_000);
    // Sent again once the store took writes: at least once, never lost.
    expect(sink.batches).to.deep.equal([['a', 'b'], ['a', 'b']]);
  });
});
