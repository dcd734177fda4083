// The guard in front of a sink's outbox: every upsert whose action enforces is checked against
// the protected list and the breaker before it leaves, whichever source asked for it. Each check
// of an enforcing action is written to the decision log (`threatbridge decisions`). What the
// breaker holds is handed back to the sink's delivery, which answers it as a `retry` outcome: the
// core settles it like every other delay (the gate never writes to the outbox).
import type { Observable, ObservableType, OutboxItem } from '../core/types.js';
import type { Outcome } from '../core/outcome.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { DecisionLog, GuardDecision } from '../core/store.js';
import type { Breaker } from './breaker.js';
import { guardVerdict, type GuardPolicy, type SinkActions } from './guard.js';
import type { ProtectedList } from './list.js';
import type { ProtectedValues } from './protected-values.js';

export interface GateOptions {
  sink: string;
  enabled: boolean;
  onProtected: 'audit' | 'skip';
  specialAddresses: 'audit' | 'skip';
  /** How long an item paused by the breaker waits before it is looked at again. */
  holdMs: number;
  /** The sink's action vocabulary: what enforces and what a downgrade sends instead. */
  actions: SinkActions;
  /** Removals of more than this share (0–1) of what the sink holds, within the breaker's window, trip it; 0 = off. */
  withdrawalShare: number;
  /** Fewer removals than this in the window never trip it (routine expiry and revocation). */
  withdrawalMin: number;
  /** Values protected in this sink only (a Defender tenant's list), on top of the shared list. */
  own?: ProtectedValues | null;
}

export interface Screened<P> {
  /** Items to send, with their (possibly downgraded) action. */
  send: OutboxItem<P>[];
  /** Items not to push at all (any copy the sink holds is to be removed). */
  skip: OutboxItem<P>[];
  /** Paused by the breaker: the delivery answers them `holdAs` (they wait in the outbox). */
  hold: OutboxItem<P>[];
  /** The outcome for what is held: again after the hold interval, logged by the gate's summary line. */
  holdAs: HoldOutcome;
}

export type HoldOutcome = Extract<Outcome, { kind: 'retry' }>;

/** Observable of an outbox key (`type:value`, see observableKey). */
export function observableOfKey(key: string): Observable {
  const sep = key.indexOf(':');
  return { type: key.slice(0, sep) as ObservableType, value: key.slice(sep + 1) };
}

const sourceOf = (item: OutboxItem): string => item.sourceRef?.system ?? 'unknown';

/** A sink that has had fewer of ours confirmed than this is measured as if it had this many. */
export const WITHDRAWAL_MIN_BASE = 20;

/**
 * The withdrawal breaker's denominator: what the sink has had confirmed for us within the window —
 * the ids it holds for us now (our sink-id map) plus the removals of them already counted — never
 * less than `WITHDRAWAL_MIN_BASE` or the removal minimum, so a cold sink or a tiny fleet is not
 * measured as "everything" by a few deliberate deletes.
 */
export function withdrawalBase(heldNow: number, removedInWindow: number, minRemovals: number): { confirmed: number; base: number } {
  const confirmed = heldNow + removedInWindow;
  return { confirmed, base: Math.max(confirmed, minRemovals, WITHDRAWAL_MIN_BASE, 1) };
}

export class GuardGate {
  /** Held by the breaker since the last summary line, per source (one warning per interval, not per item). */
  private heldSinceSummary = new Map<string, number>();
  private lastSummary = 0;

  constructor(
    private readonly o: GateOptions,
    private readonly list: ProtectedList,
    readonly breaker: Breaker,
    private readonly store: DecisionLog,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  get sink(): string {
    return this.o.sink;
  }

  private policy(): GuardPolicy {
    const shared = this.list.current;
    const own = this.o.own;
    const protectedValues = own ? { match: (o: Observable) => shared.match(o) ?? own.match(o) } : shared;
    return { enabled: this.o.enabled, protectedValues, onProtected: this.o.onProtected,
      specialAddresses: this.o.specialAddresses, paused: this.breaker.paused, actions: this.o.actions };
  }

  private decision(item: OutboxItem, now: number, wanted: string, action: string, outcome: string, reason: string, fresh: boolean): GuardDecision {
    const source = sourceOf(item);
    this.metrics.guardDecisions.inc({ sink: this.o.sink, source, outcome });
    return { at: now, sink: this.o.sink, key: item.key, source, sourceRef: item.sourceRef?.id ?? null, wanted, action, outcome, reason, fresh };
  }

  /** Waited in the outbox when the operator released the source: goes now and does not count again. */
  private released(item: OutboxItem): boolean {
    const at = this.breaker.releasedAt(sourceOf(item));
    return at > 0 && item.attempts > 0 && item.enqueuedAt <= at;
  }

  /**
   * Screens upserts. `action(p)` reads the wanted action, `downgrade(p, action)` returns the payload
   * with the safer action; `held` is the set of keys the sink already holds (a Block on a key not
   * held is a new Block for the breaker).
   */
  async screen<P>(items: OutboxItem<P>[], held: ReadonlySet<string>, action: (p: P) => string,
    downgrade: (p: P, action: string) => P, now = Date.now()): Promise<Screened<P>> {
    await this.breaker.refresh(false, now);
    const out: Screened<P> = { send: [], skip: [], hold: [], holdAs: this.holdAs(now) };
    const decisions: GuardDecision[] = [];
    const fresh = new Map<string, OutboxItem<P>[]>();
    const policy = this.policy();
    for (const item of items) {
      const wanted = action(item.payload);
      if (!this.o.actions.enforcing.has(wanted)) { out.send.push(item); continue; }
      const verdict = guardVerdict(observableOfKey(item.key), wanted, item.sourceRef, policy);
      const source = sourceOf(item);
      if (verdict.outcome === 'allow') {
        if (held.has(item.key)) {
          decisions.push(this.decision(item, now, wanted, wanted, 'allow', verdict.reason, false));
          out.send.push(item);
        } else if (this.released(item)) {
          decisions.push(this.decision(item, now, wanted, wanted, 'allow', 'released by `threatbridge resume`', false));
          out.send.push(item);
        } else {
          fresh.set(source, [...(fresh.get(source) ?? []), item]);
        }
        continue;
      }
      const logFields = { sink: this.o.sink, key: item.key, source, sourceRef: item.sourceRef?.id, url: item.sourceRef?.url, wanted, reason: verdict.reason };
      if (verdict.outcome === 'breaker') {
        // Recorded once per operation, not at every look while it waits.
        if (item.attempts === 0) decisions.push(this.decision(item, now, wanted, 'hold', 'breaker', verdict.reason, !held.has(item.key)));
        out.hold.push(item);
      } else if (verdict.outcome === 'skip') {
        decisions.push(this.decision(item, now, wanted, 'skip', 'skip', verdict.reason, false));
        this.log.warn(logFields, 'guard: protected value not pushed');
        out.skip.push(item);
      } else {
        decisions.push(this.decision(item, now, wanted, verdict.action!, 'downgrade', verdict.reason, false));
        this.log.warn({ ...logFields, action: verdict.action }, 'guard: protected value downgraded');
        out.send.push({ ...item, payload: downgrade(item.payload, verdict.action!) });
      }
    }
    for (const [source, list] of fresh) {
      const room = await this.breaker.admit(source, list.length, now, this.o.sink);
      list.forEach((item, i) => {
        const wanted = action(item.payload);
        if (i < room) {
          decisions.push(this.decision(item, now, wanted, wanted, 'allow', 'no protected value touched', true));
          out.send.push(item);
        } else {
          decisions.push(this.decision(item, now, wanted, 'hold', 'breaker', `breaker open for source ${source}`, true));
          out.hold.push(item);
        }
      });
    }
    await this.settle(decisions, out.hold, now);
    return out;
  }

  /**
   * Screens removals of objects the sink holds (`held`, `heldCount` of them): while a source's
   * breaker is open, or when its removals within the window would pass the withdrawal share, they
   * wait in the outbox until \`threatbridge resume\`. Returns what may be removed now.
   */
  async screenRemovals<P>(items: OutboxItem<P>[], held: ReadonlySet<string>, heldCount: number, now = Date.now()): Promise<Omit<Screened<P>, 'skip'>> {
    await this.breaker.refresh(false, now);
    const out: Omit<Screened<P>, 'skip'> = { send: [], hold: [], holdAs: this.holdAs(now) };
    const decisions: GuardDecision[] = [];
    const bySource = new Map<string, OutboxItem<P>[]>();
    for (const item of items) {
      // Nothing to remove (never created, or someone else's): no harm, no count.
      if (!held.has(item.key) || !this.o.enabled) { out.send.push(item); continue; }
      if (this.released(item)) {
        decisions.push(this.decision(item, now, 'remove', 'remove', 'withdraw', 'released by `threatbridge resume`', false));
        out.send.push(item);
        continue;
      }
      bySource.set(sourceOf(item), [...(bySource.get(sourceOf(item)) ?? []), item]);
    }
    for (const [source, list] of bySource) {
      let room = list.length;
      if (this.breaker.paused.has(source)) room = 0;
      else if (this.o.withdrawalShare > 0) {
        const done = await this.store.countDecisions({ source, since: this.breaker.windowStart(source, now), fresh: true, outcomes: ['withdraw'], sink: this.o.sink });
        // A retried removal (the sink failed or was down) was counted on its first attempt.
        const total = done + list.filter((i) => i.attempts === 0).length;
        const { confirmed, base } = withdrawalBase(heldCount, done, this.o.withdrawalMin);
        const share = total / base;
        if (total >= this.o.withdrawalMin && share > this.o.withdrawalShare) {
          room = 0;
          await this.breaker.trip(source, `${total} removals from ${this.o.sink} asked by ${source} within an hour: ${Math.round(share * 100)}% of the ${confirmed} it has had confirmed for us (limit ${Math.round(this.o.withdrawalShare * 100)}%)`,
            now, { sink: this.o.sink, removals: total, confirmed, base });
        }
      }
      list.forEach((item, i) => {
        if (i < room) {
          // Fresh (counted by the breaker) only on its first attempt: retries against a failing sink are one removal.
          decisions.push(this.decision(item, now, 'remove', 'remove', 'withdraw', 'no longer asserted by its source', item.attempts === 0));
          out.send.push(item);
        } else {
          if (item.attempts === 0) decisions.push(this.decision(item, now, 'remove', 'hold', 'breaker', `breaker open for source ${source}: removal held`, true));
          out.hold.push(item);
        }
      });
    }
    await this.settle(decisions, out.hold, now);
    return out;
  }

  /** Held items are looked at again after the hold interval; the summary line below is their log. */
  private holdAs(now: number): HoldOutcome {
    return { kind: 'retry', reason: 'breaker open: waiting for `threatbridge resume`', notBefore: now + this.o.holdMs, logged: true };
  }

  private async settle(decisions: GuardDecision[], hold: OutboxItem[], now: number): Promise<void> {
    if (decisions.length) await this.store.recordDecisions(decisions);
    if (!hold.length) return;
    // Counted as recorded: each held operation once (the decision log has one row for it).
    for (const d of decisions) if (d.outcome === 'breaker') this.heldSinceSummary.set(d.source, (this.heldSinceSummary.get(d.source) ?? 0) + 1);
    if (now - this.lastSummary < this.o.holdMs || this.heldSinceSummary.size === 0) return;
    // One line per interval for a cold fill of thousands; the decision log keeps each one.
    this.lastSummary = now;
    for (const [source, n] of this.heldSinceSummary) {
      this.log.warn({ sink: this.o.sink, source, held: n }, `breaker: ${n} more operations of ${source} wait for \`threatbridge resume ${source}\` (see \`threatbridge decisions\`)`);
    }
    this.heldSinceSummary = new Map();
  }
}
