// Retry decisions as one small pure function: an answer is ok, worth retrying (when), a reason
// to refresh credentials, or a permanent rejection. Backoff is exponential with full jitter, capped.

export type RetryDecision =
  | { kind: 'ok' }
  | { kind: 'retry'; afterMs: number; reason: string; throttled: boolean }
  | { kind: 'reauth'; reason: string }
  | { kind: 'reject'; reason: string };

export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
  random?: () => number;
}

/** attempt 0 → up to base, attempt n → up to base·2ⁿ, never above max. */
export function backoffMs(attempt: number, { baseMs = 1000, maxMs = 300_000, random = Math.random }: BackoffOptions = {}): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(baseMs / 2, Math.round(ceiling * random()));
}

/** Retry-After is seconds or an HTTP date; absent or unreadable → null. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

export function decide(
  status: number,
  headers: Record<string, string | undefined>,
  attempt: number,
  backoff: BackoffOptions = {},
  now = Date.now(),
): RetryDecision {
  if (status >= 200 && status < 300) return { kind: 'ok' };
  if (status === 429) {
    const after = parseRetryAfter(headers['retry-after'], now) ?? backoffMs(attempt, { ...backoff, baseMs: 5000 });
    return { kind: 'retry', afterMs: after, reason: 'throttled (429)', throttled: true };
  }
  if (status === 401) return { kind: 'reauth', reason: 'unauthorized (401)' };
  if (status === 0 || status === 408 || status >= 500) {
    const after = parseRetryAfter(headers['retry-after'], now) ?? backoffMs(attempt, backoff);
    return { kind: 'retry', afterMs: after, reason: status === 0 ? 'no answer' : `server error (${status})`, throttled: false };
  }
  return { kind: 'reject', reason: `rejected (${status})` };
}
