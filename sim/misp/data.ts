// The simulated MISP instance's data: events with attributes and objects, in MISP's row shapes
// (string ids and timestamps, boolean flags). Mutations return what MISP would publish.
import { randomUUID } from 'node:crypto';

export interface SimAttribute {
  id: string;
  uuid: string;
  event_id: string;
  object_id: string;
  object_relation: string | null;
  category: string;
  type: string;
  value: string;
  to_ids: boolean;
  deleted: boolean;
  timestamp: string;
  distribution: string;
  sharing_group_id: string;
  comment: string;
  disable_correlation: boolean;
  first_seen: string | null;
  last_seen: string | null;
  tags: string[];
}

export interface SimObject {
  id: string;
  uuid: string;
  name: string;
  meta_category: string;
  event_id: string;
  deleted: boolean;
  timestamp: string;
}

export interface SimEvent {
  id: string;
  uuid: string;
  info: string;
  date: string;
  published: boolean;
  publish_timestamp: string;
  timestamp: string;
  threat_level_id: string;
  analysis: string;
  distribution: string;
  orgc: { id: string; uuid: string; name: string };
  tags: string[];
}

export interface NewAttribute {
  type: string;
  value: string;
  category?: string;
  to_ids?: boolean;
  comment?: string;
  tags?: string[];
  first_seen?: string | null;
  last_seen?: string | null;
  object_id?: string;
  object_relation?: string | null;
}

const ORGC = { id: '1', uuid: '55f6ea5e-2c60-40e5-964f-47a8950d210f', name: 'SIMORG' };

export class MispData {
  readonly events = new Map<string, SimEvent>();
  readonly attributes = new Map<string, SimAttribute>();
  readonly objects = new Map<string, SimObject>();
  /** Values a warninglist flags (public resolvers and the like). */
  readonly warninglist = new Set<string>();
  private nextEventId = 1;
  private nextAttributeId = 1;
  private nextObjectId = 1;
  /** MISP timestamps are seconds; a test may move the clock. */
  clock = () => Math.floor(Date.now() / 1000);

  private now(): string {
    return String(this.clock());
  }

  createEvent(input: { info: string; tags?: string[]; threat_level_id?: string; distribution?: string }): SimEvent {
    const id = String(this.nextEventId++);
    const event: SimEvent = {
      id, uuid: randomUUID(), info: input.info, date: new Date().toISOString().slice(0, 10), published: false,
      publish_timestamp: '0', timestamp: this.now(), threat_level_id: input.threat_level_id ?? '2', analysis: '0',
      distribution: input.distribution ?? '1', orgc: ORGC, tags: input.tags ?? [],
    };
    this.events.set(id, event);
    return event;
  }

  event(id: string): SimEvent {
    const e = this.events.get(id);
    if (!e) throw new Error(`no event ${id}`);
    return e;
  }

  attribute(uuid: string): SimAttribute {
    const a = this.attributes.get(uuid);
    if (!a) throw new Error(`no attribute ${uuid}`);
    return a;
  }

  addObject(eventId: string, name: string): SimObject {
    const o: SimObject = { id: String(this.nextObjectId++), uuid: randomUUID(), name, meta_category: name, event_id: eventId, deleted: false, timestamp: this.now() };
    this.objects.set(o.id, o);
    return o;
  }

  addAttribute(eventId: string, input: NewAttribute): SimAttribute {
    const event = this.event(eventId);
    const a: SimAttribute = {
      id: String(this.nextAttributeId++), uuid: randomUUID(), event_id: eventId, object_id: input.object_id ?? '0',
      object_relation: input.object_relation ?? null, category: input.category ?? 'Network activity', type: input.type, value: input.value,
      to_ids: input.to_ids ?? true, deleted: false, timestamp: this.now(), distribution: '5', sharing_group_id: '0',
      comment: input.comment ?? '', disable_correlation: false, first_seen: input.first_seen ?? null, last_seen: input.last_seen ?? null,
      tags: input.tags ?? [],
    };
    this.attributes.set(a.uuid, a);
    this.touch(event);
    return a;
  }

  /** Editing, adding or soft-deleting any attribute unpublishes its event (MISP unpublishEvent). */
  private touch(event: SimEvent): void {
    event.timestamp = this.now();
    event.published = false;
  }

  editAttribute(uuid: string, patch: Partial<Pick<SimAttribute, 'value' | 'to_ids' | 'comment' | 'tags' | 'type' | 'last_seen' | 'first_seen'>>): SimAttribute {
    const a = this.attribute(uuid);
    Object.assign(a, patch, { timestamp: this.now() });
    this.touch(this.event(a.event_id));
    return a;
  }

  softDeleteAttribute(uuid: string, sanitise = false): SimAttribute {
    const a = this.attribute(uuid);
    a.deleted = true;
    a.timestamp = this.now();
    if (sanitise) Object.assign(a, { category: 'Other', type: 'comment', value: 'deleted', to_ids: false });
    this.touch(this.event(a.event_id));
    return a;
  }

  hardDeleteAttribute(uuid: string): SimAttribute {
    const a = this.attribute(uuid);
    this.attributes.delete(uuid);
    return a;
  }

  publish(eventId: string): SimEvent {
    const e = this.event(eventId);
    e.published = true;
    e.publish_timestamp = this.now();
    return e;
  }

  deleteEvent(eventId: string): SimEvent {
    const e = this.event(eventId);
    this.events.delete(eventId);
    for (const [uuid, a] of this.attributes) if (a.event_id === eventId) this.attributes.delete(uuid);
    return e;
  }

  attributesOf(eventId: string): SimAttribute[] {
    return [...this.attributes.values()].filter((a) => a.event_id === eventId);
  }
}

const tagRow = (name: string, i: number, extra: Record<string, unknown> = {}) =>
  ({ id: String(100 + i), name, colour: '#33FF00', exportable: true, local: false, ...extra });

/** An attribute as misp_json_attribute carries it (value1/value2 too; Tag absent when none). */
export function attributeRow(a: SimAttribute): Record<string, unknown> {
  const pipe = a.value.indexOf('|');
  const { tags, ...cols } = a;
  const row: Record<string, unknown> = {
    ...cols, value1: pipe < 0 ? a.value : a.value.slice(0, pipe), value2: pipe < 0 ? '' : a.value.slice(pipe + 1),
  };
  if (tags.length > 0) row['Tag'] = tags.map((t, i) => tagRow(t, i));
  return row;
}

export function eventHeader(e: SimEvent): Record<string, unknown> {
  return {
    id: e.id, org_id: '1', date: e.date, info: e.info, user_id: '1', uuid: e.uuid, published: e.published, analysis: e.analysis,
    attribute_count: '0', orgc_id: e.orgc.id, timestamp: e.timestamp, distribution: e.distribution, sharing_group_id: '0',
    proposal_email_lock: false, locked: false, threat_level_id: e.threat_level_id, publish_timestamp: e.publish_timestamp,
    sighting_timestamp: '0', disable_correlation: false, extends_uuid: '', protected: null,
  };
}

/** The full event as misp_json and /events/restSearch give it: live attributes only, objects with theirs. */
export function fullEvent(data: MispData, e: SimEvent): Record<string, unknown> {
  const live = data.attributesOf(e.id).filter((a) => !a.deleted);
  const plain = (a: SimAttribute) => {
    const { tags, ...cols } = a;
    return { ...cols, Tag: tags.map((t, i) => tagRow(t, i, { local: 0 })) };
  };
  const objects = [...data.objects.values()].filter((o) => o.event_id === e.id && !o.deleted).map((o) => ({
    id: o.id, name: o.name, 'meta-category': o.meta_category, uuid: o.uuid, event_id: o.event_id, deleted: false, timestamp: o.timestamp,
    ObjectReference: [], Attribute: live.filter((a) => a.object_id === o.id).map(plain),
  })).filter((o) => o.Attribute.length > 0);
  return {
    ...eventHeader(e),
    Org: { id: '1', name: e.orgc.name, uuid: e.orgc.uuid },
    Orgc: { id: e.orgc.id, name: e.orgc.name, uuid: e.orgc.uuid },
    Attribute: live.filter((a) => a.object_id === '0').map(plain),
    ShadowAttribute: [], RelatedEvent: [], Galaxy: [], Object: objects, EventReport: [],
    Tag: e.tags.map((t, i) => tagRow(t, i, { local: 0 })),
  };
}
