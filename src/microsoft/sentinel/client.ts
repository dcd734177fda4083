// Sentinel threat-intelligence STIX upload API: POST
// {host}/workspaces/{id}/threat-intelligence-stix-objects:upload?api-version=…, ≤100 objects per
// call, paced under 100 calls per minute, bearer token (management.azure.com scope) renewed once
// on 401 by the call envelope, every call optionally written to the audit log.
import type { Config } from '../../config/schema.js';
import { ApiCaller, bearerToken, type ApiResponse } from '../../net/call.js';
import type { HttpResponse } from '../../net/http.js';
import { Pacer, timeScale } from '../../net/pacer.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { microsoftTokens, type EntraApp, type TokenProvider } from '../token.js';
import { AuditLog } from './audit.js';

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
  /** Calls counted under this name in the request metrics. */
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
  private readonly caller: ApiCaller;
  readonly pacer: Pacer;
  readonly path: string;

  constructor(private readonly o: SentinelClientOptions) {
    this.pacer = new Pacer({ [UPLOAD_ENDPOINT]: { perMinute: o.requestsPerMinute } }, o.timeScale ?? 1);
    this.path = `/workspaces/${encodeURIComponent(o.workspaceId)}/threat-intelligence-stix-objects:upload?api-version=${encodeURIComponent(o.apiVersion)}`;
    const audit = o.audit;
    this.caller = new ApiCaller({
      system: 'sentinel', baseURL: o.host, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, log: o.log, pacer: this.pacer, credentials: bearerToken(o.tokens), headers: { 'Content-Type': 'application/json' },
      metrics: { metrics: o.metrics, label: o.sink }, retryAfter: retryAfterFromMessage,
      ...(audit ? {
        record: (c) => audit.write({
          method: 'POST', url: `${o.host}${this.path}`, status: c.status, durationMs: c.durationMs, request: c.request.data,
          response: c.data ?? null, ...(c.error !== undefined ? { error: c.error } : {}),
          ...(c.status !== 0 ? { recordErrors: recordErrors(c.status, c.data) } : {}),
        }),
      } : {}),
    });
  }

  /** One upload of STIX objects. */
  upload(objects: object[]): Promise<ApiResponse<UploadAnswer | string>> {
    return this.caller.call<UploadAnswer | string>(UPLOAD_ENDPOINT, { method: 'POST', url: this.path, data: { sourcesystem: this.o.sourceSystem, stixobjects: objects } });
  }
}

function recordErrors(status: number, data: unknown): number {
  const errors = status === 200 && typeof data === 'object' && data !== null ? (data as UploadAnswer).errors : undefined;
  return Array.isArray(errors) ? errors.length : 0;
}

/** The Sentinel client of the configured workspace, or of one target's (its workspace and, where set, its own application). */
export function sentinelApi(config: Config, log: Logger, metrics: Metrics, sink: string,
  target?: { workspaceId: string; app: Partial<EntraApp> }): SentinelClient {
  const s = config.sentinel;
  return new SentinelClient({
    host: s.host, workspaceId: target?.workspaceId ?? s.workspace_id!, apiVersion: s.api_version, sourceSystem: s.source_system,
    timeoutMs: s.request_timeout * 1000, verifyTls: s.verify_cert, requestsPerMinute: s.requests_per_minute, timeScale: timeScale(),
    sink, tokens: microsoftTokens(config, 'sentinel', log, target?.app, metrics), audit: s.audit_log_dir ? new AuditLog(s.audit_log_dir) : null, log, metrics,
  });
}
