// Defender for Endpoint reads for the assets poller. Every call is paced per endpoint under the
// documented quotas (microsoft.md §0, §5, §7: lists and per-machine calls 100/min and 1,500/h,
// advanced hunting 45/min and 1,500/h), carries a bearer token refreshed once on 401, and waits
// out a 429's Retry-After before trying again.
import { parseRetryAfter, backoffMs } from '../../core/retry.js';
import { odataPages } from '../../net/odata-pages.js';
import { createHttpClient, type HttpClient, type HttpResponse } from '../../net/http.js';
import { Pacer } from '../../net/pacer.js';
import type { Logger } from '../../observability/logger.js';
import type { TokenProvider } from '../../sinks/microsoft/token.js';
import { defenderErrorText, odataString } from '../../sinks/defender/client.js';
import { readAlert, readLogonUser, readMachine, readMachineVulnerability, readRows, readVulnerability } from './read.js';
import type { DefenderAlert, LogonUser, Machine, MachineVulnerability, Vulnerability } from './types.js';

export type AssetEndpoint = 'machines' | 'logonusers' | 'machineVulnerabilities' | 'vulnerabilities' | 'vulnerabilitiesOfMachine' | 'hunting' | 'alerts';

export class DefenderReadError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
    this.name = 'DefenderReadError';
  }
}

export interface DefenderAssetsClientOptions {
  baseUrl: string;
  timeoutMs: number;
  verifyTls: boolean;
  callsPerMinute: number;
  callsPerHour: number;
  timeScale?: number;
  tokens: TokenProvider;
  log: Logger;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
// Whole seconds, as in the documented samples (`lastSeen gt 2018-08-01Z`); flooring only widens a `ge` filter.
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export class DefenderAssetsClient {
  private readonly http: HttpClient;
  readonly pacer: Pacer;
  /** Calls made per endpoint (for logs and the benchmark of call planning). */
  readonly calls: Record<string, number> = {};

  constructor(private readonly o: DefenderAssetsClientOptions) {
    this.http = createHttpClient({ system: 'defender', baseURL: o.baseUrl, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, log: o.log });
    const q = { perMinute: o.callsPerMinute, perHour: o.callsPerHour };
    this.pacer = new Pacer({
      machines: q, logonusers: q, machineVulnerabilities: q, vulnerabilities: q, alerts: q,
      // GET /api/machines/{id}/vulnerabilities: 50 calls a minute.
      vulnerabilitiesOfMachine: { perMinute: Math.min(45, o.callsPerMinute), perHour: o.callsPerHour },
      // Advanced hunting: 45 calls a minute and 1,500 an hour.
      hunting: { perMinute: Math.min(40, o.callsPerMinute), perHour: o.callsPerHour },
    }, o.timeScale ?? 1);
  }

  private async call<T>(endpoint: AssetEndpoint, method: 'GET' | 'POST', url: string, data?: unknown): Promise<HttpResponse<T>> {
    let refreshToken = false;
    for (let attempt = 0; ; attempt++) {
      await this.pacer.take(endpoint);
      const token = await this.o.tokens.getToken(refreshToken);
      refreshToken = false;
      this.calls[endpoint] = (this.calls[endpoint] ?? 0) + 1;
      const res = await this.http.request<T>({ method, url, data, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' } });
      // Only a refused token is renewed; a 429 or 5xx retry keeps msal's cached one.
      if (res.status === 401 && attempt === 0) { refreshToken = true; continue; }
      if ((res.status === 429 || res.status >= 500) && attempt < 4) {
        const wait = parseRetryAfter(res.headers['retry-after']) ?? backoffMs(attempt);
        if (res.status === 429) this.pacer.pauseFor(wait);
        this.o.log.warn({ source: 'defender_assets', endpoint, status: res.status, retryInMs: wait }, 'Defender asked us to wait');
        await sleep(wait);
        continue;
      }
      return res;
    }
  }

  /** Rows of a wrong shape are left out (logged): one odd machine must not stop the others. */
  private typed<T>(endpoint: AssetEndpoint, rows: unknown[], read: (raw: unknown) => T | null): T[] {
    const r = readRows(rows, read);
    if (r.unreadable > 0) this.o.log.warn({ source: 'defender_assets', endpoint, unreadable: r.unreadable }, 'Defender rows without an id or not objects; left out');
    return r.rows;
  }

  private async list<T>(endpoint: AssetEndpoint, path: string, params: Record<string, string>, read: (raw: unknown) => T | null, notFoundIsEmpty = false): Promise<T[]> {
    const out: T[] = [];
    const qs = Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    const first = `${path}${qs ? `?${qs}` : ''}`;
    for await (const rows of odataPages<unknown>(first, Number(params['$top'] ?? 0), async (url) => {
      const res: HttpResponse<{ value?: unknown[]; '@odata.nextLink'?: string }> = await this.call(endpoint, 'GET', url);
      // Documented: "If there are no recent machines, you see 404 Not Found."
      if (res.status === 404 && notFoundIsEmpty) return { rows: [], nextLink: null };
      // OData wraps rows in `value`; tolerate a bare array too.
      const rows = Array.isArray(res.data) ? (res.data as unknown[]) : res.data?.value;
      if (res.status !== 200 || !Array.isArray(rows)) {
        throw new DefenderReadError(`Defender ${endpoint} read failed (${res.status}): ${defenderErrorText(res)}`, res.status);
      }
      return { rows, nextLink: Array.isArray(res.data) ? null : res.data['@odata.nextLink'] ?? null };
    }, { apiBase: this.o.baseUrl })) out.push(...this.typed(endpoint, rows, read));
    return out;
  }

  /** All machines, or those seen since `since` (epoch ms). */
  machines(since: number | null): Promise<Machine[]> {
    return this.list('machines', '/api/machines', { $top: '10000', ...(since !== null ? { $filter: `lastSeen ge ${iso(since)}` } : {}) }, readMachine, true);
  }

  /** Machines by id, in chunks that keep the URL short. */
  async machinesById(ids: string[]): Promise<Machine[]> {
    const out: Machine[] = [];
    for (let i = 0; i < ids.length; i += 50) {
      const part = ids.slice(i, i + 50);
      out.push(...await this.list('machines', '/api/machines', { $filter: `id in (${part.map(odataString).join(',')})` }, readMachine, true));
    }
    return out;
  }

  /** The seed's deletion rule as a query: Inactive and last seen before `before`. */
  inactiveMachines(before: number): Promise<Machine[]> {
    return this.list('machines', '/api/machines', { $top: '10000', $filter: `healthStatus eq 'Inactive' and lastSeen le ${iso(before)}` }, readMachine, true);
  }

  async logonUsers(machineId: string): Promise<LogonUser[]> {
    const res = await this.call<{ value?: unknown[] } | unknown[]>('logonusers', 'GET', `/api/machines/${encodeURIComponent(machineId)}/logonusers`);
    if (res.status === 404) return [];
    const rows = Array.isArray(res.data) ? res.data : res.data?.value;
    if (res.status !== 200 || !Array.isArray(rows)) throw new DefenderReadError(`Defender logonusers read failed (${res.status}): ${defenderErrorText(res)}`, res.status);
    return this.typed('logonusers', rows, readLogonUser);
  }

  /** Every (machine, CVE) pair in a few paged calls instead of one 50/min call per machine. */
  machineVulnerabilities(): Promise<MachineVulnerability[]> {
    // $top as for /vulnerabilities (≤8,000): the limit of this listing is not documented separately.
    return this.list('machineVulnerabilities', '/api/vulnerabilities/machinesVulnerabilities', { $top: '8000' }, readMachineVulnerability);
  }

  vulnerabilities(): Promise<Vulnerability[]> {
    return this.list('vulnerabilities', '/api/vulnerabilities', { $top: '8000' }, readVulnerability);
  }

  /** Per machine (50/min): the fallback where the bulk TVM listing is not available. */
  async vulnerabilitiesOfMachine(machineId: string): Promise<Vulnerability[]> {
    try {
      return await this.list('vulnerabilitiesOfMachine', `/api/machines/${encodeURIComponent(machineId)}/vulnerabilities`, {}, readVulnerability);
    } catch (err) {
      if (err instanceof DefenderReadError && err.status === 404) return []; // the machine is gone
      throw err;
    }
  }

  alerts(filter: string): Promise<DefenderAlert[]> {
    return this.list('alerts', '/api/alerts', { $top: '10000', $filter: filter }, readAlert);
  }

  /** POST /api/advancedqueries/run → Results rows. */
  async hunt(query: string): Promise<Record<string, unknown>[]> {
    const res = await this.call<{ Results?: Record<string, unknown>[] }>('hunting', 'POST', '/api/advancedqueries/run', { Query: query });
    if (res.status !== 200 || !Array.isArray(res.data?.Results)) throw new DefenderReadError(`Defender advanced hunting failed (${res.status}): ${defenderErrorText(res)}`, res.status);
    return res.data.Results;
  }
}

export { iso as odataDate };
