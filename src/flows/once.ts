// `threatbridge run --once`: each flow reads once (a poll, a MISP catch-up, the OpenCTI stream up to
// where it stood when we connected), its ingest loops commit, its sinks deliver what is due, and
// one summary line says what happened. The same shape for every flow, so cron jobs that replaced
// the old scripts read the same line and exit code.
import type { SinkHandler } from '../core/delivery.js';
import type { IngestLoop } from '../core/ingest-loop.js';
import type { Settled } from '../core/outcome.js';
import type { OnceSummary } from '../core/parts.js';
import type { SinkIdStore, Store } from '../core/store.js';
import type { OutboxItem } from '../core/types.js';
import { errorFields, type Logger } from '../observability/logger.js';
import type { BuiltSink } from './sinks.js';

/** What a sink's deliveries did: upserts of keys it did not hold (created) or held (updated), deletes. */
export interface DeliveryCounts {
  created: number;
  updated: number;
  deleted: number;
}

/** Counts what a handler's acknowledgements did, for the one-shot summary. */
export class CountingHandler implements SinkHandler {
  readonly counts: DeliveryCounts = { created: 0, updated: 0, deleted: 0 };
  readonly prepare?: SinkHandler['prepare'];
  readonly waitForCapacity?: SinkHandler['waitForCapacity'];

  constructor(private readonly inner: SinkHandler, private readonly store: Pick<SinkIdStore, 'getSinkIds'>) {
    if (inner.prepare) this.prepare = async (items, signal) => {
      const r = await inner.prepare!(items, signal);
      await this.count(r.settled);
      return r;
    };
    if (inner.waitForCapacity) this.waitForCapacity = (signal) => inner.waitForCapacity!(signal);
  }

  get sink(): string { return this.inner.sink; }
  get batchSize(): number { return this.inner.batchSize; }

  async deliver(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]> {
    // Which keys the sink held before this call: an acknowledged upsert of one of them is an update.
    const held = await this.store.getSinkIds(this.inner.sink, items.filter((i) => i.op === 'upsert').map((i) => i.key));
    const settled = await this.inner.deliver(items, signal);
    await this.count(settled, held);
    return settled;
  }

  private async count(settled: Settled[], held?: Map<string, string>): Promise<void> {
    const acked = settled.filter((s) => s.outcome.kind === 'ack');
    const known = held ?? await this.store.getSinkIds(this.inner.sink, acked.map((s) => s.item.key));
    for (const { item } of acked) {
      if (item.op === 'delete') this.counts.deleted++;
      else if (known.has(item.key)) this.counts.updated++;
      else this.counts.created++;
    }
  }
}

/** What one flow's read did: details for the summary, and how many reads failed. */
export interface OnceRead {
  details: Record<string, number>;
  failures: number;
}

async function deadLetterCount(store: Store, sinks: string[]): Promise<number> {
  let n = 0;
  for (const sink of sinks) n += (await store.listDeadLetters({ sink, limit: 1_000_000 })).length;
  return n;
}

/**
 * One flow once: `read` hands its changes to `loops`; they commit; every sink the source feeds
 * delivers what is due (operations waiting for a retry stay and are counted as failed).
 */
export async function runFlowOnce(opts: {
  source: string;
  store: Store;
  log: Logger;
  sinks: BuiltSink[];
  counts: (sink: string) => DeliveryCounts;
  loops: IngestLoop[];
  /** The ids under which the source dead-letters what it cannot read (`source:<name>`). */
  sourceLetters: string[];
  read(): Promise<OnceRead>;
}): Promise<OnceSummary> {
  const { store, log, sinks } = opts;
  const sinkNames = sinks.map((s) => s.route.sink);
  const lettersBefore = await deadLetterCount(store, [...sinkNames, ...opts.sourceLetters]);
  const before = sinkNames.map((s) => ({ ...opts.counts(s) }));
  let read: OnceRead;
  try {
    read = await opts.read();
  } catch (err) {
    log.error({ source: opts.source, ...errorFields(err) }, 'one-shot read failed');
    read = { details: {}, failures: 1 };
  }
  let uncommitted = 0;
  for (const loop of opts.loops) {
    if (!(await loop.drain(30_000))) uncommitted++;
    loop.stop();
  }
  let processed = 0;
  for (const s of sinks) processed += await s.worker.drainOnce();
  const stats = await store.outboxStats(Date.now());
  const waiting = sinkNames.reduce((n, sink) => n + (stats.find((x) => x.sink === sink)?.pending ?? 0), 0);
  const deadLettered = await deadLetterCount(store, [...sinkNames, ...opts.sourceLetters]) - lettersBefore;
  const delta = sinkNames.map((s, i) => {
    const now = opts.counts(s);
    return { created: now.created - before[i]!.created, updated: now.updated - before[i]!.updated, deleted: now.deleted - before[i]!.deleted };
  }).reduce((a, b) => ({ created: a.created + b.created, updated: a.updated + b.updated, deleted: a.deleted + b.deleted }), { created: 0, updated: 0, deleted: 0 });
  const readFailures = read.failures + uncommitted;
  const setupProblems = sinks.flatMap((s) => (s.worker.setupProblem ? [`${s.route.sink}: ${s.worker.setupProblem}`] : []));
  return {
    ...(setupProblems.length ? { setupProblems } : {}),
    flow: `${opts.source} -> ${sinkNames.join(', ')}`,
    processed, created: delta.created, updated: delta.updated,
    failed: deadLettered + waiting + readFailures,
    details: { ...read.details, deleted: delta.deleted, deadLettered, waitingForRetry: waiting, readFailures },
  };
}
