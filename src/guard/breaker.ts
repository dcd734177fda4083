// The per-source breaker: more than N new enforcing indicators in an hour from one source into one
// sink, or removals of more than a share of what a sink holds, pause that source's enforcing
// actions and removals until an operator runs `threatbridge resume`. Counted from the decision log
// and kept in the store, so a restart neither resets the count nor releases it; the service polls
// the store to notice a resume made by the CLI (another process).
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../core/store.js';

export const HOUR_MS = 3_600_000;

export class Breaker {
  private pausedSet = new Set<string>();
  /** Last `threatbridge resume` per source: the hourly count starts again from there. */
  private resumedAt = new Map<string, number>();
  private lastRefresh = 0;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** 0 disables the breaker. */
    readonly maxPerHour: number,
    private readonly pollMs: number,
  ) {}

  get paused(): ReadonlySet<string> {
    return this.pausedSet;
  }

  /** When `threatbridge resume` last released this source (0 when never). */
  releasedAt(source: string): number {
    return this.resumedAt.get(source) ?? 0;
  }

  /** Start of the breaker's counting window for a source: the last hour, or since the last resume. */
  windowStart(source: string, now: number): number {
    return Math.max(now - HOUR_MS, this.releasedAt(source) + 1);
  }

  /** Re-read the paused sources (at most once per poll interval unless forced). */
  async refresh(force = false, now = Date.now()): Promise<void> {
    if (!force && now - this.lastRefresh < this.pollMs) return;
    this.lastRefresh = now;
    const states = await this.store.listBreakers();
    const open = states.filter((s) => s.resumedAt === null);
    const next = new Set(open.map((s) => s.source));
    this.resumedAt = new Map(states.filter((s) => s.resumedAt !== null).map((s) => [s.source, s.resumedAt!]));
    for (const source of this.pausedSet) {
      if (!next.has(source)) {
        this.log.warn({ source }, 'breaker released by `threatbridge resume`: enforcing actions of this source flow again');
        this.metrics.breakerOpen.set({ source }, 0);
      }
    }
    for (const s of open) this.metrics.breakerOpen.set({ source: s.source }, 1);
    this.pausedSet = next;
  }

  /**
   * How many of `wanted` new enforcing indicators from `source` may go into `sink` now; trips the
   * breaker (durably) when the hourly budget runs out.
   */
  async admit(source: string, wanted: number, now = Date.now(), sink?: string): Promise<number> {
    if (this.maxPerHour === 0 || wanted === 0) return wanted;
    if (this.pausedSet.has(source)) return 0;
    const used = await this.store.countDecisions({ source, since: this.windowStart(source, now), fresh: true, outcomes: ['allow'], ...(sink ? { sink } : {}) });
    const room = Math.max(0, this.maxPerHour - used);
    if (wanted <= room) return wanted;
    await this.trip(source, `${used + wanted} new enforcing indicators from ${source} within an hour (limit ${this.maxPerHour})`, now,
      { newBlocksLastHour: used, waiting: wanted - room, limit: this.maxPerHour });
    return room;
  }

  /** Opens the source's breaker (durably): its enforcing actions and removals wait for `threatbridge resume`. */
  async trip(source: string, reason: string, now: number, fields: Record<string, unknown> = {}): Promise<void> {
    await this.store.tripBreaker({ source, trippedAt: now, reason });
    this.pausedSet.add(source);
    this.metrics.breakerOpen.set({ source }, 1);
    this.metrics.breakerTrips.inc({ source });
    this.log.error({ source, ...fields },
      `breaker tripped: ${reason}; enforcing actions and removals of ${source} are paused (they wait in the outbox) until \`threatbridge resume ${source}\``);
  }
}
