// Defender holds at most 15,000 active indicators per tenant and refuses more. We keep our share
// within a budget (max_indicators − headroom) by value: when a new indicator needs a slot and none
// is free, the least valuable one we hold is evicted if the newcomer is worth more, else the
// newcomer is refused (it waits and is tried again later). Value, highest first: score (none =
// lowest), then the later expiry, then the most recently updated. Expired indicators hold no slot
// (Defender expires them itself) and are forgotten. Every eviction and refusal is logged, counted
// and written to the decision log: nothing happens silently at the cap.
import { effectiveClaim } from '../../core/claims.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { GuardDecision, HeldObject, Store } from '../../core/store.js';
import type { OutboxItem } from '../../core/types.js';
import type { DefenderIndicatorBody } from './mapper.js';

export interface Rank {
  score: number | null;
  expiresAt: number | null;
  updatedAt: number;
}

/** < 0 when a is worth less than b. */
export function compareValue(a: Rank, b: Rank): number {
  const sa = a.score ?? -1;
  const sb = b.score ?? -1;
  if (sa !== sb) return sa - sb;
  const ea = a.expiresAt ?? Infinity;
  const eb = b.expiresAt ?? Infinity;
  if (ea !== eb) return ea < eb ? -1 : 1;
  return a.updatedAt - b.updatedAt;
}

export interface CapPlan {
  admit: OutboxItem[];
  refuse: OutboxItem[];
  evict: HeldObject[];
  /** Rank of every item, recorded with its id once Defender accepts it. */
  ranks: Map<string, Rank>;
  /** Evicted key → the newcomer that took its slot. */
  evictedFor: Map<string, string>;
}

export class IndicatorCap {
  /** Lowered when Defender says it is full before we think it is (others' indicators share the cap). */
  private learnedBudget: number | null = null;

  constructor(
    readonly sink: string,
    private readonly budget: number,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  get effectiveBudget(): number {
    return Math.min(this.budget, this.learnedBudget ?? Infinity);
  }

  /** What the sink holds for us and still counts; expired ones are forgotten here. */
  async active(now = Date.now()): Promise<Map<string, HeldObject>> {
    const all = await this.store.listHeld(this.sink);
    const expired = all.filter((h) => h.expiresAt !== null && h.expiresAt <= now);
    if (expired.length) {
      await this.store.dropHeld(this.sink, expired.map((h) => h.key));
      this.metrics.capEvictions.inc({ sink: this.sink, outcome: 'expired' }, expired.length);
      this.log.info({ sink: this.sink, expired: expired.length }, 'forgot indicators Defender has expired');
    }
    const live = new Map(all.filter((h) => !(h.expiresAt !== null && h.expiresAt <= now)).map((h) => [h.key, h]));
    this.metrics.heldObjects.set({ sink: this.sink }, live.size);
    return live;
  }

  /** Defender refused for capacity while we hold `held`: keep below that from now on. */
  defenderFull(held: number): void {
    const next = Math.max(0, held);
    if (this.learnedBudget === null || next < this.learnedBudget) {
      this.learnedBudget = next;
      this.log.error({ sink: this.sink, held, budget: this.budget },
        'Defender reports its indicator cap reached before our budget; others hold part of it. Evicting by value from now on (raise headroom)');
    }
  }

  async plan(items: OutboxItem[], held: Map<string, HeldObject>, now = Date.now()): Promise<CapPlan> {
    const claims = await this.store.loadClaims(items.map((i) => i.key), []);
    const byKey = new Map<string, typeof claims>();
    for (const c of claims) byKey.set(c.key, [...(byKey.get(c.key) ?? []), c]);
    const ranks = new Map<string, Rank>();
    for (const item of items) {
      const body = item.payload as DefenderIndicatorBody;
      const exp = Date.parse(body.expirationTime);
      ranks.set(item.key, { score: effectiveClaim(byKey.get(item.key) ?? [])?.change.score ?? null, expiresAt: Number.isNaN(exp) ? null : exp, updatedAt: now });
    }
    const plan: CapPlan = { admit: [], refuse: [], evict: [], ranks, evictedFor: new Map() };
    const newcomers = items.filter((i) => !held.has(i.key));
    plan.admit.push(...items.filter((i) => held.has(i.key)));
    const budget = this.effectiveBudget;
    if (held.size + newcomers.length <= budget) { plan.admit.push(...newcomers); return plan; }

    const batchKeys = new Set(items.map((i) => i.key));
    const candidates = [...held.values()].filter((h) => !batchKeys.has(h.key)).sort(compareValue);
    newcomers.sort((a, b) => compareValue(ranks.get(b.key)!, ranks.get(a.key)!));
    let active = held.size;
    let next = 0;
    for (const item of newcomers) {
      if (active < budget) { plan.admit.push(item); active++; continue; }
      const weakest = candidates[next];
      if (weakest && compareValue(weakest, ranks.get(item.key)!) < 0) {
        plan.evict.push(weakest);
        plan.evictedFor.set(weakest.key, item.key);
        plan.admit.push(item);
        next++;
      } else {
        plan.refuse.push(item);
      }
    }
    return plan;
  }

  /** Log, count and audit what the plan did. */
  async report(plan: CapPlan, now = Date.now()): Promise<void> {
    const decisions: GuardDecision[] = [];
    for (const e of plan.evict) {
      decisions.push({ at: now, sink: this.sink, key: e.key, source: 'cap', sourceRef: null, wanted: 'keep', action: 'evict', outcome: 'evict',
        reason: `cap ${this.effectiveBudget}: evicted (score ${e.score ?? 'none'}, expires ${e.expiresAt ? new Date(e.expiresAt).toISOString() : 'never'}) for ${plan.evictedFor.get(e.key) ?? 'a more valuable indicator'}`, fresh: false });
    }
    for (const r of plan.refuse) {
      const rank = plan.ranks.get(r.key)!;
      decisions.push({ at: now, sink: this.sink, key: r.key, source: r.sourceRef?.system ?? 'unknown', sourceRef: r.sourceRef?.id ?? null,
        wanted: (r.payload as DefenderIndicatorBody).action, action: 'refuse', outcome: 'refuse',
        reason: `cap ${this.effectiveBudget} reached and score ${rank.score ?? 'none'} is worth less than every indicator held`, fresh: false });
    }
    if (decisions.length) await this.store.recordDecisions(decisions);
    if (plan.evict.length) {
      this.metrics.capEvictions.inc({ sink: this.sink, outcome: 'evicted' }, plan.evict.length);
      this.log.warn({ sink: this.sink, evicted: plan.evict.length, keys: plan.evict.slice(0, 20).map((e) => e.key), budget: this.effectiveBudget },
        'indicator cap reached: evicted the least valuable indicators for more valuable ones');
    }
    if (plan.refuse.length) {
      this.metrics.capEvictions.inc({ sink: this.sink, outcome: 'refused' }, plan.refuse.length);
      this.log.warn({ sink: this.sink, refused: plan.refuse.length, keys: plan.refuse.slice(0, 20).map((r) => r.key), budget: this.effectiveBudget },
        'indicator cap reached: new indicators worth less than everything held wait for a free slot');
    }
  }
}
