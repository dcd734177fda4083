// Validation and canonicalisation of observable values (IP, domain, URL, hash, e-mail).
//
// Pure and total: parseObservable never throws, whatever it is given. Every source funnels its
// values through here so that the same indicator from OpenCTI and MISP gets the same sink key.
//
// Decisions (see tests for the executable form):
// - IPv4: strict dotted quad. Octets with leading zeros (`01.2.3.4`) are rejected: inet_aton reads
//   them as octal, other parsers as decimal, so the address they name is ambiguous. Short, hex and
//   integer forms (`127.1`, `0x7f.0.0.1`, `2130706433`) are rejected for the same reason.
// - CIDR: Defender takes no ranges, so `a.b.c.d/n` is `cidr_not_supported` unless n is 32 (IPv6: 128),
//   which names one address and becomes the plain address.
// - IPv6: RFC 5952 compressed lower-case form; an embedded dotted quad (`::ffff:1.2.3.4`) is rewritten
//   as two hex groups so each address has exactly one spelling. Zone ids and brackets are rejected.
// - Domains/hostnames: lower-case, one trailing dot dropped, IDN to punycode. Underscores are allowed
//   (not LDH, but common in malicious subdomains). A last label made only of digits is refused: that
//   is an IP address (or a typo), never a registrable name.
// - URLs: kept as given (Defender matches strings) except scheme and host, which are lower-cased
//   (host also punycoded, trailing dot dropped). A scheme-less value stays scheme-less.
// - E-mail: local part kept as given (it is case-sensitive by RFC 5321), domain canonicalised.
// - Any value with whitespace, control characters or lone surrogates inside is rejected: the WHATWG
//   URL parser silently drops tabs/newlines, so `ev\nil.com` would otherwise validate as `evil.com`.
import { isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import type { Observable, ObservableType, Rejection } from './types.js';

export type ParseObservableResult =
  | { ok: true; observable: Observable }
  | { ok: false; rejection: Rejection };

/** Longer values are refused before any parsing: no real indicator is this long. */
export const MAX_VALUE_LENGTH = 8192;

const HASH_LENGTHS: Record<'md5' | 'sha1' | 'sha256' | 'cert-sha1', number> = {
  md5: 32,
  sha1: 40,
  sha256: 64,
  'cert-sha1': 40,
};

const INVALID_CODE: Record<ObservableType, string> = {
  ipv4: 'invalid_ipv4',
  ipv6: 'invalid_ipv6',
  domain: 'invalid_domain',
  hostname: 'invalid_hostname',
  url: 'invalid_url',
  md5: 'invalid_hash',
  sha1: 'invalid_hash',
  sha256: 'invalid_hash',
  'cert-sha1': 'invalid_hash',
  email: 'invalid_email',
};

const LABELS: Record<ObservableType, string> = {
  ipv4: 'IPv4 address',
  ipv6: 'IPv6 address',
  domain: 'domain name',
  hostname: 'hostname',
  url: 'URL',
  md5: 'MD5 hash',
  sha1: 'SHA-1 hash',
  sha256: 'SHA-256 hash',
  'cert-sha1': 'certificate SHA-1 thumbprint',
  email: 'e-mail address',
};

const WEB_SCHEMES = new Set(['http', 'https', 'ftp']);

// C0, DEL and C1 controls, or a surrogate half without its partner.
const CONTROL_OR_LONE_SURROGATE =
  /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const WHITESPACE = /\s/;
const IPV4_SHAPE = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const IPV4_STRICT = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;
// What the WHATWG host parser would read as an IPv4 number (decimal, octal or 0x-hex).
const NUMERIC_LABEL = /^(?:\d+|0[xX][0-9a-fA-F]*)$/;
const ASCII_ONLY = /^[\x00-\x7f]*$/;
const HOST_ASCII_CHARS = /^[a-zA-Z0-9._-]*$/;
// Dot-atom local part; non-ASCII characters allowed as in RFC 6531.
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+)*$/;

type Step<T> = { ok: true; value: T } | { ok: false; reason: string; code?: string };

const ok = <T>(value: T): Step<T> => ({ ok: true, value });
const fail = <T = never>(reason: string, code?: string): Step<T> =>
  code === undefined ? { ok: false, reason } : { ok: false, reason, code };

/** Quotes a value for a rejection detail: truncated, with control characters escaped. */
export function quoteValue(value: string, max = 120): string {
  const cut = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(cut);
}

function describeNonString(raw: unknown): string {
  if (raw === null) return 'null';
  if (Array.isArray(raw)) return 'array';
  if (typeof raw === 'number' || typeof raw === 'boolean' || typeof raw === 'bigint') {
    return `${typeof raw} ${String(raw)}`;
  }
  return typeof raw;
}

function isObservableType(type: unknown): type is ObservableType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(INVALID_CODE, type);
}

/**
 * Validates `raw` as an observable of `type` and returns its canonical form, or a typed rejection.
 * Never throws.
 */
export function parseObservable(type: ObservableType, raw: unknown): ParseObservableResult {
  try {
    return parseUnsafe(type, raw);
  } catch (error) {
    // Defence in depth: a bug here must cost one value, not the whole event stream.
    const message = error instanceof Error ? error.message : 'unknown error';
    return { ok: false, rejection: { code: 'internal_error', detail: `could not parse value: ${message}` } };
  }
}

function parseUnsafe(type: ObservableType, raw: unknown): ParseObservableResult {
  if (!isObservableType(type)) {
    const shown = typeof type === 'string' ? quoteValue(type) : typeof type;
    return reject('unsupported_type', `unknown observable type ${shown}`);
  }
  if (typeof raw !== 'string') {
    return reject('not_a_string', `${LABELS[type]} must be a string, got ${describeNonString(raw)}`);
  }
  const value = raw.trim();
  if (value === '') return reject('empty_value', `${LABELS[type]} is empty`);
  if (value.length > MAX_VALUE_LENGTH) {
    return reject('value_too_long', `${LABELS[type]} is ${value.length} characters (max ${MAX_VALUE_LENGTH}): ${quoteValue(value)}`);
  }
  if (CONTROL_OR_LONE_SURROGATE.test(value) || WHITESPACE.test(value)) {
    return invalid(type, value, 'contains whitespace, control characters or invalid Unicode');
  }
  const step = canonicalise(type, value);
  if (!step.ok) return invalid(type, value, step.reason, step.code);
  return { ok: true, observable: { type, value: step.value } };
}

function canonicalise(type: ObservableType, value: string): Step<string> {
  switch (type) {
    case 'ipv4':
      return canonicalIpv4(value);
    case 'ipv6':
      return canonicalIpv6(value);
    case 'domain':
      return canonicalHost(value, true);
    case 'hostname':
      return canonicalHost(value, false);
    case 'url':
      return canonicalUrl(value);
    case 'email':
      return canonicalEmail(value);
    case 'md5':
    case 'sha1':
    case 'sha256':
    case 'cert-sha1':
      return canonicalHash(value, HASH_LENGTHS[type]);
  }
}

function reject(code: string, detail: string): ParseObservableResult {
  return { ok: false, rejection: { code, detail } };
}

function invalid(type: ObservableType, value: string, reason: string, code?: string): ParseObservableResult {
  return reject(code ?? INVALID_CODE[type], `invalid ${LABELS[type]} ${quoteValue(value)}: ${reason}`);
}

// ---------------------------------------------------------------------------------------------
// IP addresses

/** Splits `addr/prefix`; `prefix` is null when there is no slash. */
function splitPrefix(value: string): { addr: string; prefix: string | null } {
  const slash = value.indexOf('/');
  if (slash < 0) return { addr: value, prefix: null };
  return { addr: value.slice(0, slash), prefix: value.slice(slash + 1) };
}

/** Resolves a CIDR suffix: the full-length prefix names one address, any other is a range. */
function checkPrefix(prefix: string | null, bits: number): Step<null> {
  if (prefix === null) return ok(null);
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > bits) return fail(`bad prefix length "/${prefix}"`);
  if (Number(prefix) === bits) return ok(null);
  return fail(`CIDR ranges are not supported by Defender (only /${bits})`, 'cidr_not_supported');
}

function canonicalIpv4(value: string): Step<string> {
  const { addr, prefix } = splitPrefix(value);
  const address = checkIpv4Address(addr);
  if (!address.ok) return address;
  const cidr = checkPrefix(prefix, 32);
  return cidr.ok ? address : cidr;
}

function checkIpv4Address(addr: string): Step<string> {
  if (IPV4_STRICT.test(addr)) return ok(addr);
  if (!IPV4_SHAPE.test(addr)) return fail('expected a dotted quad a.b.c.d');
  const octets = addr.split('.');
  if (octets.some((o) => o.length > 1 && o.startsWith('0'))) {
    return fail('octets with leading zeros are ambiguous (octal in some parsers)');
  }
  return fail('octet out of range 0-255');
}

function canonicalIpv6(value: string): Step<string> {
  const { addr, prefix } = splitPrefix(value);
  if (addr.includes('%')) return fail('zone indexes are not allowed');
  const groups = ipv6Groups(addr);
  if (groups === null) return fail('not a valid IPv6 address');
  const cidr = checkPrefix(prefix, 128);
  return cidr.ok ? ok(compressIpv6(groups)) : cidr;
}

/** The eight 16-bit groups of an IPv6 address, or null when it is not one (zone ids refused). */
function ipv6Groups(addr: string): number[] | null {
  if (addr.includes('%') || !isIPv6(addr)) return null;
  const halves = addr.split('::');
  if (halves.length > 2) return null;
  const head = parseGroupList(halves[0] ?? '');
  const tail = halves.length === 2 ? parseGroupList(halves[1] ?? '') : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/** Parses `a:b:c` (possibly ending in a dotted quad) into 16-bit numbers. */
function parseGroupList(text: string): number[] | null {
  if (text === '') return [];
  const groups: number[] = [];
  const parts = text.split(':');
  for (const [i, part] of parts.entries()) {
    if (part.includes('.') && i === parts.length - 1) {
      if (!IPV4_STRICT.test(part)) return null;
      const [a = 0, b = 0, c = 0, d = 0] = part.split('.').map(Number);
      groups.push(a * 256 + b, c * 256 + d);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return null;
    }
  }
  return groups;
}

/** RFC 5952: lower-case, no leading zeros, the longest run (≥2) of zero groups as `::`, first on a tie. */
function compressIpv6(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j += 1;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLength).join(':');
  return `${head}::${tail}`;
}

/**
 * The full eight-group form Defender requires (`2001:4860:4860:0:0:0:0:8888`): lower-case, no
 * leading zeros. Meant for values that already passed parseObservable. Total like the rest of the
 * module: a value that is not an IPv6 address comes back unchanged, for the sink to reject.
 */
export function expandIpv6(value: string): string {
  const groups = typeof value === 'string' ? ipv6Groups(value) : null;
  return groups === null ? value : groups.map((g) => g.toString(16)).join(':');
}

/** 4 or 6 when `value` is exactly a (strict, prefix-free) IPv4 or IPv6 address, else 0. */
export function isIpAddress(value: string): 4 | 6 | 0 {
  if (typeof value !== 'string') return 0;
  if (IPV4_STRICT.test(value)) return 4;
  return ipv6Groups(value) === null ? 0 : 6;
}

// ---------------------------------------------------------------------------------------------
// Domains and hostnames

/** Canonical host name; `requireDot` separates a domain from a (possibly single-label) hostname. */
function canonicalHost(value: string, requireDot: boolean): Step<string> {
  if (value.includes('://') || value.includes('/')) return fail("contains '/': looks like a URL, not a host name");
  if (value.includes('@')) return fail("contains '@': looks like an e-mail address");
  if (value.includes(':')) return fail("contains ':': a host:port or an IPv6 address, not a host name");
  if (value.includes('*')) return fail('wildcards are not supported');
  const trimmedDot = value.endsWith('.') ? value.slice(0, -1) : value;
  if (trimmedDot === '') return fail('no labels');
  const ascii = toAsciiHost(trimmedDot);
  if (!ascii.ok) return ascii;
  return checkLabels(ascii.value, requireDot);
}

function toAsciiHost(value: string): Step<string> {
  // Checked before domainToASCII, which would otherwise percent-decode and read numbers as IPv4.
  const asciiChars = value.replace(/[^\x00-\x7f]/g, '');
  if (!HOST_ASCII_CHARS.test(asciiChars)) return fail('contains characters not allowed in a host name');
  if (lastLabelNumeric(value)) return fail('ends in a numeric label (an IP address is not a host name)');
  if (ASCII_ONLY.test(value)) return ok(value.toLowerCase());
  const converted = domainToASCII(value);
  if (converted === '') return fail('not a valid internationalised domain name');
  return ok(converted.endsWith('.') ? converted.slice(0, -1) : converted);
}

function lastLabelNumeric(value: string): boolean {
  const last = value.slice(value.lastIndexOf('.') + 1);
  return NUMERIC_LABEL.test(last);
}

function checkLabels(host: string, requireDot: boolean): Step<string> {
  if (host.length > 253) return fail(`longer than 253 characters (${host.length})`);
  const labels = host.split('.');
  if (labels.some((l) => l === '')) return fail('empty label (consecutive dots)');
  if (labels.some((l) => l.length > 63)) return fail('a label is longer than 63 characters');
  if (!labels.every((l) => LABEL.test(l))) return fail('a label starts or ends with a hyphen or has an invalid character');
  if (lastLabelNumeric(host)) return fail('ends in a numeric label (an IP address is not a host name)');
  if (requireDot && labels.length < 2) return fail('a domain needs at least one dot');
  if (labels.some((l) => l.startsWith('xn--')) && domainToASCII(host) !== host) {
    return fail('invalid punycode label');
  }
  return ok(host);
}

// ---------------------------------------------------------------------------------------------
// URLs

const SCHEME_WITH_SLASHES = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;
// `mailto:`, `javascript:`: a scheme without `//`. No dots and no digit after the colon, so that
// `evil.com:8080/x` stays a scheme-less host:port.
const OPAQUE_SCHEME = /^([a-zA-Z][a-zA-Z0-9+-]*):(?!\d)/;

interface UrlParts {
  scheme: string | null;
  userinfo: string;
  hostport: string;
  rest: string;
}

function canonicalUrl(value: string): Step<string> {
  const parts = splitUrl(value);
  if (!parts.ok) return parts;
  const { scheme, userinfo, hostport, rest } = parts.value;
  if (scheme === null && userinfo !== '') return fail('no scheme and a user part: does not look like host/path');
  const host = canonicalUrlHost(hostport, scheme !== null);
  if (!host.ok) return host;
  const candidate = `${scheme === null ? '' : `${scheme}://`}${userinfo}${host.value}${rest}`;
  // The final word is the WHATWG parser browsers use, and the guard reads URLs with it too: a value
  // it reads with another host (`http://evil.example\\@microsoft.com/` is evil.example to a browser,
  // microsoft.com to a split on '@') would be judged on one host and enforced on another.
  const read = readUrl(candidate);
  if (!read) return fail('not parseable as a URL');
  const ours = splitHostPort(host.value);
  const ourHost = ours.ok ? ours.value.host.replace(/^\[|\]$/g, '') : host.value;
  const theirs = read.hostname.replace(/^\[|\]$/g, '');
  if (theirs !== ourHost) return fail(`ambiguous URL: browsers read host "${theirs}", the authority names "${ourHost}"`);
  return ok(candidate);
}

/** The one reading of a URL value (WHATWG, as browsers); a scheme-less value is read as http. */
export function readUrl(value: string): URL | null {
  try {
    return new URL(SCHEME_WITH_SLASHES.test(value) ? value : `http://${value}`);
  } catch {
    return null;
  }
}

function splitUrl(value: string): Step<UrlParts> {
  let scheme: string | null = null;
  let remainder = value;
  const explicit = SCHEME_WITH_SLASHES.exec(value);
  if (explicit) {
    scheme = (explicit[1] ?? '').toLowerCase();
    if (!WEB_SCHEMES.has(scheme)) return fail(`scheme "${scheme}" is not supported (http, https, ftp only)`, 'unsupported_scheme');
    remainder = value.slice(explicit[0].length);
  } else {
    const opaque = OPAQUE_SCHEME.exec(value);
    if (opaque) {
      const name = (opaque[1] ?? '').toLowerCase();
      if (WEB_SCHEMES.has(name)) return fail(`expected "//" after "${name}:"`);
      return fail(`scheme "${name}" is not supported (http, https, ftp only)`, 'unsupported_scheme');
    }
  }
  const end = remainder.search(/[/?#]/);
  const authority = end < 0 ? remainder : remainder.slice(0, end);
  const rest = end < 0 ? '' : remainder.slice(end);
  const at = authority.lastIndexOf('@');
  return ok({ scheme, userinfo: authority.slice(0, at + 1), hostport: authority.slice(at + 1), rest });
}

/** Lower-cases (and punycodes) the host, keeps the port as given. */
function canonicalUrlHost(hostport: string, hasScheme: boolean): Step<string> {
  const split = splitHostPort(hostport);
  if (!split.ok) return split;
  const { host, port } = split.value;
  if (port !== null && !(/^\d{1,5}$/.test(port) && Number(port) <= 65535)) return fail(`bad port "${port}"`);
  const portText = port === null ? '' : `:${port}`;
  if (host === '') return fail('missing host');
  if (host.startsWith('[')) {
    const v6 = canonicalIpv6(host.slice(1, -1));
    return v6.ok ? ok(`[${v6.value}]${portText}`) : fail(`bad IPv6 host: ${v6.reason}`);
  }
  if (IPV4_SHAPE.test(host)) {
    const v4 = checkIpv4Address(host);
    return v4.ok ? ok(`${v4.value}${portText}`) : fail(`bad IPv4 host: ${v4.reason}`);
  }
  // Without a scheme only something that clearly is a domain makes the value a URL.
  const name = canonicalHost(host, !hasScheme);
  return name.ok ? ok(`${name.value}${portText}`) : fail(`bad host: ${name.reason}`);
}

function splitHostPort(hostport: string): Step<{ host: string; port: string | null }> {
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']');
    if (close < 0) return fail('unterminated IPv6 host');
    const after = hostport.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) return fail('garbage after IPv6 host');
    return ok({ host: hostport.slice(0, close + 1), port: after === '' ? null : after.slice(1) });
  }
  const colon = hostport.lastIndexOf(':');
  if (colon < 0) return ok({ host: hostport, port: null });
  return ok({ host: hostport.slice(0, colon), port: hostport.slice(colon + 1) });
}

// ---------------------------------------------------------------------------------------------
// Hashes and e-mail

function canonicalHash(value: string, length: number): Step<string> {
  const lower = value.toLowerCase();
  if (!/^[0-9a-f]*$/.test(lower)) return fail('contains non-hexadecimal characters');
  if (lower.length !== length) return fail(`expected ${length} hex characters, got ${lower.length}`);
  return ok(lower);
}

function canonicalEmail(value: string): Step<string> {
  const at = value.lastIndexOf('@');
  if (at < 0) return fail("missing '@'");
  const local = value.slice(0, at);
  if (local === '') return fail('empty local part');
  if (local.length > 64) return fail('local part longer than 64 characters');
  if (!LOCAL_PART.test(local)) return fail('local part has invalid characters or dots');
  const domain = canonicalHost(value.slice(at + 1), true);
  if (!domain.ok) return fail(`bad domain: ${domain.reason}`);
  const result = `${local}@${domain.value}`;
  return result.length > 254 ? fail('longer than 254 characters') : ok(result);
}
