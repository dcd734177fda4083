// Delivery policy for Defender: upserts through /import (≤500 per call, an upsert by type+value,
// so retrying after a lost answer is harmless), removals through BatchDelete by the ids recorded
// at creation. Before any call, `prepare` runs the enforcement gate (protected values, breaker)
// and the cap. Outcomes go back to the core: 429 and 5xx retry (as Defender asked), missing
// permissions wait for the set-up, a whole-batch 400 is split so one bad item cannot block the
// other 499, item rejections are dead letters with Defender's reason.
import { all, answerOutcome, attemptOf, type Outcome, type Settled } from '../../core/outcome.js';
import type { SinkHandler } from '../../core/delivery.js';
import type { ApiResponse } from '../../net/call.js';
import type { Logger } from '../../observability/logger.js';
import { errorFields } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { OutboxItem } from '../../core/types.js';
import type { GuardDecision, Store } from '../../core/store.js';
import { DefenderApiError, defenderErrorText, type DefenderApi } from '../../microsoft/defender/client.js';
import type { ImportResult } from '../../microsoft/defender/types.js';
import { TokenError } from '../../microsoft/token.js';
import type { DefenderIndicatorBody } from './mapper.js';
import type { GuardGate } from '../../guard/gate.js';
import type { IndicatorCap, Rank } from './cap.js';
import type { DefenderHolders, Holder } from './reconcile.js';

/** Optional stages in front of an import: the guard (protected values, breaker), ownership and the cap. */
export interface DeliveryStages {
  gate?: GuardGate;
  cap?: IndicatorCap;
  /** Who holds the values we did not create; such a value is left alone unless `adoptForeign`. */
  holders?: DefenderHolders;
  /** Overwrite a value another application or a person holds (never an Allowed one). */
  adoptForeign?: boolean;
}

const REFUSED_RETRY_MS = 60 * 60_000;

/** Per-item failures that are about the tenant's capacity, not the item: wait, don't dead-letter. */
const CAPACITY_REASON = /limit|quota|capacity|maximum number|exceed/i;
const CAPACITY_RETRY_MS = 15 * 60_000;
/** A whole call refused for the tenant's indicator cap (wording unconfirmed upstream: kept narrow). */
const TENANT_CAP = /active indicators|indicators? (?:limit|quota|cap)\b|tenant (?:limit|quota|cap)\b/i;

/** What to fix when Defender refuses a call. */
const SETUP_FIXES = {
  401: 'check tenant_id, client_id, client_secret and scope',
  403: 'grant the application Ti.ReadWrite.All on WindowsDefenderATP and admin consent',
};

export class DefenderDelivery implements SinkHandler {
  constructor(
    readonly sink: string,
    readonly batchSize: number,
    private readonly client: DefenderApi,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly stages: DeliveryStages = {},
  ) {}

  /** Ranks of the batch in flight, recorded with the ids Defender gives back. */
  private ranks = new Map<string, Rank>();

  waitForCapacity(signal: AbortSignal): Promise<void> {
    return this.client.pacer.whenAvailable('import', signal);
  }

  /** Removals through the withdrawal breaker; upserts through ownership, the gate, then the cap. */
  async prepare(items: OutboxItem[], signal: AbortSignal): Promise<{ send: OutboxItem[]; settled: Settled[] }> {
    this.ranks = new Map();
    let deletes = items.filter((i) => i.op === 'delete');
    const heldDeletes: Settled[] = [];
    if (deletes.length && this.stages.gate) {
      // A source removing a large share of what Defender holds for us waits (mass-withdrawal breaker).
      const ids = await this.store.getSinkIds(this.sink, deletes.map((i) => i.key));
      const screened = await this.stages.gate.screenRemovals(deletes, new Set(ids.keys()), await this.store.countSinkIds(this.sink));
      deletes = screened.send;
      heldDeletes.push(...all(screened.hold, screened.holdAs));
    }
    const upserts = items.filter((i) => i.op === 'upsert');
    if (upserts.length === 0 || !(this.stages.gate || this.stages.cap || this.stages.holders)) return { send: [...upserts, ...deletes], settled: heldDeletes };
    const ready = await this.screen(upserts, signal);
    // Skipped by the guard: whatever Defender holds for the key goes, like a removal.
    return { send: [...ready.send, ...deletes, ...ready.remove], settled: [...heldDeletes, ...ready.settled] };
  }

  async deliver(items: OutboxItem[]): Promise<Settled[]> {
    const upserts = items.filter((i) => i.op === 'upsert');
    const deletes = items.filter((i) => i.op === 'delete');
    try {
      return [...upserts.length ? await this.upsert(upserts) : [], ...deletes.length ? await this.remove(deletes) : []];
    } catch (err) {
      // Entra ID refused this tenant's application (secret revoked or expired): only this tenant waits for its set-up.
      if (err instanceof TokenError && err.refused) return all(items, { kind: 'wait-for-setup', reason: `${err.message}; fix the application's credentials (${SETUP_FIXES[401]})` });
      throw err;
    }
  }

  private async screen(items: OutboxItem[], signal: AbortSignal): Promise<{ send: OutboxItem[]; remove: OutboxItem[]; settled: Settled[] }> {
    const now = Date.now();
    const { gate, cap } = this.stages;
    const held = cap ? await cap.active(now) : null;
    const heldKeys = held ? new Set(held.keys()) : new Set((await this.store.getSinkIds(this.sink, items.map((i) => i.key))).keys());
    // Ownership first: a listing that fails delays the items before the guard records anything.
    const owned = this.stages.holders ? await this.leaveForeign(items, heldKeys, now) : { send: items, settled: [] };
    let send = owned.send;
    let remove: OutboxItem[] = [];
    const settled = [...owned.settled];
    if (gate && send.length) {
      // Defender requires generateAlert with Audit, so a downgrade keeps asking for an alert.
      const screened = await gate.screen(send as OutboxItem<DefenderIndicatorBody>[], heldKeys, (p: DefenderIndicatorBody) => p.action,
        (p, action) => {
          const { educateUrl: _dropped, ...rest } = p;
          return { ...rest, action: action as DefenderIndicatorBody['action'], generateAlert: true };
        }, now);
      send = screened.send as OutboxItem[];
      remove = screened.skip.map((i) => ({ ...i, op: 'delete' as const }));
      settled.push(...all(screened.hold as OutboxItem[], screened.holdAs));
    }
    if (!cap || !held || send.length === 0) return { send, remove, settled };
    const plan = await cap.plan(send, held, now);
    this.ranks = plan.ranks;
    if (plan.evict.length && !(await this.evict(plan.evict, signal))) {
      // Could not free the slots now: the newcomers wait rather than hit Defender's cap.
      const waiting = [...plan.admit.filter((a) => !held.has(a.key)), ...plan.refuse];
      return { send: plan.admit.filter((a) => held.has(a.key)), remove, settled: [...settled, ...all(waiting, { kind: 'retry', reason: 'cap: eviction failed' })] };
    }
    await cap.report(plan, now);
    const refused = all(plan.refuse, { kind: 'retry', reason: 'cap reached: worth less than every indicator held', notBefore: now + REFUSED_RETRY_MS });
    return { send: plan.admit, remove, settled: [...settled, ...refused] };
  }

  /**
   * A first write of a value someone else holds (another application, a person) would overwrite
   * theirs: it is left alone (acknowledged, logged, counted, in the decision log) unless config
   * allows adopting it, and an Allowed exception is never overwritten.
   */
  private async leaveForeign(items: OutboxItem[], heldKeys: ReadonlySet<string>, now: number): Promise<{ send: OutboxItem[]; settled: Settled[] }> {
    const firsts = items.filter((i) => !heldKeys.has(i.key)).map((i) => i.key);
    if (firsts.length === 0) return { send: items, settled: [] };
    let holders;
    try {
      holders = await this.stages.holders!.holdersOf(firsts, now);
    } catch (err) {
      // Not knowing who holds a value is no licence to overwrite it: the first writes wait.
      this.log.warn({ sink: this.sink, items: firsts.length, ...errorFields(err) }, 'cannot list who holds these values in Defender; first writes wait');
      // Refused credentials are the set-up's fault, not an outage: /readyz says so and the sink waits for a fix.
      // So is a listing Defender refuses (403: the application lacks the permission to read indicators).
      const outcome: Outcome = (err as { code?: unknown }).code === 'token_failed'
        ? { kind: 'wait-for-setup', reason: `${(err as Error).message} (microsoft_defender_intel.client_id / client_secret / tenant_id)` }
        : err instanceof DefenderApiError && err.status === 403
          ? { kind: 'wait-for-setup', reason: `${err.message}; ${SETUP_FIXES[403]}` }
          : { kind: 'retry', reason: `ownership listing failed: ${(err as Error).message}`, unreachable: true };
      return { send: items.filter((i) => heldKeys.has(i.key)), settled: all(items.filter((i) => !heldKeys.has(i.key)), outcome) };
    }
    const send: OutboxItem[] = [];
    const leave: OutboxItem[] = [];
    const decisions: GuardDecision[] = [];
    for (const item of items) {
      const holder = holders.get(item.key);
      const body = item.payload as DefenderIndicatorBody;
      if (!holder || (this.stages.adoptForeign && holder.action !== 'Allowed')) {
        if (holder) decisions.push(this.ownership(item, body, now, body.action, 'adopt', `adopted from ${describe(holder)} (guard.adopt_foreign)`));
        send.push(item);
        continue;
      }
      const reason = `held by ${describe(holder)}${holder.action === 'Allowed' ? ': an Allowed indicator is never overwritten' : ''}`;
      decisions.push(this.ownership(item, body, now, 'leave', 'foreign', reason));
      this.log.warn({ sink: this.sink, key: item.key, sourceRef: item.sourceRef?.id, holder: holder.by, holderAction: holder.action, id: holder.id },
        'value held by another application or a person: left alone');
      leave.push(item);
    }
    if (decisions.length) await this.store.recordDecisions(decisions);
    return { send, settled: all(leave, { kind: 'ack', externalId: null }) };
  }

  private ownership(item: OutboxItem, body: DefenderIndicatorBody, now: number, action: string, outcome: string, reason: string): GuardDecision {
    const source = item.sourceRef?.system ?? 'unknown';
    this.metrics.guardDecisions.inc({ sink: this.sink, source, outcome });
    return { at: now, sink: this.sink, key: item.key, source, sourceRef: item.sourceRef?.id ?? null, wanted: body.action, action, outcome, reason, fresh: false };
  }

  /** Removes evicted indicators from Defender and our store; false when Defender could not be reached. */
  private async evict(objects: { key: string; externalId: string }[], signal: AbortSignal): Promise<boolean> {
    for (let i = 0; i < objects.length && !signal.aborted; i += 500) {
      const part = objects.slice(i, i + 500);
      let res: ApiResponse<unknown>;
      try {
        res = await this.client.batchDelete(part.map((o) => o.externalId));
      } catch (err) {
        this.log.warn({ sink: this.sink, ...errorFields(err) }, 'cannot evict indicators now');
        return false;
      }
      if (res.status === 404) {
        // BatchDelete is all or nothing: one already gone (expired, deleted by hand) fails it. Go one by one.
        for (const o of part) {
          const one = await this.client.deleteIndicator(o.externalId).catch(() => null);
          if (!one || (one.status >= 300 && one.status !== 404)) return false;
        }
      } else if (res.status < 200 || res.status >= 300) {
        this.log.warn({ sink: this.sink, status: res.status, error: defenderErrorText(res) }, 'cannot evict indicators now');
        return false;
      }
      await this.store.dropHeld(this.sink, part.map((o) => o.key));
    }
    return !signal.aborted;
  }

  private async upsert(items: OutboxItem[]): Promise<Settled[]> {
    const res = await this.client.importIndicators(items.map((i) => i.payload as DefenderIndicatorBody));
    if (res.status >= 200 && res.status < 300) return this.settleImport(items, res.data?.value ?? []);
    const text = defenderErrorText(res);
    if (res.status === 400 && TENANT_CAP.test(text)) {
      // The tenant's cap refused the whole call: not the items' fault. Learn it, wait, evict next time.
      this.log.error({ sink: this.sink, items: items.length, error: text }, 'Defender refused the import for capacity; retrying later');
      this.metrics.capEvictions.inc({ sink: this.sink, outcome: 'refused_by_defender' }, items.length);
      if (this.stages.cap) this.stages.cap.defenderFull((await this.stages.cap.active()).size);
      return all(items, { kind: 'retry', reason: 'tenant capacity', ...(this.stages.cap ? {} : { notBefore: Date.now() + CAPACITY_RETRY_MS }) });
    }
    // One malformed item fails the whole call: the core splits the batch until the culprits stand alone.
    if (res.status === 400) return all(items, { kind: 'split', reason: `import rejected by Defender (400): ${text}`, code: 'http_400' });
    // A wrong path answers 404 to the import: set-up, not data.
    return all(items, this.failure(res, items, 'import', { 404: 'check base_url and resource_path' }));
  }

  private async settleImport(items: OutboxItem[], results: ImportResult[]): Promise<Settled[]> {
    // Results come one per input; match by value first since the order is not documented.
    const byValue = new Map<string, ImportResult>();
    for (const r of results) if (r && typeof r.indicator === 'string') byValue.set(r.indicator.toLowerCase(), r);
    const acks: { item: OutboxItem; externalId: string | null }[] = [];
    const dead: Settled[] = [];
    const capacity: OutboxItem[] = [];
    let capHit = false;
    items.forEach((item, index) => {
      const body = item.payload as DefenderIndicatorBody;
      const r = byValue.get(body.indicatorValue.toLowerCase()) ?? results[index];
      if (!r) {
        // A 200 without a verdict for the item: the upsert is harmless to repeat.
        capacity.push(item);
      } else if (!r.isFailed) {
        acks.push({ item, externalId: r.id ? String(r.id) : null });
      } else if (CAPACITY_REASON.test(r.failureReason ?? '')) {
        capacity.push(item);
        capHit = true;
      } else {
        dead.push({ item, outcome: { kind: 'dead', reason: `Defender rejected ${body.indicatorType} ${body.indicatorValue}: ${r.failureReason ?? 'no reason given'}`, code: 'item_rejected' } });
      }
    });
    if (acks.length && this.stages.cap) {
      const now = Date.now();
      await this.store.putHeld(this.sink, acks.filter((a) => a.externalId).map(({ item, externalId }) => {
        const exp = Date.parse((item.payload as DefenderIndicatorBody).expirationTime);
        const rank = this.ranks.get(item.key);
        return { key: item.key, externalId: externalId!, score: rank?.score ?? null, expiresAt: Number.isNaN(exp) ? null : exp, updatedAt: now };
      }));
    }
    let notBefore: number | undefined;
    if (capacity.length) {
      this.log.error({ sink: this.sink, items: capacity.length }, 'Defender refused indicators for capacity (15,000 per tenant?); retrying later');
      notBefore = Date.now() + CAPACITY_RETRY_MS;
      if (capHit) {
        this.metrics.capEvictions.inc({ sink: this.sink, outcome: 'refused_by_defender' }, capacity.length);
        if (this.stages.cap) {
          // With the learned budget the next attempt evicts by value instead of hitting the cap again.
          this.stages.cap.defenderFull((await this.stages.cap.active()).size);
          notBefore = undefined;
        }
      }
    }
    return [
      ...acks.map(({ item, externalId }): Settled => ({ item, outcome: { kind: 'ack', externalId } })),
      ...dead,
      ...all(capacity, { kind: 'retry', reason: 'tenant capacity', ...(notBefore !== undefined ? { notBefore } : {}) }),
    ];
  }

  private async remove(items: OutboxItem[]): Promise<Settled[]> {
    const ids = await this.store.getSinkIds(this.sink, items.map((i) => i.key));
    const known = items.filter((i) => ids.has(i.key));
    const unknown = items.filter((i) => !ids.has(i.key));
    if (unknown.length) {
      // Never created (or already removed): nothing to delete, and never someone else's indicator.
      this.log.debug({ sink: this.sink, keys: unknown.map((i) => i.key) }, 'delete without a recorded Defender id: nothing to do');
      // An import whose answer was lost (a crash mid-call) may have landed without an id; the
      // reconciliation finds it by our application name and removes it, as nothing claims it.
      const unsure = unknown.filter((i) => i.unconfirmedSend).map((i) => i.key);
      if (unsure.length) this.log.info({ sink: this.sink, keys: unsure.slice(0, 20), count: unsure.length }, 'delete after an unconfirmed import: left to the next reconciliation');
    }
    return [...all(unknown, { kind: 'ack', externalId: null }), ...known.length ? await this.batchDelete(known, ids) : []];
  }

  private async batchDelete(items: OutboxItem[], ids: Map<string, string>): Promise<Settled[]> {
    const res = await this.client.batchDelete(items.map((i) => ids.get(i.key)!));
    if (res.status >= 200 && res.status < 300) return all(items, { kind: 'ack', externalId: null });
    if (res.status === 404 && items.length === 1) {
      this.log.info({ sink: this.sink, key: items[0]!.key, id: ids.get(items[0]!.key) }, 'indicator already gone from Defender');
      return all(items, { kind: 'ack', externalId: null });
    }
    // BatchDelete fails whole when one id is gone (deleted by hand, expired): the core splits to find it.
    if ((res.status === 404 || res.status === 400) && items.length > 1) {
      return all(items, { kind: 'split', reason: `BatchDelete rejected by Defender (${res.status}): ${defenderErrorText(res)}` });
    }
    return all(items, this.failure(res, items, 'BatchDelete', {}));
  }

  private failure(res: ApiResponse, items: OutboxItem[], call: string, setup: Partial<Record<number, string>>): Outcome {
    return answerOutcome(res, attemptOf(items), `Defender ${call}: ${defenderErrorText(res)}`, { ...SETUP_FIXES, ...setup });
  }
}

function describe(h: Holder): string {
  return `${h.sourceType === 'User' ? 'a person' : 'another application'} (${h.by}${h.application ? `, application ${h.application}` : ''}; ${h.action} id ${h.id})`;
}
