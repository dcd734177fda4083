// The guard in front of a sink's outbox: every upsert whose action enforces is checked against
// the protected list and the breaker before it leaves, whichever source asked for it. Each check
// of an enforcing action is written to the decision log (`threatbridge decisions`).
import type { Observable, ObservableType, OutboxItem } from '../core/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { GuardDecision, Store } from '../store/types.js';
import type { Breaker } from './breaker.js';
import { ENFORCING_ACTIONS, guardVerdict, type GuardPolicy } from './guard.js';
import type { ProtectedList } from './list.js';

export interface GateOptions {
  sink: string;
  enabled: boolean;
  onProtected: 'audit' | 'skip';
  specialAddresses: 'audit' | 'skip';
  /** How long an item paused by the breaker waits before it is looked at again. */
  holdMs: number;
}

export interface Screened<P> {
  /** Items to send, with their (possibly downgraded) action. */
  send: OutboxItem<P>[];
  /** Items not to push at all (any copy the sink holds is to be removed). */
  skip: OutboxItem<P>[];
  /** Paused by the breaker: they wait in the outbox. */
  hold: OutboxItem<P>[];
}

/** Observable of an outbox key (`type:value`, see observableKey). */
export function observableOfKey(key: string): Observable {
  const sep = key.indexOf(':');
  return { type: key.slice(0, sep) as ObservableType, value: key.slice(sep + 1) };
}

export class GuardGate {
  constructor(
    private readonly o: GateOptions,
    private readonly list: ProtectedList,
    readonly breaker: Breaker,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  private policy(): GuardPolicy {
    return { enabled: this.o.enabled, protectedValues: this.list.current, onProtected: this.o.onProtected,
      specialAddresses: this.o.specialAddresses, paused: this.breaker.paused };
  }

  /**
   * Screens upserts. `action(p)` reads the wanted action, `downgrade(p, action)` returns the payload
   * with the safer action; `held` is the set of keys the sink already holds (a Block on a key not
   * held is a new Block for the breaker).
   */
  async screen<P>(items: OutboxItem<P>[], held: ReadonlySet<string>, action: (p: P) => string,
    downgrade: (p: P, action: string) => P, now = Date.now()): Promise<Screened<P>> {
    await this.breaker.refresh(false, now);
    const out: Screened<P> = { send: [], skip: [], hold: [] };
    const decisions: GuardDecision[] = [];
    const fresh = new Map<string, OutboxItem<P>[]>();
    const record = (item: OutboxItem<P>, wanted: string, act: string, outcome: string, reason: string, isFresh: boolean) => {
      const source = item.sourceRef?.system ?? 'unknown';
      decisions.push({ at: now, sink: this.o.sink, key: item.key, source, sourceRef: item.sourceRef?.id ?? null, wanted, action: act,
        outcome, reason, fresh: isFresh });
      this.metrics.guardDecisions.inc({ sink: this.o.sink, source, outcome });
    };
    const policy = this.policy();
    for (const item of items) {
      const wanted = action(item.payload);
      if (!ENFORCING_ACTIONS.has(wanted)) { out.send.push(item); continue; }
      const verdict = guardVerdict(observableOfKey(item.key), wanted, item.sourceRef, policy);
      const source = item.sourceRef?.system ?? 'unknown';
      if (verdict.outcome === 'allow') {
        if (!held.has(item.key)) {
          const list = fresh.get(source) ?? [];
          list.push(item);
          fresh.set(source, list);
        } else {
          record(item, wanted, wanted, 'allow', verdict.reason, false);
          out.send.push(item);
        }
        continue;
      }
      const logFields = { sink: this.o.sink, key: item.key, source, sourceRef: item.sourceRef?.id, url: item.sourceRef?.url, wanted, reason: verdict.reason };
      if (verdict.outcome === 'breaker') {
        // Logged once per operation, not at every look while it waits.
        if (item.attempts === 0) { record(item, wanted, 'hold', 'breaker', verdict.reason, !held.has(item.key)); this.log.warn(logFields, 'enforcing action held by the breaker'); }
        out.hold.push(item);
      } else if (verdict.outcome === 'skip') {
        record(item, wanted, 'skip', 'skip', verdict.reason, false);
        this.log.warn(logFields, 'guard: protected value not pushed');
        out.skip.push(item);
      } else {
        record(item, wanted, verdict.action!, 'downgrade', verdict.reason, false);
        this.log.warn({ ...logFields, action: verdict.action }, 'guard: protected value downgraded');
        out.send.push({ ...item, payload: downgrade(item.payload, verdict.action!) });
      }
    }
    for (const [source, list] of fresh) {
      const room = await this.breaker.admit(source, list.length, now);
      list.forEach((item, i) => {
        const wanted = action(item.payload);
        if (i < room) {
          record(item, wanted, wanted, 'allow', 'no protected value touched', true);
          out.send.push(item);
        } else {
          record(item, wanted, 'hold', 'breaker', `breaker open for source ${source}`, true);
          out.hold.push(item);
        }
      });
    }
    if (decisions.length) await this.store.recordDecisions(decisions);
    if (out.hold.length) await this.store.retry(out.hold, now + this.o.holdMs, 'breaker open: waiting for `threatbridge resume`');
    return out;
  }
}
