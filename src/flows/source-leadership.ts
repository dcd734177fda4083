// One active reader per source among replicas: a source part reads only while it holds the
// store's source lock. A standby replica retries every `retryMs` and takes over once the holder's
// store session is gone (kill -9 closes its connection, and PostgreSQL drops its advisory lock).
// With SQLite the lock is always granted, so a single process simply reads.
import { errorFields, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { IngestLoop } from '../core/ingest-loop.js';
import type { SourceLock, SourceLockStore, Store } from '../core/store.js';
import type { ServicePart } from '../core/parts.js';
import type { ServiceContext } from './parts.js';

export interface LeaderHooks {
  /** Begin reading (resume from the stored checkpoint). */
  start(): Promise<void>;
  /** Stop reading and store what is queued; the lock is released afterwards. */
  stepDown(): Promise<void>;
}

export class SourceLeadership {
  private lock: SourceLock | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private attempting: Promise<void> | null = null;
  private announcedStandby = false;

  constructor(
    private readonly store: SourceLockStore & Pick<Store, 'engine'>,
    private readonly source: string,
    private readonly retryMs: number,
    private readonly log: Logger,
    private readonly hooks: LeaderHooks,
    private readonly metrics?: Metrics,
  ) {}

  private setActive(lock: SourceLock | null): void {
    this.lock = lock;
    this.metrics?.sourceActive.set({ source: this.source }, lock ? 1 : 0);
  }

  /** True while this replica is the reader. */
  get active(): boolean {
    return this.lock !== null;
  }

  /** Tries once now; keeps trying in the background while another replica reads. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.attempt();
  }

  /** Call after the source stopped and stored its queue: the next reader starts from our last checkpoint. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.attempting;
    const lock = this.lock;
    this.setActive(null);
    await lock?.release();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => { this.timer = null; void this.attempt(); }, this.retryMs);
    this.timer.unref();
  }

  private attempt(): Promise<void> {
    this.attempting = (async () => {
      let lock: SourceLock | null = null;
      try {
        lock = await this.store.acquireSourceLock(this.source);
      } catch (err) {
        this.log.warn({ source: this.source, ...errorFields(err) }, 'cannot ask the store for the source lock; will retry');
      }
      if (this.stopped) { await lock?.release(); return; }
      if (!lock) {
        this.setActive(null);
        if (!this.announcedStandby) {
          this.log.info({ source: this.source, retryMs: this.retryMs }, 'standby: another replica reads this source');
          this.announcedStandby = true;
        }
        this.schedule();
        return;
      }
      this.setActive(lock);
      if (this.announcedStandby || this.store.engine !== 'sqlite') this.log.info({ source: this.source }, 'active: this replica reads the source');
      this.announcedStandby = false;
      void lock.lost.then((why) => this.onLost(lock!, why));
      try {
        await this.hooks.start();
      } catch (err) {
        this.log.error({ source: this.source, ...errorFields(err) }, 'cannot start reading the source; giving the lock back');
        this.setActive(null);
        await lock.release();
        this.schedule();
      }
    })().finally(() => { this.attempting = null; });
    return this.attempting;
  }

  private async onLost(lock: SourceLock, why: string): Promise<void> {
    if (this.stopped || this.lock !== lock) return;
    this.setActive(null);
    this.log.error({ source: this.source, reason: why }, 'lost the source lock; stop reading until it is ours again');
    await this.hooks.stepDown().catch((err) => this.log.warn({ source: this.source, ...errorFields(err) }, 'step-down failed'));
    this.schedule();
  }
}

/** What a hub-fed source part needs from its source: start/stop reading and say whether it is healthy. */
export interface LeadingSource {
  start(): Promise<void>;
  /** Stop reading, within `boundMs`. */
  stop(boundMs: number): Promise<void> | void;
  /** null when healthy while reading, else why not. */
  health(): string | null;
}

/**
 * A source part that reads only while this replica holds the source lock, and stores what its
 * ingest loop holds whenever it stops reading (shutdown or a lost lock).
 */
export function leadingSourcePart(
  ctx: ServiceContext, name: string, source: LeadingSource, ingest: IngestLoop | IngestLoop[], notStoredHint: string,
): ServicePart {
  const loops = [ingest].flat();
  const storeQueued = async (boundMs: number) => {
    const drained = await Promise.all(loops.map((l) => l.drain(boundMs)));
    if (drained.includes(false)) ctx.log.warn({ source: name, queued: loops.reduce((n, l) => n + l.size, 0) }, notStoredHint);
  };
  const leadership = new SourceLeadership(ctx.store, name, ctx.config.store.source_lock_retry * 1000, ctx.log, {
    start: () => source.start(),
    stepDown: async () => {
      const bound = ctx.config.connector.shutdown_timeout * 1000;
      await source.stop(bound);
      await storeQueued(bound);
    },
  }, ctx.metrics);
  return {
    name,
    kind: 'source',
    start: () => leadership.start(),
    stop: async (boundMs) => {
      const wasActive = leadership.active;
      await source.stop(boundMs);
      if (wasActive) await storeQueued(boundMs);
      for (const l of loops) l.stop();
      await leadership.stop();
    },
    health: async () => {
      // The store failing holds the source: say so, naming it.
      const failing = loops.find((l) => l.lastError);
      if (failing) return `cannot store what it read: ${failing.lastError}`;
      if (!leadership.active) return null; // standby: ready to take over
      return source.health();
    },
  };
}
