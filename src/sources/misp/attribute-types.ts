// MISP attribute types → observables. Composite types keep the part a sink can act on:
// `filename|sha256` → the hash, `ip-dst|port` → the address, `domain|ip` → both.
import { isIpAddress, parseObservable } from '../../core/observables.js';
import type { Observable, ObservableType, Rejection } from '../../core/types.js';

type Part = 'first' | 'second';
type Extract = { type: ObservableType | 'ip'; part: Part }[];

/** A Map: the type comes from the feed, and `constructor` must not find Object.prototype's. */
const TYPES = new Map<string, Extract>([
  ['ip-src', [{ type: 'ip', part: 'first' }]],
  ['ip-dst', [{ type: 'ip', part: 'first' }]],
  ['ip-src|port', [{ type: 'ip', part: 'first' }]],
  ['ip-dst|port', [{ type: 'ip', part: 'first' }]],
  ['domain', [{ type: 'domain', part: 'first' }]],
  ['hostname', [{ type: 'hostname', part: 'first' }]],
  ['hostname|port', [{ type: 'hostname', part: 'first' }]],
  ['domain|ip', [{ type: 'domain', part: 'first' }, { type: 'ip', part: 'second' }]],
  ['url', [{ type: 'url', part: 'first' }]],
  ['md5', [{ type: 'md5', part: 'first' }]],
  ['sha1', [{ type: 'sha1', part: 'first' }]],
  ['sha256', [{ type: 'sha256', part: 'first' }]],
  ['filename|md5', [{ type: 'md5', part: 'second' }]],
  ['filename|sha1', [{ type: 'sha1', part: 'second' }]],
  ['filename|sha256', [{ type: 'sha256', part: 'second' }]],
  ['x509-fingerprint-sha1', [{ type: 'cert-sha1', part: 'first' }]],
  ['email-src', [{ type: 'email', part: 'first' }]],
  ['email-dst', [{ type: 'email', part: 'first' }]],
]);

export const SUPPORTED_MISP_TYPES: readonly string[] = [...TYPES.keys()];

export interface AttributeObservables {
  observables: Observable[];
  skipped: Rejection[];
}

/** Split `value1|value2` at the first pipe (a filename may not contain one; a port never does). */
function parts(value: string): { first: string; second: string } {
  const i = value.indexOf('|');
  return i < 0 ? { first: value, second: '' } : { first: value.slice(0, i), second: value.slice(i + 1) };
}

export function attributeObservables(type: string, value: string): AttributeObservables {
  const spec = TYPES.get(type);
  if (!spec) {
    return { observables: [], skipped: [{ code: 'unsupported_type', detail: `MISP type ${JSON.stringify(type.slice(0, 60))} has no indicator mapping` }] };
  }
  const out: AttributeObservables = { observables: [], skipped: [] };
  const p = parts(value);
  for (const { type: t, part } of spec) {
    const raw = p[part].trim();
    if (!raw) {
      out.skipped.push({ code: 'empty_value', detail: `${type} without its ${part === 'first' ? 'first' : 'second'} value` });
      continue;
    }
    let obsType: ObservableType;
    if (t === 'ip') {
      const v = isIpAddress(raw.replace(/\/(32|128)$/, ''));
      obsType = v === 6 ? 'ipv6' : 'ipv4';
    } else {
      obsType = t;
    }
    const parsed = parseObservable(obsType, raw);
    if (parsed.ok) out.observables.push(parsed.observable);
    else out.skipped.push(parsed.rejection);
  }
  return out;
}
