// Client-side pacing so that calls stay under a vendor's documented quotas before the vendor has
// to answer 429. rate-limiter-flexible keeps the window counters; this class waits for a slot.
// Its windows are fixed, and a vendor may count a sliding minute: 25 calls at the end of one
// window and 25 at the start of the next would be 50 in a minute. So calls under a per-minute
// quota are also spaced evenly (60 s / quota apart), which no sliding minute can exceed.
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { sleep } from './sleep.js';

export interface Quota {
  perMinute?: number;
  perHour?: number;
}

/** Simulated clocks only (benchmarks, demo): THREATBRIDGE_TIME_SCALE shortens pacing windows. Never set in production. */
export function timeScale(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env['THREATBRIDGE_TIME_SCALE'] ?? '1');
  return Number.isFinite(v) && v >= 1 ? v : 1;
}

export class Pacer {
  private readonly limiters = new Map<string, RateLimiterMemory[]>();
  private readonly gapMs = new Map<string, number>();
  private readonly nextAt = new Map<string, number>();
  private pausedUntil = 0;

  /** `timeScale` > 1 shortens every window (simulated clocks in benchmarks); 1 in production. */
  constructor(quotas: Record<string, Quota>, private readonly timeScale = 1) {
    for (const [endpoint, q] of Object.entries(quotas)) {
      const list: RateLimiterMemory[] = [];
      if (q.perMinute) {
        list.push(new RateLimiterMemory({ points: q.perMinute, duration: Math.max(1, 60 / timeScale) }));
        this.gapMs.set(endpoint, 60_000 / q.perMinute / timeScale);
      }
      if (q.perHour) list.push(new RateLimiterMemory({ points: q.perHour, duration: Math.max(1, 3600 / timeScale) }));
      this.limiters.set(endpoint, list);
    }
  }

  /** Resolves when one call to `endpoint` fits in every window (and no Retry-After pause is running). */
  async take(endpoint: string, signal?: AbortSignal): Promise<void> {
    const gap = this.gapMs.get(endpoint);
    if (gap) {
      const now = Date.now();
      const at = Math.max(now, this.nextAt.get(endpoint) ?? 0);
      this.nextAt.set(endpoint, at + gap);
      if (at > now) await sleep(at - now);
    }
    for (const limiter of this.limiters.get(endpoint) ?? []) {
      for (;;) {
        const wait = this.pausedUntil - Date.now();
        if (wait > 0) await sleep(wait);
        if (signal?.aborted) throw new Error('aborted');
        try {
          await limiter.consume('calls');
          break;
        } catch (res) {
          if (!(res instanceof RateLimiterRes)) throw res;
          await sleep(Math.max(10, res.msBeforeNext));
        }
      }
    }
  }

  /**
   * Resolves when a call to `endpoint` would fit, without using the slot. Callers wait here before
   * choosing what to send, so that work arriving meanwhile joins the next call instead of a later one.
   */
  async whenAvailable(endpoint: string, signal?: AbortSignal): Promise<void> {
    for (let spaced = (this.nextAt.get(endpoint) ?? 0) - Date.now(); spaced > 0 && !signal?.aborted; spaced = (this.nextAt.get(endpoint) ?? 0) - Date.now()) {
      await sleep(Math.min(500, spaced));
    }
    for (const limiter of this.limiters.get(endpoint) ?? []) {
      for (;;) {
        const wait = this.pausedUntil - Date.now();
        if (wait > 0) await sleep(Math.min(500, wait));
        if (signal?.aborted) return;
        if (this.pausedUntil > Date.now()) continue;
        const res = await limiter.get('calls');
        if (!res || res.remainingPoints > 0) break;
        // Short naps so that a shutdown does not wait out a whole quota window.
        await sleep(Math.min(500, Math.max(10, res.msBeforeNext)));
      }
    }
  }

  /** The vendor said 429 with Retry-After: nothing goes out before then. */
  pauseFor(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + ms);
  }

  get pausedMs(): number {
    return Math.max(0, this.pausedUntil - Date.now());
  }
}
