// IRIS's reference ids, looked up by name at start: severities, alert statuses, IOC types, asset
// types, TLP and customers are serial ids that differ between installs (a fresh 2.4 has Medium=1,
// an upgraded one Unspecified=1), so nothing here is hard-coded.
import type { IrisConfig } from './config.js';
import { irisErrorText, type IrisAnswer, type IrisClient } from './client.js';

/** The configuration cannot work against this IRIS (wrong name, missing permission): fix and restart. */
export class IrisSetupError extends Error {
  readonly code = 'iris_setup';
}

/** IRIS was not reachable or answered 5xx while looking ids up: try again later. */
export class IrisUnavailableError extends Error {
  readonly code = 'iris_unavailable';
}

export interface IrisRefs {
  severityId(defenderSeverity: string): number;
  newStatusId: number;
  resolvedStatusId: number;
  iocTypeId(kind: IocKind): number | null;
  assetTypeId(kind: AssetKind): number | null;
  tlpId: number | null;
  /** Customer of a Defender tenant (tenant_customers, else customer_id). */
  customerFor(tenantId: string): number;
  /** IRIS resolution for a resolved Defender alert's classification; null when IRIS has no match (or no list). */
  resolutionId(classification: string | null): number | null;
  /** Customers the key's user may use, when IRIS told us (customers_read). */
  usableCustomers: { id: number; name: string }[] | null;
}

export type IocKind = 'ip' | 'domain' | 'hostname' | 'url' | 'sha1' | 'sha256' | 'filename' | 'file-path' | 'account' | 'other';
export type AssetKind = 'windows-computer' | 'windows-server' | 'linux-computer' | 'linux-server' | 'mac-computer' | 'generic';

/** IRIS type names to try per kind, best first. */
const IOC_NAMES: Record<IocKind, string[]> = {
  ip: ['ip-any', 'ip-dst', 'ip-src'], domain: ['domain'], hostname: ['hostname', 'domain'], url: ['url'],
  sha1: ['sha1'], sha256: ['sha256'], filename: ['filename'], 'file-path': ['file-path', 'filename'], account: ['account'],
  other: ['other', 'text'],
};
const ASSET_NAMES: Record<AssetKind, string[]> = {
  'windows-computer': ['Windows - Computer'], 'windows-server': ['Windows - Server', 'Windows - Computer'],
  'linux-computer': ['Linux - Computer'], 'linux-server': ['Linux - Server', 'Linux - Computer'],
  'mac-computer': ['Mac - Computer'], generic: ['Windows - Computer', 'Account'],
};
/** Defender severity → IRIS severity name. */
const SEVERITY_NAMES = new Map<string, string>([
  ['unspecified', 'Unspecified'], ['informational', 'Informational'], ['low', 'Low'], ['medium', 'Medium'], ['high', 'High'],
]);

const norm = (s: string) => s.trim().toLowerCase();

/** Defender classification → IRIS resolution name (lower case). A true positive is assumed to have had impact. */
const RESOLUTION_NAMES = new Map<string, string>([
  ['falsepositive', 'false positive'], ['truepositive', 'true positive with impact'], ['informationalexpectedactivity', 'legitimate'],
]);

function required<T>(a: IrisAnswer<T[]>, what: string, path: string): T[] {
  if (a.ok && Array.isArray(a.data)) return a.data;
  if (a.httpStatus === 0 || a.httpStatus >= 500 || a.httpStatus === 429) throw new IrisUnavailableError(`cannot read ${what} (${path}): ${irisErrorText(a)}`);
  if (a.httpStatus === 401) throw new IrisSetupError(`IRIS refused the API key (401 ${a.message}); check iris.api_key`);
  throw new IrisSetupError(`cannot read ${what} (${path}): ${irisErrorText(a)}`);
}

function byName(rows: Record<string, unknown>[], idKey: string, nameKey: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rows) if (typeof r[nameKey] === 'string' && typeof r[idKey] === 'number') m.set(norm(r[nameKey] as string), r[idKey] as number);
  return m;
}

/** A name or id from the configuration → IRIS id, or a setup error naming the key and the choices. */
function resolve(value: string, names: Map<string, number>, key: string, what: string): number {
  if (/^\d+$/.test(value)) {
    const id = Number(value);
    if (names.size > 0 && ![...names.values()].includes(id)) throw new IrisSetupError(`${key}=${value}: IRIS has no ${what} with id ${id}; known: ${[...names].map(([n, i]) => `${i}=${n}`).join(', ')}`);
    return id;
  }
  const id = names.get(norm(value));
  if (id === undefined) throw new IrisSetupError(`${key}=${value}: IRIS has no ${what} named "${value}"; known: ${[...names.keys()].join(', ')}`);
  return id;
}

export async function loadIrisRefs(client: IrisClient, cfg: IrisConfig, log: { warn(o: object, m: string): void; info?(o: object, m: string): void }): Promise<IrisRefs> {
  const get = async <T>(what: string, path: string) => {
    try {
      return await client.list<T>(what, path);
    } catch (err) {
      throw new IrisUnavailableError(`cannot read ${what} (${path}): ${(err as Error).message}`);
    }
  };
  // Which IRIS answers (logged; the legacy endpoints used here exist in 2.4 and, deprecated, in 2.5).
  const versions = await get<unknown>('versions', '/api/versions');
  if (versions.ok && versions.data && typeof versions.data === 'object') {
    const v = versions.data as { iris_current?: string; api_current?: string };
    log.info?.({ iris: v.iris_current, api: v.api_current }, 'IRIS version');
  } else if (versions.httpStatus === 401 || versions.httpStatus === 0 || versions.httpStatus >= 500) {
    required(versions as IrisAnswer<unknown[]>, 'the IRIS version', '/api/versions');
  }
  const severities = byName(required(await get<Record<string, unknown>>('severities', '/manage/severities/list'), 'severities', '/manage/severities/list'), 'severity_id', 'severity_name');
  const statuses = byName(required(await get<Record<string, unknown>>('alert statuses', '/manage/alert-status/list'), 'alert statuses', '/manage/alert-status/list'), 'status_id', 'status_name');
  // Without these lists alerts still go, with untyped IOCs, no assets or no TLP; an outage still waits.
  const optional = async (what: string, path: string, idKey: string, nameKey: string): Promise<Map<string, number>> => {
    const a = await get<Record<string, unknown>>(what, path);
    if (a.ok && Array.isArray(a.data)) return byName(a.data, idKey, nameKey);
    if (a.httpStatus === 0 || a.httpStatus >= 500 || a.httpStatus === 429 || a.httpStatus === 401) required(a, what, path);
    log.warn({ path, error: irisErrorText(a) }, `cannot read IRIS ${what}; carrying on without them`);
    return new Map();
  };
  const iocTypes = await optional('IOC types', '/manage/ioc-types/list', 'type_id', 'type_name');
  const assetTypes = await optional('asset types', '/manage/asset-type/list', 'asset_id', 'asset_name');
  const tlps = await optional('TLPs', '/manage/tlp/list', 'tlp_id', 'tlp_name');

  // Resolutions are optional: a resolved alert is still closed without one.
  const resolutionsAnswer = await get<Record<string, unknown>>('alert resolutions', '/manage/alert-resolutions/list');
  const resolutions = resolutionsAnswer.ok && Array.isArray(resolutionsAnswer.data) ? byName(resolutionsAnswer.data, 'resolution_status_id', 'resolution_status_name') : new Map<string, number>();

  // Customers: needs customers_read; only the user's own customers are listed (all for admins).
  const customersAnswer = await get<Record<string, unknown>>('customers', '/manage/customers/list');
  let customers: Map<string, number> | null = null;
  let customerNames: { id: number; name: string }[] = [];
  if (customersAnswer.ok && Array.isArray(customersAnswer.data)) {
    customers = byName(customersAnswer.data, 'customer_id', 'customer_name');
    customerNames = customersAnswer.data.map((r) => ({ id: r.customer_id as number, name: String(r.customer_name) }));
  }
  else if (customersAnswer.httpStatus === 0 || customersAnswer.httpStatus >= 500) required(customersAnswer, 'customers', '/manage/customers/list');

  const wanted: [string, string][] = [['iris.customer_id', cfg.customer_id ?? ''], ...Object.entries(cfg.tenant_customers).map(([t, c]) => [`iris.tenant_customers.${t}`, c] as [string, string])];
  const customerIds = new Map<string, number>();
  for (const [key, value] of wanted) {
    if (!value) continue;
    if (!/^\d+$/.test(value) && customers === null) {
      throw new IrisSetupError(`${key}=${value}: a customer given by name needs the customers_read permission to look it up (${irisErrorText(customersAnswer)}); give the IRIS user customers_read or use the customer id`);
    }
    let id = /^\d+$/.test(value) ? Number(value) : customers!.get(norm(value));
    if (id === undefined || (customers !== null && customers.size > 0 && ![...customers.values()].includes(id))) {
      // Not listed: it does not exist or the key's user is not linked to it.
      const usable = customers ? customerNames.map((c) => `${c.id}=${c.name}`).join(', ') || 'none' : 'unknown';
      const first = customers ? [...customers.values()][0] : undefined;
      if (cfg.find_customer && first !== undefined) {
        log.warn({ key, configured: value, using: first }, 'the IRIS key may not use the configured customer; using the first customer it may use (iris.find_customer=true)');
        id = first;
      } else {
        throw new IrisSetupError(`${key}=${value}: the IRIS API key's user may not create alerts for customer "${value}" (customers it may use: ${usable}); link the user to that customer in IRIS (Advanced > Access control), or set ${key} to one of those, or set iris.find_customer=true`);
      }
    }
    customerIds.set(key, id);
  }

  const iocTypeId = (kind: IocKind): number | null => {
    for (const n of IOC_NAMES[kind]) {
      const id = iocTypes.get(n);
      if (id !== undefined) return id;
    }
    return null;
  };
  const assetTypeId = (kind: AssetKind): number | null => {
    for (const n of [...ASSET_NAMES[kind], ...ASSET_NAMES.generic]) {
      const id = assetTypes.get(norm(n));
      if (id !== undefined) return id;
    }
    return null;
  };
  const fallbackSeverity = severities.get('unspecified') ?? severities.get('medium') ?? [...severities.values()][0];
  if (fallbackSeverity === undefined) throw new IrisSetupError('IRIS lists no severities (/manage/severities/list is empty)');

  return {
    severityId: (s) => severities.get(norm(SEVERITY_NAMES.get(norm(s)) ?? s)) ?? fallbackSeverity,
    newStatusId: resolve(cfg.alert_status_id, statuses, 'iris.alert_status_id', 'alert status'),
    resolvedStatusId: resolve(cfg.resolved_status_id, statuses, 'iris.resolved_status_id', 'alert status'),
    iocTypeId,
    assetTypeId,
    tlpId: tlps.size > 0 || /^\d+$/.test(cfg.ioc_tlp) ? resolve(cfg.ioc_tlp, tlps, 'iris.ioc_tlp', 'TLP') : null,
    resolutionId: (classification) => {
      const name = classification ? RESOLUTION_NAMES.get(norm(classification)) : undefined;
      return name ? resolutions.get(name) ?? null : null;
    },
    customerFor: (tenantId) => customerIds.get(`iris.tenant_customers.${tenantId}`) ?? customerIds.get('iris.customer_id')!,
    usableCustomers: customers ? customerNames : null,
  };
}
