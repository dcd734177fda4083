// STIX 2.1 building blocks for the Sentinel sink: deterministic ids, comparison patterns with
// correct string escaping, and the standard TLP marking-definition ids.
import { createHash } from 'node:crypto';
import type { Observable, ObservableType } from '../../core/types.js';

/** Namespace of ThreatBridge's UUIDv5 ids (fixed forever: changing it would duplicate every object in Sentinel). */
const NAMESPACE = 'f3c0a7a2-5d0e-4c35-9c8e-2b7d6a9e41b1';

/** RFC 4122 version-5 UUID (SHA-1 of namespace bytes + name). */
export function uuidv5(name: string, namespace = NAMESPACE): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const hash = createHash('sha1').update(ns).update(name, 'utf8').digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const h = hash.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * The STIX id of the indicator a sink holds for one observable key. It depends on the sink and the
 * key only, never on the source object: one OpenCTI indicator can assert several observables and
 * several sources can assert one observable, so a source id would either collide or change hands.
 */
export function indicatorIdFor(sink: string, key: string): string {
  return `indicator--${uuidv5(`threatbridge:${sink}:${key}`)}`;
}

/** A STIX pattern string literal: backslash and quote escaped (STIX 2.1 patterning, 9.3). */
export function stixString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

const PATH: Record<ObservableType, string> = {
  ipv4: 'ipv4-addr:value',
  ipv6: 'ipv6-addr:value',
  domain: 'domain-name:value',
  hostname: 'domain-name:value',
  url: 'url:value',
  md5: 'file:hashes.MD5',
  sha1: "file:hashes.'SHA-1'",
  sha256: "file:hashes.'SHA-256'",
  email: 'email-addr:value',
  'cert-sha1': "x509-certificate:hashes.'SHA-1'",
};

/** `[ipv4-addr:value = '198.51.100.7']` for one observable. */
export function patternFor(o: Observable): string {
  return `[${PATH[o.type]} = ${stixString(o.value)}]`;
}

/** TLP name → STIX marking id. A Map: the name comes from a source's markings or tags. */
export const TLP_MARKINGS = new Map<string, string>([
  ['TLP:CLEAR', 'marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9'],
  ['TLP:WHITE', 'marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9'],
  ['TLP:GREEN', 'marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da'],
  ['TLP:AMBER', 'marking-definition--f88d31f6-486f-44da-b317-01333bde0b82'],
  ['TLP:AMBER+STRICT', 'marking-definition--826578e1-40ad-459f-bc73-ede076f81f37'],
  ['TLP:RED', 'marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed'],
]);

/** STIX timestamps: RFC 3339 UTC with milliseconds. */
export function stixTime(ms: number): string {
  return new Date(ms).toISOString();
}
