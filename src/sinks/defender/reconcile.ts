// Reconciliation: list what Defender holds (paged), keep the holders of values we did not create
// current (so a first write never overwrites another application's or a person's indicator), and
// compare ours with what the store says we should hold: re-create what was deleted by hand and is
// still claimed, delete duplicates (same type and value twice: keep one), forget what expired,
// delete ours that nobody claims, adopt ours the store lost track of.
import { effectiveClaim, observableKey } from '../../core/claims.js';
import { parseObservable } from '../../core/observables.js';
import type { Claim, ObservableType, SinkOp } from '../../core/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { HeldObject, Store } from '../../core/store.js';
import type { DefenderApi } from '../../microsoft/defender/client.js';
import type { DefenderIndicator } from '../../microsoft/defender/types.js';
import { defenderTypeOf } from './mapper.js';
import { expandIpv6 } from '../../core/observables.js';
import type { DefenderRoute } from './route.js';
import { withdrawalBase } from '../../guard/gate.js';

export interface ReconcileReport {
  listed: number;
  held: number;
  recreated: number;
  duplicatesDeleted: number;
  unclaimedDeleted: number;
  /** Unclaimed ones of ours kept because deleting them all would pass the withdrawal breaker. */
  unclaimedHeld: number;
  adopted: number;
  forgotten: number;
}

/** A Map: the indicator type comes from Defender's answer. */
const OBS_TYPES = new Map<string, ObservableType[]>([
  ['IpAddress', ['ipv4', 'ipv6']], ['DomainName', ['domain']], ['Url', ['url']], ['FileSha1', ['sha1']], ['FileMd5', ['md5']],
  ['FileSha256', ['sha256']], ['CertificateThumbprint', ['cert-sha1']],
]);

/** Defender's identity of an indicator: type and case-folded value. */
function defenderKey(type: string, value: string): string {
  return `${type}|${value.toLowerCase()}`;
}

/** Our observable key for an indicator Defender lists, or null when we could not have made it. */
export function keyOfIndicator(ind: DefenderIndicator): string | null {
  for (const type of OBS_TYPES.get(ind.indicatorType) ?? []) {
    const parsed = parseObservable(type, ind.indicatorValue);
    if (parsed.ok) return observableKey(parsed.observable);
  }
  return null;
}

/** Defender's identity of one of our keys. */
export function defenderKeyOf(key: string): string | null {
  const sep = key.indexOf(':');
  const obsType = key.slice(0, sep) as ObservableType;
  const type = defenderTypeOf(obsType);
  if (!type) return null;
  const raw = key.slice(sep + 1);
  return defenderKey(type, obsType === 'ipv6' ? expandIpv6(raw) : raw);
}

/** Who holds a value we did not create: another application or a person. */
export interface Holder {
  id: string;
  action: string;
  /** createdByDisplayName, else createdBy (an app id or a user principal name). */
  by: string;
  application: string | null;
  sourceType: string;
}

/**
 * The holders of the values in Defender that are not ours, from the last full listing; listed
 * again when older than `maxAgeMs` (the reconciliation refreshes it on each run as well).
 */
export class DefenderHolders {
  private byKey = new Map<string, Holder>();
  private loadedAt = 0;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly listAll: () => Promise<DefenderIndicator[]>,
    /** Ours: written under one of our application names or by our client id. */
    private readonly isOurs: (ind: DefenderIndicator) => boolean,
    private readonly maxAgeMs: number,
  ) {}

  /** Replace the holders from a full listing; returns the rows that are ours. */
  update(rows: DefenderIndicator[], now = Date.now()): DefenderIndicator[] {
    const next = new Map<string, Holder>();
    const ours: DefenderIndicator[] = [];
    for (const ind of rows) {
      if (this.isOurs(ind)) { ours.push(ind); continue; }
      const key = keyOfIndicator(ind);
      if (!key) continue;
      const by = String(ind['createdByDisplayName'] ?? ind['createdBy'] ?? ind['source'] ?? 'unknown');
      next.set(key, { id: String(ind.id), action: String(ind.action ?? ''), by, application: ind.application ?? null, sourceType: String(ind['sourceType'] ?? '') });
    }
    this.byKey = next;
    this.loadedAt = now;
    return ours;
  }

  /** Holders of the given keys that are not us (a listing first when the last one is too old). */
  async holdersOf(keys: string[], now = Date.now()): Promise<Map<string, Holder>> {
    if (now - this.loadedAt > this.maxAgeMs) {
      this.loading ??= this.listAll().then((rows) => { this.update(rows, Date.now()); }).finally(() => { this.loading = null; });
      await this.loading;
    }
    const out = new Map<string, Holder>();
    for (const k of keys) { const h = this.byKey.get(k); if (h) out.set(k, h); }
    return out;
  }
}

export class DefenderReconciler {
  constructor(
    private readonly sink: string,
    private readonly client: DefenderApi,
    private readonly store: Store,
    private readonly route: DefenderRoute,
    private readonly holders: DefenderHolders,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** The withdrawal breaker's limits (guard.withdrawal_breaker_*); share 0 = off. */
    private readonly withdrawal: { share: number; min: number } = { share: 0, min: 1 },
  ) {}

  async run(now = Date.now()): Promise<ReconcileReport> {
    // Paging by $skip under mutation can list a row twice (or miss one): one row per id, and a
    // missed row only costs a harmless re-upsert (Defender upserts on type and value).
    const all = [...new Map((await this.client.listIndicators(null)).map((r) => [String(r.id), r])).values()];
    const held = await this.store.listHeld(this.sink);
    const heldIds = new Set(held.map((h) => h.externalId));
    // Ours: under our application names, or recorded by us (an indicator adopted on config's say-so).
    const ourRows = new Set(this.holders.update(all.filter((r) => !heldIds.has(String(r.id))), now));
    const listed = all.filter((r) => ourRows.has(r) || heldIds.has(String(r.id)));
    const report: ReconcileReport = { listed: listed.length, held: held.length, recreated: 0, duplicatesDeleted: 0, unclaimedDeleted: 0, unclaimedHeld: 0, adopted: 0, forgotten: 0 };

    // Group what Defender holds by identity; keep one per identity (ours by id, else the oldest).
    const groups = new Map<string, DefenderIndicator[]>();
    for (const ind of listed) {
      const k = defenderKey(ind.indicatorType, ind.indicatorValue);
      groups.set(k, [...(groups.get(k) ?? []), ind]);
    }
    const toDelete: string[] = [];
    const unclaimed: { id: string; key: string }[] = [];
    const kept = new Map<string, DefenderIndicator>();
    for (const [k, rows] of groups) {
      const sorted = [...rows].sort((a, b) => Number(a.id) - Number(b.id));
      const keep = sorted.find((r) => heldIds.has(r.id)) ?? sorted[0]!;
      kept.set(k, keep);
      for (const r of sorted) if (r !== keep) { toDelete.push(r.id); report.duplicatesDeleted++; }
    }

    const claimsOf = await this.claimsByKey([...held.map((h) => h.key), ...[...kept.values()].map(keyOfIndicator).filter((k): k is string => k !== null)]);
    const adopt: HeldObject[] = [];
    const forget: string[] = [];
    const recreate: SinkOp[] = [];
    const seen = new Set<string>();
    for (const h of held) {
      const dk = defenderKeyOf(h.key);
      if (!dk) continue;
      seen.add(dk);
      const there = kept.get(dk);
      if (there) {
        if (there.id !== h.externalId) { adopt.push({ ...h, externalId: there.id, updatedAt: now }); report.adopted++; }
        continue;
      }
      // Gone from Defender: expired, or deleted by hand.
      forget.push(h.key);
      if (h.expiresAt !== null && h.expiresAt <= now) { report.forgotten++; continue; }
      const decision = this.route.route(h.key, effectiveClaim(claimsOf.get(h.key) ?? []), now);
      if (decision.op?.op === 'upsert') { recreate.push(decision.op); report.recreated++; } else report.forgotten++;
    }
    for (const [dk, ind] of kept) {
      if (seen.has(dk)) continue;
      const key = keyOfIndicator(ind);
      const claim = key ? effectiveClaim(claimsOf.get(key) ?? []) : null;
      if (key && claim) {
        const exp = ind.expirationTime ? Date.parse(ind.expirationTime) : NaN;
        adopt.push({ key, externalId: ind.id, score: claim.change.score, expiresAt: Number.isNaN(exp) ? null : exp, updatedAt: now });
        report.adopted++;
      } else {
        unclaimed.push({ id: ind.id, key: key ?? defenderKey(ind.indicatorType, ind.indicatorValue) });
      }
    }
    if (await this.mayWithdraw(unclaimed, listed.length, now)) {
      toDelete.push(...unclaimed.map((u) => u.id));
      report.unclaimedDeleted = unclaimed.length;
    } else report.unclaimedHeld = unclaimed.length;

    await this.deleteIds(toDelete);
    if (forget.length) await this.store.dropHeld(this.sink, forget);
    if (adopt.length) await this.store.putHeld(this.sink, adopt);
    // Re-created through the outbox, so the guard and the cap look at them like at any upsert.
    if (recreate.length) await this.store.enqueue(recreate);

    for (const [repair, n] of [['recreated', report.recreated], ['duplicate_deleted', report.duplicatesDeleted],
      ['unclaimed_deleted', report.unclaimedDeleted], ['adopted', report.adopted], ['forgotten', report.forgotten]] as const) {
      if (n > 0) this.metrics.reconcileRepairs.inc({ sink: this.sink, repair }, n);
    }
    const drift = report.recreated + report.duplicatesDeleted + report.unclaimedDeleted + report.adopted + report.forgotten;
    this.log[drift > 0 ? 'warn' : 'info']({ sink: this.sink, ...report }, drift > 0 ? 'reconciliation repaired drift' : 'reconciliation: Defender matches the store');
    return report;
  }

  /**
   * The withdrawal breaker for reconciliation (source "reconciliation"): deleting more than the
   * share of ours it found trips it and keeps them; after `threatbridge resume` one pass deletes.
   */
  private async mayWithdraw(unclaimed: { id: string; key: string }[], ours: number, now: number): Promise<boolean> {
    const source = 'reconciliation';
    if (unclaimed.length === 0 || this.withdrawal.share === 0) return true;
    const state = (await this.store.listBreakers()).find((b) => b.source === source);
    const record = (outcome: string, reason: string) => this.store.recordDecisions(unclaimed.map((u) => ({
      at: now, sink: this.sink, key: u.key, source, sourceRef: u.id, wanted: 'remove', action: outcome === 'withdraw' ? 'remove' : 'hold', outcome, reason, fresh: true })));
    // Released: resumed within the last day and no pass has deleted since.
    const released = state?.resumedAt != null && now - state.resumedAt < 86_400_000
      && await this.store.countDecisions({ source, since: state.resumedAt, outcomes: ['withdraw'], sink: this.sink }) === 0;
    if (released) { await record('withdraw', 'released by `threatbridge resume`'); return true; }
    // Measured like the gate's removals: against what Defender holds for us, never fewer than the minimum base.
    const overShare = unclaimed.length >= this.withdrawal.min && unclaimed.length > this.withdrawal.share * withdrawalBase(ours, 0, this.withdrawal.min).base;
    if (state && state.resumedAt === null || overShare) {
      const reason = `reconciliation would delete ${unclaimed.length} of the ${ours} indicators of ours in Defender that nothing claims (limit ${Math.round(this.withdrawal.share * 100)}%)`;
      if (!state || state.resumedAt !== null) await this.store.tripBreaker({ source, trippedAt: now, reason });
      await record('breaker', reason);
      this.log.error({ sink: this.sink, unclaimed: unclaimed.length, ours }, `${reason}: kept until \`threatbridge resume ${source}\``);
      return false;
    }
    await record('withdraw', 'nothing claims it any more');
    return true;
  }

  private async claimsByKey(keys: string[]): Promise<Map<string, Claim[]>> {
    const out = new Map<string, Claim[]>();
    // Only the claims this tenant's route takes: a value its route excludes is not ours to keep there.
    const accepts = this.route.accepts?.bind(this.route) ?? (() => true);
    for (const c of await this.store.loadClaims([...new Set(keys)], [])) if (accepts(c)) out.set(c.key, [...(out.get(c.key) ?? []), c]);
    return out;
  }

  private async deleteIds(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 500) {
      const part = ids.slice(i, i + 500);
      const res = await this.client.batchDelete(part);
      if (res.status >= 200 && res.status < 300) continue;
      if (res.status !== 404) throw new Error(`reconciliation: BatchDelete answered ${res.status}`);
      for (const id of part) {
        const one = await this.client.deleteIndicator(id);
        if (one.status >= 300 && one.status !== 404) throw new Error(`reconciliation: DELETE ${id} answered ${one.status}`);
      }
    }
  }
}
