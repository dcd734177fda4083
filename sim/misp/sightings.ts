// MISP's sightings endpoints as SightingsController and the Sighting model handle them:
// POST /sightings/add takes the attribute as `id` (numeric) or `uuid` (36 characters; the
// controller reads both into the same attribute id), `source`, `timestamp` (epoch seconds, default
// now) and `type` (0 sighting, 1 false positive, 2 expiration; anything else is refused); an
// attribute that is unknown or deleted gives "No valid attributes found" (saveFailResponse: 403).
// MISP does NOT deduplicate: the same body twice makes two sightings. POST /sightings/restSearch
// filters by `source` (exact), `id` (attribute id, with context "attribute"), `type`, `from`/`to`.
import { randomUUID } from 'node:crypto';
import type { MispData } from './data.js';

export interface SimSighting {
  id: string;
  uuid: string;
  attribute_id: string;
  attribute_uuid: string;
  event_id: string;
  org_id: string;
  date_sighting: string;
  source: string;
  type: string;
}

export interface SightingsReply { status: number; body: unknown }

const fail = (reason: string): SightingsReply => ({
  status: 403,
  body: { saved: false, name: 'Could not add Sighting', message: 'Could not add Sighting', url: '/sightings/add', errors: `Could not add the Sighting. Reason: ${reason}` },
});

export class MispSightings {
  readonly sightings: SimSighting[] = [];
  private nextId = 1;

  constructor(private readonly data: MispData) {}

  add(body: Record<string, unknown>): SightingsReply {
    const inner = (body['Sighting'] && typeof body['Sighting'] === 'object' ? body['Sighting'] : body['request'] && typeof body['request'] === 'object' ? body['request'] : body) as Record<string, unknown>;
    const type = inner['type'] === undefined ? '0' : String(inner['type']);
    if (!['0', '1', '2'].includes(type)) return fail('Invalid type, please change it before you POST 1000000 sightings.');
    const ref = inner['uuid'] ?? inner['id'];
    if (typeof ref !== 'string' && typeof ref !== 'number') return fail('No valid attributes found.');
    const key = String(ref);
    const attr = [...this.data.attributes.values()].find((a) => (key.length === 36 ? a.uuid === key.toLowerCase() : a.id === key));
    if (!attr || attr.deleted) return fail('No valid attributes found.');
    const ts = inner['timestamp'] === undefined ? this.data.clock() : Number(inner['timestamp']);
    if (!Number.isFinite(ts)) return fail('Invalid timestamp.');
    const s: SimSighting = {
      id: String(this.nextId++), uuid: randomUUID(), attribute_id: attr.id, attribute_uuid: attr.uuid, event_id: attr.event_id, org_id: '1',
      date_sighting: String(Math.floor(ts)), source: typeof inner['source'] === 'string' ? inner['source'].trim().slice(0, 255) : '', type,
    };
    this.sightings.push(s);
    return { status: 200, body: { Sighting: { ...s } } };
  }

  search(body: Record<string, unknown>, context: string | null): SightingsReply {
    if (context !== null && !['event', 'attribute'].includes(context)) return { status: 405, body: { name: 'Invalid context.', message: 'Invalid context.', url: '/sightings/restSearch' } };
    if (context !== null && body['id'] === undefined) return { status: 405, body: { name: 'An id must be provided if the context is set.', message: 'An id must be provided if the context is set.', url: '/sightings/restSearch' } };
    const rows = this.sightings.filter((s) =>
      (body['source'] === undefined || s.source === body['source'])
      && (body['type'] === undefined || s.type === String(body['type']))
      && (body['id'] === undefined || (context === 'event' ? s.event_id : s.attribute_id) === String(body['id']))
      && (body['from'] === undefined || Number(s.date_sighting) >= Number(body['from']))
      && (body['to'] === undefined || Number(s.date_sighting) <= Number(body['to'])));
    return { status: 200, body: rows.map((s) => ({ Sighting: { ...s } })) };
  }

  /** Sightings of one attribute (by uuid). */
  of(attributeUuid: string): SimSighting[] {
    return this.sightings.filter((s) => s.attribute_uuid === attributeUuid);
  }
}
