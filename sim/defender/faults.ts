// Programmable misbehaviour for the Defender simulator: queued failures, latency, outage,
// and lost responses (the request is applied, the answer never arrives).

export interface InjectedFailure {
  status: number;
  /** Seconds, sent as Retry-After. */
  retryAfter?: number;
  /** Response body; defaults to the documented error envelope for the status. */
  body?: unknown;
}

export type DownMode = 'reset' | 503;

interface Queued<T> {
  endpoint: string; // 'all' matches any endpoint
  remaining: number;
  value: T;
}

export class FaultInjector {
  latencyMs = 0;
  down: DownMode | null = null;
  private failures: Queued<InjectedFailure>[] = [];
  private drops: Queued<true>[] = [];

  failNext(count: number, failure: InjectedFailure, endpoint = 'all'): void {
    if (count > 0) this.failures.push({ endpoint, remaining: count, value: failure });
  }

  dropNext(count: number, endpoint = 'all'): void {
    if (count > 0) this.drops.push({ endpoint, remaining: count, value: true });
  }

  takeFailure(endpoint: string): InjectedFailure | undefined {
    return take(this.failures, endpoint);
  }

  takeDrop(endpoint: string): boolean {
    return take(this.drops, endpoint) === true;
  }

  clear(): void {
    this.latencyMs = 0;
    this.down = null;
    this.failures = [];
    this.drops = [];
  }
}

function take<T>(queue: Queued<T>[], endpoint: string): T | undefined {
  const i = queue.findIndex((q) => q.endpoint === 'all' || q.endpoint === endpoint);
  const entry = queue[i];
  if (!entry) return undefined;
  entry.remaining--;
  if (entry.remaining <= 0) queue.splice(i, 1);
  return entry.value;
}
