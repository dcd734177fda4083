// Sliding-window quotas per (tenant, app, endpoint), on a clock that can run faster than real
// time so benchmarks can exercise the real per-minute/per-hour limits in seconds.
//
// Every request is recorded, including the ones answered 429: Microsoft documents that
// resubmitting inside the window "will cause the calculated request rate to stay high".

export interface Quota {
  limit: number;
  windowMs: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** The documented Defender quotas, per application and tenant. */
export const DEFENDER_QUOTAS: Readonly<Record<string, readonly Quota[]>> = {
  'indicators.submit': [{ limit: 100, windowMs: MINUTE }, { limit: 1500, windowMs: HOUR }],
  'indicators.list': [{ limit: 100, windowMs: MINUTE }, { limit: 1500, windowMs: HOUR }],
  'indicators.delete': [{ limit: 100, windowMs: MINUTE }, { limit: 1500, windowMs: HOUR }],
  'indicators.import': [{ limit: 30, windowMs: MINUTE }],
  'indicators.batchDelete': [{ limit: 30, windowMs: MINUTE }, { limit: 1500, windowMs: HOUR }],
  'alerts.list': [{ limit: 100, windowMs: MINUTE }, { limit: 1500, windowMs: HOUR }],
};

/** Simulated milliseconds: real elapsed time multiplied by `timeScale`, or what `source` says (tests). */
export class ScaledClock {
  private readonly origin = performance.now();
  constructor(readonly timeScale = 1, private readonly source?: () => number) {
    if (!(timeScale > 0)) throw new Error('timeScale must be > 0');
  }
  now(): number {
    return this.source ? this.source() : (performance.now() - this.origin) * this.timeScale;
  }
  /** Real whole seconds (at least 1) a client must wait for `simMs` simulated milliseconds to pass. */
  realSeconds(simMs: number): number {
    return Math.max(1, Math.ceil(simMs / this.timeScale / 1000));
  }
}

export type LimitDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export class RateLimiter {
  // key -> one timestamp log per quota (same order as the quota list)
  private readonly logs = new Map<string, number[][]>();

  constructor(
    private readonly quotas: Readonly<Record<string, readonly Quota[]>>,
    private readonly clock: ScaledClock,
  ) {}

  /** Records the request and says whether it is within every quota of its endpoint. */
  hit(tenantId: string, clientId: string, endpoint: string): LimitDecision {
    const quotas = this.quotas[endpoint];
    if (!quotas || quotas.length === 0) return { ok: true };
    const key = `${tenantId}\u0000${clientId}\u0000${endpoint}`;
    let logs = this.logs.get(key);
    if (!logs) this.logs.set(key, (logs = quotas.map(() => [])));
    const now = this.clock.now();
    let waitMs = 0;
    quotas.forEach((quota, i) => {
      const log = logs[i] ?? [];
      const firstLive = log.findIndex((t) => t > now - quota.windowMs);
      if (firstLive === -1) log.length = 0;
      else if (firstLive > 0) log.splice(0, firstLive);
      log.push(now);
      if (log.length > quota.limit) {
        // Allowed again once enough entries expire that one more request fits the quota.
        const gate = log[log.length - quota.limit] ?? now;
        waitMs = Math.max(waitMs, gate + quota.windowMs - now);
      }
    });
    return waitMs > 0 ? { ok: false, retryAfterSeconds: this.clock.realSeconds(waitMs) } : { ok: true };
  }

  reset(): void {
    this.logs.clear();
  }
}
