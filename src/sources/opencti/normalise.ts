// OpenCTI stream event → NormalisedEvent. Pure and total: bad input becomes a rejection, never a throw.
// Dispatch is on the SSE event name (a filter-exit delete carries type "update"; recovery and
// dependency bodies carry no type at all).
import { parseObservable } from '../../core/observables.js';
import { CLAIM_TEXT, claimLabels, clip } from '../../core/raw-copy.js';
import type { IndicatorChange, NormalisedEvent, Observable, ObservableType, Rejection, SourceRef } from '../../core/types.js';
import { DEFAULT_PATTERN_LIMITS, extractObservables, type PatternLimits } from './stix-pattern/index.js';

const OCTI_EXT = 'extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba';
const SCO_EXT = 'extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82';

/** The standard TLP marking definitions (STIX 2.1 and OpenCTI ids). A Map: refs are untrusted keys. */
const TLP_BY_ID = new Map<string, string>([
  ['marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9', 'TLP:CLEAR'],
  ['marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da', 'TLP:GREEN'],
  ['marking-definition--f88d31f6-486f-44da-b317-01333bde0b82', 'TLP:AMBER'],
  ['marking-definition--826578e1-40ad-459f-bc73-ede076f81f37', 'TLP:AMBER+STRICT'],
  ['marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed', 'TLP:RED'],
]);
const TLP_RANK = ['TLP:CLEAR', 'TLP:WHITE', 'TLP:GREEN', 'TLP:AMBER', 'TLP:AMBER+STRICT', 'TLP:RED'];

type Json = Record<string, unknown>;

export interface NormaliseContext {
  openctiUrl: string;
  /** Marking definitions learnt from dependency events on this connection. */
  markings: Map<string, string>;
  patternLimits: PatternLimits;
}

export function createContext(openctiUrl: string, patternLimits: PatternLimits = DEFAULT_PATTERN_LIMITS): NormaliseContext {
  return { openctiUrl, markings: new Map(), patternLimits };
}

const empty = (sourceRef: SourceRef | null, changes: IndicatorChange[] = [], skipped: Rejection[] = []): NormalisedEvent => ({
  sourceRef, changes, retractAll: false, alsoRetract: [], skipped, rejected: null, ignored: null,
});

const reject = (sourceRef: SourceRef | null, code: string, detail: string, retractAll = false): NormalisedEvent =>
  ({ ...empty(sourceRef), rejected: { code, detail }, retractAll });

const ignore = (sourceRef: SourceRef | null, why: string): NormalisedEvent => ({ ...empty(sourceRef), ignored: why });

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);
/** Text passed on to sinks: a lone surrogate becomes U+FFFD (it cannot be stored as UTF-8). */
const text = (v: unknown): string | null => str(v)?.toWellFormed() ?? null;
/** A value named in a log or rejection: strings as they are, anything else by its kind (never `String(v)`). */
const kindOf = (v: unknown): string =>
  typeof v === 'string' ? JSON.stringify(v.slice(0, 60)) : v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : typeof v;

function ext(data: Json, id: string): Json {
  const exts = data['extensions'];
  return isObject(exts) && isObject(exts[id]) ? (exts[id] as Json) : {};
}

function score(...candidates: unknown[]): number | null {
  for (const c of candidates) {
    if (typeof c === 'number' && Number.isFinite(c)) return Math.max(0, Math.min(100, Math.round(c)));
  }
  return null;
}

function labelsOf(data: Json, sco: Json): string[] {
  const raw = Array.isArray(data['labels']) ? data['labels'] : Array.isArray(sco['labels']) ? sco['labels'] : [];
  return claimLabels(raw.filter((l): l is string => typeof l === 'string' && l.length > 0)).map((l) => l.toWellFormed());
}

function tlpOf(data: Json, ctx: NormaliseContext): string | null {
  const refs = Array.isArray(data['object_marking_refs']) ? data['object_marking_refs'] : [];
  let best: string | null = null;
  for (const ref of refs) {
    if (typeof ref !== 'string') continue;
    const tlp = TLP_BY_ID.get(ref) ?? ctx.markings.get(ref);
    if (tlp && (best === null || TLP_RANK.indexOf(tlp) > TLP_RANK.indexOf(best))) best = tlp;
  }
  return best;
}

function rememberMarking(data: Json, ctx: NormaliseContext): void {
  const id = str(data['id']);
  if (!id || data['type'] !== 'marking-definition') return;
  const name = str(data['name']);
  const def = isObject(data['definition']) ? data['definition'] : {};
  const tlp = str(def['tlp']);
  const label = name?.toUpperCase().startsWith('TLP:') ? name.toUpperCase() : tlp ? `TLP:${tlp.toUpperCase()}` : null;
  if (label) ctx.markings.set(id, label === 'TLP:WHITE' ? 'TLP:CLEAR' : label);
}

function sourceRefOf(data: Json, ctx: NormaliseContext): SourceRef | Rejection {
  const id = str(data['id']);
  if (!id) return { code: 'malformed_event', detail: 'data has no id' };
  const internal = str(ext(data, OCTI_EXT)['id']) ?? id;
  // A lone surrogate cannot be stored as UTF-8 or put in a URL (encodeURIComponent throws).
  if (!id.isWellFormed() || !internal.isWellFormed()) return { code: 'malformed_event', detail: 'id is not well-formed Unicode (lone surrogate)' };
  return { system: 'opencti', id, url: `${ctx.openctiUrl}/dashboard/id/${encodeURIComponent(internal)}` };
}

/** SCO type → how to read its value. Files give their strongest hash only (one Defender slot, not three). */
function observableOfSco(data: Json): { type: ObservableType; raw: unknown } | Rejection | null {
  switch (data['type']) {
    case 'ipv4-addr': return { type: 'ipv4', raw: data['value'] };
    case 'ipv6-addr': return { type: 'ipv6', raw: data['value'] };
    case 'domain-name': return { type: 'domain', raw: data['value'] };
    case 'hostname': return { type: 'hostname', raw: data['value'] };
    case 'url': return { type: 'url', raw: data['value'] };
    case 'email-addr': return { type: 'email', raw: data['value'] };
    case 'file':
    case 'x509-certificate': {
      const hashes = isObject(data['hashes']) ? data['hashes'] : {};
      const find = (...names: string[]) => {
        for (const [k, v] of Object.entries(hashes)) if (names.includes(k.toUpperCase().replace(/-/g, ''))) return v;
        return undefined;
      };
      if (data['type'] === 'x509-certificate') {
        const sha1 = find('SHA1');
        return sha1 !== undefined ? { type: 'cert-sha1', raw: sha1 } : { code: 'unsupported_hash', detail: 'certificate without a SHA-1 thumbprint' };
      }
      const sha256 = find('SHA256');
      if (sha256 !== undefined) return { type: 'sha256', raw: sha256 };
      const sha1 = find('SHA1');
      if (sha1 !== undefined) return { type: 'sha1', raw: sha1 };
      const md5 = find('MD5');
      if (md5 !== undefined) return { type: 'md5', raw: md5 };
      return { code: 'unsupported_hash', detail: `file without MD5/SHA-1/SHA-256 (has ${Object.keys(hashes).join(', ') || 'no hashes'})` };
    }
    default:
      return null;
  }
}

/** One change per observable of the object; what the object says about them is read once (a pattern may give several). */
function changes(observables: Observable[], data: Json, sco: Json, ctx: NormaliseContext, ref: SourceRef, score: number | null): IndicatorChange[] {
  const labels = labelsOf(data, sco);
  const tlp = tlpOf(data, ctx);
  const name = text(data['name']);
  const description = clip(text(data['description']) ?? text(sco['description']) ?? '', CLAIM_TEXT.description);
  const validFrom = text(data['valid_from']);
  const validUntil = text(data['valid_until']);
  return observables.map((observable) => ({
    observable, score, labels, tlp, title: clip(name ?? observable.value, CLAIM_TEXT.title), description, validFrom, validUntil, sourceRef: ref,
  }));
}

function normaliseIndicator(data: Json, ctx: NormaliseContext, ref: SourceRef): NormalisedEvent {
  const patternType = str(data['pattern_type']) ?? 'stix';
  if (!patternType.toLowerCase().startsWith('stix')) return ignore(ref, `pattern_type ${patternType} carries no STIX observable`);
  const extracted = extractObservables(data['pattern'], ctx.patternLimits);
  if (!extracted.ok) return reject(ref, extracted.rejection.code, extracted.rejection.detail, true);
  const s = score(ext(data, OCTI_EXT)['score'], data['x_opencti_score']);
  if (extracted.observables.length === 0) {
    const why = extracted.skipped.map((k) => `${k.code}: ${k.detail}`).join('; ') || 'pattern has no equality comparison';
    return reject(ref, 'no_supported_observable', why, true);
  }
  return empty(ref, changes(extracted.observables, data, {}, ctx, ref, s), extracted.skipped);
}

function normaliseObservable(data: Json, ctx: NormaliseContext, ref: SourceRef): NormalisedEvent {
  const which = observableOfSco(data);
  if (which === null) return ignore(ref, `type ${kindOf(data['type'])} is neither an indicator nor a supported observable`);
  if ('code' in which) return reject(ref, which.code, which.detail, true);
  const parsed = parseObservable(which.type, which.raw);
  if (!parsed.ok) return reject(ref, parsed.rejection.code, parsed.rejection.detail, true);
  const sco = ext(data, SCO_EXT);
  const s = score(sco['score'], ext(data, OCTI_EXT)['score'], data['x_opencti_score']);
  return empty(ref, changes([parsed.observable], data, sco, ctx, ref, s));
}

/** An event the stream dropped unread because it passed `limits.sse_event_bytes`. */
export function oversizeEvent(bytes: number, limit: number): NormalisedEvent {
  return reject(null, 'event_too_large', `stream event of ${bytes} bytes (limits.sse_event_bytes ${limit})`);
}

/** Normalise one SSE message (`event:` name and raw `data:` text). */
export function normaliseEvent(eventName: string, rawData: string, ctx: NormaliseContext): NormalisedEvent {
  let body: unknown;
  try {
    body = JSON.parse(rawData);
  } catch {
    return reject(null, 'malformed_event', `data is not JSON: ${rawData.slice(0, 120)}`);
  }
  if (!isObject(body) || !isObject(body['data'])) return reject(null, 'malformed_event', 'event body has no data object');
  const data = body['data'];
  const ref = sourceRefOf(data, ctx);
  if ('code' in ref) return reject(null, ref.code, ref.detail);
  rememberMarking(data, ctx);

  switch (eventName) {
    case 'delete':
      // Also the filter-exit case (body type "update"): the object left the stream.
      return { ...empty(ref), retractAll: true };
    case 'create':
    case 'update':
    case 'merge': {
      const merged = eventName === 'merge' && isObject(body['context']) && Array.isArray(body['context']['sources'])
        ? (body['context']['sources'] as unknown[]).filter(isObject).map((s) => str(s['id'])).filter((id): id is string => !!id && id !== ref.id)
        : [];
      let result: NormalisedEvent;
      if (typeof data['type'] !== 'string') return reject(ref, 'malformed_event', `type is ${kindOf(data['type'])}, not a STIX type name`, true);
      if (data['revoked'] === true) result = { ...empty(ref), retractAll: true, withdrawn: eventName === 'create' ? 'revoked on create: nothing sent' : 'revoked' };
      else if (data['type'] === 'indicator') result = normaliseIndicator(data, ctx, ref);
      else result = normaliseObservable(data, ctx, ref);
      // Every branch above built `result` afresh: setting the field costs less than copying the object.
      result.alsoRetract = merged;
      return result;
    }
    default:
      return ignore(ref, `event ${eventName} is not handled`);
  }
}
