// Deterministic STIX ids as OpenCTI's Python client (pycti) computes them: uuid5 in OpenCTI's
// namespace over the canonical JSON (RFC 8785, keys sorted, no spaces) of the id-contributing
// properties. Sighting: pycti `StixSightingRelationship.generate_id(sighting_of_ref,
// where_sighted_refs, first_seen=None, last_seen=None)`; identity: `Identity.generate_id(name,
// identity_class)` with the name lower-cased and trimmed. See doc/sightings.md for the caveats.
import { createHash } from 'node:crypto';

/** OpenCTI's namespace for generated ids (pycti). */
export const OPENCTI_NAMESPACE = '00abedb4-aa42-466c-9c01-fed23315a9b7';

export function uuid5(name: string, namespace = OPENCTI_NAMESPACE): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(ns).update(Buffer.from(name, 'utf8')).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** Canonical JSON of strings, arrays and plain objects (what these ids hash). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * One sighting per indicator and tenant: the id leaves first/last seen out (pycti does too when
 * they are not given), so later alerts update it instead of making a second one.
 */
export function sightingId(sightingOfRef: string, whereSightedRefs: string[]): string {
  return `sighting--${uuid5(canonicalJson({ type: 'sighting', sighting_of_ref: sightingOfRef, where_sighted_refs: whereSightedRefs }))}`;
}

export function identityId(name: string, identityClass: string): string {
  return `identity--${uuid5(canonicalJson({ name: name.toLowerCase().trim(), identity_class: identityClass }))}`;
}
