// Delivery policy for Sentinel: uploads and revocations travel together, ≤100 STIX objects per
// call. A 200 can carry per-record errors: each rejected record is dead-lettered alone with its
// messages and the others are acknowledged. 429 waits (Retry-After, else the "Try again in N
// seconds" message); 5xx, timeouts and lost answers retry with backoff for as long as it takes (an
// upload of the same id and a later `modified` is harmless to repeat); a whole-call 400 is split
// so one bad object cannot block the rest; 401/403/404 are set-up problems and wait.
import type { SinkHandler } from '../../core/delivery.js';
import { all, answerOutcome, attemptOf, type Settled } from '../../core/outcome.js';
import type { OutboxItem } from '../../core/types.js';
import type { Logger } from '../../observability/logger.js';
import type { Store } from '../../core/store.js';
import { sentinelErrorText, UPLOAD_ENDPOINT, type SentinelClient } from '../../microsoft/sentinel/client.js';
import { parseRecord, revokedVersion, sentinelAction, withSentinelAction, type SentinelRecord, type StixIndicator } from './mapper.js';
import type { GuardGate } from '../../guard/gate.js';
import type { SentinelDeletePayload } from './route.js';
import { indicatorIdFor, stixTime } from './stix.js';
import { CreatedLedger } from './created.js';

interface Prepared {
  item: OutboxItem;
  object: StixIndicator;
}

export class SentinelDelivery implements SinkHandler {
  private readonly created: CreatedLedger;

  constructor(
    readonly sink: string,
    readonly batchSize: number,
    private readonly client: SentinelClient,
    private readonly store: Store,
    private readonly log: Logger,
    /** The guard (protected values, breakers, decision log) every indicator sink shares. */
    private readonly gate: GuardGate | null = null,
  ) {
    this.created = new CreatedLedger(store, sink);
  }

  waitForCapacity(signal: AbortSignal): Promise<void> {
    return this.client.pacer.whenAvailable(UPLOAD_ENDPOINT, signal);
  }

  async deliver(items: OutboxItem[]): Promise<Settled[]> {
    const records = await this.store.getSinkIds(this.sink, items.map((i) => i.key));
    const firstCreated = await this.created.known(items.map((i) => i.key));
    const now = Date.now();
    const prepared: Prepared[] = [];
    const nothingToRevoke: OutboxItem[] = [];
    for (const item of items) {
      const record = parseRecord(records.get(item.key));
      if (item.op === 'delete') {
        // No record and no unconfirmed upload: never uploaded (or already revoked), nothing to do.
        // An upload whose answer was lost (a crash mid-call) may have landed: revoke our own id,
        // derived from the key, so the object cannot outlive its source. Never someone else's object.
        const target = record ?? (item.unconfirmedSend ? unrecordedUpload(this.sink, item.key, now, firstCreated.get(item.key)) : null);
        if (!target) nothingToRevoke.push(item);
        else prepared.push({ item, object: revokedVersion(item.key, target, (item.payload as SentinelDeletePayload).reason, now) });
      } else {
        prepared.push({ item, object: this.nextVersion(item.payload as StixIndicator, record?.created ?? firstCreated.get(item.key), now) });
      }
    }
    // Recorded before the upload: whatever becomes of its answer, the next version keeps this created.
    await this.created.record(prepared.map((p) => ({ key: p.item.key, created: p.object.created })), firstCreated);
    return [...all(nothingToRevoke, { kind: 'ack', externalId: null }), ...prepared.length ? await this.upload(prepared) : []];
  }

  /** Through the guard: `block` on a protected value goes as `alert` (or is revoked, with skip); removals pass the breakers. */
  async prepare(items: OutboxItem[]): Promise<{ send: OutboxItem[]; settled: Settled[] }> {
    if (!this.gate) return { send: items, settled: [] };
    const now = Date.now();
    const held = new Set((await this.store.getSinkIds(this.sink, items.map((i) => i.key))).keys());
    const upserts = items.filter((i) => i.op === 'upsert') as OutboxItem<StixIndicator>[];
    const screened = await this.gate.screen(upserts, held, sentinelAction, withSentinelAction, now);
    const removals = await this.gate.screenRemovals([...items.filter((i) => i.op === 'delete'),
      ...screened.skip.map((i) => ({ ...i, op: 'delete' as const, payload: { reason: 'protected value (guard)' } }))], held, await this.store.countSinkIds(this.sink), now);
    // What the breaker holds waits in the outbox: the core settles it as a retry.
    return { send: [...screened.send, ...removals.send] as OutboxItem[],
      settled: [...all(screened.hold as OutboxItem[], screened.holdAs), ...all(removals.hold as OutboxItem[], removals.holdAs)] };
  }

  /** The object as a new version of what Sentinel holds: the first created, modified now. */
  private nextVersion(object: StixIndicator, firstCreated: string | undefined, now: number): StixIndicator {
    const created = firstCreated ?? object.created;
    return { ...object, created, modified: stixTime(Math.max(now, Date.parse(created) + 1 || now)) };
  }

  private async upload(batch: Prepared[]): Promise<Settled[]> {
    const items = batch.map((p) => p.item);
    const res = await this.client.upload(batch.map((p) => p.object));
    if (res.status === 200) return this.settle(batch, typeof res.data === 'object' && res.data ? res.data.errors ?? [] : []);
    const text = sentinelErrorText(res);
    if (res.status === 400 || res.status === 413) return all(items, { kind: 'split', reason: `upload rejected by Sentinel (${res.status}): ${text}`, code: `http_${res.status}` });
    // Credentials, role or workspace: the objects are fine, the set-up is not.
    return all(items, answerOutcome(res, attemptOf(items), `Sentinel upload: ${text}`, {
      401: 'check the tenant, client id, secret and sentinel.scope',
      403: 'assign the application the Microsoft Sentinel Contributor role on the workspace',
      404: 'check sentinel.workspace_id, sentinel.host and sentinel.api_version',
    }));
  }

  private settle(batch: Prepared[], errors: { recordIndex?: unknown; errorMessages?: unknown }[]): Settled[] {
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
    return batch.map(({ item, object }, index): Settled => {
      const messages = rejected.get(index);
      if (messages) {
        return { item, outcome: { kind: 'dead', code: 'record_rejected',
          reason: `Sentinel rejected ${object.pattern} (${item.op === 'delete' ? 'revocation' : 'upload'}): ${messages.join('; ') || 'no message'}` } };
      }
      if (item.op === 'delete') return { item, outcome: { kind: 'ack', externalId: null } };
      const record: SentinelRecord = { id: object.id, created: object.created, valid_from: object.valid_from };
      return { item, outcome: { kind: 'ack', externalId: JSON.stringify(record) } };
    });
  }
}

/** What an upload whose answer never came would have recorded, as far as a revocation needs it. */
function unrecordedUpload(sink: string, key: string, now: number, created: string | undefined): SentinelRecord {
  // A second back, so the revoked version's modified and valid_until can be now.
  const before = stixTime(now - 1000);
  return { id: indicatorIdFor(sink, key), created: created ?? before, valid_from: created ?? before };
}
