// Pure mapping of a claim to the STIX 2.1 indicator Sentinel holds for its observable key, and of a
// removal to the same object revoked. The Graph tiIndicators script's options map as follows:
// action and passive_only become labels (STIX has no action field), days_to_expire becomes
// valid_until, TLP becomes object_marking_refs, the score becomes confidence.
import type { IndicatorChange, ObservableType } from '../../core/types.js';
import type { SentinelAction } from './config.js';
import { indicatorIdFor, patternFor, stixTime, TLP_MARKINGS } from './stix.js';

export interface SentinelMapping {
  sink: string;
  action?: SentinelAction;
  passiveOnly: boolean;
  daysToExpire: number;
  minScore: number;
  labels: string[];
}

export interface StixExternalReference {
  source_name: string;
  external_id?: string;
  url?: string;
  description?: string;
}

/** One STIX 2.1 indicator as uploaded (only the properties we set). */
export interface StixIndicator {
  type: 'indicator';
  spec_version: '2.1';
  id: string;
  created: string;
  modified: string;
  name: string;
  description?: string;
  pattern: string;
  pattern_type: 'stix';
  pattern_version: '2.1';
  valid_from: string;
  valid_until: string;
  labels: string[];
  confidence?: number;
  revoked?: boolean;
  object_marking_refs?: string[];
  external_references: StixExternalReference[];
}

export type SentinelMapResult =
  | { kind: 'upsert'; object: StixIndicator; reason: string }
  | { kind: 'delete'; reason: string };

/**
 * A source's wanted action (a MISP rule or course-of-action tag, in Defender's names) in
 * Sentinel's terms: anything that blocks is `block`, `Allowed` is `allow`, the rest alerts.
 */
function sentinelActionOf(wanted: string): SentinelAction | null {
  const a = wanted.toLowerCase();
  if (['block', 'blockandremediate', 'alertandblock'].includes(a)) return 'block';
  if (['allowed', 'allow'].includes(a)) return 'allow';
  if (['audit', 'warn', 'alert', 'alertonly'].includes(a)) return 'alert';
  return null;
}

export function actionFor(change: IndicatorChange, m: SentinelMapping): { action: SentinelAction; why: string } {
  if (m.passiveOnly) return { action: 'alert', why: 'passive_only' };
  if (m.action) return { action: m.action, why: 'configured action' };
  const fromSource = change.hints?.action ? sentinelActionOf(change.hints.action) : null;
  if (fromSource) return { action: fromSource, why: `${change.sourceRef.system} rule or tag (${change.hints!.action})` };
  if (change.score !== null && change.score >= 60) return { action: 'block', why: `score ${change.score}` };
  return { action: 'alert', why: change.score === null ? 'no score' : `score ${change.score}` };
}

const ACTION_LABEL = /^action:/;

/** The action an object's labels carry (`action:block`), or '' when none. */
export function sentinelAction(object: StixIndicator): string {
  return object.labels.find((l) => ACTION_LABEL.test(l))?.slice('action:'.length) ?? '';
}

/** The object with another action label (a guard downgrade: block → alert). */
export function withSentinelAction(object: StixIndicator, action: string): StixIndicator {
  return { ...object, labels: [...object.labels.filter((l) => !ACTION_LABEL.test(l)), `action:${action}`] };
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function mapToSentinel(key: string, change: IndicatorChange, m: SentinelMapping, now: number): SentinelMapResult {
  if (change.score !== null && change.score < m.minScore) {
    return { kind: 'delete', reason: `score ${change.score} below min_score ${m.minScore}` };
  }
  let until = now + m.daysToExpire * 86_400_000;
  const sourceUntil = change.validUntil ? Date.parse(change.validUntil) : NaN;
  // A source with its own expiry policy (MISP's expire_days) replaces the sink's default days.
  if (!Number.isNaN(sourceUntil) && (sourceUntil < until || change.hints?.ownExpiry)) until = sourceUntil;
  if (until <= now) return { kind: 'delete', reason: `expired (valid_until ${change.validUntil})` };
  // valid_from must precede valid_until; a source date in the future or unreadable falls back to now.
  const sourceFrom = change.validFrom ? Date.parse(change.validFrom) : NaN;
  const from = !Number.isNaN(sourceFrom) && sourceFrom < until ? sourceFrom : Math.min(now, until - 1000);

  const { action, why } = actionFor(change, m);
  const labels = [...new Set([change.sourceRef.system, ...m.labels, ...change.labels, `action:${action}`, ...(m.passiveOnly ? ['passive-only'] : [])])]
    .filter((l) => l.trim() !== '');
  const ref: StixExternalReference = { source_name: change.sourceRef.system, external_id: change.sourceRef.id };
  if (change.sourceRef.url) ref.url = change.sourceRef.url;
  const object: StixIndicator = {
    type: 'indicator',
    spec_version: '2.1',
    id: indicatorIdFor(m.sink, key),
    created: stixTime(now),
    modified: stixTime(now),
    name: truncate(change.title || change.observable.value, 256),
    pattern: patternFor(change.observable),
    pattern_type: 'stix',
    pattern_version: '2.1',
    valid_from: stixTime(from),
    valid_until: stixTime(until),
    labels,
    external_references: [ref],
  };
  if (change.description) object.description = truncate(change.description, 4000);
  if (change.score !== null) object.confidence = Math.max(0, Math.min(100, Math.round(change.score)));
  const marking = typeof change.tlp === 'string' ? TLP_MARKINGS.get(change.tlp.toUpperCase()) : undefined;
  if (marking) object.object_marking_refs = [marking];
  return { kind: 'upsert', object, reason: `${action} (${why})` };
}

/** What the sink records per key after an upload (the sink id): enough to version the object later. */
export interface SentinelRecord {
  id: string;
  created: string;
  valid_from: string;
}

export function parseRecord(text: string | undefined): SentinelRecord | null {
  if (!text) return null;
  try {
    const r = JSON.parse(text) as Partial<SentinelRecord>;
    return typeof r.id === 'string' && typeof r.created === 'string' && typeof r.valid_from === 'string' ? (r as SentinelRecord) : null;
  } catch {
    return null;
  }
}

/**
 * The revoked version of the indicator Sentinel holds for a key: same id and created, a later
 * modified, `revoked: true` and valid_until now. The upload API has no delete call; a newer
 * version of the same id replaces the old one.
 */
export function revokedVersion(key: string, record: SentinelRecord, reason: string, now: number): StixIndicator {
  const sep = key.indexOf(':');
  const observable = { type: key.slice(0, sep) as ObservableType, value: key.slice(sep + 1) };
  const from = Date.parse(record.valid_from);
  const created = Date.parse(record.created);
  return {
    type: 'indicator',
    spec_version: '2.1',
    id: record.id,
    created: record.created,
    modified: stixTime(Number.isNaN(created) ? now : Math.max(now, created + 1)),
    name: observable.value,
    description: `Revoked by ThreatBridge: ${reason}`,
    pattern: patternFor(observable),
    pattern_type: 'stix',
    pattern_version: '2.1',
    valid_from: record.valid_from,
    valid_until: stixTime(Number.isNaN(from) || from < now ? now : from + 1000),
    labels: ['revoked'],
    revoked: true,
    external_references: [{ source_name: 'threatbridge', description: reason }],
  };
}
