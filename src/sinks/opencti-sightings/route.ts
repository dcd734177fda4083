// The OpenCTI sightings route (pure): each OpenCTI indicator a CustomTI alert fired on → one
// operation keyed by (tenant, indicator, alert), so a newer version of the same alert supersedes a
// waiting one and is never counted as a second alert; different alerts never coalesce.
import { RECORD_TYPES, type DefenderAlertChange, type IndicatorHit } from '../../core/records.js';
import type { RecordRoute } from '../../core/router.js';
import { sightingKey, sightingPayloads } from '../sightings.js';

/** STIX 2.1: a sighting is of an SDO, so only indicators are sighted (not observables OpenCTI also streams). */
const isIndicator = (h: IndicatorHit) => h.sourceId.startsWith('indicator--');

export function openctiSightingsRoute(sink: string): RecordRoute {
  return {
    sink,
    types: [RECORD_TYPES.alert],
    route: (change) => sightingPayloads(change.record as DefenderAlertChange, 'opencti', isIndicator)
      .map((p) => ({ sink, key: sightingKey(p), op: 'upsert' as const, payload: p, sourceRef: { system: 'opencti' as const, id: p.hit.sourceId } })),
  };
}
