// Reads Defender alerts: GET /api/alerts?$filter=lastUpdateTime ge <from>&$expand=evidence&$top=N,
// following @odata.nextLink (or $skip when a full page comes without one). Paced under the
// documented 100 calls/min and 1,500/h; 429 honours Retry-After; a 401 refreshes the token once.
import { decide } from '../../core/retry.js';
import { odataPages } from '../../net/odata-pages.js';
import { createHttpClient, type HttpClient, type HttpResponse } from '../../net/http.js';
import { Pacer } from '../../net/pacer.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { defenderErrorText } from '../../sinks/defender/client.js';
import type { TokenProvider } from '../../sinks/microsoft/token.js';

export interface DefenderAlertsClientOptions {
  baseUrl: string;
  timeoutMs: number;
  verifyTls: boolean;
  callsPerMinute: number;
  callsPerHour: number;
  timeScale?: number;
  tokens: TokenProvider;
  log: Logger;
  metrics: Metrics;
  /** Shown in logs: the tenant this client reads. */
  tenantId: string;
}

export class DefenderAlertsError extends Error {
  constructor(message: string, readonly status: number, readonly retryAfterMs: number | null = null) {
    super(message);
  }
}

const MAX_THROTTLED_RETRIES = 5;

export class DefenderAlertsClient {
  private readonly http: HttpClient;
  readonly pacer: Pacer;

  constructor(private readonly o: DefenderAlertsClientOptions) {
    this.http = createHttpClient({ system: 'defender', baseURL: o.baseUrl, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, log: o.log });
    this.pacer = new Pacer({
      list: { perMinute: o.callsPerMinute, perHour: o.callsPerHour },
      machine: { perMinute: o.callsPerMinute, perHour: o.callsPerHour },
    }, o.timeScale ?? 1);
  }

  private async get<T>(url: string, signal?: AbortSignal, endpoint: 'list' | 'machine' = 'list'): Promise<HttpResponse<T>> {
    let throttled = 0;
    for (let attempt = 0; ; attempt++) {
      await this.pacer.take(endpoint, signal);
      const token = await this.o.tokens.getToken(attempt > 0 && throttled === 0);
      const end = this.o.metrics.sinkLatency.startTimer({ sink: 'defender_alerts', endpoint: 'alerts.list' });
      let res: HttpResponse<T>;
      try {
        res = await this.http.request<T>({ method: 'GET', url, headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } });
      } catch (err) {
        this.o.metrics.sinkRequests.inc({ sink: 'defender_alerts', endpoint: 'alerts.list', status: 'error' });
        throw err;
      } finally {
        end();
      }
      this.o.metrics.sinkRequests.inc({ sink: 'defender_alerts', endpoint: 'alerts.list', status: String(res.status) });
      if (res.status === 401 && attempt === 0) {
        this.o.log.info({ source: 'defender_alerts', tenant: this.o.tenantId }, 'Defender answered 401; refreshing the token once');
        continue;
      }
      if (res.status === 429 && throttled < MAX_THROTTLED_RETRIES) {
        throttled++;
        this.o.metrics.sinkThrottled.inc({ sink: 'defender_alerts' });
        const d = decide(429, res.headers, throttled);
        const wait = d.kind === 'retry' ? d.afterMs : 60_000;
        this.o.log.warn({ source: 'defender_alerts', tenant: this.o.tenantId, retryInMs: wait }, 'Defender throttled the alerts listing (429); waiting as told');
        this.pacer.pauseFor(wait);
        continue;
      }
      return res;
    }
  }

  /**
   * The machine entity (`GET /api/machines/{id}`, needs Machine.Read.All), or null when Defender
   * does not know it (404) or the app may not read machines (403: `forbidden`).
   */
  async getMachine(id: string, signal?: AbortSignal): Promise<Record<string, unknown> | null | 'forbidden'> {
    const res = await this.get<Record<string, unknown>>(`/api/machines/${encodeURIComponent(id)}`, signal, 'machine');
    if (res.status === 200 && res.data && typeof res.data === 'object') return res.data;
    if (res.status === 403) return 'forbidden';
    if (res.status === 404 || res.status === 400) return null;
    const d = decide(res.status, res.headers, 0);
    throw new DefenderAlertsError(`Defender machine lookup failed for ${id}: ${defenderErrorText(res)}`, res.status, d.kind === 'retry' ? d.afterMs : null);
  }

  /** Every alert updated at or after `fromIso`, with evidence. Calls `onPage` per page. */
  async listUpdatedSince(fromIso: string, pageSize: number, onPage: (alerts: unknown[]) => Promise<void>, signal?: AbortSignal): Promise<number> {
    const filter = `lastUpdateTime ge ${fromIso}`;
    const first = `/api/alerts?$filter=${encodeURIComponent(filter)}&$expand=evidence&$top=${pageSize}`;
    let total = 0;
    const pages = odataPages<unknown>(first, pageSize, async (url) => {
      if (signal?.aborted) throw new Error('aborted');
      const res: HttpResponse<{ value?: unknown[]; '@odata.nextLink'?: string }> = await this.get(url, signal);
      if (res.status !== 200 || !Array.isArray(res.data?.value)) {
        const d = decide(res.status, res.headers, 0);
        const hint = res.status === 403 ? ' (the application needs the WindowsDefenderATP permission Alert.Read.All, admin-consented)' : '';
        throw new DefenderAlertsError(`Defender alerts listing failed for tenant ${this.o.tenantId} (HTTP ${res.status}): ${defenderErrorText(res)}${hint}`, res.status,
          d.kind === 'retry' ? d.afterMs : null);
      }
      return { rows: res.data.value, nextLink: res.data['@odata.nextLink'] ?? null };
    }, { apiBase: this.o.baseUrl });
    for await (const rows of pages) {
      total += rows.length;
      await onPage(rows);
    }
    return total;
  }
}
