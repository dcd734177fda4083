// Delivery policy for Defender: upserts through /import (≤500 per call, an upsert by type+value,
// so retrying after a lost answer is harmless), removals through BatchDelete by the ids recorded
// at creation. 429 honours Retry-After; 5xx, timeouts and missing permissions wait and retry; a
// whole-batch 400 is bisected so one bad item cannot block the other 499; item rejections are
// dead-lettered with Defender's reason.
import { decide, backoffMs } from '../../net/retry.js';
import type { SinkHandler } from '../../core/delivery.js';
import { HttpError, type HttpResponse } from '../../net/http.js';
import type { Logger } from '../../observability/logger.js';
import { errorFields } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { OutboxItem, Store } from '../../store/types.js';
import { defenderErrorText, type DefenderApi } from '../../microsoft/defender/client.js';
import type { ImportResult } from '../../microsoft/defender/types.js';
import type { DefenderIndicatorBody } from './mapper.js';
import type { GuardGate } from '../../guard/gate.js';
import type { IndicatorCap, Rank } from './cap.js';

/** Optional stages in front of an import: the guard (protected values, breaker) and the cap. */
export interface DeliveryStages {
  gate?: GuardGate;
  cap?: IndicatorCap;
}

const REFUSED_RETRY_MS = 60 * 60_000;

/** Per-item failures that are about the tenant's capacity, not the item: wait, don't dead-letter. */
const CAPACITY_REASON = /limit|quota|capacity|maximum number|exceed/i;
const CAPACITY_RETRY_MS = 15 * 60_000;
/** A whole call refused for the tenant's indicator cap (wording unconfirmed upstream: kept narrow). */
const TENANT_CAP = /active indicators|indicators? (?:limit|quota|cap)\b|tenant (?:limit|quota|cap)\b/i;

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

  async handle(items: OutboxItem[], signal: AbortSignal): Promise<void> {
    let upserts = items.filter((i) => i.op === 'upsert');
    const deletes = items.filter((i) => i.op === 'delete');
    this.ranks = new Map();
    if (upserts.length > 0 && (this.stages.gate || this.stages.cap)) {
      const ready = await this.prepare(upserts, signal);
      upserts = ready.send;
      // Skipped by the guard: whatever Defender holds for the key goes, like a removal.
      deletes.push(...ready.remove);
    }
    if (upserts.length > 0) await this.upsert(upserts, signal);
    if (deletes.length > 0) await this.remove(deletes, signal);
  }

  /** Guard, then cap: what may be imported now; the rest is rescheduled or removed. */
  private async prepare(items: OutboxItem[], signal: AbortSignal): Promise<{ send: OutboxItem[]; remove: OutboxItem[] }> {
    const now = Date.now();
    const { gate, cap } = this.stages;
    const held = cap ? await cap.active(now) : null;
    const heldKeys = held ? new Set(held.keys()) : new Set((await this.store.getSinkIds(this.sink, items.map((i) => i.key))).keys());
    let send = items;
    let remove: OutboxItem[] = [];
    if (gate) {
      const screened = await gate.screen(items as OutboxItem<DefenderIndicatorBody>[], heldKeys, (p: DefenderIndicatorBody) => p.action,
        (p, action) => {
          const { educateUrl: _dropped, ...rest } = p;
          return { ...rest, action: action as DefenderIndicatorBody['action'], generateAlert: true };
        }, now);
      send = screened.send as OutboxItem[];
      remove = screened.skip.map((i) => ({ ...i, op: 'delete' as const }));
    }
    if (!cap || !held || send.length === 0) return { send, remove };
    const plan = await cap.plan(send, held, now);
    this.ranks = plan.ranks;
    if (plan.evict.length && !(await this.evict(plan.evict, signal))) {
      // Could not free the slots now: the newcomers wait rather than hit Defender's cap.
      const waiting = [...plan.admit.filter((a) => !held.has(a.key)), ...plan.refuse];
      await this.store.retry(waiting, now + backoffMs(attemptOf(waiting)), 'cap: eviction failed');
      return { send: plan.admit.filter((a) => held.has(a.key)), remove };
    }
    await cap.report(plan, now);
    if (plan.refuse.length) await this.store.retry(plan.refuse, now + REFUSED_RETRY_MS, 'cap reached: worth less than every indicator held');
    return { send: plan.admit, remove };
  }

  /** Removes evicted indicators from Defender and our store; false when Defender could not be reached. */
  private async evict(objects: { key: string; externalId: string }[], signal: AbortSignal): Promise<boolean> {
    for (let i = 0; i < objects.length && !signal.aborted; i += 500) {
      const part = objects.slice(i, i + 500);
      let res: HttpResponse<unknown>;
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
        const verdict = decide(res.status, res.headers, 0);
        if (verdict.kind === 'retry' && verdict.throttled) this.client.pacer.pauseFor(verdict.afterMs);
        return false;
      }
      await this.store.dropHeld(this.sink, part.map((o) => o.key));
    }
    return !signal.aborted;
  }

  private async upsert(items: OutboxItem[], signal: AbortSignal): Promise<void> {
    const res = await this.send(items, () => this.client.importIndicators(items.map((i) => i.payload as DefenderIndicatorBody)));
    if (!res) return;
    if (res.status >= 200 && res.status < 300) return this.settleImport(items, res.data?.value ?? []);
    if (res.status === 400 && TENANT_CAP.test(defenderErrorText(res))) {
      // The tenant's cap refused the whole call: not the items' fault. Learn it, wait, evict next time.
      this.log.error({ sink: this.sink, items: items.length, error: defenderErrorText(res) }, 'Defender refused the import for capacity; retrying later');
      this.metrics.capEvictions.inc({ sink: this.sink, outcome: 'refused_by_defender' }, items.length);
      if (this.stages.cap) this.stages.cap.defenderFull((await this.stages.cap.active()).size);
      await this.store.retry(items, Date.now() + (this.stages.cap ? backoffMs(attemptOf(items)) : CAPACITY_RETRY_MS), 'tenant capacity');
      return;
    }
    if (res.status === 400 && items.length > 1 && !signal.aborted) {
      // One malformed item fails the whole call: split until the culprits stand alone.
      const mid = Math.ceil(items.length / 2);
      this.log.info({ sink: this.sink, items: items.length, error: defenderErrorText(res) }, 'import rejected as a whole; bisecting');
      await this.upsert(items.slice(0, mid), signal);
      await this.upsert(items.slice(mid), signal);
      return;
    }
    await this.onFailure(items, res, 'import');
  }

  private async settleImport(items: OutboxItem[], results: ImportResult[]): Promise<void> {
    // Results come one per input; match by value first since the order is not documented.
    const byValue = new Map<string, ImportResult>();
    for (const r of results) if (r && typeof r.indicator === 'string') byValue.set(r.indicator.toLowerCase(), r);
    const acks: { item: OutboxItem; externalId: string | null }[] = [];
    const dead: { item: OutboxItem; reason: string }[] = [];
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
        dead.push({ item, reason: `Defender rejected ${body.indicatorType} ${body.indicatorValue}: ${r.failureReason ?? 'no reason given'}` });
      }
    });
    if (acks.length) await this.store.ack(acks);
    if (acks.length && this.stages.cap) {
      const now = Date.now();
      await this.store.putHeld(this.sink, acks.filter((a) => a.externalId).map(({ item, externalId }) => {
        const exp = Date.parse((item.payload as DefenderIndicatorBody).expirationTime);
        const rank = this.ranks.get(item.key);
        return { key: item.key, externalId: externalId!, score: rank?.score ?? null, expiresAt: Number.isNaN(exp) ? null : exp, updatedAt: now };
      }));
    }
    if (dead.length) {
      await this.store.deadLetter(dead);
      for (const d of dead) {
        this.metrics.deadLettered.inc({ sink: this.sink, reason: 'item_rejected' });
        this.log.warn({ sink: this.sink, key: d.item.key, sourceRef: d.item.sourceRef?.id, reason: d.reason }, 'indicator rejected, kept as dead letter');
      }
    }
    if (capacity.length) {
      this.log.error({ sink: this.sink, items: capacity.length }, 'Defender refused indicators for capacity (15,000 per tenant?); retrying later');
      let after = CAPACITY_RETRY_MS;
      if (capHit) {
        this.metrics.capEvictions.inc({ sink: this.sink, outcome: 'refused_by_defender' }, capacity.length);
        if (this.stages.cap) {
          // With the learned budget the next attempt evicts by value instead of hitting the cap again.
          this.stages.cap.defenderFull((await this.stages.cap.active()).size);
          after = backoffMs(attemptOf(capacity));
        }
      }
      await this.store.retry(capacity, Date.now() + after, 'tenant capacity');
    }
    this.metrics.delivered.inc({ sink: this.sink, op: 'upsert' }, acks.length);
  }

  private async remove(items: OutboxItem[], signal: AbortSignal): Promise<void> {
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
      await this.store.ack(unknown.map((item) => ({ item, externalId: null })));
    }
    if (known.length) await this.batchDelete(known, ids, signal);
  }

  private async batchDelete(items: OutboxItem[], ids: Map<string, string>, signal: AbortSignal): Promise<void> {
    const res = await this.send(items, () => this.client.batchDelete(items.map((i) => ids.get(i.key)!)));
    if (!res) return;
    if (res.status >= 200 && res.status < 300) {
      await this.store.ack(items.map((item) => ({ item, externalId: null })));
      this.metrics.delivered.inc({ sink: this.sink, op: 'delete' }, items.length);
      return;
    }
    if ((res.status === 404 || res.status === 400) && !signal.aborted) {
      if (items.length > 1) {
        // BatchDelete fails whole when one id is gone (deleted by hand, expired): find it.
        const mid = Math.ceil(items.length / 2);
        await this.batchDelete(items.slice(0, mid), ids, signal);
        await this.batchDelete(items.slice(mid), ids, signal);
        return;
      }
      if (res.status === 404) {
        this.log.info({ sink: this.sink, key: items[0]!.key, id: ids.get(items[0]!.key) }, 'indicator already gone from Defender');
        await this.store.ack(items.map((item) => ({ item, externalId: null })));
        return;
      }
    }
    await this.onFailure(items, res, 'BatchDelete');
  }

  /** Runs a call; transport failures become a retry and return null. */
  private async send<T>(items: OutboxItem[], call: () => Promise<HttpResponse<T>>): Promise<HttpResponse<T> | null> {
    try {
      return await call();
    } catch (err) {
      const after = backoffMs(attemptOf(items));
      const level = err instanceof HttpError ? 'warn' : 'error';
      this.log[level]({ sink: this.sink, items: items.length, retryInMs: after, ...errorFields(err) }, 'Defender call failed; will retry');
      await this.store.retry(items, Date.now() + after, (err as Error).message);
      return null;
    }
  }

  private async onFailure(items: OutboxItem[], res: HttpResponse, what: string): Promise<void> {
    const verdict = decide(res.status, res.headers, attemptOf(items));
    const text = defenderErrorText(res);
    if (verdict.kind === 'retry') {
      if (verdict.throttled) this.client.pacer.pauseFor(verdict.afterMs);
      this.log.warn({ sink: this.sink, call: what, status: res.status, items: items.length, retryInMs: verdict.afterMs, error: text }, `Defender ${verdict.reason}; will retry`);
      await this.store.retry(items, Date.now() + verdict.afterMs, `${verdict.reason}: ${text}`);
      return;
    }
    if (verdict.kind === 'reauth' || res.status === 403 || res.status === 404 && what === 'import') {
      // Credentials, permissions or a wrong path: the items are fine, the setup is not. Wait for a fix.
      const after = Math.max(60_000, backoffMs(attemptOf(items), { baseMs: 30_000, maxMs: 900_000 }));
      const hint = res.status === 403 ? ' (grant the application Ti.ReadWrite.All on WindowsDefenderATP and admin consent)'
        : res.status === 401 ? ' (check tenant_id, client_id, client_secret and scope)' : ' (check base_url and resource_path)';
      this.log.error({ sink: this.sink, call: what, status: res.status, retryInMs: after, error: text }, `Defender refused the call${hint}`);
      await this.store.retry(items, Date.now() + after, `${res.status}: ${text}`);
      return;
    }
    const reason = `${what} rejected by Defender (${res.status}): ${text}`;
    await this.store.deadLetter(items.map((item) => ({ item, reason })));
    this.metrics.deadLettered.inc({ sink: this.sink, reason: `http_${res.status}` }, items.length);
    this.log.warn({ sink: this.sink, keys: items.map((i) => i.key).slice(0, 20), reason }, 'operation rejected, kept as dead letter');
  }
}

function attemptOf(items: OutboxItem[]): number {
  return items.reduce((m, i) => Math.max(m, i.attempts), 0);
}
