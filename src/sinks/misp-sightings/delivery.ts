// Delivery of sightings to MISP, once per (attribute, alert). MISP does not deduplicate sightings,
// so the store does: the key's recorded sink id means "sent" (a later version of the alert is
// acknowledged without a call). The at-least-once window (a crash or a lost answer between the
// POST and the ack) is closed by the outbox's `unconfirmedSend` flag: such an item first asks MISP
// for a sighting with our source marker (which names the alert) on the attribute, and posts only
// when there is none.
import type { SinkHandler } from '../../core/delivery.js';
import { answerOutcome, type Outcome, type Settled } from '../../core/outcome.js';
import type { DecisionLog, SinkIdStore } from '../../core/store.js';
import type { OutboxItem } from '../../core/types.js';
import { errorFields, type Logger } from '../../observability/logger.js';
import { deliverOneByOne, hitDecision, type SightingPayload } from '../sightings.js';
import { sightingRows, type MispSightingsClient } from './client.js';
import { attributeUuid } from './route.js';

const SETUP: Partial<Record<number, string>> = {
  401: 'check misp.key [env MISP_KEY]',
  405: 'the MISP user of misp.key needs write access (perm_add) to add sightings',
};

/** MISP's `source` of the sighting of one alert. */
export const sightingSource = (prefix: string, alertId: string): string => `${prefix} alert ${alertId}`.slice(0, 255);

const messageOf = (data: unknown): string => {
  if (!data || typeof data !== 'object') return '';
  const d = data as Record<string, unknown>;
  return [d['message'], d['errors'], d['name']].filter((x) => typeof x === 'string').join(' ').slice(0, 300);
};

export interface MispSightingsCounts { created: number; updated: number; deadLettered: number }

export class MispSightingsDelivery implements SinkHandler {
  readonly batchSize = 20;
  readonly counts: MispSightingsCounts = { created: 0, updated: 0, deadLettered: 0 };

  constructor(
    readonly sink: string,
    private readonly client: MispSightingsClient,
    private readonly store: SinkIdStore & DecisionLog,
    private readonly sourcePrefix: string,
    private readonly log: Logger,
  ) {}

  async deliver(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]> {
    const sent = await this.store.getSinkIds(this.sink, items.map((i) => i.key));
    return deliverOneByOne(items, (item) => this.one(item, signal),
      (err) => ({ kind: 'retry', reason: `MISP did not answer: ${(err as Error).message}` }), this.counts,
      (item) => {
        const known = sent.get(item.key);
        // Sent already: this is a later version of the same alert, which is not a new sighting.
        return known ? { kind: 'ack', externalId: known, counted: 'unchanged' } : undefined;
      });
  }

  private failed(res: { status: number; headers: Record<string, string | undefined>; retryAfterMs?: number | null; data: unknown }, attempt: number, what: string): Outcome {
    const message = messageOf(res.data);
    // MISP answers 403 both for a bad key and for a sighting it refuses: the message tells which.
    if (res.status === 403 && /authenticat|api key|not authori[sz]ed/i.test(message)) {
      return { kind: 'wait-for-setup', reason: `MISP ${what}: refused (403) ${message}; check misp.key [env MISP_KEY] and the user's rights` };
    }
    const outcome = answerOutcome(res, attempt, `MISP ${what}`, SETUP);
    return outcome.kind === 'dead' ? { ...outcome, reason: `${outcome.reason}: ${message}` } : outcome;
  }

  private async one(item: OutboxItem, signal: AbortSignal): Promise<Outcome> {
    const p = item.payload as SightingPayload;
    const uuid = attributeUuid(p.hit.sourceId);
    if (!uuid) return { kind: 'dead', reason: `no MISP attribute uuid in ${p.hit.sourceId}`, code: 'bad_reference' };
    const source = sightingSource(this.sourcePrefix, p.alertId);

    if (item.unconfirmedSend) {
      // An earlier attempt may have reached MISP: look before posting again.
      const res = await this.client.search(source, signal);
      if (res.status !== 200) return this.failed(res, item.attempts, 'sightings/restSearch');
      const mine = sightingRows(res.data).find((r) => r.source === source && (r.attribute_uuid === undefined || String(r.attribute_uuid).toLowerCase() === uuid));
      if (mine) {
        const id = typeof mine.id === 'string' || typeof mine.id === 'number' ? String(mine.id) : 'sent';
        this.log.info({ sink: this.sink, key: item.key, sighting: id }, 'MISP already holds the sighting of an unconfirmed send; not posting again');
        return this.acked(p, 'found', id);
      }
    }

    const seen = Math.floor(Date.parse(p.lastSeen) / 1000);
    const res = await this.client.add({ uuid, source, timestamp: Number.isFinite(seen) ? seen : Math.floor(Date.now() / 1000), type: '0' }, signal);
    if (res.status !== 200) return this.failed(res, item.attempts, 'sightings/add');
    // Some MISP versions answer a refused sighting with 200 and the reason in the body.
    const body = res.data as { saved?: unknown; message?: unknown } | null;
    if (body && (body.saved === false || (typeof body.message === 'string' && /^Could not add/i.test(body.message)))) {
      return { kind: 'dead', reason: `MISP sightings/add refused: ${messageOf(res.data)}`, code: 'misp_refused' };
    }
    const row = sightingRows(res.data)[0];
    const id = row && (typeof row.id === 'string' || typeof row.id === 'number') ? String(row.id) : 'sent';
    this.counts.created++;
    return this.acked(p, 'created', id);
  }

  private async acked(p: SightingPayload, action: string, id: string): Promise<Outcome> {
    try {
      await this.store.recordDecisions([hitDecision(this.sink, p.hit, p, action, `MISP sighting ${id}`)]);
    } catch (err) {
      this.log.warn({ sink: this.sink, ...errorFields(err) }, 'cannot record the hit in the decision log');
    }
    return { kind: 'ack', externalId: id, counted: 'create' };
  }
}
