// MISP messages (ZeroMQ topics, restSearch rows) → NormalisedEvents. Pure apart from the event
// cache it is given; bad input becomes a rejection, never a throw.
import type { NormalisedEvent, SourceRef } from '../../core/types.js';
import { eventAttributes, int, isObject, readAttribute, readEvent, str, type MispAttribute, type MispEvent } from './model.js';
import { attributeSourceId, decideAttribute, eventSourcePrefix, type MispPolicy } from './policy.js';

export interface MispItem {
  normalised: NormalisedEvent;
  /** Event name for logs and metrics, e.g. "attribute.soft-delete". */
  event: string;
}

export interface MispNormalised {
  items: MispItem[];
  /** The message hinted at changes it does not carry (tags, objects): run a REST catch-up soon. */
  catchUp: boolean;
  /** The event a `misp_json` published (for misp.log_events). */
  publishedEvent?: MispEvent;
}

/** Event headers learnt from event messages: attribute messages carry no event tags. */
export class EventCache {
  private readonly events = new Map<string, MispEvent>();
  constructor(private readonly max = 10_000) {}

  get(id: string): MispEvent | undefined {
    return this.events.get(id);
  }

  set(event: MispEvent): void {
    this.events.delete(event.id);
    this.events.set(event.id, event);
    if (this.events.size > this.max) this.events.delete(this.events.keys().next().value!);
  }

  delete(id: string): void {
    this.events.delete(id);
  }
}

export interface MispContext {
  policy: MispPolicy;
  events: EventCache;
  now(): number;
}

const blank = (sourceRef: SourceRef | null): NormalisedEvent => ({
  sourceRef, changes: [], retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: null,
});

function refOf(attr: Pick<MispAttribute, 'eventId' | 'uuid'>, ctx: MispContext): SourceRef {
  return { system: 'misp', id: attributeSourceId(attr.eventId, attr.uuid), url: `${ctx.policy.url}/events/view/${attr.eventId}` };
}

const retract = (ref: SourceRef, event: string): MispItem => ({ normalised: { ...blank(ref), retractAll: true }, event });
const ignore = (event: string, why: string, ref: SourceRef | null = null): MispItem => ({ normalised: { ...blank(ref), ignored: why }, event });
const reject = (event: string, code: string, detail: string, ref: SourceRef | null = null): MispItem =>
  ({ normalised: { ...blank(ref), rejected: { code, detail } }, event });

/** One attribute's current state, as far as the event it belongs to is known. */
export function attributeItem(attr: MispAttribute, event: MispEvent | null, ctx: MispContext, name: string): MispItem {
  const ref = refOf(attr, ctx);
  const d = decideAttribute(attr, event, ctx.policy, ctx.now());
  if (d.excluded) return { normalised: { ...blank(ref), retractAll: true, withdrawn: d.excluded, skipped: d.skipped }, event: name };
  return { normalised: { ...blank(ref), changes: d.changes, skipped: d.skipped }, event: name };
}

/** A published event's complete state: every attribute, and the withdrawal of those it no longer has. */
export function fullEventItems(rawEvent: Record<string, unknown>, ctx: MispContext, name: string): MispItem[] {
  const event = readEvent(rawEvent);
  if (!event || !event.id) return [reject(name, 'malformed_event', 'Event without id')];
  // The synchronous publish path serialises the event before saving published=1 and the new
  // publish_timestamp: everything in it up to the event's own timestamp is published now.
  const published = { ...event, published: true, publishTimestamp: Math.max(event.publishTimestamp, int(rawEvent['timestamp'])) };
  ctx.events.set(published);
  const attrs = eventAttributes(rawEvent, ctx.policy.flatten_attributes);
  const items = attrs.map((a) => attributeItem(a, published, ctx, name));
  items.push({
    normalised: { ...blank(null), retractGroup: { prefix: eventSourcePrefix(event.id), keep: attrs.map((a) => attributeSourceId(a.eventId, a.uuid)) } },
    event: `${name}.removed-attributes`,
  });
  return items;
}

function parseJson(payload: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(payload) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

// Event names go into logs, dead letters and metric labels: built from closed sets (the topics and
// actions MISP emits), anything else is `other`, so a feed cannot mint names.
const TOPICS = new Set(['event', 'attribute', 'object', 'object_reference', 'sighting', 'tag', 'organisation', 'user',
  'conversation', 'audit', 'warninglist', 'workflow', 'self']);
const ACTIONS = new Set(['add', 'edit', 'delete', 'soft-delete', 'publish', 'add_from_connected_server', 'edit_from_connected_server',
  'attached to event', 'detached from event', 'attached to attribute', 'detached from attribute', 'login', 'logout', 'log']);

/** `misp_json_attribute` → `attribute`, `misp_json` → `publish`, an unknown topic → `other`. */
export function topicName(topic: string): string {
  if (topic === 'misp_json') return 'publish';
  const kind = topic.startsWith('misp_json_') ? topic.slice('misp_json_'.length) : '';
  return TOPICS.has(kind) ? kind : 'other';
}

function eventName(topic: string, action: string | null): string {
  return action === null ? topicName(topic) : `${topicName(topic)}.${ACTIONS.has(action) ? action : 'other'}`;
}

export function normaliseZmq(topic: string, payload: string, ctx: MispContext): MispNormalised {
  const none = (item: MispItem, catchUp = false): MispNormalised => ({ items: [item], catchUp });
  if (topic === 'misp_json_self') return { items: [], catchUp: false };
  const parsed = parseJson(payload);
  const shown = JSON.stringify(topic.slice(0, 60));
  if (!parsed.ok) return none(reject(topicName(topic), 'malformed_json', `${shown}: ${parsed.error.slice(0, 200)}`));
  const body = parsed.value;
  if (!isObject(body)) return none(reject(topicName(topic), 'malformed_message', `${shown}: not a JSON object`));
  const action = str(body['action']) || null;
  const name = eventName(topic, action);

  switch (topic) {
    case 'misp_json': {
      if (!isObject(body['Event'])) return none(reject(name, 'malformed_event', 'misp_json without an Event object'));
      const items = fullEventItems(body['Event'], ctx, name);
      const publishedEvent = ctx.events.get(str(body['Event']['id']));
      return { items, catchUp: false, ...(publishedEvent ? { publishedEvent } : {}) };
    }
    case 'misp_json_event': {
      // Sync pulls carry the remote id as a scalar Event: the publish brings the content.
      if (!isObject(body['Event'])) return none(ignore(name, 'event notification without content'));
      // Here the creator org sits beside Event, not in it (MISP#5702's capture).
      const event = readEvent({ Orgc: body['Orgc'], ...body['Event'] }, body['EventTag']);
      if (!event?.id) return none(reject(name, 'malformed_event', 'Event without id'));
      if (action === 'delete') {
        ctx.events.delete(event.id);
        return none({ normalised: { ...blank(null), retractGroup: { prefix: eventSourcePrefix(event.id), keep: [] } }, event: name });
      }
      // Tags may have changed without touching attribute timestamps: re-read the event's state.
      const known = ctx.events.get(event.id);
      ctx.events.set(event);
      const tagsChanged = !!known && known.tags.join('\n') !== event.tags.join('\n');
      return none(ignore(name, 'event header cached for its attribute messages'), tagsChanged);
    }
    case 'misp_json_attribute': {
      const attr = readAttribute(body['Attribute']);
      if (!attr) return none(reject(name, 'malformed_attribute', 'Attribute without uuid or event_id'));
      const ref = refOf(attr, ctx);
      // Deletions key on the uuid: a sanitised soft delete no longer carries the value.
      if (action === 'delete' || action === 'soft-delete' || attr.deleted) return none(retract(ref, name));
      // MISP leaves the tags out of some edit messages (MISP#2592): deciding without them could
      // drop a vetted attribute or let a tlp:red one through; REST has the whole row.
      if (action === 'edit' && isObject(body['Attribute']) && !('Tag' in body['Attribute'])) {
        return none(ignore(name, 'edit without the attribute\'s tags; the REST catch-up decides', ref), true);
      }
      const header = isObject(body['Event']) ? readEvent(body['Event']) : null;
      const cached = ctx.events.get(attr.eventId);
      if (!cached) {
        // Without the event's tags, filters such as tlp:red cannot be applied: let REST decide.
        return none(ignore(name, 'event tags unknown; the REST catch-up decides', ref), true);
      }
      const event: MispEvent = { ...cached, ...(header ? { published: header.published, info: header.info || cached.info } : {}) };
      const item = attributeItem(attr, event, ctx, name);
      if (item.normalised.retractAll) return none(item);
      // MISP publishes an addition to a published event before it unpublishes the event
      // (AttributesController::add, then unpublishEvent): the message still says published. An
      // attribute changed at or after the event's last publish is not published yet (at: MISP keeps
      // seconds; the publish itself, misp_json, carries whatever it published).
      const unpublished = !event.published || (event.publishTimestamp > 0 && attr.timestamp >= event.publishTimestamp);
      if (ctx.policy.published_only && unpublished) {
        return none(ignore(name, 'waiting for the event to be published', ref));
      }
      return none(item);
    }
    case 'misp_json_object': {
      if (action === 'delete' || action === 'soft-delete') return none(ignore(name, 'object removed; its attributes are re-read'), true);
      return none(ignore(name, 'object rows carry no attributes'));
    }
    case 'misp_json_tag':
      return none(ignore(name, 'tag change; attributes are re-read'), true);
    default:
      return none(ignore(name, `topic ${shown} carries no indicators`));
  }
}
