// Validation and canonical forms of observables. Pure and total: any input gives a result or a
// typed rejection, never an exception.
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import type { Observable, ObservableType, Rejection } from './types.js';

export type ParseResult = { ok: true; observable: Observable } | { ok: false; rejection: Rejection };

const MAX_VALUE = 4096;
const HASH_LENGTH: Partial<Record<ObservableType, number>> = { md5: 32, sha1: 40, sha256: 64, 'cert-sha1': 40 };

function shown(value: string): string {
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 80 ? `${clean.slice(0, 77)}...` : clean;
}

const fail = (code: string, detail: string): ParseResult => ({ ok: false, rejection: { code, detail } });
const ok = (type: ObservableType, value: string): ParseResult => ({ ok: true, observable: { type, value } });

/** 4 or 6 for an IP address, 0 otherwise. */
export function isIpAddress(value: string): 4 | 6 | 0 {
  return isIPv4(value) ? 4 : isIPv6(value) ? 6 : 0;
}

/** Canonical (compressed, lower-case) IPv6 text, via the WHATWG URL parser's host serialiser. */
function canonicalIpv6(value: string): string | null {
  if (!isIPv6(value)) return null;
  try {
    return new URL(`http://[${value}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

/** The full 8-segment form Defender requires, e.g. 2001:4860:4860:0:0:0:0:8888. */
export function expandIpv6(value: string): string {
  const canonical = canonicalIpv6(value) ?? value.toLowerCase();
  let text = canonical;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -v4[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const missing = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((g) => g.replace(/^0+(?=.)/, '')).join(':');
}

function parseIp(type: 'ipv4' | 'ipv6', value: string): ParseResult {
  const slash = value.indexOf('/');
  let address = value;
  if (slash >= 0) {
    const prefix = value.slice(slash + 1);
    address = value.slice(0, slash);
    const full = type === 'ipv4' ? '32' : '128';
    if (prefix !== full) return fail('cidr_not_supported', `${shown(value)}: Defender takes single addresses, not ranges`);
  }
  if (type === 'ipv4') {
    if (!isIPv4(address)) return fail('invalid_ipv4', `${shown(value)} is not an IPv4 address`);
    return ok('ipv4', address);
  }
  const canonical = canonicalIpv6(address);
  return canonical ? ok('ipv6', canonical) : fail('invalid_ipv6', `${shown(value)} is not an IPv6 address`);
}

/** Lower-case ASCII (punycode) domain, no trailing dot; null when not a valid DNS name. */
export function canonicalDomain(value: string, requireDot: boolean): string | null {
  if (/[\s/:@?#\\]/.test(value)) return null;
  const trimmed = value.replace(/\.$/, '');
  if (!trimmed || trimmed.startsWith('.') || trimmed.includes('..')) return null;
  const ascii = domainToASCII(trimmed).toLowerCase();
  if (!ascii || ascii.length > 253) return null;
  const labels = ascii.split('.');
  if (requireDot && labels.length < 2) return null;
  const label = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
  if (!labels.every((l) => label.test(l))) return null;
  if (isIPv4(ascii)) return null;
  return ascii;
}

function parseUrl(value: string): ParseResult {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
  if (!hasScheme && /^[a-z][a-z0-9+.-]*:/i.test(value) && !/^[^/]+:\d+/.test(value)) {
    return fail('invalid_url', `${shown(value)}: only http, https and ftp URLs are supported`);
  }
  let url: URL;
  try {
    url = new URL(hasScheme ? value : `http://${value}`);
  } catch {
    return fail('invalid_url', `${shown(value)} is not a URL`);
  }
  if (!['http:', 'https:', 'ftp:'].includes(url.protocol)) return fail('invalid_url', `${shown(value)}: scheme ${url.protocol} not supported`);
  const host = url.hostname;
  const hostOk = host.startsWith('[') || isIPv4(host) || canonicalDomain(host, false) !== null;
  if (!host || !hostOk) return fail('invalid_url', `${shown(value)} has no valid host`);
  if (!hasScheme) return ok('url', value);
  // Keep the value as given (Defender matches the string) but lower-case scheme and host.
  const schemeEnd = value.indexOf('://') + 3;
  const rest = value.slice(schemeEnd);
  const hostEnd = rest.search(/[/?#]/);
  const authority = hostEnd < 0 ? rest : rest.slice(0, hostEnd);
  const at = authority.lastIndexOf('@');
  const lowered = at >= 0 ? authority.slice(0, at + 1) + authority.slice(at + 1).toLowerCase() : authority.toLowerCase();
  return ok('url', `${value.slice(0, schemeEnd).toLowerCase()}${lowered}${hostEnd < 0 ? '' : rest.slice(hostEnd)}`);
}

function parseEmail(value: string): ParseResult {
  const at = value.lastIndexOf('@');
  if (at <= 0 || at === value.length - 1) return fail('invalid_email', `${shown(value)} is not an email address`);
  const local = value.slice(0, at);
  const domain = canonicalDomain(value.slice(at + 1), true);
  if (!domain || /[\s<>()[\],;:"\\]/.test(local) || local.length > 64) return fail('invalid_email', `${shown(value)} is not an email address`);
  return ok('email', `${local}@${domain}`);
}

export function parseObservable(type: ObservableType, raw: unknown): ParseResult {
  if (typeof raw !== 'string') return fail('invalid_value', `${type} value must be a string, got ${raw === null ? 'null' : typeof raw}`);
  const value = raw.trim();
  if (!value) return fail('empty_value', `empty ${type} value`);
  if (value.length > MAX_VALUE) return fail('value_too_long', `${type} value of ${value.length} characters`);
  if (/[\u0000-\u001f\u007f]/.test(value)) return fail(`invalid_${type.replace('-', '_')}`, `${shown(value)} contains control characters`);
  switch (type) {
    case 'ipv4':
    case 'ipv6':
      return parseIp(type, value);
    case 'domain':
    case 'hostname': {
      const d = canonicalDomain(value, type === 'domain');
      return d ? ok(type, d) : fail('invalid_domain', `${shown(value)} is not a valid ${type}`);
    }
    case 'url':
      return parseUrl(value);
    case 'email':
      return parseEmail(value);
    case 'md5':
    case 'sha1':
    case 'sha256':
    case 'cert-sha1': {
      const len = HASH_LENGTH[type]!;
      const lower = value.toLowerCase();
      return new RegExp(`^[0-9a-f]{${len}}$`).test(lower) ? ok(type, lower) : fail('invalid_hash', `${shown(value)} is not a ${len}-digit hex ${type}`);
    }
    default:
      return fail('unsupported_type', `unknown observable type ${String(type)}`);
  }
}
