// MISP's sightings REST calls (SightingsController::add and ::restSearch), through the one call
// envelope. Statuses come back to the delivery, which decides what they mean.
import { ApiCaller, fixedHeaders, type ApiResponse } from '../../net/call.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';

export interface MispSightingRow {
  id?: unknown;
  uuid?: unknown;
  attribute_id?: unknown;
  attribute_uuid?: unknown;
  source?: unknown;
}

export class MispSightingsClient {
  private readonly caller: ApiCaller;

  constructor(o: { url: string; key: string; verifyTls: boolean; timeoutMs: number; sink: string; log: Logger; metrics: Metrics }) {
    this.caller = new ApiCaller({
      system: 'misp', baseURL: o.url, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, userAgent: 'threatbridge', log: o.log,
      credentials: fixedHeaders({ Authorization: o.key }), headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      metrics: { metrics: o.metrics, label: o.sink },
    });
  }

  /** POST /sightings/add: `uuid` names the attribute (the controller reads it as the attribute id). */
  add(body: { uuid: string; source: string; timestamp: number; type: '0' }, signal?: AbortSignal): Promise<ApiResponse<unknown>> {
    return this.caller.call('sightings/add', { method: 'POST', url: '/sightings/add', data: body }, signal);
  }

  /** POST /sightings/restSearch: sightings with this exact source (our marker names the alert). */
  search(source: string, signal?: AbortSignal): Promise<ApiResponse<unknown>> {
    return this.caller.call('sightings/restSearch', { method: 'POST', url: '/sightings/restSearch', data: { source, returnFormat: 'json' } }, signal);
  }
}

/** The sighting rows of a restSearch or add answer, whatever wrapping MISP versions use. */
export function sightingRows(body: unknown): MispSightingRow[] {
  const list = Array.isArray(body) ? body
    : body && typeof body === 'object' && Array.isArray((body as { response?: unknown }).response) ? (body as { response: unknown[] }).response
      : body && typeof body === 'object' ? [body] : [];
  return list.filter((r): r is Record<string, unknown> => !!r && typeof r === 'object')
    .map((r) => (r['Sighting'] && typeof r['Sighting'] === 'object' ? r['Sighting'] as MispSightingRow : r as MispSightingRow));
}
