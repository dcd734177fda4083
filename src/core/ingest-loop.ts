// Bounded queue between a source and the pipeline. Items are committed in batches (count or time);
// a full queue tells the source to pause. A failing commit is retried with backoff and the batch
// stays queued: nothing is acknowledged to the source before it is stored.
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
    if (this.queue.length >= this.options.queueSize) this.hooks.onFull?.();
    if (this.queue.length >= this.options.batchSize) this.kick(0);
    else this.kick(this.options.batchMs);
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
      try {
        const result = await this.pipeline.ingest(this.source, batch);
        this.queue.splice(0, batch.length);
        this.failures = 0;
        this.lastError = null;
        this.hooks.onCommitted?.(result);
        if (this.queue.length <= this.options.queueSize / 2) this.hooks.onDrained?.();
      } catch (err) {
        this.failures++;
        this.lastError = (err as Error).message;
        this.log.error({ source: this.source, events: batch.length, attempt: this.failures, ...errorFields(err) },
          'cannot store a batch; it stays queued and will be retried');
        return;
      }
      if (this.stopped) return;
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

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
