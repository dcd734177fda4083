// What one MISP attribute asserts now, under the configured filters, rules and expiry: pure.
// An attribute that does not pass is *excluded*: whatever it asserted before is withdrawn.
import type { Config } from '../../config/schema.js';
import type { IndicatorChange, Rejection, SinkHints } from '../../core/types.js';
import { attributeObservables } from './attribute-types.js';
import { MAX_EXPIRE_DAYS, type MispRule } from './config.js';
import type { MispAttribute, MispEvent } from './model.js';
import { CLAIM_TEXT, claimLabels, clip } from '../../core/raw-copy.js';
import { passesEventFilters, windowStart } from './filters.js';

export type MispPolicy = Config['misp'] & { url: string };

export interface AttributeDecision {
  changes: IndicatorChange[];
  skipped: Rejection[];
  /** Why the attribute asserts nothing now; null when it passed. */
  excluded: string | null;
}

const DAY = 86_400_000;
const lower = (s: string) => s.toLowerCase();

/** Claim source id of an attribute: grouped by event so a published event's full state can replace it. */
export function attributeSourceId(eventId: string, attributeUuid: string): string {
  return `${eventSourcePrefix(eventId)}${attributeUuid}`;
}

export function eventSourcePrefix(eventId: string): string {
  return `misp:${eventId}:`;
}

function hasAny(tags: Set<string>, wanted: string[]): string | null {
  for (const w of wanted) if (tags.has(lower(w))) return w;
  return null;
}

function ruleFor(rules: MispRule[], attr: MispAttribute, tags: Set<string>): MispRule | null {
  return rules.find((r) => (r.tag === undefined || tags.has(lower(r.tag))) && (r.type === undefined || lower(r.type) === lower(attr.type))) ?? null;
}

const ACTIVE = /^(course-of-action:active=|coa:(deny|degrade|deceive|disrupt|destroy))/;
const PASSIVE = /^(course-of-action:passive=|coa:(detect|discover))/;

function actionFromTags(tags: Set<string>): string | undefined {
  const list = [...tags];
  if (list.some((t) => ACTIVE.test(t))) return 'Block';
  if (list.some((t) => PASSIVE.test(t))) return 'Audit';
  return undefined;
}

const THREAT_LEVEL = new Map<string, SinkHints['severity']>([['1', 'High'], ['2', 'Medium'], ['3', 'Low']]);

function severityFromTags(tags: Set<string>): SinkHints['severity'] | undefined {
  for (const t of tags) {
    const m = /^misp:threat-level="?(high|medium|low|no)/.exec(t);
    if (m) return ({ high: 'High', medium: 'Medium', low: 'Low', no: 'Informational' } as const)[m[1] as 'high' | 'medium' | 'low' | 'no'];
  }
  return undefined;
}

/** TLP from the attribute's own tags, else the event's. */
export function tlpOf(own: string[], event: string[]): string | null {
  for (const list of [own, event]) {
    const t = list.find((x) => /^tlp:/i.test(x));
    if (t) return t.toUpperCase().replace(/^TLP:WHITE$/, 'TLP:CLEAR');
  }
  return null;
}

/**
 * The policy with every expiry cut to MAX_EXPIRE_DAYS, and a warning per key that was cut:
 * MISP2Defender's example uses 99999 days for hashes, which is accepted, not refused.
 */
export function clampExpiry(p: MispPolicy): { policy: MispPolicy; warnings: string[] } {
  const warnings: string[] = [];
  const cut = (key: string, days: number) => {
    if (days <= MAX_EXPIRE_DAYS) return days;
    warnings.push(`misp.${key} = ${days} days is cut to ${MAX_EXPIRE_DAYS} (100 years, the longest expiry ThreatBridge sends)`);
    return MAX_EXPIRE_DAYS;
  };
  const byType: MispPolicy['expire_days_by_type'] = {};
  for (const [type, days] of Object.entries(p.expire_days_by_type) as [keyof MispPolicy['expire_days_by_type'], number][]) {
    byType[type] = cut(`expire_days_by_type.${type}`, days);
  }
  return {
    policy: { ...p, expire_days: cut('expire_days', p.expire_days), tlp_clear_expire_days: cut('tlp_clear_expire_days', p.tlp_clear_expire_days), expire_days_by_type: byType },
    warnings,
  };
}

export function decideAttribute(attr: MispAttribute, event: MispEvent | null, p: MispPolicy, now: number): AttributeDecision {
  const out = (excluded: string): AttributeDecision => ({ changes: [], skipped: [], excluded });
  if (attr.deleted) return out('deleted in MISP');
  if (p.to_ids_only && !attr.toIds) return out('IDS flag is off');
  if (!p.flatten_attributes && attr.inObject) return out('part of a MISP object (misp.flatten_attributes is off)');
  if (p.enforce_warninglist && attr.warninglistHit) return out('hits a MISP warninglist');
  if (p.publish_timestamp && event && event.publishTimestamp > 0 && event.publishTimestamp * 1000 < windowStart(p.publish_timestamp, now)) {
    return out(`event published before the ${p.publish_timestamp} window`);
  }
  const eventTags = [...new Set([...(event?.tags ?? []), ...attr.inheritedTags])];
  const tags = new Set([...attr.tags, ...eventTags].map(lower));
  const excludedBy = hasAny(tags, p.tags_exclude);
  if (excludedBy) return out(`tag ${excludedBy} is excluded`);
  if (p.tags_include.length > 0 && !hasAny(tags, p.tags_include)) return out('carries none of tags_include');
  if (!passesEventFilters(p.event_filters, attr, event, tags, now)) return out('matches no event filter');
  if (p.vetted_event_tags.length > 0 && hasAny(new Set(eventTags.map(lower)), p.vetted_event_tags)
    && !hasAny(new Set(attr.tags.map(lower)), p.vetted_attribute_tags)) {
    return out('event needs vetted attributes and this one carries no vetted tag');
  }
  const rule = ruleFor(p.rules, attr, tags);
  if (rule?.action === 'skip') return out(`rule ${rule.tag ?? ''}${rule.type ? ` type ${rule.type}` : ''} keeps it in MISP`);

  const tlp = tlpOf(attr.tags, eventTags);
  const { observables, skipped } = attributeObservables(attr.type, attr.value);
  const changes: IndicatorChange[] = [];
  for (const observable of observables) {
    let days = Math.min(MAX_EXPIRE_DAYS, p.expire_days_by_type[observable.type] ?? p.expire_days);
    if (tlp === 'TLP:CLEAR') days = Math.min(days, p.tlp_clear_expire_days);
    const firstSeen = attr.firstSeen ? Date.parse(attr.firstSeen) : NaN;
    const lastSeen = attr.lastSeen ? Date.parse(attr.lastSeen) : NaN;
    // From the attribute's timestamp (MISP2Defender's valid_from: stable until the attribute
    // changes), its first_seen, or today at day precision (a re-read the same day is the same claim).
    let from = Math.floor(now / DAY) * DAY;
    if (p.expire_from === 'first_seen' && !Number.isNaN(firstSeen)) from = firstSeen;
    if (p.expire_from === 'valid_from' && attr.timestamp > 0) from = attr.timestamp * 1000;
    if (p.use_last_seen && !Number.isNaN(lastSeen)) from = lastSeen;
    const until = from + days * DAY;
    if (until <= now) return out(`expired on ${new Date(until).toISOString()}`);
    const hints: SinkHints = { ownExpiry: true, generateAlert: p.generate_alert };
    const action = rule?.action ?? (p.action_from_tags ? actionFromTags(tags) : undefined) ?? p.action;
    if (action) hints.action = action;
    // severity_override replaces the event threat level (MISP2Defender's defender_severity); the
    // attribute's misp:threat-level tag still wins over it, as in the tool.
    const severity = rule?.severity
      ?? (p.severity_override ? severityFromTags(tags) ?? p.severity_override : undefined)
      ?? THREAT_LEVEL.get(event?.threatLevelId ?? '') ?? severityFromTags(tags) ?? p.severity;
    if (severity) hints.severity = severity;
    if (p.application) hints.application = p.application;
    if (p.recommended_actions) hints.recommendedActions = p.recommended_actions;
    const context = [
      attr.comment,
      attr.objectName ? `(was part of ${attr.objectName} object)` : '',
      event?.info ? `MISP event: ${event.info}` : `MISP event ${attr.eventId}`,
    ].filter(Boolean).join(' ');
    changes.push({
      observable,
      score: null,
      labels: claimLabels([...new Set([...attr.tags, ...eventTags])].filter((t) => !/^tlp:/i.test(t))),
      tlp,
      title: event?.info ? `${event.info}`.slice(0, 200) : `MISP ${attr.type} ${attr.value}`.slice(0, 200),
      description: clip(context, CLAIM_TEXT.description),
      validFrom: Number.isNaN(firstSeen) ? null : new Date(firstSeen).toISOString(),
      validUntil: new Date(until).toISOString(),
      sourceRef: { system: 'misp', id: attributeSourceId(attr.eventId, attr.uuid), url: `${p.url}/events/view/${attr.eventId}` },
      hints,
    });
  }
  return { changes, skipped, excluded: null };
}
