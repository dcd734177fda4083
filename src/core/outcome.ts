// What a sink's delivery says about each operation it was handed. Every sink answers in these
// words, and the core settles them the same way (src/core/delivery.ts): store, log, count, back
// off, bisect.
import { decide } from '../net/retry.js';
import type { OutboxItem } from './types.js';

export type Outcome =
  /** Delivered. `externalId`: the sink's id for the key (null: none, or forget it); `counted`: the delivered metric's op label (default: the operation's). */
  | { kind: 'ack'; externalId: string | null; counted?: string }
  /**
   * Not now (outage, throttling, an item waiting its turn): again at `notBefore` (epoch ms), else
   * after backoff. `logged`: whoever decided it logs it already (the guard's one summary line per
   * interval for thousands held by its breaker), so the core does not log each batch again.
   * `unreachable`: the sink did not really answer (no answer, 5xx), which the status page and the
   * unreachable log line count; throttling and waiting turns do not.
   */
  | { kind: 'retry'; reason: string; notBefore?: number; logged?: boolean; unreachable?: boolean }
  /** The sink refuses us (credentials, permissions, a wrong path or id): the items are fine, the set-up is not. The reason says what to fix; the whole sink waits. */
  | { kind: 'wait-for-setup'; reason: string }
  /** Rejected for good: a dead letter with the reason; `code` labels the dead-letter metric. */
  | { kind: 'dead'; reason: string; code?: string }
  /** The sink refused the batch as a whole: the core bisects it until the culprit stands alone, then dead-letters it. */
  | { kind: 'split'; reason: string; code?: string };

export interface Settled {
  item: OutboxItem;
  outcome: Outcome;
}

/** The same outcome for every item. */
export function all(items: OutboxItem[], outcome: Outcome): Settled[] {
  return items.map((item) => ({ item, outcome }));
}

/** The failed HTTP answer of a call, with how long the system asked us to stay away (the call envelope reads it). */
export interface FailedAnswer {
  status: number;
  headers: Record<string, string | undefined>;
  retryAfterMs?: number | null;
}

/**
 * What a failed answer means, the same for every sink: 429, 408, 5xx retry (when the system said,
 * else with backoff by `attempt`); a status in `setup` (401 and 403 at least, with the fix) waits
 * for the set-up; anything else is a rejection. `what` says which call, with the system's message.
 */
export function answerOutcome(res: FailedAnswer, attempt: number, what: string, setup: Partial<Record<number, string>>): Outcome {
  const verdict = decide(res.status, res.headers, attempt);
  if (verdict.kind === 'retry') {
    return { kind: 'retry', reason: `${what}: ${verdict.reason}`, notBefore: Date.now() + (res.retryAfterMs ?? verdict.afterMs), ...(verdict.throttled ? {} : { unreachable: true }) };
  }
  const fix = setup[res.status];
  if (fix) return { kind: 'wait-for-setup', reason: `${what}: refused (${res.status}); ${fix}` };
  return { kind: 'dead', reason: `${what}: rejected (${res.status})`, code: `http_${res.status}` };
}

/** The highest attempt count of a batch (its backoff). */
export const attemptOf = (items: OutboxItem[]): number => items.reduce((m, i) => Math.max(m, i.attempts), 0);
