// Delivery policy for Sentinel: uploads and revocations travel together, ≤100 STIX objects per
// call. A 200 can carry per-record errors: each rejected record is dead-lettered alone with its
// messages and the others are acknowledged. 429 waits (Retry-After, else the "Try again in N
// seconds" message); 5xx, timeouts and lost answers retry with backoff for as long as it takes (an
// upload of the same id and a later `modified` is harmless to repeat); a whole-call 400 is
// bisected so one bad object cannot block the rest; 401/403/404 are setup problems and wait.
import { backoffMs, decide } from '../../net/retry.js';
import type { SinkHandler } from '../../core/delivery.js';
import { HttpError, type HttpResponse } from '../../net/http.js';
import { errorFields, type Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { OutboxItem, Store } from '../../store/types.js';
import { retryAfterFromMessage, sentinelErrorText, UPLOAD_ENDPOINT, type SentinelClient, type UploadAnswer } from '../../microsoft/sentinel/client.js';
import { parseRecord, revokedVersion, type SentinelRecord, type StixIndicator } from './mapper.js';
import type { SentinelDeletePayload } from './route.js';
import { indicatorIdFor, stixTime } from './stix.js';

interface Prepared {
  item: OutboxItem;
  object: StixIndicator;
}

export class SentinelDelivery implements SinkHandler {
  constructor(
    readonly sink: string,
    readonly batchSize: number,
    private readonly client: SentinelClient,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  waitForCapacity(signal: AbortSignal): Promise<void> {
    return this.client.pacer.whenAvailable(UPLOAD_ENDPOINT, signal);
  }

  async handle(items: OutboxItem[], signal: AbortSignal): Promise<void> {
    const records = await this.store.getSinkIds(this.sink, items.map((i) => i.key));
    const now = Date.now();
    const prepared: Prepared[] = [];
    const nothingToRevoke: OutboxItem[] = [];
    for (const item of items) {
      const record = parseRecord(records.get(item.key));
      if (item.op === 'delete') {
        // No record and no unconfirmed upload: never uploaded (or already revoked), nothing to do.
        // An upload whose answer was lost (a crash mid-call) may have landed: revoke our own id,
        // derived from the key, so the object cannot outlive its source. Never someone else's object.
        const target = record ?? (item.unconfirmedSend ? unrecordedUpload(this.sink, item.key, now) : null);
        if (!target) nothingToRevoke.push(item);
        else prepared.push({ item, object: revokedVersion(item.key, target, (item.payload as SentinelDeletePayload).reason, now) });
      } else {
        prepared.push({ item, object: this.nextVersion(item.payload as StixIndicator, record, now) });
      }
    }
    if (nothingToRevoke.length) await this.store.ack(nothingToRevoke.map((item) => ({ item, externalId: null })));
    if (prepared.length) await this.upload(prepared, signal);
  }

  /** The object as a new version of what Sentinel holds: same created, modified now. */
  private nextVersion(object: StixIndicator, record: SentinelRecord | null, now: number): StixIndicator {
    const created = record?.created ?? object.created;
    return { ...object, created, modified: stixTime(Math.max(now, Date.parse(created) + 1 || now)) };
  }

  private async upload(batch: Prepared[], signal: AbortSignal): Promise<void> {
    const items = batch.map((p) => p.item);
    let res: HttpResponse<UploadAnswer | string>;
    try {
      res = await this.client.upload(batch.map((p) => p.object));
    } catch (err) {
      const after = backoffMs(attemptOf(items));
      const level = err instanceof HttpError ? 'warn' : 'error';
      this.log[level]({ sink: this.sink, items: items.length, retryInMs: after, ...errorFields(err) }, 'Sentinel upload failed; will retry');
      await this.store.retry(items, Date.now() + after, (err as Error).message);
      return;
    }
    if (res.status === 200) return this.settle(batch, typeof res.data === 'object' && res.data ? res.data.errors ?? [] : []);
    if ((res.status === 400 || res.status === 413) && batch.length > 1 && !signal.aborted) {
      const mid = Math.ceil(batch.length / 2);
      this.log.info({ sink: this.sink, items: batch.length, status: res.status, error: sentinelErrorText(res) }, 'upload rejected as a whole; bisecting');
      await this.upload(batch.slice(0, mid), signal);
      await this.upload(batch.slice(mid), signal);
      return;
    }
    await this.onFailure(items, res);
  }

  private async settle(batch: Prepared[], errors: { recordIndex?: unknown; errorMessages?: unknown }[]): Promise<void> {
    const rejected = new Map<number, string[]>();
    for (const e of errors) {
      const index = Number(e?.recordIndex);
      if (!Number.isInteger(index) || index < 0 || index >= batch.length) {
        this.log.warn({ sink: this.sink, error: e }, 'Sentinel reported an error for a record index we did not send');
        continue;
      }
      const messages = Array.isArray(e.errorMessages) ? e.errorMessages.map(String) : [];
      rejected.set(index, [...(rejected.get(index) ?? []), ...messages]);
    }
    const acks: { item: OutboxItem; externalId: string | null }[] = [];
    const dead: { item: OutboxItem; reason: string }[] = [];
    batch.forEach(({ item, object }, index) => {
      const messages = rejected.get(index);
      if (messages) {
        dead.push({ item, reason: `Sentinel rejected ${object.pattern} (${item.op === 'delete' ? 'revocation' : 'upload'}): ${messages.join('; ') || 'no message'}` });
      } else if (item.op === 'delete') {
        acks.push({ item, externalId: null });
      } else {
        const record: SentinelRecord = { id: object.id, created: object.created, valid_from: object.valid_from };
        acks.push({ item, externalId: JSON.stringify(record) });
      }
    });
    if (acks.length) await this.store.ack(acks);
    if (dead.length) {
      await this.store.deadLetter(dead);
      this.metrics.deadLettered.inc({ sink: this.sink, reason: 'record_rejected' }, dead.length);
      for (const d of dead) this.log.warn({ sink: this.sink, key: d.item.key, sourceRef: d.item.sourceRef?.id, reason: d.reason }, 'STIX object rejected, kept as dead letter');
    }
    const upserts = acks.filter((a) => a.item.op === 'upsert').length;
    if (upserts) this.metrics.delivered.inc({ sink: this.sink, op: 'upsert' }, upserts);
    if (acks.length - upserts) this.metrics.delivered.inc({ sink: this.sink, op: 'delete' }, acks.length - upserts);
  }

  private async onFailure(items: OutboxItem[], res: HttpResponse): Promise<void> {
    const text = sentinelErrorText(res);
    const headers = { ...res.headers };
    if (res.status === 429 && !headers['retry-after']) {
      const fromMessage = retryAfterFromMessage(res);
      if (fromMessage !== null) headers['retry-after'] = String(fromMessage / 1000);
    }
    const verdict = decide(res.status, headers, attemptOf(items));
    if (verdict.kind === 'retry') {
      if (verdict.throttled) this.client.pacer.pauseFor(verdict.afterMs);
      this.log.warn({ sink: this.sink, status: res.status, items: items.length, retryInMs: verdict.afterMs, error: text }, `Sentinel ${verdict.reason}; will retry`);
      await this.store.retry(items, Date.now() + verdict.afterMs, `${verdict.reason}: ${text}`);
      return;
    }
    if (verdict.kind === 'reauth' || res.status === 403 || res.status === 404) {
      // Credentials, role or workspace: the objects are fine, the setup is not. Wait for a fix.
      const after = Math.max(60_000, backoffMs(attemptOf(items), { baseMs: 30_000, maxMs: 900_000 }));
      const hint = res.status === 403 ? ' (assign the application the Microsoft Sentinel Contributor role on the workspace)'
        : res.status === 401 ? ' (check the tenant, client id, secret and sentinel.scope)' : ' (check sentinel.workspace_id, sentinel.host and sentinel.api_version)';
      this.log.error({ sink: this.sink, status: res.status, retryInMs: after, error: text }, `Sentinel refused the upload${hint}`);
      await this.store.retry(items, Date.now() + after, `${res.status}: ${text}`);
      return;
    }
    const reason = `upload rejected by Sentinel (${res.status}): ${text}`;
    await this.store.deadLetter(items.map((item) => ({ item, reason })));
    this.metrics.deadLettered.inc({ sink: this.sink, reason: `http_${res.status}` }, items.length);
    this.log.warn({ sink: this.sink, keys: items.map((i) => i.key).slice(0, 20), reason }, 'operation rejected, kept as dead letter');
  }
}

function attemptOf(items: OutboxItem[]): number {
  return items.reduce((m, i) => Math.max(m, i.attempts), 0);
}

/** What an upload whose answer never came would have recorded, as far as a revocation needs it. */
function unrecordedUpload(sink: string, key: string, now: number): SentinelRecord {
  // A second back, so the revoked version's modified and valid_until can be now.
  const before = stixTime(now - 1000);
  return { id: indicatorIdFor(sink, key), created: before, valid_from: before };
}
