// The MISP sightings route (pure): each MISP attribute a CustomTI alert fired on → one operation
// keyed by (tenant, attribute, alert). A newer version of the same alert supersedes a waiting one;
// the delivery sends a sighting once per key (MISP does not deduplicate sightings).
import { RECORD_TYPES, type DefenderAlertChange } from '../../core/records.js';
import type { RecordRoute } from '../../core/router.js';
import { sightingKey, sightingPayloads } from '../sightings.js';

export function mispSightingsRoute(sink: string): RecordRoute {
  return {
    sink,
    types: [RECORD_TYPES.alert],
    route: (change) => sightingPayloads(change.record as DefenderAlertChange, 'misp')
      .map((p) => ({ sink, key: sightingKey(p), op: 'upsert' as const, payload: p, sourceRef: { system: 'misp' as const, id: p.hit.sourceId } })),
  };
}

/** The attribute uuid of a MISP claim's source id (misp:<event id>:<attribute uuid>). */
export function attributeUuid(sourceId: string): string | null {
  const uuid = sourceId.slice(sourceId.lastIndexOf(':') + 1);
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid) ? uuid.toLowerCase() : null;
}
