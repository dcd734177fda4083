// What the two sightings sinks (OpenCTI, MISP) share: the payload each hit of an alert becomes, its
// outbox key, and the hits as they record them in the decision log (`threatbridge hits`, and
// `threatbridge decisions`): one row per alert sighted on an indicator, outcome "sighted". Never
// `fresh`, and no outcome the breakers count (allow, withdraw), so hits cannot trip a breaker.
import type { DecisionLog, GuardDecision } from '../core/store.js';
import type { OutboxItem } from '../core/types.js';
import type { Outcome, Settled } from '../core/outcome.js';
import type { DefenderAlertChange, IndicatorHit } from '../core/records.js';

export interface SightingPayload {
  tenantId: string;
  alertId: string;
  link: string;
  title: string;
  firstSeen: string;
  lastSeen: string;
  hit: IndicatorHit;
}

/** What the sightings sinks take from an alert, for each hit of their platform. */
export function sightingPayloads(a: DefenderAlertChange, system: IndicatorHit['system'], accept: (hit: IndicatorHit) => boolean = () => true): SightingPayload[] {
  const firstSeen = a.firstEventTime ?? a.alertCreationTime ?? a.lastUpdateTime;
  const lastSeen = a.lastEventTime && Date.parse(a.lastEventTime) >= Date.parse(firstSeen) ? a.lastEventTime : firstSeen;
  return (a.hits ?? []).filter((h) => h.system === system && accept(h))
    .map((hit) => ({ tenantId: a.tenantId, alertId: a.id, link: a.link, title: a.title, firstSeen, lastSeen, hit }));
}

export const sightingKey = (p: SightingPayload): string => `${p.tenantId}|${p.hit.sourceId}|${p.alertId}`;

export const HIT_OUTCOME = 'sighted';

export interface SightedAlert {
  tenantId: string;
  alertId: string;
  link: string;
}

export function hitDecision(sink: string, hit: Pick<IndicatorHit, 'key' | 'system' | 'sourceId' | 'matchedBy'>, alert: SightedAlert, action: string, sinkId: string): GuardDecision {
  return {
    at: Date.now(), sink, key: hit.key, source: hit.system, sourceRef: hit.sourceId, wanted: 'sighting', action,
    outcome: HIT_OUTCOME, fresh: false,
    reason: `Defender alert ${alert.alertId} (tenant ${alert.tenantId}, matched by ${hit.matchedBy}) → ${sinkId}; ${alert.link}`,
  };
}

/** Newest first. */
export async function listHits(log: DecisionLog, filter: { since?: number; limit: number }): Promise<GuardDecision[]> {
  const rows = await log.listDecisions({ ...(filter.since !== undefined ? { since: filter.since } : {}), limit: Math.max(1, filter.limit) * 20 });
  return rows.filter((d) => d.outcome === HIT_OUTCOME).slice(0, filter.limit);
}

/**
 * Sends a batch one item at a time (two alerts on one indicator touch the same sighting) and stops at
 * the first retry or set-up wait: the rest of the batch would meet the same refusal or outage.
 */
export async function deliverOneByOne(
  items: OutboxItem[],
  one: (item: OutboxItem) => Promise<Outcome>,
  unanswered: (err: unknown) => Outcome,
  counts: { deadLettered: number },
  known: (item: OutboxItem) => Outcome | undefined = () => undefined,
): Promise<Settled[]> {
  const out: Settled[] = [];
  for (const item of items) {
    const settled = known(item);
    if (settled) { out.push({ item, outcome: settled }); continue; }
    let outcome: Outcome;
    try {
      outcome = await one(item);
    } catch (err) {
      outcome = unanswered(err);
    }
    if (outcome.kind === 'dead') counts.deadLettered++;
    out.push({ item, outcome });
    if (outcome.kind === 'wait-for-setup' || outcome.kind === 'retry') {
      for (const rest of items.slice(out.length)) out.push({ item: rest, outcome });
      break;
    }
  }
  return out;
}
