// Defender for Endpoint indicators API: import (batch upsert), BatchDelete, list. Every call is
// paced under the documented per-endpoint quotas and carries a bearer token refreshed once on 401.
import { odataPages } from '../../net/odata-pages.js';
import { createHttpClient, type HttpClient, type HttpResponse } from '../../net/http.js';
import { Pacer } from '../../net/pacer.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { TokenProvider } from '../microsoft/token.js';
import type { DefenderIndicatorBody } from './mapper.js';

export interface ImportResult {
  id: string | null;
  indicator: string;
  isFailed: boolean;
  failureReason: string | null;
}

export interface DefenderIndicator {
  id: string;
  indicatorValue: string;
  indicatorType: string;
  action?: string;
  application?: string | null;
  expirationTime?: string | null;
  [field: string]: unknown;
}

export type Endpoint = 'import' | 'batchDelete' | 'list' | 'delete';

export interface DefenderClientOptions {
  baseUrl: string;
  resourcePath: string;
  timeoutMs: number;
  verifyTls: boolean;
  importCallsPerMinute: number;
  callsPerHour: number;
  timeScale?: number;
  sink: string;
  userAgent?: string;
  tokens: TokenProvider;
  log: Logger;
  metrics: Metrics;
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

export class DefenderClient {
  private readonly http: HttpClient;
  readonly pacer: Pacer;

  get resourcePath(): string {
    return this.o.resourcePath;
  }

  constructor(private readonly o: DefenderClientOptions) {
    this.http = createHttpClient({ system: 'defender', baseURL: o.baseUrl, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, log: o.log, userAgent: o.userAgent });
    // Documented: import and BatchDelete 30/min; list and single calls 100/min; 1,500/h each.
    this.pacer = new Pacer({
      import: { perMinute: o.importCallsPerMinute, perHour: o.callsPerHour },
      batchDelete: { perMinute: o.importCallsPerMinute, perHour: o.callsPerHour },
      list: { perMinute: 90, perHour: o.callsPerHour },
      delete: { perMinute: 90, perHour: o.callsPerHour },
    }, o.timeScale ?? 1);
  }

  /** One authorised call: paced, token attached, refreshed once on 401. */
  async call<T>(endpoint: Endpoint, method: 'GET' | 'POST' | 'DELETE', path: string, data?: unknown): Promise<HttpResponse<T>> {
    let res: HttpResponse<T> | null = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      await this.pacer.take(endpoint);
      const token = await this.o.tokens.getToken(attempt > 0);
      const end = this.o.metrics.sinkLatency.startTimer({ sink: this.o.sink, endpoint });
      try {
        res = await this.http.request<T>({
          method, url: path, data, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        });
      } catch (err) {
        this.o.metrics.sinkRequests.inc({ sink: this.o.sink, endpoint, status: 'error' });
        throw err;
      } finally {
        end();
      }
      this.o.metrics.sinkRequests.inc({ sink: this.o.sink, endpoint, status: String(res.status) });
      if (res.status === 429) this.o.metrics.sinkThrottled.inc({ sink: this.o.sink });
      if (res.status !== 401) return res;
      this.o.log.info({ sink: this.o.sink, endpoint }, 'Defender answered 401; refreshing the token once');
    }
    return res!;
  }

  importIndicators(bodies: DefenderIndicatorBody[]): Promise<HttpResponse<{ value?: ImportResult[] }>> {
    return this.call('import', 'POST', `${this.o.resourcePath}/import`, { Indicators: bodies });
  }

  batchDelete(ids: string[]): Promise<HttpResponse<unknown>> {
    return this.call('batchDelete', 'POST', `${this.o.resourcePath}/BatchDelete`, { IndicatorIds: ids });
  }

  /** Indicators matching an OData filter, following @odata.nextLink. */
  async list(filter: string | null, pageSize = 10_000): Promise<DefenderIndicator[]> {
    const out: DefenderIndicator[] = [];
    const first = `${this.o.resourcePath}?$top=${pageSize}${filter ? `&$filter=${encodeURIComponent(filter)}` : ''}`;
    for await (const rows of odataPages<DefenderIndicator>(first, pageSize, async (url) => {
      const res: HttpResponse<{ value?: DefenderIndicator[]; '@odata.nextLink'?: string }> = await this.call('list', 'GET', url);
      if (res.status !== 200 || !Array.isArray(res.data?.value)) {
        throw Object.assign(new Error(`Defender list failed: ${defenderErrorText(res)}`), { status: res.status, headers: res.headers });
      }
      return { rows: res.data.value, nextLink: res.data['@odata.nextLink'] ?? null };
    }, { apiBase: this.o.baseUrl, maxPages: 1000 })) out.push(...rows);
    return out;
  }
}
