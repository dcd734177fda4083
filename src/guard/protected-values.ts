// The protected-values matcher: does an observable touch something that must never be blocked?
// Domains match in both directions (a Block on a domain covers its subdomains in Defender, so a
// Block on "microsoft.com" or "com" hits "update.microsoft.com"); IPs match exact or by CIDR; a URL
// is protected when its host is, or when it falls under a protected URL (same host, same port when
// the entry names one, path under the entry's path); hashes match exactly.
import { parseObservable, readUrl } from '../core/observables.js';
import type { Observable } from '../core/types.js';
import { parseCidr, parseIp, type Cidr } from './addresses.js';

export interface ProtectedEntry {
  value: string;
  /** Where it comes from: "builtin", "config", or the list file's path. */
  origin: string;
  why?: string;
}

export interface ProtectedHit {
  /** The entry as written. */
  entry: string;
  origin: string;
  why?: string;
}

interface UrlEntry {
  host: string;
  port: string | null;
  path: string;
  hit: ProtectedHit;
}

const HASH = /^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})$/i;

/** A URL's host (canonical), effective port ("" when the scheme is unknown) and path, read by readUrl. */
export function urlParts(canonical: string): { host: string; port: string; path: string } | null {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(canonical);
  const u = readUrl(canonical);
  if (!u) return null;
  const defaults: Record<string, string> = { 'http:': '80', 'https:': '443', 'ftp:': '21' };
  const port = u.port || (hasScheme ? defaults[u.protocol] ?? '' : '');
  return { host: u.hostname.replace(/^\[|\]$/g, '').toLowerCase(), port, path: decodeURIComponentSafe(u.pathname) };
}

function decodeURIComponentSafe(path: string): string {
  try { return decodeURIComponent(path); } catch { return path; }
}

function pathUnder(path: string, prefix: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
  return path === prefix || path === prefix.replace(/\/$/, '') || path.startsWith(p);
}

/** An immutable protected list; build a new one to change it. */
export class ProtectedValues {
  private readonly domains = new Map<string, ProtectedHit>();
  /** Every proper parent of a protected domain → that domain's hit (a Block on a parent covers it). */
  private readonly parents = new Map<string, ProtectedHit>();
  /** version → prefix length → network base → hit: an address is looked up once per prefix length. */
  private readonly cidrs = new Map<4 | 6, Map<number, Map<bigint, ProtectedHit>>>();
  private cidrCount = 0;
  private readonly urls: UrlEntry[] = [];
  private readonly hashes = new Map<string, ProtectedHit>();
  /** Entries that could not be read, with why (reported by the loader, never fatal). */
  readonly invalid: { entry: string; origin: string; reason: string }[] = [];

  constructor(entries: Iterable<ProtectedEntry>) {
    for (const e of entries) this.add(e);
  }

  get size(): number {
    return this.domains.size + this.cidrCount + this.urls.length + this.hashes.size;
  }

  private add(e: ProtectedEntry): void {
    const value = e.value.trim();
    const hit: ProtectedHit = { entry: value, origin: e.origin, ...(e.why ? { why: e.why } : {}) };
    if (value === '') return;
    if (HASH.test(value)) { this.hashes.set(value.toLowerCase(), hit); return; }
    if (value.includes('/') && !value.includes('://') && parseCidr(value)) { this.addCidr(parseCidr(value)!, hit); return; }
    const ip = parseIp(value);
    // A bare address is kept as the guard reads it (an IPv6 form embedding IPv4 is that IPv4 address).
    if (ip) { this.addCidr({ version: ip.version, base: ip.value, prefix: ip.version === 4 ? 32 : 128, text: value }, hit); return; }
    if (value.includes('/') || value.includes('://')) {
      const url = parseObservable('url', value);
      const parts = url.ok ? urlParts(url.observable.value) : null;
      if (!parts) { this.invalid.push({ entry: value, origin: e.origin, reason: url.ok ? 'not a URL' : url.rejection.detail }); return; }
      const explicitPort = /^[a-z][a-z0-9+.-]*:\/\/[^/]*:\d+/i.test(url.ok ? url.observable.value : '') || /^[^/:]+:\d+/.test(value);
      this.urls.push({ host: parts.host, port: explicitPort ? parts.port : null, path: parts.path, hit });
      return;
    }
    const domain = parseObservable('hostname', value.replace(/^\*\./, '').replace(/^\./, ''));
    if (!domain.ok) { this.invalid.push({ entry: value, origin: e.origin, reason: domain.rejection.detail }); return; }
    this.domains.set(domain.observable.value, hit);
    const labels = domain.observable.value.split('.');
    for (let i = 1; i < labels.length; i++) {
      const parent = labels.slice(i).join('.');
      if (!this.parents.has(parent)) this.parents.set(parent, hit);
    }
  }

  private addCidr(cidr: Cidr, hit: ProtectedHit): void {
    let byPrefix = this.cidrs.get(cidr.version);
    if (!byPrefix) this.cidrs.set(cidr.version, (byPrefix = new Map()));
    let bases = byPrefix.get(cidr.prefix);
    if (!bases) byPrefix.set(cidr.prefix, (bases = new Map()));
    if (!bases.has(cidr.base)) { bases.set(cidr.base, hit); this.cidrCount++; }
  }

  /** The entry an observable touches, or null. `observable` is canonical (parseObservable). */
  match(observable: Observable): ProtectedHit | null {
    switch (observable.type) {
      case 'md5': case 'sha1': case 'sha256': case 'cert-sha1':
        return this.hashes.get(observable.value.toLowerCase()) ?? null;
      case 'ipv4': case 'ipv6':
        return this.matchIp(observable.value);
      case 'domain': case 'hostname':
        return this.matchDomain(observable.value.toLowerCase());
      case 'url':
        return this.matchUrl(observable.value);
      default:
        return null;
    }
  }

  private matchIp(text: string): ProtectedHit | null {
    const ip = parseIp(text);
    if (!ip) return null;
    const bits = ip.version === 4 ? 32 : 128;
    for (const [prefix, bases] of this.cidrs.get(ip.version) ?? []) {
      const hostBits = BigInt(bits - prefix);
      const hit = bases.get((ip.value >> hostBits) << hostBits);
      if (hit) return hit;
    }
    return null;
  }

  /** Protected when the domain is, or is under, a protected domain, or is a parent of one. */
  private matchDomain(domain: string): ProtectedHit | null {
    const labels = domain.replace(/\.$/, '').split('.');
    for (let i = 0; i < labels.length; i++) {
      const hit = this.domains.get(labels.slice(i).join('.'));
      if (hit) return hit;
    }
    return this.parents.get(domain.replace(/\.$/, '')) ?? null;
  }

  private matchUrl(value: string): ProtectedHit | null {
    const parts = urlParts(value);
    if (!parts) return null;
    const hostHit = parseIp(parts.host) ? this.matchIp(parts.host) : this.matchDomainOnly(parts.host);
    if (hostHit) return hostHit;
    for (const u of this.urls) {
      if (u.host !== parts.host) continue;
      if (u.port !== null && parts.port !== '' && u.port !== parts.port) continue;
      // A URL indicator matches everything under its path: protect both directions here too.
      if (pathUnder(parts.path, u.path) || pathUnder(u.path, parts.path)) return u.hit;
    }
    return null;
  }

  /** A URL's host: itself or a parent protected (a URL on "com" does not cover microsoft.com). */
  private matchDomainOnly(host: string): ProtectedHit | null {
    const labels = host.split('.');
    for (let i = 0; i < labels.length; i++) {
      const hit = this.domains.get(labels.slice(i).join('.'));
      if (hit) return hit;
    }
    return null;
  }
}
