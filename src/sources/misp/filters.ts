// MISP event filters as MISP2Sentinel's `misp_event_filters` (PyMISP search parameters) define
// them: a list of entries, an attribute passes when one entry matches (OR across entries), an entry
// matches when every key does (AND within it), a list value is an OR. Event keys look at the event
// header, attribute keys at the attribute. An unknown key is a configuration error: a typo that
// silently matched nothing would make the next full sync withdraw everything MISP had pushed.
import { closest } from 'fastest-levenshtein';
import type { MispAttribute, MispEvent } from './model.js';

export type FilterValue = string | number | boolean | (string | number | boolean)[];
export type EventFilter = Record<string, FilterValue>;

const DAY = 86_400_000;

/** "2d" / "12h" / "30m" / "45s" or epoch seconds → the start of the window in ms. */
export function windowStart(window: string, now: number): number {
  const m = /^(\d+)([dhms])$/.exec(window);
  if (!m) return Number(window) * 1000;
  const unit = { d: DAY, h: 3_600_000, m: 60_000, s: 1000 }[m[2] as 'd' | 'h' | 'm' | 's'];
  return now - Number(m[1]) * unit;
}

interface Subject {
  attr: MispAttribute;
  event: MispEvent | null;
  /** Attribute and event tags, lower-cased. */
  tags: Set<string>;
  now: number;
}

type Test = (options: string[], s: Subject) => boolean;

const lower = (s: string) => s.toLowerCase();
const truthy = (o: string) => ['1', 'true', 'yes'].includes(o);
/** Event date (YYYY-MM-DD) compared as text: ISO dates sort as they compare. */
const day = (o: string) => o.slice(0, 10);

/** Every key an entry may use, and how it matches. */
const KEYS: Record<string, Test> = {
  // The keys MISP2Sentinel's misp_event_filters take (PyMISP search).
  type_attribute: (o, s) => o.includes(lower(s.attr.type)),
  values: (o, s) => o.includes(lower(s.attr.value)),
  not_values: (o, s) => !o.includes(lower(s.attr.value)),
  date_from: (o, s) => !!s.event?.date && o.every((d) => s.event!.date >= day(d)),
  date_to: (o, s) => !!s.event?.date && o.every((d) => s.event!.date <= day(d)),
  last: (o, s) => !!s.event && s.event.publishTimestamp > 0 && o.some((w) => s.event!.publishTimestamp * 1000 >= windowStart(w, s.now)),
  eventid: (o, s) => o.includes(lower(s.event?.id || s.attr.eventId)),
  uuid: (o, s) => !!s.event && o.includes(lower(s.event.uuid)),
  // Asks MISP to include attachments in the answer; it selects nothing.
  withAttachments: () => true,
  not_tags: (o, s) => !o.some((t) => s.tags.has(t)),
  org: (o, s) => !!s.event && o.includes(lower(s.event.orgName)),
  category: (o, s) => o.includes(lower(s.attr.category)),
  tags: (o, s) => o.some((t) => s.tags.has(t)),
  publish_timestamp: (o, s) => KEYS['last']!(o, s),
  published: (o, s) => !!s.event && o.some((p) => truthy(p) === s.event!.published),
  // Earlier ThreatBridge keys, kept: the same meaning under their own names.
  type: (o, s) => KEYS['type_attribute']!(o, s),
  tag: (o, s) => KEYS['tags']!(o, s),
  info: (o, s) => !!s.event && o.some((i) => lower(s.event!.info).includes(i)),
  threat_level_id: (o, s) => !!s.event && o.includes(s.event.threatLevelId),
  distribution: (o, s) => !!s.event && o.includes(s.event.distribution),
  // MISP2Defender's paging and warninglist switches: ThreatBridge reads every page (a cap would
  // make the full sync withdraw the rest) and misp.enforce_warninglist applies on every path.
  limit: () => true,
  page: () => true,
  enforceWarninglist: () => true,
};

export const EVENT_FILTER_KEYS: readonly string[] = Object.keys(KEYS);

/** Why an entry's key is not supported (with the valid keys and the closest one), or null. */
export function unknownFilterKey(key: string): string | null {
  if (Object.hasOwn(KEYS, key)) return null;
  return `unknown event filter key "${key}" (did you mean "${closest(key, [...EVENT_FILTER_KEYS])}"?); valid keys: ${EVENT_FILTER_KEYS.join(', ')}`;
}

function options(value: FilterValue): string[] {
  return (Array.isArray(value) ? value : [value]).map((v) => lower(String(v)));
}

/** True when the attribute passes one of the entries (true when there are none). */
export function passesEventFilters(filters: readonly EventFilter[], attr: MispAttribute, event: MispEvent | null, tags: Set<string>, now: number): boolean {
  if (filters.length === 0) return true;
  const subject: Subject = { attr, event, tags, now };
  return filters.some((f) => Object.entries(f).every(([key, value]) => KEYS[key]?.(options(value), subject) ?? false));
}
