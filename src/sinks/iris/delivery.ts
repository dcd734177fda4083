// Delivery policy for IRIS, one alert at a time. Create or update is decided by the id map
// (Defender alert id → IRIS alert id) and, when the map has nothing (fresh store, or a create whose
// answer was lost), by IRIS's /alerts/filter on the exact source reference: IRIS's create is not
// idempotent, so it is never repeated blindly. A 400 with IRIS's message dead-letters the alert;
// 5xx, timeouts and throttling retry with backoff; missing permissions and customer access wait
// for the set-up (delayed, not dropped) with an error naming what to fix.
import type { SinkHandler } from '../../core/delivery.js';
import { all, answerOutcome, type Outcome, type Settled } from '../../core/outcome.js';
import { backoffMs } from '../../net/retry.js';
import { sleep } from '../../net/sleep.js';
import type { Logger } from '../../observability/logger.js';
import { errorFields } from '../../observability/logger.js';
import type { DefenderAlertChange } from '../../core/records.js';
import type { OutboxItem } from '../../core/types.js';
import type { Store } from '../../core/store.js';
import { irisErrorText, isEntitlementError, type IrisAnswer, type IrisClient } from './client.js';
import type { IrisConfig } from './config.js';
import { irisCreateBody, irisUpdateBody } from './mapper.js';
import { IrisSetupError, IrisUnavailableError, loadIrisRefs, type IrisRefs } from './reference.js';

/** The longest wait between lookups of IRIS's reference ids while IRIS is not ready. */
const SETUP_RETRY_MS = 60_000;

export interface IrisDeliveryCounts {
  created: number;
  updated: number;
  deadLettered: number;
  retried: number;
}

export class IrisDelivery implements SinkHandler {
  readonly batchSize = 20;
  readonly counts: IrisDeliveryCounts = { created: 0, updated: 0, deadLettered: 0, retried: 0 };
  private refs: IrisRefs | null = null;
  private loading: Promise<IrisRefs> | null = null;
  lastError: string | null = null;
  /** A configuration problem found looking IRIS's ids up (shown by /readyz); refusals of calls are the worker's `setupProblem`. */
  setupError: string | null = null;

  constructor(
    readonly sink: string,
    private readonly cfg: IrisConfig,
    private readonly client: IrisClient,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly setupRetryMs = SETUP_RETRY_MS,
  ) {}

  /** Looks IRIS's ids up once; a failure is thrown so the whole batch waits with backoff. */
  async ensureRefs(): Promise<IrisRefs> {
    if (this.refs) return this.refs;
    // One lookup at a time (start-up check and the worker may ask together).
    this.loading ??= this.loadRefs().finally(() => { this.loading = null; });
    return this.loading;
  }

  private async loadRefs(): Promise<IrisRefs> {
    try {
      this.refs = await loadIrisRefs(this.client, this.cfg, this.log);
      this.log.info({ sink: this.sink, customers: this.refs.usableCustomers?.length ?? 'unknown' }, 'IRIS reference ids loaded');
      this.setupError = null;
      return this.refs;
    } catch (err) {
      this.lastError = (err as Error).message;
      if (err instanceof IrisSetupError) this.setupError = this.lastError;
      if (err instanceof IrisSetupError) this.log.error({ sink: this.sink, ...errorFields(err) }, 'IRIS set-up problem; alerts wait until it is fixed');
      throw err;
    }
  }

  /**
   * Work is leased only once IRIS's ids are known: while IRIS is unreachable or the configuration
   * does not fit it, alerts stay due in the outbox (a fixed configuration and a restart deliver them
   * at once) and the lookup is retried with backoff, up to once a minute.
   */
  async waitForCapacity(signal: AbortSignal): Promise<void> {
    for (let attempt = 0; !this.refs && !signal.aborted; attempt++) {
      try {
        await this.ensureRefs();
        return;
      } catch (err) {
        const after = Math.min(this.setupRetryMs, backoffMs(attempt, { baseMs: 2000, maxMs: 60_000 }));
        this.log.warn({ sink: this.sink, retryInMs: after, error: (err as Error).message }, 'IRIS not ready; alerts wait');
        await sleep(after, signal);
      }
    }
  }

  async deliver(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]> {
    let refs: IrisRefs;
    try {
      refs = await this.ensureRefs();
    } catch (err) {
      if (!(err instanceof IrisSetupError) && !(err instanceof IrisUnavailableError)) throw err;
      this.counts.retried += items.length;
      return all(items, { kind: 'retry', reason: `IRIS not ready: ${(err as Error).message}`, notBefore: Date.now() + Math.min(this.setupRetryMs, backoffMs(Math.max(...items.map((i) => i.attempts)))) });
    }
    const settled: Settled[] = [];
    for (const [index, item] of items.entries()) {
      if (signal.aborted) return [...settled, ...all(items.slice(index), { kind: 'retry', reason: 'shutdown before delivery', notBefore: Date.now() })];
      let outcome: Outcome;
      try {
        outcome = await this.deliverOne(item, refs);
      } catch (err) {
        // No answer (network, timeout, TLS): a create may or may not have landed; the retry looks it up first.
        outcome = { kind: 'retry', reason: (err as Error).message };
      }
      settled.push({ item, outcome });
      if (outcome.kind === 'dead') this.counts.deadLettered++;
      if (outcome.kind === 'retry' || outcome.kind === 'wait-for-setup') {
        this.lastError = outcome.reason;
        // Every such outcome is IRIS-wide (unreachable, 5xx, throttled, refusing us): the rest of the
        // batch would fail the same way, one call and one warning each. It waits with this alert.
        const rest = items.slice(index + 1);
        this.counts.retried += 1 + rest.length;
        const waiting = outcome.kind === 'retry' && outcome.notBefore !== undefined ? { notBefore: outcome.notBefore } : {};
        return [...settled, ...all(rest, { kind: 'retry', reason: `waiting with alert ${item.key}: ${outcome.reason}`, ...waiting })];
      }
    }
    return settled;
  }

  /** What a failed answer means for this item. */
  private failure(a: IrisAnswer, item: OutboxItem, what: string, customerId: number): Outcome {
    const text = `${what}: ${irisErrorText(a)}`;
    if (isEntitlementError(a)) {
      this.refs = null; // customers may have changed; look them up again (find_customer may pick another)
      return { kind: 'wait-for-setup', reason: `${text}; the IRIS API key's user is not linked to customer ${customerId} (iris.customer_id / iris.tenant_customers): link it in IRIS (Advanced > Access control) or set iris.find_customer=true` };
    }
    const outcome = answerOutcome({ status: a.httpStatus, headers: a.headers }, item.attempts, text, {
      401: 'IRIS refused the API key: check iris.api_key',
      403: `the IRIS user lacks a permission (alerts_read and alerts_write are needed) or access to customer ${customerId}`,
    });
    if (outcome.kind !== 'dead') return outcome;
    if (a.httpStatus === 400) return { kind: 'dead', reason: `IRIS rejected Defender alert ${item.key} (${what}): ${a.message || '(no message)'}` };
    return { kind: 'retry', reason: text };
  }

  private async deliverOne(item: OutboxItem, refs: IrisRefs): Promise<Outcome> {
    const alert = item.payload as DefenderAlertChange;
    const customerId = refs.customerFor(alert.tenantId);
    let irisId = (await this.store.getSinkIds(this.sink, [item.key])).get(item.key) ?? null;
    if (irisId === null) {
      const found = await this.client.findBySourceRef(alert.id, this.cfg.alert_source);
      if (!found.ok || !found.data) return this.failure(found, item, 'looking up the alert by source reference', customerId);
      if (found.data.length > 0) {
        const ids = found.data.map((r) => r.alert_id).sort((x, y) => x - y);
        if (ids.length > 1) this.log.warn({ sink: this.sink, alert: alert.id, irisAlerts: ids }, 'IRIS holds several alerts for this Defender alert; updating the oldest');
        irisId = String(ids[0]);
      }
    }
    if (irisId !== null) return this.update(item, alert, irisId, refs, customerId);
    return this.create(item, alert, refs, customerId);
  }

  private async create(item: OutboxItem, alert: DefenderAlertChange, refs: IrisRefs, customerId: number): Promise<Outcome> {
    const res = await this.client.addAlert(irisCreateBody(alert, refs, { alertSource: this.cfg.alert_source }, customerId));
    if (!res.ok || typeof res.data?.alert_id !== 'number') return this.failure(res, item, 'creating the alert', customerId);
    const irisId = String(res.data.alert_id);
    this.setupError = null;
    this.counts.created++;
    this.lastError = null;
    this.log.info({ sink: this.sink, alert: alert.id, irisAlert: irisId }, 'IRIS alert created');
    if (this.cfg.case_id !== undefined) {
      const merged = await this.client.mergeAlert(irisId, this.cfg.case_id, `Defender alert ${alert.id}`).catch((err: Error) => ({ ok: false, httpStatus: 0, message: err.message }) as IrisAnswer);
      if (!merged.ok) this.log.warn({ sink: this.sink, irisAlert: irisId, caseId: this.cfg.case_id, error: irisErrorText(merged) }, 'cannot link the IRIS alert to the case (iris.case_id)');
    }
    return { kind: 'ack', externalId: irisId, counted: 'create' };
  }

  private async update(item: OutboxItem, alert: DefenderAlertChange, irisId: string, refs: IrisRefs, customerId: number): Promise<Outcome> {
    const current = await this.client.getAlert(irisId);
    if (!current.ok || !current.data) {
      if (current.httpStatus === 400 && /not found/i.test(current.message)) {
        return { kind: 'dead', reason: `IRIS alert ${irisId} for Defender alert ${alert.id} no longer exists (deleted in IRIS?); ThreatBridge does not re-create alerts deleted in IRIS` };
      }
      return this.failure(current, item, `reading IRIS alert ${irisId}`, customerId);
    }
    const res = await this.client.updateAlert(irisId, irisUpdateBody(alert, refs, { alertSource: this.cfg.alert_source }, current.data));
    if (!res.ok) return this.failure(res, item, `updating IRIS alert ${irisId}`, customerId);
    this.counts.updated++;
    this.lastError = null;
    this.log.info({ sink: this.sink, alert: alert.id, irisAlert: irisId, status: alert.status }, 'IRIS alert updated');
    return { kind: 'ack', externalId: irisId, counted: 'update' };
  }
}
