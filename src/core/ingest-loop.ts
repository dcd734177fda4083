// Bounded queue between a source and the pipeline, the same for streams and pollers. Items are
// committed in batches (count or time); a full queue tells a stream to pause, and a poller awaits
// `store` for its items. The pipeline dead-letters an event that cannot be processed, so what
// reaches this loop as an error is the store's own failure: the batch stays queued and is retried
// with backoff, and nothing is acknowledged to the source before it is stored.
import type { Logger } from '../observability/logger.js';
import { errorFields } from '../observability/logger.js';
import type { BatchResult, IngestItem, Pipeline } from './pipeline.js';
import { backoffMs } from '../net/retry.js';
import { sleep } from '../net/sleep.js';

export interface IngestLoopOptions {
  batchSize: number;
  batchMs: number;
  queueSize: number;
}

export class IngestLoop {
  private queue: IngestItem[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private failures = 0;
  private stopped = false;
  /** Items pushed and items stored since start: `store` waits for its last item to be stored. */
  private pushed = 0;
  private stored = 0;
  private waiters: { upTo: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  lastError: string | null = null;

  constructor(
    private readonly source: string,
    private readonly pipeline: Pipeline,
    private readonly options: IngestLoopOptions,
    private readonly log: Logger,
    private readonly hooks: { onCommitted?: (r: BatchResult) => void; onFull?: () => void; onDrained?: () => void } = {},
  ) {}

  get size(): number {
    return this.queue.length;
  }

  push(item: IngestItem): void {
    this.queue.push(item);
    this.pushed++;
    if (this.queue.length >= this.options.queueSize) this.callHook(() => this.hooks.onFull?.());
    if (this.queue.length >= this.options.batchSize) this.kick(0);
    else this.kick(this.options.batchMs);
  }

  /**
   * Queue items and resolve once all of them are stored (pollers: the next page waits for this one).
   * `signal` ends the wait (shutdown while the store is down): the items stay queued.
   */
  store(items: IngestItem[], signal?: AbortSignal): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('ingest stopped'));
    for (const item of items) this.push(item);
    const upTo = this.pushed;
    if (this.stored >= upTo) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { upTo, resolve, reject };
      this.waiters.push(waiter);
      signal?.addEventListener('abort', () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error('stopped before these items were stored'));
      }, { once: true });
    });
  }

  private kick(delay: number): void {
    if (this.stopped || this.flushing) return;
    if (this.timer && delay > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flushing = this.flushBatches().finally(() => {
        this.flushing = null;
        if (this.queue.length > 0 && !this.stopped) this.kick(this.failures > 0 ? backoffMs(this.failures, { maxMs: 30_000 }) : 0);
      });
    }, delay);
  }

  private async flushBatches(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, this.options.batchSize);
      let result: BatchResult;
      try {
        result = await this.pipeline.ingest(this.source, batch);
      } catch (err) {
        this.failures++;
        this.lastError = (err as Error).message;
        this.log.error({ source: this.source, events: batch.length, attempt: this.failures, ...errorFields(err) },
          'cannot store a batch; it stays queued and will be retried');
        return;
      }
      this.queue.splice(0, batch.length);
      this.stored += batch.length;
      this.failures = 0;
      this.lastError = null;
      this.settleWaiters();
      // The batch is stored: a failing hook is logged, never taken for a failed commit.
      this.callHook(() => this.hooks.onCommitted?.(result));
      if (this.queue.length <= this.options.queueSize / 2) this.callHook(() => this.hooks.onDrained?.());
      if (this.stopped) return;
      // A store that answers at once (SQLite on this thread) would otherwise commit a whole backlog
      // in one stretch, holding stream reading, /healthz and delivery for ten batches or more.
      if (this.queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private callHook(hook: () => void): void {
    try {
      hook();
    } catch (err) {
      this.log.error({ source: this.source, ...errorFields(err) }, 'ingest hook failed');
    }
  }

  /** Commit what is queued (shutdown): retries within `timeoutMs`, then gives up; uncommitted events replay on restart. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    while (Date.now() < deadline) {
      if (this.flushing) await this.flushing;
      if (this.queue.length === 0) return true;
      this.flushing = this.flushBatches().finally(() => { this.flushing = null; });
      await this.flushing;
      if (this.queue.length > 0) await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
    }
    return this.queue.length === 0;
  }

  private settleWaiters(): void {
    const done = this.waiters.filter((w) => w.upTo <= this.stored);
    if (done.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.upTo > this.stored);
    for (const w of done) w.resolve();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.waiters) w.reject(new Error('ingest stopped before these items were stored; they are read again on restart'));
    this.waiters = [];
  }
}
