// STIX vocabulary shared by the simulator and the fixtures: extension ids, the standard TLP
// marking definitions, deterministic ids, OpenCTI entity type names and reference extraction.
import { createHash } from 'node:crypto';

export type StixObject = { id: string; type: string } & Record<string, unknown>;

export const OCTI_EXT = 'extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba';
export const SCO_EXT = 'extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82';
export const MITRE_EXT = 'extension-definition--322b8f77-262a-4cb8-a915-1e441e00329b';

/** Namespace of OpenCTI standard ids for SDOs (schema/identifier.js). */
export const OPENCTI_NAMESPACE = 'b639ff3b-00eb-42ed-aa36-a8dd6f8fb4cf';
/** Namespace of STIX 2.1 deterministic SCO ids. */
export const STIX_NAMESPACE = '00abedb4-aa42-466c-9c01-fed23315a9b7';

/** The platform's own user: author of every live event the simulator emits. */
export const SIM_USER_ID = '88ec0c6a-13ce-5e39-b486-354fe4a7084f';

export const TLP_IDS = {
  CLEAR: 'marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9',
  WHITE: 'marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9',
  GREEN: 'marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da',
  AMBER: 'marking-definition--f88d31f6-486f-44da-b317-01333bde0b82',
  AMBER_STRICT: 'marking-definition--826578e1-40ad-459f-bc73-ede076f81f37',
  RED: 'marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed',
} as const;

/** Name → id, accepting the spellings people type ("TLP:AMBER+STRICT", "amber_strict", "white"). */
export function tlpId(name: string): string | undefined {
  const key = name.toUpperCase().replace(/^TLP:/, '').replace(/[+\s-]/g, '_') as keyof typeof TLP_IDS;
  return TLP_IDS[key];
}

/** UUID version 5 (RFC 4122 §4.3) of `name` in `namespace`. */
export function uuidV5(name: string, namespace: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const hash = createHash('sha1').update(ns).update(name, 'utf8').digest();
  const b = hash.subarray(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x50;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A v4-shaped uuid derived from a name, for internal ids that must be stable across runs. */
export function stableUuidV4(name: string): string {
  const b = createHash('sha256').update(name, 'utf8').digest().subarray(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const ENTITY_TYPES: Record<string, string> = {
  'indicator': 'Indicator',
  'ipv4-addr': 'IPv4-Addr',
  'ipv6-addr': 'IPv6-Addr',
  'domain-name': 'Domain-Name',
  'hostname': 'Hostname',
  'url': 'Url',
  'email-addr': 'Email-Addr',
  'file': 'StixFile',
  'x509-certificate': 'X509-Certificate',
  'marking-definition': 'Marking-Definition',
  'malware': 'Malware',
  'threat-actor': 'Threat-Actor-Group',
  'intrusion-set': 'Intrusion-Set',
  'attack-pattern': 'Attack-Pattern',
  'report': 'Report',
  'external-reference': 'External-Reference',
  'label': 'Label',
  'kill-chain-phase': 'Kill-Chain-Phase',
};

export const SCO_TYPES = new Set(['ipv4-addr', 'ipv6-addr', 'domain-name', 'hostname', 'url', 'email-addr', 'file', 'x509-certificate', 'mac-addr', 'autonomous-system', 'process', 'mutex', 'windows-registry-key', 'network-traffic', 'directory', 'user-account', 'artifact', 'software']);

/** OpenCTI's entity type for a STIX object (the `type` of the OCTI extension and of messages). */
export function entityTypeOf(obj: Record<string, unknown>): string {
  const type = String(obj['type'] ?? 'unknown');
  if (type === 'identity') {
    const cls = String(obj['identity_class'] ?? 'organization');
    return cls === 'individual' ? 'Individual' : cls === 'system' ? 'System' : cls === 'class' ? 'Sector' : 'Organization';
  }
  if (type === 'relationship') return String(obj['relationship_type'] ?? 'related-to');
  if (type === 'sighting') return 'stix-sighting-relationship';
  return ENTITY_TYPES[type] ?? type.split('-').map((p) => (p ? (p[0] ?? '').toUpperCase() + p.slice(1) : p)).join('-');
}

export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function ext(obj: Record<string, unknown>, id: string): Record<string, unknown> | undefined {
  const exts = obj['extensions'];
  return isRecord(exts) && isRecord(exts[id]) ? exts[id] : undefined;
}

/** The OCTI extension, created if missing (mutates). */
export function octiExt(obj: Record<string, unknown>): Record<string, unknown> {
  if (!isRecord(obj['extensions'])) obj['extensions'] = {};
  const exts = obj['extensions'] as Record<string, unknown>;
  if (!isRecord(exts[OCTI_EXT])) exts[OCTI_EXT] = { extension_type: 'property-extension' };
  return exts[OCTI_EXT] as Record<string, unknown>;
}

/**
 * Ids this object points at (stixRefsExtractor): every `*_ref` / `*_refs` property, plus the
 * author an observable carries inside its SCO extension. `granted_refs` are organisations
 * sharing, not knowledge, and are not resolved.
 */
export function refsOf(obj: Record<string, unknown>): string[] {
  const out: string[] = [];
  const collect = (holder: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(holder)) {
      if (k === 'granted_refs') continue;
      if (k.endsWith('_ref') && typeof v === 'string') out.push(v);
      else if (k.endsWith('_refs') && Array.isArray(v)) for (const r of v) if (typeof r === 'string') out.push(r);
    }
  };
  collect(obj);
  const sco = ext(obj, SCO_EXT);
  if (sco) collect(sco);
  return [...new Set(out)].filter((r) => r !== obj['id']);
}

/** The name the platform puts between backquotes in its messages (extractEntityRepresentativeName). */
export function representativeName(obj: Record<string, unknown>): string {
  for (const key of ['name', 'value', 'definition_name', 'pattern', 'opinion', 'source_name', 'result_name']) {
    const v = obj[key];
    if (typeof v === 'string' && v) return v;
  }
  if (isRecord(obj['hashes'])) {
    const hashes = obj['hashes'];
    for (const k of ['SHA-256', 'SHA-1', 'MD5']) if (typeof hashes[k] === 'string') return hashes[k] as string;
    const first = Object.values(hashes).find((v) => typeof v === 'string');
    if (typeof first === 'string') return first;
  }
  if (obj['type'] === 'relationship') return `${String(obj['source_ref'])} ${String(obj['relationship_type'])} ${String(obj['target_ref'])}`;
  return String(obj['id'] ?? 'unknown');
}

const TLP_DEFS: Array<{ id: string; name: string; color: string; order: number }> = [
  { id: TLP_IDS.CLEAR, name: 'TLP:CLEAR', color: '#ffffff', order: 1 },
  { id: TLP_IDS.GREEN, name: 'TLP:GREEN', color: '#2e7d32', order: 2 },
  { id: TLP_IDS.AMBER, name: 'TLP:AMBER', color: '#d84315', order: 3 },
  { id: TLP_IDS.AMBER_STRICT, name: 'TLP:AMBER+STRICT', color: '#d84315', order: 3 },
  { id: TLP_IDS.RED, name: 'TLP:RED', color: '#c62828', order: 4 },
];

/** When the platform created its built-in objects; older than anything the fixtures make. */
export const PLATFORM_INIT_ISO = '2023-01-01T00:00:00.000Z';

function markingDefinition(id: string, name: string, definitionType: string, order: number, color: string): StixObject {
  return {
    id,
    spec_version: '2.1',
    type: 'marking-definition',
    extensions: platformExtension(id, 'Marking-Definition'),
    created: PLATFORM_INIT_ISO,
    modified: PLATFORM_INIT_ISO,
    name,
    definition_type: definitionType,
    definition: { [definitionType.toLowerCase()]: name },
    x_opencti_order: order,
    x_opencti_color: color,
  };
}

/** OpenCTI's property extension on objects the platform itself created at install time. */
function platformExtension(id: string, type: string): Record<string, unknown> {
  return {
    [OCTI_EXT]: {
      extension_type: 'property-extension', id: stableUuidV4(id), type, created_at: PLATFORM_INIT_ISO,
      updated_at: PLATFORM_INIT_ISO, is_inferred: false, creator_ids: [SIM_USER_ID],
    },
  };
}

/** The platform's marking definition for a TLP id, or undefined when `id` is not a TLP marking. */
export function tlpMarking(id: string): StixObject | undefined {
  const def = TLP_DEFS.find((d) => d.id === id);
  return def ? markingDefinition(def.id, def.name, 'TLP', def.order, def.color) : undefined;
}

/** A statement marking standing in for a marking the simulator was never told about. */
export function placeholderMarking(id: string): StixObject {
  const short = id.split('--')[1]?.slice(0, 8) ?? 'unknown';
  return markingDefinition(id, `PAP:${short.toUpperCase()}`, 'PAP', 1, '#607d8b');
}

export function organization(name: string, id = `identity--${uuidV5(JSON.stringify({ name: name.toLowerCase(), identity_class: 'organization' }), OPENCTI_NAMESPACE)}`): StixObject {
  return {
    id,
    spec_version: '2.1',
    type: 'identity',
    extensions: platformExtension(id, 'Organization'),
    created: PLATFORM_INIT_ISO,
    modified: PLATFORM_INIT_ISO,
    revoked: false,
    confidence: 100,
    lang: 'en',
    name,
    identity_class: 'organization',
  };
}

/** Authors the fixtures sign with; the simulator knows them by id. */
export const KNOWN_AUTHORS: readonly StixObject[] = ['CIRCL', 'AlienVault', 'abuse.ch', 'CERT-EU', 'Filigran Threat Intel'].map((n) => organization(n));

/** What the platform would load for a reference nobody described: TLP, a marking, an author. */
export function defaultReference(id: string): StixObject | undefined {
  if (id.startsWith('marking-definition--')) return tlpMarking(id) ?? placeholderMarking(id);
  const known = KNOWN_AUTHORS.find((a) => a.id === id);
  if (known) return structuredClone(known);
  if (id.startsWith('identity--')) return organization(`Organization ${id.split('--')[1]?.slice(0, 8) ?? ''}`.trim(), id);
  return undefined;
}
