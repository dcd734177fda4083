// Sentinel threat-intelligence STIX upload API client: POST
// {host}/workspaces/{id}/threat-intelligence-stix-objects:upload?api-version=…, ≤100 objects per
// call, paced under 100 calls per minute, bearer token (management.azure.com scope) refreshed once
// on 401, every call optionally written to the audit log.
import { createHttpClient, type HttpClient, type HttpResponse } from '../../net/http.js';
import { Pacer } from '../../net/pacer.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { TokenProvider } from '../microsoft/token.js';
import type { AuditLog } from './audit.js';
import type { StixIndicator } from './mapper.js';

export const UPLOAD_ENDPOINT = 'upload';

export interface RecordError {
  recordIndex: number;
  errorMessages: string[];
}

export interface UploadAnswer {
  errors?: RecordError[];
  statusCode?: number;
  message?: string;
}

export interface SentinelClientOptions {
  host: string;
  workspaceId: string;
  apiVersion: string;
  sourceSystem: string;
  timeoutMs: number;
  verifyTls: boolean;
  requestsPerMinute: number;
  timeScale?: number;
  sink: string;
  tokens: TokenProvider;
  audit: AuditLog | null;
  log: Logger;
  metrics: Metrics;
}

/** The error text of a non-200 answer: Sentinel's `{statusCode, message}`, ARM's `{error:{code,message}}`, or text. */
export function sentinelErrorText(res: HttpResponse): string {
  const body = res.data as { message?: string; error?: { code?: string; message?: string } } | string | undefined;
  if (body && typeof body === 'object') {
    if (body.error) return `${body.error.code ?? 'Error'}: ${body.error.message ?? ''}`.trim();
    if (body.message) return body.message;
  }
  if (typeof body === 'string' && body) return body.slice(0, 300);
  return `HTTP ${res.status}`;
}

/** "Rate limit is exceeded. Try again in 12 seconds." → 12000 (used when Retry-After is absent). */
export function retryAfterFromMessage(res: HttpResponse): number | null {
  const m = /try again in (\d+(?:\.\d+)?) second/i.exec(sentinelErrorText(res));
  return m ? Math.round(Number(m[1]) * 1000) : null;
}

export class SentinelClient {
  private readonly http: HttpClient;
  readonly pacer: Pacer;
  readonly path: string;

  constructor(private readonly o: SentinelClientOptions) {
    this.http = createHttpClient({ system: 'sentinel', baseURL: o.host, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, log: o.log });
    this.pacer = new Pacer({ [UPLOAD_ENDPOINT]: { perMinute: o.requestsPerMinute } }, o.timeScale ?? 1);
    this.path = `/workspaces/${encodeURIComponent(o.workspaceId)}/threat-intelligence-stix-objects:upload?api-version=${encodeURIComponent(o.apiVersion)}`;
  }

  /** One upload: paced, token attached and refreshed once on 401, audited. */
  async upload(objects: StixIndicator[]): Promise<HttpResponse<UploadAnswer | string>> {
    const body = { sourcesystem: this.o.sourceSystem, stixobjects: objects };
    let res: HttpResponse<UploadAnswer | string> | null = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      await this.pacer.take(UPLOAD_ENDPOINT);
      const token = await this.o.tokens.getToken(attempt > 0);
      const end = this.o.metrics.sinkLatency.startTimer({ sink: this.o.sink, endpoint: UPLOAD_ENDPOINT });
      const started = Date.now();
      try {
        res = await this.http.request<UploadAnswer | string>({
          method: 'POST', url: this.path, data: body, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        });
      } catch (err) {
        this.o.metrics.sinkRequests.inc({ sink: this.o.sink, endpoint: UPLOAD_ENDPOINT, status: 'error' });
        await this.audit({ status: 0, durationMs: Date.now() - started, request: body, response: null, error: (err as Error).message });
        throw err;
      } finally {
        end();
      }
      this.o.metrics.sinkRequests.inc({ sink: this.o.sink, endpoint: UPLOAD_ENDPOINT, status: String(res.status) });
      if (res.status === 429) this.o.metrics.sinkThrottled.inc({ sink: this.o.sink });
      const errors = res.status === 200 && typeof res.data === 'object' && Array.isArray(res.data?.errors) ? res.data.errors.length : 0;
      await this.audit({ status: res.status, durationMs: Date.now() - started, request: body, response: res.data ?? null, recordErrors: errors });
      if (res.status !== 401) return res;
      this.o.log.info({ sink: this.o.sink }, 'Sentinel answered 401; refreshing the token once');
    }
    return res!;
  }

  private async audit(entry: { status: number; durationMs: number; request: unknown; response: unknown; error?: string; recordErrors?: number }) {
    if (!this.o.audit) return;
    try {
      await this.o.audit.write({ method: 'POST', url: `${this.o.host}${this.path}`, ...entry });
    } catch (err) {
      // The audit log is a diagnostic aid; a full disk must not stop delivery.
      this.o.log.warn({ sink: this.o.sink, error: (err as Error).message }, 'cannot write the Sentinel audit log');
    }
  }
}
