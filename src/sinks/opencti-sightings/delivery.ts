// Delivery of sightings to OpenCTI, one hit at a time, idempotent end to end so that the outbox's
// at-least-once retries (a crash, a lost answer) never make a second sighting or count an alert
// twice: the sighting has a deterministic id (one per indicator and tenant identity); each alert
// is an external reference on it (OpenCTI upserts references by URL); the count is derived from
// those references, never incremented blindly.
import type { SinkHandler } from '../../core/delivery.js';
import { answerOutcome, type Outcome, type Settled } from '../../core/outcome.js';
import type { DecisionLog } from '../../core/store.js';
import type { OutboxItem } from '../../core/types.js';
import { errorFields, type Logger } from '../../observability/logger.js';
import { deliverOneByOne, hitDecision, type SightingPayload } from '../sightings.js';
import type { GraphqlAnswer, OpenctiSightingsClient } from './client.js';
import { identityId, sightingId } from './stix-id.js';

/** source_name of the external reference each alert adds to its sighting. */
export const ALERT_REFERENCE_SOURCE = 'Microsoft Defender';
const IDENTITY_CLASS = 'system';

const SETUP: Partial<Record<number, string>> = {
  401: 'check opencti.token [env OPENCTI_TOKEN]',
  403: 'the OpenCTI user of opencti.token needs the capability to create and update knowledge (KNOWLEDGE_KNUPDATE)',
};
/** GraphQL error codes that mean the set-up (token, rights) is wrong, not the sighting. */
const SETUP_CODES = new Set(['AUTH_REQUIRED', 'FORBIDDEN_ACCESS', 'AUTH_FAILURE']);
/** Codes that reject this sighting for good (the indicator is gone, the input is invalid). */
const DEAD_CODES = new Set(['MISSING_REFERENCE_ERROR', 'ALREADY_DELETED_ERROR', 'BAD_USER_INPUT', 'GRAPHQL_VALIDATION_FAILED', 'FUNCTIONAL_ERROR', 'VALIDATION_ERROR']);

class Stop {
  constructor(readonly outcome: Outcome) {}
}

export interface OpenctiSightingsCounts { created: number; updated: number; deadLettered: number }

export class OpenctiSightingsDelivery implements SinkHandler {
  readonly batchSize = 20;
  readonly counts: OpenctiSightingsCounts = { created: 0, updated: 0, deadLettered: 0 };
  /** tenant id → the identity's OpenCTI id (created once, looked up by its deterministic id after). */
  private readonly identities = new Map<string, string>();

  constructor(
    readonly sink: string,
    private readonly client: OpenctiSightingsClient,
    private readonly decisions: DecisionLog,
    private readonly identityName: string,
    private readonly log: Logger,
  ) {}

  async deliver(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]> {
    // One at a time: two alerts on one indicator update the same sighting.
    return deliverOneByOne(items, (item) => this.one(item, signal),
      (err) => err instanceof Stop ? err.outcome : { kind: 'retry', reason: `OpenCTI did not answer: ${(err as Error).message}` },
      this.counts);
  }

  /** The data of an answer, or a Stop with what it means. */
  private need<T>(answer: GraphqlAnswer<T>, what: string, attempt: number): T {
    if (answer.ok) return answer.data;
    if ('http' in answer) throw new Stop(answerOutcome(answer.http, attempt, `OpenCTI ${what}`, SETUP));
    const text = answer.errors.map((e) => `${e.code ?? 'ERROR'}: ${e.message}`).join('; ');
    if (answer.errors.some((e) => e.code && SETUP_CODES.has(e.code))) throw new Stop({ kind: 'wait-for-setup', reason: `OpenCTI ${what}: ${text}; check opencti.token and the user's rights` });
    if (answer.errors.every((e) => e.code && DEAD_CODES.has(e.code))) throw new Stop({ kind: 'dead', reason: `OpenCTI ${what}: ${text}`, code: 'opencti_refused' });
    throw new Stop({ kind: 'retry', reason: `OpenCTI ${what}: ${text}` });
  }

  private async identity(tenantId: string, attempt: number, signal: AbortSignal): Promise<string> {
    const known = this.identities.get(tenantId);
    if (known) return known;
    const name = `${this.identityName} (${tenantId})`;
    // OpenCTI upserts an identity by its standard id: asking again returns the same one.
    const data = this.need(await this.client.identityAdd({
      type: 'System', stix_id: identityId(name, IDENTITY_CLASS), name,
      description: `Microsoft Defender for Endpoint tenant ${tenantId}, where ThreatBridge saw these indicators fire.`,
    }, signal), 'identityAdd', attempt);
    this.identities.set(tenantId, data.identityAdd.standard_id);
    return data.identityAdd.standard_id;
  }

  private async one(item: OutboxItem, signal: AbortSignal): Promise<Outcome> {
    const p = item.payload as SightingPayload;
    const attempt = item.attempts;
    const identity = await this.identity(p.tenantId, attempt, signal);
    const ref = this.need(await this.client.externalReferenceAdd(
      { source_name: ALERT_REFERENCE_SOURCE, url: p.link, external_id: p.alertId, description: p.title }, signal), 'externalReferenceAdd', attempt).externalReferenceAdd.id;
    const id = sightingId(p.hit.sourceId, [identity]);
    const current = this.need(await this.client.readSighting(id, signal), 'stixSightingRelationship', attempt).stixSightingRelationship;

    if (!current) {
      const created = this.need(await this.client.addSighting({
        stix_id: id, fromId: p.hit.sourceId, toId: identity, first_seen: p.firstSeen, last_seen: p.lastSeen, attribute_count: 1,
        description: `Seen by Microsoft Defender for Endpoint (custom indicator alerts), recorded by ThreatBridge.`,
        externalReferences: [ref], x_opencti_negative: false,
      }, signal), 'stixSightingRelationshipAdd', attempt).stixSightingRelationshipAdd;
      this.counts.created++;
      await this.logHit(p, 'created', created.id);
      return { kind: 'ack', externalId: created.id, counted: 'create' };
    }

    const refs = current.externalReferences?.edges?.map((e) => e.node) ?? [];
    const had = refs.some((r) => r.id === ref || r.url === p.link);
    if (!had) this.need(await this.client.addReference(current.id, ref, signal), 'relationAdd', attempt);
    // Derived, not incremented: a retry after any step lands on the same count.
    const alerts = new Set(refs.filter((r) => r.source_name === ALERT_REFERENCE_SOURCE && r.url).map((r) => r.url));
    alerts.add(p.link);
    const count = Math.max(had ? current.attribute_count : current.attribute_count + 1, alerts.size);
    const patch: { key: string; value: unknown[] }[] = [];
    if (count !== current.attribute_count) patch.push({ key: 'attribute_count', value: [count] });
    if (!current.first_seen || Date.parse(p.firstSeen) < Date.parse(current.first_seen)) patch.push({ key: 'first_seen', value: [p.firstSeen] });
    if (!current.last_seen || Date.parse(p.lastSeen) > Date.parse(current.last_seen)) patch.push({ key: 'last_seen', value: [p.lastSeen] });
    if (patch.length > 0) this.need(await this.client.patchSighting(current.id, patch, signal), 'fieldPatch', attempt);
    this.counts.updated++;
    await this.logHit(p, had ? 'updated' : 'counted', current.id);
    return { kind: 'ack', externalId: current.id, counted: 'update' };
  }

  private async logHit(p: SightingPayload, action: string, sightingInternalId: string): Promise<void> {
    try {
      await this.decisions.recordDecisions([hitDecision(this.sink, p.hit, p, action, `OpenCTI sighting ${sightingInternalId}`)]);
    } catch (err) {
      // The trail is a diagnostic aid; the sighting is made.
      this.log.warn({ sink: this.sink, ...errorFields(err) }, 'cannot record the hit in the decision log');
    }
  }
}
