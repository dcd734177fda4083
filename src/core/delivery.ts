// Drains one sink's outbox: lease due operations, hand them to the sink's handler, repeat.
// The handler records every outcome (ack, retry, dead letter); an unexpected error here puts the
// batch back with backoff, so work is delayed, never dropped.
import type { Logger } from '../observability/logger.js';
import { errorFields } from '../observability/logger.js';
import type { OutboxItem, Store } from '../store/types.js';
import { backoffMs } from '../net/retry.js';

export interface SinkHandler {
  readonly sink: string;
  readonly batchSize: number;
  handle(items: OutboxItem[], signal: AbortSignal): Promise<void>;
  /** Resolves when the sink could take a call now (quota); due work is leased only then, so batches fill up. */
  waitForCapacity?(signal: AbortSignal): Promise<void>;
}

export interface DeliveryOptions {
  leaseMs?: number;
  idlePollMs?: number;
}

export class DeliveryWorker {
  private running = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private readonly abort = new AbortController();
  /** Ends a wait for quota at once on stop (no batch is in flight then). */
  private readonly idleAbort = new AbortController();
  private readonly leaseMs: number;
  private readonly idlePollMs: number;
  lastError: string | null = null;

  constructor(
    private readonly store: Store,
    private readonly handler: SinkHandler,
    private readonly log: Logger,
    options: DeliveryOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 10 * 60_000;
    this.idlePollMs = options.idlePollMs ?? 5_000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** New operations were committed: look now instead of at the next poll. */
  wake(): void {
    this.wakeUp?.();
  }

  /** Stop leasing; give the batch in flight up to `timeoutMs` to finish, then abort it. */
  async stop(timeoutMs: number): Promise<void> {
    this.running = false;
    this.idleAbort.abort();
    this.wake();
    const timer = setTimeout(() => this.abort.abort(), timeoutMs);
    await this.loop;
    clearTimeout(timer);
  }

  /** Deliver everything due now (tests and one-shot runs). Returns the number of operations handled. */
  async drainOnce(): Promise<number> {
    let total = 0;
    for (;;) {
      const items = await this.store.claimDue(this.handler.sink, this.handler.batchSize, Date.now(), this.leaseMs);
      if (items.length === 0) return total;
      total += items.length;
      await this.handleSafely(items);
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      let items: OutboxItem[] = [];
      try {
        if (this.handler.waitForCapacity && (await this.store.nextDueAt(this.handler.sink)) !== null) {
          await this.handler.waitForCapacity(this.idleAbort.signal);
          if (!this.running) break;
        }
        items = await this.store.claimDue(this.handler.sink, this.handler.batchSize, Date.now(), this.leaseMs);
      } catch (err) {
        this.log.error({ sink: this.handler.sink, ...errorFields(err) }, 'cannot read the outbox');
      }
      if (items.length > 0) {
        await this.handleSafely(items);
        continue;
      }
      await this.idle();
    }
  }

  private async handleSafely(items: OutboxItem[]): Promise<void> {
    try {
      await this.handler.handle(items, this.abort.signal);
      this.lastError = null;
    } catch (err) {
      this.lastError = (err as Error).message;
      const attempt = Math.max(...items.map((i) => i.attempts));
      const after = backoffMs(attempt);
      this.log.warn({ sink: this.handler.sink, items: items.length, retryInMs: after, ...errorFields(err) }, 'delivery failed; will retry');
      await this.store.retry(items, Date.now() + after, (err as Error).message).catch((e) =>
        this.log.error({ sink: this.handler.sink, ...errorFields(e) }, 'cannot reschedule; the lease will expire and the batch return'));
    }
  }

  private async idle(): Promise<void> {
    let wait = this.idlePollMs;
    try {
      const next = await this.store.nextDueAt(this.handler.sink);
      if (next !== null) wait = Math.min(wait, Math.max(5, next - Date.now()));
    } catch {
      // keep the poll interval
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, wait);
      function done() { clearTimeout(timer); resolve(); }
      this.wakeUp = done;
    });
    this.wakeUp = null;
  }
}
