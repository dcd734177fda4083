// Lenient readers of MISP's JSON: ids and timestamps arrive as "123" or 123, flags as true, 1 or
// "1", `Tag` may be absent, sync messages carry a scalar `Event`. Nothing here throws on input.

type Json = Record<string, unknown>;

export interface MispAttribute {
  id: string;
  uuid: string;
  eventId: string;
  type: string;
  category: string;
  value: string;
  toIds: boolean;
  deleted: boolean;
  /** epoch seconds */
  timestamp: number;
  comment: string;
  firstSeen: string | null;
  lastSeen: string | null;
  /** Name of the object the attribute belongs to, when it is part of one. */
  objectName: string | null;
  /** Part of a MISP object (object_id other than 0). */
  inObject: boolean;
  /** The attribute's own tags. */
  tags: string[];
  /** Event tags MISP inlined into the attribute (includeEventTags marks them `inherited`). */
  inheritedTags: string[];
  /** MISP annotated a warninglist hit (includeWarninglistHits). */
  warninglistHit: boolean;
}

export interface MispEvent {
  id: string;
  uuid: string;
  info: string;
  /** The event's date (YYYY-MM-DD, MISP Event.date); '' when absent. */
  date: string;
  published: boolean;
  /** epoch seconds; 0 when never published */
  publishTimestamp: number;
  threatLevelId: string;
  orgName: string;
  distribution: string;
  tags: string[];
}

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export function str(v: unknown): string {
  // Well-formed: a lone surrogate cannot be stored as UTF-8 (PostgreSQL refuses it) or sent on.
  if (typeof v === 'string') return v.toWellFormed();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return '';
}

export function flag(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 'true';
}

export function int(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  return Number.isFinite(n) ? n : 0;
}

/** Tag names from `Tag: [{name}]` or `EventTag: [{Tag: {name}}]`; `inherited` selects event tags MISP inlined. */
export function tagNames(list: unknown, inherited: boolean | null = null): string[] {
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const t of list) {
    if (!isObject(t)) continue;
    if (inherited !== null && flag(t['inherited']) !== inherited) continue;
    const name = isObject(t['Tag']) ? t['Tag']['name'] : t['name'];
    if (typeof name === 'string' && name.trim()) out.push(name.trim());
  }
  return out;
}

/** An attribute row (ZeroMQ or restSearch), or null when it lacks the fields everything keys on. */
export function readAttribute(raw: unknown, eventIdFallback = ''): MispAttribute | null {
  if (!isObject(raw)) return null;
  const uuid = str(raw['uuid']);
  const eventId = str(raw['event_id']) || eventIdFallback;
  if (!uuid || !eventId) return null;
  // value: restSearch gives `value`; ZeroMQ rows give value1/value2 as well.
  let value = str(raw['value']);
  if (!value) {
    const v1 = str(raw['value1']);
    const v2 = str(raw['value2']);
    value = v2 ? `${v1}|${v2}` : v1;
  }
  const obj = raw['Object'];
  const warnings = raw['warnings'];
  return {
    id: str(raw['id']),
    uuid,
    eventId,
    type: str(raw['type']),
    category: str(raw['category']),
    value,
    toIds: flag(raw['to_ids']),
    deleted: flag(raw['deleted']),
    timestamp: int(raw['timestamp']),
    comment: str(raw['comment']),
    firstSeen: str(raw['first_seen']) || null,
    lastSeen: str(raw['last_seen']) || null,
    objectName: isObject(obj) && str(obj['name']) ? str(obj['name']) : null,
    inObject: (str(raw['object_id']) !== '' && str(raw['object_id']) !== '0') || isObject(obj),
    tags: tagNames(raw['Tag'], false),
    inheritedTags: tagNames(raw['Tag'], true),
    warninglistHit: Array.isArray(warnings) ? warnings.length > 0 : isObject(warnings) && Object.keys(warnings).length > 0,
  };
}

/** An event header (misp_json_event, misp_json, restSearch), or null when it is not one. */
export function readEvent(raw: unknown, extraTags: unknown = undefined): MispEvent | null {
  if (!isObject(raw)) return null;
  const id = str(raw['id']);
  const uuid = str(raw['uuid']);
  if (!id && !uuid) return null;
  const orgc = raw['Orgc'];
  return {
    id,
    uuid,
    info: str(raw['info']),
    date: /^\d{4}-\d{2}-\d{2}/.test(str(raw['date'])) ? str(raw['date']).slice(0, 10) : '',
    published: flag(raw['published']),
    publishTimestamp: int(raw['publish_timestamp']),
    threatLevelId: str(raw['threat_level_id']),
    orgName: isObject(orgc) ? str(orgc['name']) : '',
    distribution: str(raw['distribution']),
    tags: [...new Set([...tagNames(raw['Tag']), ...tagNames(raw['EventTag']), ...tagNames(extraTags)])],
  };
}

/** Every attribute of a full event, object attributes flattened (with the object's name kept) unless `withObjects` is off. */
export function eventAttributes(event: Json, withObjects = true): MispAttribute[] {
  const eventId = str(event['id']);
  const out: MispAttribute[] = [];
  for (const a of Array.isArray(event['Attribute']) ? event['Attribute'] : []) {
    const attr = readAttribute(a, eventId);
    if (attr) out.push(attr);
  }
  for (const o of withObjects && Array.isArray(event['Object']) ? event['Object'] : []) {
    if (!isObject(o) || flag(o['deleted'])) continue;
    const name = str(o['name']) || null;
    for (const a of Array.isArray(o['Attribute']) ? o['Attribute'] : []) {
      const attr = readAttribute(a, eventId);
      if (attr) out.push({ ...attr, objectName: attr.objectName ?? name, inObject: true });
    }
  }
  return out;
}
