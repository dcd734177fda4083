// Defender for Endpoint API: the one client of the indicator sink and both pollers, with its typed
// endpoints and their documented quotas (microsoft.md §0, §4, §5, §7). Every call goes through the
// call envelope: paced per endpoint, bearer token renewed once on 401, counted.
import type { Config } from '../../config/schema.js';
import { ApiCaller, bearerToken, type ApiResponse } from '../../net/call.js';
import type { HttpResponse } from '../../net/http.js';
import { odataPages } from '../../net/odata-pages.js';
import { Pacer, timeScale, type Quota } from '../../net/pacer.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { microsoftTokens, type EntraApp, type TokenProvider } from '../token.js';
import { readAlert, readLogonUser, readMachine, readMachineVulnerability, readRows, readVulnerability } from './read.js';
import type { DefenderAlert, DefenderIndicator, ImportResult, LogonUser, Machine, MachineVulnerability, Vulnerability } from './types.js';

export type DefenderEndpoint =
  | 'import' | 'batchDelete' | 'list' | 'delete'
  | 'alerts' | 'machine' | 'machines' | 'logonusers'
  | 'machineVulnerabilities' | 'vulnerabilities' | 'vulnerabilitiesOfMachine' | 'hunting';

/** The permission each endpoint needs, named in errors (403) so the fix is one look away. */
const PERMISSION: Record<DefenderEndpoint, string> = {
  import: 'Ti.ReadWrite.All', batchDelete: 'Ti.ReadWrite.All', list: 'Ti.ReadWrite.All', delete: 'Ti.ReadWrite.All',
  alerts: 'Alert.Read.All', machine: 'Machine.Read.All', machines: 'Machine.Read.All', logonusers: 'User.Read.All',
  machineVulnerabilities: 'Vulnerability.Read.All', vulnerabilities: 'Vulnerability.Read.All',
  vulnerabilitiesOfMachine: 'Vulnerability.Read.All', hunting: 'AdvancedQuery.Read.All',
};

export interface DefenderPace {
  /** Reads and single calls per minute (Defender allows 100). */
  callsPerMinute: number;
  /** Calls per hour and endpoint (Defender allows 1,500). */
  callsPerHour: number;
  /** import and BatchDelete per minute (Defender allows 30). */
  batchCallsPerMinute?: number;
}

/** The documented quotas, never above what configuration allows. */
export function defenderQuotas(p: DefenderPace): Record<DefenderEndpoint, Quota> {
  const perHour = p.callsPerHour;
  const batch = { perMinute: p.batchCallsPerMinute ?? 30, perHour };
  const single = { perMinute: p.callsPerMinute, perHour };
  return {
    import: batch, batchDelete: batch,
    list: single, delete: single, alerts: single, machine: single, machines: single, logonusers: single,
    machineVulnerabilities: single, vulnerabilities: single,
    // GET /api/machines/{id}/vulnerabilities: 50 calls a minute.
    vulnerabilitiesOfMachine: { perMinute: Math.min(45, p.callsPerMinute), perHour },
    // Advanced hunting: 45 calls a minute and 1,500 an hour.
    hunting: { perMinute: Math.min(40, p.callsPerMinute), perHour },
  };
}

export interface DefenderApiOptions extends DefenderPace {
  baseUrl: string;
  /** The indicators path under baseUrl. */
  resourcePath?: string;
  timeoutMs: number;
  verifyTls: boolean;
  userAgent?: string;
  timeScale?: number;
  tokens: TokenProvider;
  log: Logger;
  /** Calls counted under this name (the sink or source) in the request metrics. */
  metrics?: { metrics: Metrics; label: string };
  /** Shown in errors: the tenant this client reads. */
  tenantId?: string;
  /** Pollers' reads wait out 429/5xx this many times (no outbox retries them); the sink leaves it to the outbox. */
  waitOut?: number;
}

export class DefenderApiError extends Error {
  constructor(message: string, readonly status: number, readonly retryAfterMs: number | null = null) {
    super(message);
    this.name = 'DefenderApiError';
  }
}

/** Defender's error body: {"error":{"code","message","target"}}. */
export function defenderErrorText(res: HttpResponse): string {
  const body = res.data as { error?: { code?: string; message?: string } } | string | undefined;
  if (body && typeof body === 'object' && body.error) return `${body.error.code ?? 'Error'}: ${body.error.message ?? ''}`.trim();
  if (typeof body === 'string' && body) return body.slice(0, 300);
  return `HTTP ${res.status}`;
}

/** OData string literal: quotes doubled; the caller percent-encodes the whole expression. */
export function odataString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Whole seconds, as in the documented samples (`lastSeen gt 2018-08-01Z`); flooring only widens a `ge` filter. */
export const odataDate = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

type Listing<T> = { value?: T[]; '@odata.nextLink'?: string } | T[];

export class DefenderApi {
  private readonly caller: ApiCaller;
  readonly pacer: Pacer;

  constructor(private readonly o: DefenderApiOptions) {
    this.pacer = new Pacer(defenderQuotas(o), o.timeScale ?? 1);
    this.caller = new ApiCaller({
      system: 'defender', baseURL: o.baseUrl, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, ...(o.userAgent ? { userAgent: o.userAgent } : {}), log: o.log, pacer: this.pacer, credentials: bearerToken(o.tokens),
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      ...(o.metrics ? { metrics: o.metrics } : {}), ...(o.waitOut ? { waitOut: o.waitOut } : {}),
    });
  }

  get resourcePath(): string {
    return this.o.resourcePath ?? '/api/indicators';
  }

  /** Calls made per endpoint (logs and the benchmark of call planning). */
  get calls(): Record<string, number> {
    return this.caller.calls;
  }

  private call<T>(endpoint: DefenderEndpoint, method: 'GET' | 'POST' | 'DELETE', url: string, data?: unknown, signal?: AbortSignal): Promise<ApiResponse<T>> {
    return this.caller.call<T>(endpoint, { method, url, data }, signal);
  }

  // --- indicators ------------------------------------------------------------------------------

  importIndicators(bodies: unknown[]): Promise<ApiResponse<{ value?: ImportResult[] }>> {
    return this.call('import', 'POST', `${this.resourcePath}/import`, { Indicators: bodies });
  }

  batchDelete(ids: string[]): Promise<ApiResponse<unknown>> {
    return this.call('batchDelete', 'POST', `${this.resourcePath}/BatchDelete`, { IndicatorIds: ids });
  }

  deleteIndicator(id: string): Promise<ApiResponse<unknown>> {
    return this.call('delete', 'DELETE', `${this.resourcePath}/${encodeURIComponent(id)}`);
  }

  /** Indicators matching an OData filter. */
  listIndicators(filter: string | null, pageSize = 10_000): Promise<DefenderIndicator[]> {
    return this.list<DefenderIndicator>('list', this.resourcePath, { $top: String(pageSize), ...(filter ? { $filter: filter } : {}) }, { maxPages: 1000 });
  }

  // --- alerts ----------------------------------------------------------------------------------

  /** Every alert updated at or after `fromIso`, with evidence, page by page. Returns how many were read. */
  alertsUpdatedSince(fromIso: string, pageSize: number, onPage: (alerts: unknown[]) => Promise<void>, signal?: AbortSignal): Promise<number> {
    return this.alertsWhere(`lastUpdateTime ge ${fromIso}`, pageSize, onPage, signal);
  }

  /** Every alert matching an OData filter, with evidence, page by page. */
  async alertsWhere(filter: string, pageSize: number, onPage: (alerts: unknown[]) => Promise<void>, signal?: AbortSignal): Promise<number> {
    let total = 0;
    const params = { $filter: filter, $expand: 'evidence', $top: String(pageSize) };
    for await (const rows of this.pages<unknown>('alerts', '/api/alerts', params, { signal })) {
      total += rows.length;
      await onPage(rows);
    }
    return total;
  }

  alerts(filter: string): Promise<DefenderAlert[]> {
    return this.typedList('alerts', '/api/alerts', { $top: '10000', $filter: filter }, readAlert);
  }

  // --- machines --------------------------------------------------------------------------------

  /** One machine, or null when Defender does not know it (404), or 'forbidden' (403: no Machine.Read.All). */
  async machine(id: string, signal?: AbortSignal): Promise<Machine | null | 'forbidden'> {
    const res = await this.call<Machine>('machine', 'GET', `/api/machines/${encodeURIComponent(id)}`, undefined, signal);
    if (res.status === 200 && res.data && typeof res.data === 'object') return res.data;
    if (res.status === 403) return 'forbidden';
    if (res.status === 404 || res.status === 400) return null;
    throw this.failure('machine', `machine lookup for ${id}`, res);
  }

  /** All machines, or those seen since `since` (epoch ms). */
  machines(since: number | null): Promise<Machine[]> {
    return this.typedList('machines', '/api/machines', { $top: '10000', ...(since !== null ? { $filter: `lastSeen ge ${odataDate(since)}` } : {}) }, readMachine, { notFoundIsEmpty: true });
  }

  /** Machines by id, in chunks that keep the URL short. */
  async machinesById(ids: string[]): Promise<Machine[]> {
    const out: Machine[] = [];
    for (let i = 0; i < ids.length; i += 50) {
      const part = ids.slice(i, i + 50);
      out.push(...await this.typedList('machines', '/api/machines', { $filter: `id in (${part.map(odataString).join(',')})` }, readMachine, { notFoundIsEmpty: true }));
    }
    return out;
  }

  /** The seed's deletion rule as a query: Inactive and last seen before `before`. */
  inactiveMachines(before: number): Promise<Machine[]> {
    return this.typedList('machines', '/api/machines', { $top: '10000', $filter: `healthStatus eq 'Inactive' and lastSeen le ${odataDate(before)}` }, readMachine, { notFoundIsEmpty: true });
  }

  logonUsers(machineId: string): Promise<LogonUser[]> {
    return this.typedList('logonusers', `/api/machines/${encodeURIComponent(machineId)}/logonusers`, {}, readLogonUser, { notFoundIsEmpty: true });
  }

  // --- vulnerabilities and hunting -------------------------------------------------------------

  /** Every (machine, CVE) pair in a few paged calls instead of one 50/min call per machine. */
  machineVulnerabilities(): Promise<MachineVulnerability[]> {
    // $top as for /vulnerabilities (≤8,000): the limit of this listing is not documented separately.
    return this.typedList('machineVulnerabilities', '/api/vulnerabilities/machinesVulnerabilities', { $top: '8000' }, readMachineVulnerability);
  }

  vulnerabilities(): Promise<Vulnerability[]> {
    return this.typedList('vulnerabilities', '/api/vulnerabilities', { $top: '8000' }, readVulnerability);
  }

  /** Per machine (50/min): the fallback where the bulk TVM listing is not available. */
  vulnerabilitiesOfMachine(machineId: string): Promise<Vulnerability[]> {
    // 404: the machine is gone.
    return this.typedList('vulnerabilitiesOfMachine', `/api/machines/${encodeURIComponent(machineId)}/vulnerabilities`, {}, readVulnerability, { notFoundIsEmpty: true });
  }

  /** POST /api/advancedqueries/run → Results rows. */
  async hunt(query: string): Promise<Record<string, unknown>[]> {
    const res = await this.call<{ Results?: Record<string, unknown>[] }>('hunting', 'POST', '/api/advancedqueries/run', { Query: query });
    if (res.status !== 200 || !Array.isArray(res.data?.Results)) throw this.failure('hunting', 'advanced hunting', res);
    return res.data.Results;
  }

  // --- paging and errors -----------------------------------------------------------------------

  private async list<T>(endpoint: DefenderEndpoint, path: string, params: Record<string, string>, options: { notFoundIsEmpty?: boolean; maxPages?: number } = {}): Promise<T[]> {
    const out: T[] = [];
    for await (const rows of this.pages<T>(endpoint, path, params, options)) out.push(...rows);
    return out;
  }

  /** A listing whose rows are read through `read`: rows of a wrong shape are left out (logged), so one odd machine cannot stop the others. */
  private async typedList<T>(endpoint: DefenderEndpoint, path: string, params: Record<string, string>, read: (raw: unknown) => T | null, options: { notFoundIsEmpty?: boolean } = {}): Promise<T[]> {
    const r = readRows(await this.list<unknown>(endpoint, path, params, options), read);
    if (r.unreadable > 0) this.o.log.warn({ endpoint, unreadable: r.unreadable }, 'Defender rows without an id or not objects; left out');
    return r.rows;
  }

  /** OData pages: `value` rows (a bare array tolerated), following @odata.nextLink. */
  private pages<T>(endpoint: DefenderEndpoint, path: string, params: Record<string, string>, options: { notFoundIsEmpty?: boolean; maxPages?: number; signal?: AbortSignal }): AsyncGenerator<T[]> {
    const qs = Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    const first = `${path}${qs ? `?${qs}` : ''}`;
    return odataPages<T>(first, Number(params['$top'] ?? 0), async (url) => {
      const res = await this.call<Listing<T>>(endpoint, 'GET', url, undefined, options.signal);
      // Documented: "If there are no recent machines, you see 404 Not Found."
      if (res.status === 404 && options.notFoundIsEmpty) return { rows: [], nextLink: null };
      const rows = Array.isArray(res.data) ? res.data : res.data?.value;
      if (res.status !== 200 || !Array.isArray(rows)) throw this.failure(endpoint, `${endpoint} listing`, res);
      return { rows, nextLink: Array.isArray(res.data) ? null : res.data['@odata.nextLink'] ?? null };
    }, { apiBase: this.o.baseUrl, maxPages: options.maxPages });
  }

  private failure(endpoint: DefenderEndpoint, what: string, res: ApiResponse): DefenderApiError {
    const hint = res.status === 403 ? ` (the application needs the WindowsDefenderATP permission ${PERMISSION[endpoint]}, admin-consented)` : '';
    const tenant = this.o.tenantId ? ` for tenant ${this.o.tenantId}` : '';
    return new DefenderApiError(`Defender ${what} failed${tenant} (HTTP ${res.status}): ${defenderErrorText(res)}${hint}`, res.status, res.retryAfterMs);
  }
}

/**
 * The Defender client of the configured tenant, or of `app`'s tenant (alerts of several tenants,
 * indicator targets), paced as `pace` says: one pacer per client, so each tenant and application
 * has its own quotas, as Defender counts them.
 */
export function defenderApi(config: Config, pace: DefenderPace, log: Logger,
  options: { metrics?: Metrics; label: string; app?: EntraApp; waitOut?: number; baseUrl?: string }): DefenderApi {
  const d = config.microsoft_defender_intel;
  return new DefenderApi({
    baseUrl: options.baseUrl ?? d.base_url, resourcePath: d.resource_path, timeoutMs: d.request_timeout * 1000, verifyTls: d.ssl_verify,
    userAgent: config.connector.user_agent, timeScale: timeScale(), ...pace,
    tokens: microsoftTokens(config, 'defender', log, options.app, options.metrics), log,
    tenantId: options.app?.tenantId ?? d.tenant_id!,
    ...(options.metrics ? { metrics: { metrics: options.metrics, label: options.label } } : {}),
    ...(options.waitOut ? { waitOut: options.waitOut } : {}),
  });
}
