// Deterministic STIX 2.1 indicators and observables shaped like the platform emits them (OCTI
// extension with score, detection, main_observable_type and observable_values; SCO extension on
// observables; TLP markings by their real ids). Values come from a seeded PRNG, so a seed gives
// the same objects on every run; dates are relative to `now` (pass it for byte-identical output).
import { domainToASCII } from 'node:url';
import {
  entityTypeOf, KNOWN_AUTHORS, MITRE_EXT, OCTI_EXT, OPENCTI_NAMESPACE, SCO_EXT, SIM_USER_ID, stableUuidV4, STIX_NAMESPACE, TLP_IDS, tlpId, uuidV5,
  type StixObject,
} from './stix.js';

export { KNOWN_AUTHORS, TLP_IDS, OCTI_EXT, SCO_EXT, type StixObject };

export type ObservableType = 'ipv4-addr' | 'ipv6-addr' | 'domain-name' | 'hostname' | 'url' | 'email-addr' | 'file' | 'x509-certificate';

export interface IndicatorOptions {
  /** A full STIX pattern; built from observableType/value when absent. */
  pattern?: string;
  observableType?: ObservableType;
  /** The observable value (a hash for `file` / `x509-certificate`). Random when absent. */
  value?: string;
  /** OpenCTI score; null leaves it out. Random when absent. */
  score?: number | null;
  labels?: string[];
  validFrom?: string;
  /** ISO date; null leaves it out. Default: valid_from plus a per-type lifetime. */
  validUntil?: string | null;
  revoked?: boolean;
  /** TLP names ("TLP:GREEN", "amber+strict", "clear") or marking-definition ids. */
  markings?: string[];
  name?: string;
  description?: string;
  confidence?: number;
  /** Author identity id; null for none. Default: one of KNOWN_AUTHORS. */
  createdBy?: string | null;
  /** Default "stix". */
  patternType?: string;
  detection?: boolean;
  indicatorTypes?: string[];
  /** The observable type the platform shows; default derived from the pattern. */
  mainObservableType?: string;
}

export interface ObservableOptions {
  labels?: string[];
  markings?: string[];
  description?: string;
  createdBy?: string | null;
}

export interface FixtureOptions {
  /** Reference time for created/valid_from/valid_until. Default: the current time. */
  now?: number | Date;
}

// ---- seeded randomness ----

function hashSeed(seed: number | string): number {
  const text = String(seed);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: small, fast and good enough for test data. */
export class Prng {
  private state: number;

  constructor(seed: number | string) {
    this.state = hashSeed(seed);
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  hex(length: number): string {
    let out = '';
    while (out.length < length) out += Math.floor(this.next() * 16).toString(16);
    return out;
  }

  /** Pick by weight: `[[weight, value], ...]`. */
  weighted<T>(table: ReadonlyArray<readonly [number, T]>): T {
    const total = table.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, v] of table) {
      r -= w;
      if (r < 0) return v;
    }
    return (table[table.length - 1] as readonly [number, T])[1];
  }

  sample<T>(items: readonly T[], n: number): T[] {
    const pool = [...items];
    const out: T[] = [];
    while (out.length < n && pool.length > 0) out.push(pool.splice(Math.floor(this.next() * pool.length), 1)[0] as T);
    return out;
  }
}

// ---- vocabulary ----

const WORDS = ['secure', 'login', 'update', 'cdn', 'mail', 'account', 'verify', 'portal', 'cloud', 'office', 'invoice', 'billing', 'support', 'microsoft', 'docs', 'share', 'drive', 'pay', 'wallet', 'bank', 'auth', 'sync', 'static', 'api', 'img', 'track', 'stats', 'news', 'shop', 'delivery'];
const TLDS = ['com', 'net', 'org', 'ru', 'xyz', 'top', 'info', 'io', 'cn', 'su', 'biz', 'online', 'site', 'live', 'club'];
const IDN_LABELS = ['bücher', 'münchen-bank', 'пример', 'почта-вход', 'παράδειγμα', '例え', 'sécurité-compte', 'ñandú-pagos', 'straße', 'göteborg-post'];
const URL_PATHS = ['/wp-content/plugins/gate.php', '/login', '/admin/upload.php', '/invoice/INV-2024-0172.zip', '/dl/payload.bin', '/owa/auth/logon.aspx', '/api/v1/beacon', '/download', '/verify/account', "/o'reilly/sample.doc"];
const QUERY_KEYS = ['id', 'token', 'ref', 'u', 'session', 'file', 'redirect', 'lang'];
const LABELS = ['malicious-activity', 'c2', 'phishing', 'botnet', 'ransomware', 'scanner', 'tor-exit', 'cobalt-strike', 'emotet', 'apt29', 'spam', 'malware-distribution'];
const INDICATOR_TYPES: ReadonlyArray<readonly [number, string]> = [[80, 'malicious-activity'], [10, 'anomalous-activity'], [5, 'compromised'], [5, 'attribution']];
const DESCRIPTIONS = ['C2 server', 'Phishing landing page', 'Malware distribution point', 'Observed in brute-force campaign', 'Botnet node', 'Payload hash from sandbox run', 'Reported by partner CERT', 'Credential harvesting', ''];
const MARKING_MIX: ReadonlyArray<readonly [number, string]> = [[40, TLP_IDS.GREEN], [25, TLP_IDS.AMBER], [20, TLP_IDS.CLEAR], [8, TLP_IDS.AMBER_STRICT], [7, TLP_IDS.RED]];

/** Lifetime the platform's decay gives each kind, roughly. */
const LIFETIME_DAYS: Record<string, number> = { 'ipv4-addr': 30, 'ipv6-addr': 30, 'domain-name': 90, 'hostname': 90, 'url': 60, 'email-addr': 90, 'file': 365, 'x509-certificate': 365 };
const DAY = 86_400_000;

const HASH_KEY: Record<number, string> = { 32: 'MD5', 40: 'SHA-1', 64: 'SHA-256' };

/** A STIX pattern string literal. */
export function stixString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function hashPath(algorithm: string): string {
  return /^[A-Za-z0-9_]+$/.test(algorithm) ? `hashes.${algorithm}` : `hashes.'${algorithm}'`;
}

function hashAlgorithm(value: string): string {
  return HASH_KEY[value.length] ?? 'SHA-256';
}

/** `[type:path = 'value']` for a single observable. */
export function patternFor(type: ObservableType, value: string): string {
  if (type === 'file') return `[file:${hashPath(hashAlgorithm(value))} = ${stixString(value)}]`;
  if (type === 'x509-certificate') return `[x509-certificate:${hashPath('SHA-1')} = ${stixString(value)}]`;
  return `[${type}:value = ${stixString(value)}]`;
}

/**
 * What the platform derives from a pattern (observable_values): every `type:path = 'literal'`
 * comparison. Undefined when the pattern is not a bracketed STIX pattern at all.
 */
export function observableValuesOf(pattern: string): Array<Record<string, unknown>> | undefined {
  const trimmed = pattern.trim();
  const opens = (trimmed.match(/\[/g) ?? []).length;
  if (!trimmed.startsWith('[') || !trimmed.endsWith(']') || opens !== (trimmed.match(/\]/g) ?? []).length) return undefined;
  const re = /([a-z0-9-]+):([a-z_]+(?:\.(?:'[^']+'|[A-Za-z0-9_-]+))*)\s*=\s*'((?:[^'\\]|\\.)*)'/g;
  const out: Array<Record<string, unknown>> = [];
  for (const m of trimmed.matchAll(re)) {
    const [, type = '', path = '', literal = ''] = m;
    const value = literal.replace(/\\(.)/g, '$1');
    const octiType = entityTypeOf({ type });
    const hash = /^hashes\.'?([^']+)'?$/.exec(path);
    if (hash) out.push({ type: octiType, hashes: { [hash[1] as string]: value } });
    else out.push({ type: octiType, value });
  }
  return out;
}

function markingIds(markings: readonly string[]): string[] {
  return [...new Set(markings.map((m) => (m.startsWith('marking-definition--') ? m : tlpId(m) ?? m)))];
}

const iso = (ms: number): string => new Date(ms).toISOString();

function scoId(type: string, contributing: Record<string, unknown>): string {
  return `${type}--${uuidV5(JSON.stringify(contributing), STIX_NAMESPACE)}`;
}

// ---- the factory ----

type Built = { pattern: string; type: string; value: string; patternType?: string; parseable?: boolean };

export class StixFixtures {
  readonly rng: Prng;
  private readonly now: number;

  constructor(seed: number | string = 1, opts: FixtureOptions = {}) {
    this.rng = new Prng(seed);
    const now = opts.now instanceof Date ? opts.now.getTime() : opts.now ?? Date.now();
    // Whole milliseconds the platform would print; the seed decides everything else.
    this.now = Math.floor(now);
  }

  // values

  ipv4(): string {
    const r = this.rng;
    let first = r.int(1, 223);
    while ([10, 100, 127, 169, 172, 192, 198, 203].includes(first)) first = r.int(1, 223);
    return `${first}.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(1, 254)}`;
  }

  ipv6(): string {
    const r = this.rng;
    const groups = [`2a0${r.int(0, 9)}`, r.hex(4).replace(/^0+(?=.)/, ''), r.hex(3), r.hex(4).replace(/^0+(?=.)/, '')];
    return r.chance(0.5) ? `${groups.join(':')}::${r.hex(r.int(1, 4)).replace(/^0+(?=.)/, '')}` : `${groups.join(':')}:${r.hex(4)}:${r.hex(4)}:${r.hex(2)}:${r.hex(4)}`;
  }

  domain(): string {
    const r = this.rng;
    const sep = r.pick(['-', '', '-']);
    return `${r.pick(WORDS)}${sep}${r.pick(WORDS)}${r.chance(0.3) ? r.int(1, 99) : ''}.${r.pick(TLDS)}`;
  }

  /** An internationalised domain, Unicode or already in punycode. */
  idnDomain(): string {
    const r = this.rng;
    const unicode = `${r.pick(IDN_LABELS)}.${r.pick(['de', 'ru', 'com', 'gr', 'jp', 'fr', 'es', 'se'])}`;
    return r.chance(0.5) ? unicode : domainToASCII(unicode) || unicode;
  }

  hostname(): string {
    return `${this.rng.pick(['mail', 'vpn', 'srv', 'node', 'c2', 'relay'])}-${this.rng.int(1, 40)}.${this.domain()}`;
  }

  url(): string {
    const r = this.rng;
    const host = r.chance(0.2) ? this.ipv4() : this.domain();
    const port = r.chance(0.15) ? `:${r.pick([8080, 8443, 4443, 81])}` : '';
    const query = r.chance(0.5) ? `?${r.sample(QUERY_KEYS, r.int(1, 3)).map((k) => `${k}=${r.hex(r.int(3, 10))}`).join('&')}` : '';
    return `${r.pick(['http', 'https'])}://${host}${port}${r.pick(URL_PATHS)}${query}`;
  }

  email(): string {
    return `${this.rng.pick(WORDS)}.${this.rng.pick(WORDS)}@${this.domain()}`;
  }

  md5(): string {
    return this.rng.hex(32);
  }

  sha1(): string {
    return this.rng.hex(40);
  }

  sha256(): string {
    return this.rng.hex(64);
  }

  valueFor(type: ObservableType): string {
    switch (type) {
      case 'ipv4-addr': return this.ipv4();
      case 'ipv6-addr': return this.ipv6();
      case 'domain-name': return this.domain();
      case 'hostname': return this.hostname();
      case 'url': return this.url();
      case 'email-addr': return this.email();
      case 'file': return this.sha256();
      case 'x509-certificate': return this.sha1();
    }
  }

  // objects

  indicator(opts: IndicatorOptions = {}): StixObject {
    const r = this.rng;
    const type: ObservableType = opts.observableType ?? 'ipv4-addr';
    const value = opts.value ?? (opts.pattern === undefined ? this.valueFor(type) : undefined);
    const pattern = opts.pattern ?? patternFor(type, value as string);
    const patternType = opts.patternType ?? 'stix';
    const created = this.now - r.int(0, 30 * DAY);
    const modified = Math.min(this.now, created + r.int(0, 2 * DAY));
    const validFrom = opts.validFrom ?? iso(created);
    const firstType = /^\[\s*([a-z0-9-]+):/.exec(pattern)?.[1] ?? type;
    const lifetime = (LIFETIME_DAYS[firstType] ?? 90) * DAY;
    const validUntil = opts.validUntil === undefined ? iso(Date.parse(validFrom) + lifetime) : opts.validUntil;
    const score = opts.score === undefined ? this.randomScore() : opts.score;
    const labels = opts.labels ?? r.sample(LABELS, r.weighted([[30, 0], [40, 1], [20, 2], [10, 3]] as const));
    const markings = markingIds(opts.markings ?? [r.weighted(MARKING_MIX)]);
    const createdBy = opts.createdBy === undefined ? r.pick(KNOWN_AUTHORS).id : opts.createdBy;
    const confidence = opts.confidence ?? r.pick([15, 50, 75, 85, 100]);
    const description = opts.description ?? r.pick(DESCRIPTIONS);
    const id = `indicator--${uuidV5(JSON.stringify({ pattern }), OPENCTI_NAMESPACE)}`;
    const observableValues = patternType.startsWith('stix') ? observableValuesOf(pattern) : undefined;
    const mainType = opts.mainObservableType ?? (patternType.startsWith('stix') ? entityTypeOf({ type: firstType }) : 'Unknown');

    const octi: Record<string, unknown> = {
      extension_type: 'property-extension',
      id: stableUuidV4(id),
      type: 'Indicator',
      created_at: iso(created),
      updated_at: iso(modified),
      is_inferred: false,
      creator_ids: [SIM_USER_ID],
      detection: opts.detection ?? r.chance(0.9),
      main_observable_type: mainType,
    };
    if (score !== null) octi['score'] = score;
    if (observableValues && observableValues.length > 0) octi['observable_values'] = observableValues;
    const extensions: Record<string, unknown> = { [OCTI_EXT]: octi };
    if (r.chance(0.1)) extensions[MITRE_EXT] = { extension_type: 'property-extension', x_mitre_platforms: r.sample(['windows', 'linux', 'macos'], r.int(1, 2)) };

    const obj: StixObject = {
      id,
      spec_version: '2.1',
      type: 'indicator',
      extensions,
      created: iso(created),
      modified: iso(modified),
      revoked: opts.revoked ?? false,
      confidence,
      lang: 'en',
    };
    if (labels.length > 0) obj['labels'] = labels;
    if (markings.length > 0) obj['object_marking_refs'] = markings;
    if (createdBy) obj['created_by_ref'] = createdBy;
    if (r.chance(0.15)) obj['external_references'] = [{ source_name: r.pick(['AbuseIPDB', 'URLhaus', 'MalwareBazaar', 'VirusTotal']), url: `https://example.org/report/${r.hex(12)}` }];
    obj['name'] = opts.name ?? value ?? pattern;
    if (description) obj['description'] = description;
    obj['indicator_types'] = opts.indicatorTypes ?? [r.weighted(INDICATOR_TYPES)];
    obj['pattern'] = pattern;
    obj['pattern_type'] = patternType;
    obj['pattern_version'] = '2.1';
    obj['valid_from'] = validFrom;
    if (validUntil !== null) obj['valid_until'] = validUntil;
    return obj;
  }

  /** A cyber observable as the platform emits it (score and labels in the SCO extension). */
  observable(type: ObservableType, value?: string, score?: number, opts: ObservableOptions = {}): StixObject {
    const r = this.rng;
    const v = value ?? this.valueFor(type);
    const hashed = type === 'file' || type === 'x509-certificate';
    const hashes = hashed ? { [type === 'x509-certificate' ? 'SHA-1' : hashAlgorithm(v)]: v } : undefined;
    const id = scoId(type, hashes ? { hashes } : { value: v });
    const at = iso(this.now - r.int(0, 30 * DAY));
    const sco: Record<string, unknown> = { extension_type: 'property-extension' };
    const labels = opts.labels ?? r.sample(LABELS, r.int(0, 2));
    if (labels.length > 0) sco['labels'] = labels;
    const description = opts.description ?? r.pick(DESCRIPTIONS);
    if (description) sco['description'] = description;
    sco['score'] = score ?? this.randomScore() ?? 50;
    const createdBy = opts.createdBy === undefined ? r.pick(KNOWN_AUTHORS).id : opts.createdBy;
    if (createdBy) sco['created_by_ref'] = createdBy;
    const obj: StixObject = {
      id,
      spec_version: '2.1',
      type,
      extensions: {
        [OCTI_EXT]: {
          extension_type: 'property-extension', id: stableUuidV4(id), type: entityTypeOf({ type }), created_at: at, updated_at: at, is_inferred: false, creator_ids: [SIM_USER_ID],
        },
        [SCO_EXT]: sco,
      },
    };
    if (hashes) obj['hashes'] = hashes;
    else obj['value'] = v;
    const markings = markingIds(opts.markings ?? [r.weighted(MARKING_MIX)]);
    if (markings.length > 0) obj['object_marking_refs'] = markings;
    return obj;
  }

  /** n indicators in the proportions a real feed mix has, including what a consumer must reject. */
  mix(n: number): StixObject[] {
    const out: StixObject[] = [];
    const seen = new Set<string>();
    let guard = 0;
    while (out.length < n && guard++ < n * 20) {
      const built = this.randomPattern();
      if (seen.has(built.pattern)) continue;
      seen.add(built.pattern);
      const ind = this.indicator({
        pattern: built.pattern,
        patternType: built.patternType ?? 'stix',
        name: built.value,
        revoked: this.rng.chance(0.03),
        validUntil: this.rng.chance(0.05) ? iso(this.now - this.rng.int(1, 20) * DAY) : undefined,
      });
      if (built.parseable === false) {
        const octi = (ind['extensions'] as Record<string, Record<string, unknown>>)[OCTI_EXT];
        if (octi) delete octi['observable_values'];
      }
      out.push(ind);
    }
    return out;
  }

  private randomScore(): number | null {
    const r = this.rng;
    return r.weighted<() => number | null>([
      [50, () => r.int(60, 100)],
      [28, () => r.int(31, 59)],
      [3, () => 30],
      [12, () => r.int(1, 29)],
      [5, () => 0],
      [2, () => null],
    ])();
  }

  private randomPattern(): Built {
    const r = this.rng;
    const kind = r.weighted([
      [22, 'ipv4'], [5, 'ipv6'], [12, 'domain'], [3, 'idn'], [3, 'hostname'], [12, 'url'], [5, 'md5'], [5, 'sha1'], [10, 'sha256'],
      [6, 'or'], [2, 'email'], [2, 'cert'], [4, 'unsupported'], [3, 'other-language'], [4, 'invalid'],
    ] as const);
    const single = (type: ObservableType, value: string): Built => ({ pattern: patternFor(type, value), type, value });
    switch (kind) {
      case 'ipv4': return single('ipv4-addr', r.chance(0.04) ? `${this.ipv4().replace(/\.\d+$/, '.0')}/24` : this.ipv4());
      case 'ipv6': return single('ipv6-addr', this.ipv6());
      case 'domain': return single('domain-name', this.domain());
      case 'idn': return single('domain-name', this.idnDomain());
      case 'hostname': return single('hostname', this.hostname());
      case 'url': return single('url', this.url());
      case 'md5': return single('file', this.md5());
      case 'sha1': return single('file', this.sha1());
      case 'sha256': return single('file', this.sha256());
      case 'email': return single('email-addr', this.email());
      case 'cert': return single('x509-certificate', this.sha1());
      case 'or': {
        const variant = r.int(0, 2);
        if (variant === 0) {
          const a = this.ipv4();
          return { pattern: `[ipv4-addr:value = ${stixString(a)} OR ipv4-addr:value = ${stixString(this.ipv4())}]`, type: 'ipv4-addr', value: a };
        }
        if (variant === 1) {
          const d = this.domain();
          return { pattern: `[domain-name:value = ${stixString(d)}] OR [url:value = ${stixString(this.url())}]`, type: 'domain-name', value: d };
        }
        const s = this.sha256();
        return { pattern: `[file:hashes.MD5 = ${stixString(this.md5())} OR file:hashes.'SHA-256' = ${stixString(s)}]`, type: 'file', value: s };
      }
      case 'unsupported': {
        const p = r.pick([
          "[process:name = 'x']",
          `[process:name = '${r.pick(['mimikatz.exe', 'psexec.exe', 'rundll32.exe'])}']`,
          `[mutex:name = 'Global\\\\${r.hex(8)}']`,
          `[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Software\\\\${r.pick(WORDS)}']`,
          `[network-traffic:dst_port = ${r.int(1024, 65535)}]`,
          `[ipv4-addr:value = ${stixString(this.ipv4())} AND network-traffic:dst_port = 443]`,
        ]);
        return { pattern: p, type: 'other', value: p };
      }
      case 'other-language': {
        const which = r.pick(['yara', 'sigma', 'snort'] as const);
        const body = which === 'yara'
          ? `rule sim_${r.hex(6)} { strings: $a = "${r.hex(16)}" condition: $a }`
          : which === 'sigma'
            ? `title: Suspicious ${r.pick(WORDS)}\nlogsource:\n  product: windows\ndetection:\n  sel:\n    Image|endswith: '\\\\${r.pick(WORDS)}.exe'\n  condition: sel`
            : `alert tcp any any -> ${this.ipv4()} 443 (msg:"sim"; sid:${r.int(100000, 999999)};)`;
        return { pattern: body, type: 'other', value: `${which} rule ${r.hex(6)}`, patternType: which };
      }
      case 'invalid': {
        const v = this.ipv4();
        const variant = r.int(0, 5);
        const invalid: Built[] = [
          { pattern: `[ipv4-addr:value = '${v}'`, type: 'ipv4-addr', value: v, parseable: false },
          { pattern: `ipv4-addr:value = '${v}'`, type: 'ipv4-addr', value: v, parseable: false },
          { pattern: `[ipv4-addr:value = '${r.int(256, 999)}.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(0, 255)}']`, type: 'ipv4-addr', value: 'bad ip' },
          { pattern: `[domain-name:value = 'http://${this.domain()}/path']`, type: 'domain-name', value: 'url in domain' },
          { pattern: `[file:hashes.MD5 = 'not-a-hash-${r.hex(4)}']`, type: 'file', value: 'bad hash' },
          { pattern: `[url:value = ]`, type: 'url', value: `empty url ${r.hex(4)}`, parseable: false },
        ];
        return invalid[variant] as Built;
      }
    }
  }
}

// ---- module-level conveniences over a default factory (seed 1) ----

let defaults = new StixFixtures(1);

/** Restart the default factory, so the next makeIndicator/makeObservable calls repeat. */
export function resetFixtures(seed: number | string = 1, opts: FixtureOptions = {}): void {
  defaults = new StixFixtures(seed, opts);
}

export function makeIndicator(opts: IndicatorOptions = {}): StixObject {
  return defaults.indicator(opts);
}

export function makeObservable(type: ObservableType, value?: string, score?: number, opts: ObservableOptions = {}): StixObject {
  return defaults.observable(type, value, score, opts);
}

export function randomIndicatorMix(n: number, seed: number | string = 1, opts: FixtureOptions = {}): StixObject[] {
  return new StixFixtures(seed, opts).mix(n);
}
