// The IRIS sink's route (pure): a Defender alert → one IRIS upsert keyed by the alert id, so a newer
// version of the alert supersedes a waiting one.
import { RECORD_TYPES } from '../../core/records.js';
import type { RecordRoute } from '../../core/router.js';

export function irisRoute(sink: string): RecordRoute {
  return {
    sink,
    types: [RECORD_TYPES.alert],
    route: (change) => [{ sink, key: change.id, op: 'upsert', payload: change.record, sourceRef: null }],
  };
}
