// Defender simulator: machines, logon users, TVM vulnerabilities, advanced hunting and (for the
// assets flow) alerts, with their own seedable data per simulator instance (`assetData(sim)`).
// Throttled per (tenant, app, endpoint) with the documented quotas (microsoft.md §0, §5, §7):
// lists and per-machine calls 100/min and 1,500/h; advanced hunting 45/min and 1,500/h.
import { randomBytes } from 'node:crypto';
import { defenderAlerts } from './alert-routes.js';
import type { Alert } from './alerts.js';
import type { DefenderAlert, LogonUser, Machine, MachineVulnerability, Vulnerability } from '../../src/microsoft/defender/types.js';
import { MdeError } from './errors.js';
import { ODataError, parseQuery, queryWithSkip, runQuery, type EntitySchema } from './odata.js';
import type { Route, RouteContext, RouteResult } from './routing.js';

/** App roles the assets poller needs on WindowsDefenderATP. */
export const DEFENDER_ASSET_ROLES = ['Machine.Read.All', 'User.Read.All', 'Vulnerability.Read.All', 'AdvancedQuery.Read.All', 'Alert.Read.All'];

const MACHINE_SCHEMA: EntitySchema = {
  typeName: 'Machine',
  fields: {
    id: 'string', computerDnsName: 'string', lastSeen: 'datetime', firstSeen: 'datetime', healthStatus: 'string', osPlatform: 'string',
    riskScore: 'string', exposureLevel: 'string', lastIpAddress: 'string', deviceValue: 'string', rbacGroupId: 'number', onboardingStatus: 'string', version: 'string',
  },
};
const ALERT_SCHEMA: EntitySchema = {
  typeName: 'Alert',
  fields: { id: 'string', status: 'string', severity: 'string', lastUpdateTime: 'datetime', alertCreationTime: 'datetime', machineId: 'string', category: 'string', lastEventTime: 'datetime' },
};
const MV_SCHEMA: EntitySchema = { typeName: 'MachineVulnerability', fields: { id: 'string', cveId: 'string', machineId: 'string', severity: 'string', productName: 'string' } };
const VULN_SCHEMA: EntitySchema = { typeName: 'Vulnerability', fields: { id: 'string', name: 'string', severity: 'string', publishedOn: 'datetime', updatedOn: 'datetime', cvssV3: 'number' } };

const MINUTE = 60_000;
const QUOTAS: Record<string, { limit: number; windowMs: number }[]> = {
  'machines.list': [{ limit: 100, windowMs: MINUTE }, { limit: 1500, windowMs: 60 * MINUTE }],
  'machines.logonusers': [{ limit: 100, windowMs: MINUTE }, { limit: 1500, windowMs: 60 * MINUTE }],
  'vulnerabilities.list': [{ limit: 100, windowMs: MINUTE }, { limit: 1500, windowMs: 60 * MINUTE }],
  'machines.vulnerabilities': [{ limit: 50, windowMs: MINUTE }, { limit: 1500, windowMs: 60 * MINUTE }],
  'vulnerabilities.machines': [{ limit: 100, windowMs: MINUTE }, { limit: 1500, windowMs: 60 * MINUTE }],
  'advancedqueries.run': [{ limit: 45, windowMs: MINUTE }, { limit: 1500, windowMs: 60 * MINUTE }],
  'assets.alerts.list': [{ limit: 100, windowMs: MINUTE }, { limit: 1500, windowMs: 60 * MINUTE }],
};

export interface NetworkInfoRow {
  DeviceId: string;
  MacAddress: string | null;
  /** JSON string, as DeviceNetworkInfo returns it: [{"IPAddress":"…","SubnetPrefix":24,"AddressType":"Private"}] */
  IPAddresses: string;
  Timestamp: string;
}

/** The assets data set of one simulator (every tenant sees the same fleet). */
export class DefenderAssetData {
  /** Tenant whose alert list `setAlert` writes to (alerts are per tenant in the alerts API). */
  tenantId = '11111111-2222-4333-8444-555555555555';
  constructor(private readonly sim: object | null = null) {}
  readonly machines = new Map<string, Machine>();
  readonly logonUsers = new Map<string, LogonUser[]>();
  machineVulnerabilities: MachineVulnerability[] = [];
  readonly vulnerabilities = new Map<string, Vulnerability>();
  readonly alerts = new Map<string, DefenderAlert>();
  networkInfo: NetworkInfoRow[] = [];
  /** false: GET /api/vulnerabilities/machinesVulnerabilities answers 404 (clients fall back to per-machine calls). */
  bulkTvm = true;
  /** Simulated time: real time × timeScale for the quotas. */
  timeScale = 1;
  private readonly hits = new Map<string, number[]>();

  addMachine(m: Partial<Machine> & { computerDnsName: string }): Machine {
    const now = new Date().toISOString();
    const machine: Machine = {
      id: randomBytes(20).toString('hex'), firstSeen: now, lastSeen: now, osPlatform: 'Windows11', version: '23H2',
      healthStatus: 'Active', riskScore: 'Low', exposureLevel: 'Low', deviceValue: 'Normal', ipAddresses: [], machineTags: [], ...m,
    };
    this.machines.set(machine.id, machine);
    return machine;
  }

  /** Applies a change and marks the machine seen now (unless the patch sets lastSeen). */
  updateMachine(id: string, patch: Partial<Machine>): Machine {
    const m = this.machines.get(id);
    if (!m) throw new Error(`no machine ${id}`);
    Object.assign(m, { lastSeen: new Date().toISOString() }, patch);
    return m;
  }

  /** As Defender does: a renamed device reports under a new machine id; the old entry stops reporting and turns Inactive. */
  renameMachine(id: string, computerDnsName: string): Machine {
    const old = this.machines.get(id);
    if (!old) throw new Error(`no machine ${id}`);
    old.healthStatus = 'Inactive';
    const { id: _old, ...rest } = old;
    return this.addMachine({ ...rest, computerDnsName, healthStatus: 'Active', firstSeen: new Date().toISOString(), lastSeen: new Date().toISOString() });
  }

  /** Adds or changes an alert in the simulator's one alert store (the alerts API serves both flows). */
  setAlert(a: Partial<DefenderAlert> & { id: string; machineId: string }, tenantId = this.tenantId): DefenderAlert {
    if (!this.sim) throw new Error('assetData() was created without its simulator');
    const store = defenderAlerts(this.sim);
    const fields = Object.fromEntries(Object.entries(a).filter(([, v]) => v !== null && v !== undefined)) as Partial<Alert>;
    const alert = store.get(tenantId, a.id) ? store.update(tenantId, a.id, fields) : store.add(tenantId, { title: a.id, ...fields });
    this.alerts.set(alert.id, alert);
    return alert;
  }

  /** Records the call; throws 429 with Retry-After when a quota is spent. */
  hit(key: string, endpoint: string): void {
    const quotas = QUOTAS[endpoint] ?? [];
    const now = performance.now() * this.timeScale;
    let wait = 0;
    quotas.forEach((q, i) => {
      const k = `${key}|${endpoint}|${i}`;
      const log = (this.hits.get(k) ?? []).filter((t) => t > now - q.windowMs);
      log.push(now);
      this.hits.set(k, log);
      if (log.length > q.limit) wait = Math.max(wait, log[log.length - q.limit - 1]! + q.windowMs - now);
    });
    if (wait > 0) {
      const seconds = Math.max(1, Math.ceil(wait / this.timeScale / 1000));
      throw new MdeError(429, 'TooManyRequests', `Rate limit is exceeded. Try again in ${seconds} seconds.`, { 'Retry-After': String(seconds) });
    }
  }
}

const DATA = new WeakMap<object, DefenderAssetData>();

/** The assets data set of a simulator instance (created on first use). */
export function assetData(sim: object): DefenderAssetData {
  let d = DATA.get(sim);
  if (!d) DATA.set(sim, (d = new DefenderAssetData(sim)));
  return d;
}

function list<T extends object>(ctx: RouteContext, rows: readonly T[], schema: EntitySchema, maxTop: number, entitySet: string, pageSize: number, emptyIs404 = false): RouteResult {
  let query;
  try {
    query = parseQuery(ctx.url.searchParams, schema, { maxTop });
  } catch (err) {
    if (err instanceof ODataError) throw new MdeError(400, 'ODataError', err.message);
    throw err;
  }
  // Documented for machines: "If there are no recent machines, you see 404 Not Found."
  if (emptyIs404 && rows.length === 0) throw new MdeError(404, 'ResourceNotFound', 'No machines were found.');
  const result = runQuery(rows, query, schema, pageSize);
  const body: Record<string, unknown> = { '@odata.context': `${ctx.baseUrl}/api/$metadata#${entitySet}` };
  if (query.count) body['@odata.count'] = result.total;
  body.value = result.page;
  if (result.nextSkip !== null) body['@odata.nextLink'] = `${ctx.baseUrl}${ctx.url.pathname}?${queryWithSkip(ctx.url.searchParams, result.nextSkip)}`;
  return { status: 200, body, items: result.page.length };
}

const ROLES = {
  machines: ['Machine.Read.All', 'Machine.ReadWrite.All'],
  users: ['User.Read.All'],
  vulns: ['Vulnerability.Read.All'],
  hunting: ['AdvancedQuery.Read.All', 'AdvancedQuery.Read'],
  alerts: ['Alert.Read.All', 'Alert.ReadWrite.All'],
} as const;

export function assetRoutes(sim: object, opts: { pageSize?: number } = {}): Route[] {
  const data = () => assetData(sim);
  const pageSize = opts.pageSize ?? 10_000;
  const guard = (endpoint: string, handler: (ctx: RouteContext) => RouteResult | Promise<RouteResult>) => (ctx: RouteContext) => {
    data().hit(`${ctx.caller.tenantId}|${ctx.caller.clientId}`, endpoint);
    return handler(ctx);
  };
  return [
    { method: 'GET', pattern: /^\/api\/machines$/i, endpoint: 'machines.list', roles: ROLES.machines,
      handle: guard('machines.list', (ctx) => list(ctx, [...data().machines.values()], MACHINE_SCHEMA, 10_000, 'Machines', pageSize, true)) },
    { method: 'GET', pattern: /^\/api\/machines\/([^/]+)\/logonusers$/i, endpoint: 'machines.logonusers', roles: ROLES.users,
      handle: guard('machines.logonusers', (ctx) => {
        const id = ctx.params[0] ?? '';
        const m = data().machines.get(id) ?? [...data().machines.values()].find((x) => x.computerDnsName === id);
        if (!m) throw new MdeError(404, 'ResourceNotFound', `Machine ${id} was not found`);
        const value = data().logonUsers.get(m.id) ?? [];
        return { status: 200, body: { '@odata.context': `${ctx.baseUrl}/api/$metadata#Users`, value }, items: value.length };
      }) },
    { method: 'GET', pattern: /^\/api\/vulnerabilities\/machinesvulnerabilities$/i, endpoint: 'vulnerabilities.machines', roles: ROLES.vulns,
      handle: guard('vulnerabilities.machines', (ctx) => !data().bulkTvm ? notFound(ctx) : list(ctx, data().machineVulnerabilities.map((v) => ({ id: `${v.machineId}-_-${v.cveId}-_-${v.productVendor ?? ''}-_-${v.productName ?? ''}-_-${v.productVersion ?? ''}-_-${v.fixingKbId ?? ''}`, ...v })), MV_SCHEMA, 10_000, 'MachineVulnerabilities', pageSize)) },
    { method: 'GET', pattern: /^\/api\/machines\/([^/]+)\/vulnerabilities$/i, endpoint: 'machines.vulnerabilities', roles: ROLES.vulns,
      handle: guard('machines.vulnerabilities', (ctx) => {
        const m = data().machines.get(ctx.params[0] ?? '');
        if (!m) throw new MdeError(404, 'ResourceNotFound', `Machine ${ctx.params[0] ?? ''} was not found`);
        const cves = new Set(data().machineVulnerabilities.filter((v) => v.machineId === m.id).map((v) => v.cveId));
        const value = [...cves].map((id) => data().vulnerabilities.get(id) ?? { id, name: id });
        return { status: 200, body: { '@odata.context': `${ctx.baseUrl}/api/$metadata#Vulnerabilities`, value }, items: value.length };
      }) },
    { method: 'GET', pattern: /^\/api\/vulnerabilities$/i, endpoint: 'vulnerabilities.list', roles: ROLES.vulns,
      handle: guard('vulnerabilities.list', (ctx) => list(ctx, [...data().vulnerabilities.values()], VULN_SCHEMA, 8_000, 'Vulnerabilities', Math.min(pageSize, 8_000))) },
    { method: 'POST', pattern: /^\/api\/advancedqueries\/run$/i, endpoint: 'advancedqueries.run', roles: ROLES.hunting,
      handle: guard('advancedqueries.run', async (ctx) => hunt(await ctx.body(), data())) },
  ];
}

function notFound(ctx: RouteContext): never {
  throw new MdeError(404, 'NotFound', `No resource matches GET ${ctx.url.pathname}.`);
}

/** The one KQL shape the assets poller sends: DeviceNetworkInfo filtered by `DeviceId in (...)`. */
function hunt(body: unknown, data: DefenderAssetData): RouteResult {
  const query = (body as { Query?: unknown })?.Query;
  if (typeof query !== 'string' || !query.trim()) throw new MdeError(400, 'MissingRequiredParameter', 'Parameter Query is missing.');
  if (!/^\s*DeviceNetworkInfo\b/.test(query)) throw new MdeError(400, 'BadRequest', 'The simulator only answers DeviceNetworkInfo queries.');
  const m = /DeviceId\s+in\s*\(([^)]*)\)/i.exec(query);
  const ids = m ? new Set([...m[1]!.matchAll(/["']([^"']+)["']/g)].map((x) => x[1]!)) : null;
  const rows = data.networkInfo.filter((r) => !ids || ids.has(r.DeviceId));
  return {
    status: 200,
    body: { Schema: [{ Name: 'DeviceId', Type: 'String' }, { Name: 'MacAddress', Type: 'String' }, { Name: 'IPAddresses', Type: 'String' }], Results: rows.map(({ DeviceId, MacAddress, IPAddresses }) => ({ DeviceId, MacAddress, IPAddresses })) },
    items: rows.length,
  };
}
