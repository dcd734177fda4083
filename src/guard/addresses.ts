// IP arithmetic for the guard: addresses as BigInt, CIDR containment for IPv4 and IPv6, and the
// ranges that are never a sensible Block target (private, loopback, link-local, reserved).
import { expandIpv6, isIpAddress } from '../core/observables.js';

export interface IpValue {
  version: 4 | 6;
  value: bigint;
}

export interface Cidr {
  version: 4 | 6;
  base: bigint;
  prefix: number;
  text: string;
}

/**
 * An IPv4 or IPv6 address as the guard judges it, or null. An IPv6 address that carries an IPv4
 * address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) reaches that IPv4 host, so it is
 * judged as that IPv4 address: `64:ff9b::8.8.8.8` is Google's resolver, `2002:a00:1::1` is in 10/8.
 */
export function parseIp(text: string): IpValue | null {
  const ip = parseAddress(text);
  if (!ip || ip.version === 4) return ip;
  const embedded = embeddedIpv4(ip.value);
  return embedded === null ? ip : { version: 4, value: embedded };
}

const V4_MASK = 0xffffffffn;

/** The IPv4 address an IPv6 address embeds, or null (RFC 4291, 6052, 3056, 4380). */
export function embeddedIpv4(v6: bigint): bigint | null {
  // IPv4-compatible ::a.b.c.d (deprecated, still routable by old stacks); :: and ::1 stay IPv6.
  if (v6 >> 32n === 0n && v6 > 1n) return v6 & V4_MASK;
  // NAT64 well-known prefix 64:ff9b::/96.
  if (v6 >> 32n === 0x0064ff9b0000000000000000n) return v6 & V4_MASK;
  // 6to4 2002:AABB:CCDD::/48: the IPv4 address is the next 32 bits.
  if (v6 >> 112n === 0x2002n) return (v6 >> 80n) & V4_MASK;
  // Teredo 2001:0::/32: the client's public IPv4 address is the last 32 bits, inverted.
  if (v6 >> 96n === 0x20010000n) return (v6 & V4_MASK) ^ V4_MASK;
  return null;
}

/** An address as written (IPv4-mapped IPv6 counts as its IPv4 address): CIDR bases use this. */
function parseAddress(text: string): IpValue | null {
  const raw = text.trim().replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(raw);
  if (mapped) return parseAddress(mapped[1]!);
  const version = isIpAddress(raw);
  if (version === 4) {
    return { version: 4, value: raw.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
  }
  if (version === 6) {
    const groups = expandIpv6(raw).split(':');
    const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
    // IPv4-mapped (::ffff:a.b.c.d, however written) is the IPv4 address.
    if (value >> 32n === 0xffffn) return { version: 4, value: value & V4_MASK };
    return { version: 6, value };
  }
  return null;
}

/** `a.b.c.d/n` or `x::/n`; a bare address is a /32 or /128. Host bits are masked off. */
export function parseCidr(text: string): Cidr | null {
  const [addr, prefixText, extra] = text.trim().split('/');
  if (extra !== undefined || addr === undefined) return null;
  const ip = parseAddress(addr);
  if (!ip) return null;
  const bits = ip.version === 4 ? 32 : 128;
  // An IPv4-mapped address with a v6 prefix length: translate the prefix.
  const mappedV6 = ip.version === 4 && addr.includes(':');
  let prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return null;
  if (mappedV6) prefix -= 96;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return null;
  const hostBits = BigInt(bits - prefix);
  const base = (ip.value >> hostBits) << hostBits;
  return { version: ip.version, base, prefix, text: text.trim() };
}

export function cidrContains(cidr: Cidr, ip: IpValue): boolean {
  if (cidr.version !== ip.version) return false;
  const hostBits = BigInt((ip.version === 4 ? 32 : 128) - cidr.prefix);
  return ip.value >> hostBits === cidr.base >> hostBits;
}

/**
 * Address space that is never a public attacker's address: pushing a Block on it cuts a LAN, the
 * loopback or the tenant's own infrastructure off. From the IANA special-purpose registries.
 * The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are left
 * out on purpose: nothing routes there, so a Block on them cannot take anything offline, and
 * sample feeds and exercises use them.
 */
const SPECIAL: { cidr: string; why: string }[] = [
  { cidr: '0.0.0.0/8', why: 'this network (RFC 791)' },
  { cidr: '10.0.0.0/8', why: 'private (RFC 1918)' },
  { cidr: '100.64.0.0/10', why: 'carrier-grade NAT (RFC 6598)' },
  { cidr: '127.0.0.0/8', why: 'loopback' },
  { cidr: '169.254.0.0/16', why: 'link-local' },
  { cidr: '172.16.0.0/12', why: 'private (RFC 1918)' },
  { cidr: '192.0.0.0/24', why: 'IETF protocol assignments' },
  { cidr: '192.168.0.0/16', why: 'private (RFC 1918)' },
  { cidr: '198.18.0.0/15', why: 'benchmarking (RFC 2544)' },
  { cidr: '224.0.0.0/4', why: 'multicast' },
  { cidr: '240.0.0.0/4', why: 'reserved (includes broadcast)' },
  { cidr: '::/128', why: 'unspecified' },
  { cidr: '::1/128', why: 'loopback' },
  { cidr: '64:ff9b:1::/48', why: 'local-use IPv4/IPv6 translation' },
  { cidr: '100::/64', why: 'discard-only' },
  { cidr: 'fc00::/7', why: 'unique local (private)' },
  { cidr: 'fe80::/10', why: 'link-local' },
  { cidr: 'ff00::/8', why: 'multicast' },
];
const SPECIAL_CIDRS = SPECIAL.map((s) => ({ cidr: parseCidr(s.cidr)!, why: s.why }));

/** Why an address is special (private, loopback, …), or null for a public address. */
export function specialAddress(text: string): string | null {
  const ip = parseIp(text);
  if (!ip) return null;
  for (const s of SPECIAL_CIDRS) if (cidrContains(s.cidr, ip)) return `${s.why} range ${s.cidr.text}`;
  return null;
}
