// The one way a client calls an API: pace → credentials → request → renew the credentials once on
// 401 → count and time the call → the answer. HTTP statuses come back (the caller's policy decides
// what they mean); only a call without an answer throws (HttpError).
// A 429 pauses the pacer for as long as the system asked, so no other call of this client goes
// out before then. Retrying is not this layer's job where an outbox retries (sink deliveries); a
// reader with nothing under it (a poller's listing) may ask for `waitOut` failed calls here.
import type { AxiosRequestConfig } from 'axios';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createHttpClient, HttpError, type HttpClient, type HttpClientOptions, type HttpResponse } from './http.js';
import type { Pacer } from './pacer.js';
import { backoffMs, parseRetryAfter } from './retry.js';
import { sleep } from './sleep.js';

/** An answer, with how long the system asked us to stay away (429/5xx with Retry-After), if it did. */
export type ApiResponse<T = unknown> = HttpResponse<T> & { retryAfterMs: number | null };

/** How a call proves who it is: a token that can be renewed (Entra ID) or fixed headers (API keys). */
export interface Credentials {
  headers(renew: boolean): Promise<Record<string, string>>;
  readonly renewable: boolean;
}

export function bearerToken(tokens: { getToken(forceRefresh?: boolean): Promise<string> }): Credentials {
  return { renewable: true, headers: async (renew) => ({ Authorization: `Bearer ${await tokens.getToken(renew)}` }) };
}

export function fixedHeaders(headers: Record<string, string>): Credentials {
  return { renewable: false, headers: async () => headers };
}

/** What one finished call looked like, for a system's own audit trail. */
export interface CallRecord {
  endpoint: string;
  request: AxiosRequestConfig & { url: string };
  /** 0 when no answer came. */
  status: number;
  data: unknown;
  error?: string;
  durationMs: number;
}

export interface ApiCallerOptions extends HttpClientOptions {
  log: Logger;
  credentials?: Credentials;
  pacer?: Pacer;
  /** Headers of every call (Accept, Content-Type). */
  headers?: Record<string, string>;
  /** Counted as threatbridge_sink_requests_total{sink: label}, timed and throttles counted. */
  metrics?: { metrics: Metrics; label: string };
  /** Failed calls (no answer, 429, 5xx) retried here this many times, waiting as told or with backoff. */
  waitOut?: number;
  /** Where a system says when to come back other than Retry-After (a message, a reset header). */
  retryAfter?: (res: HttpResponse) => number | null;
  /** Called after every call with an answer or a transport failure (Sentinel's audit log). */
  record?: (call: CallRecord) => Promise<void>;
}

export class ApiCaller {
  /** Calls made per endpoint (logs, the benchmark of call planning). */
  readonly calls: Record<string, number> = {};
  private readonly http: HttpClient;

  constructor(private readonly o: ApiCallerOptions) {
    this.http = createHttpClient(o);
  }

  async call<T>(endpoint: string, request: AxiosRequestConfig & { url: string }, signal?: AbortSignal): Promise<ApiResponse<T>> {
    let renew = false;
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw new Error('aborted');
      await this.o.pacer?.take(endpoint, signal);
      const headers: Record<string, string> = { ...this.o.headers, ...(request.headers as Record<string, string> | undefined) };
      if (this.o.credentials) Object.assign(headers, await this.o.credentials.headers(renew));
      const renewed = renew;
      renew = false;
      let res: ApiResponse<T>;
      try {
        res = await this.once<T>(endpoint, { ...request, headers, ...(signal ? { signal } : {}) });
      } catch (err) {
        if (!(err instanceof HttpError) || attempt >= (this.o.waitOut ?? 0) || signal?.aborted) throw err;
        await this.wait(endpoint, attempt, backoffMs(attempt, { maxMs: 60_000 }), err.message, signal);
        continue;
      }
      if (res.status === 401 && this.o.credentials?.renewable && !renewed) {
        this.o.log.info({ system: this.http.system, endpoint }, 'answered 401; renewing the token once');
        renew = true;
        continue;
      }
      const failed = res.status === 429 || res.status >= 500;
      if (failed && attempt < (this.o.waitOut ?? 0) && !signal?.aborted) {
        await this.wait(endpoint, attempt, res.retryAfterMs ?? backoffMs(attempt, { maxMs: 60_000 }), `HTTP ${res.status}`, signal);
        continue;
      }
      return res;
    }
  }

  private async once<T>(endpoint: string, request: AxiosRequestConfig & { url: string }): Promise<ApiResponse<T>> {
    const m = this.o.metrics;
    const end = m?.metrics.sinkLatency.startTimer({ sink: m.label, endpoint });
    const started = Date.now();
    this.calls[endpoint] = (this.calls[endpoint] ?? 0) + 1;
    let res: HttpResponse<T>;
    try {
      res = await this.http.request<T>(request);
    } catch (err) {
      m?.metrics.sinkRequests.inc({ sink: m.label, endpoint, status: 'error' });
      await this.record({ endpoint, request, status: 0, data: null, error: (err as Error).message, durationMs: Date.now() - started });
      throw err;
    } finally {
      end?.();
    }
    m?.metrics.sinkRequests.inc({ sink: m.label, endpoint, status: String(res.status) });
    await this.record({ endpoint, request, status: res.status, data: res.data, durationMs: Date.now() - started });
    const retryAfterMs = res.status === 429 || res.status >= 500 ? parseRetryAfter(res.headers['retry-after']) ?? this.o.retryAfter?.(res) ?? null : null;
    if (res.status === 429) {
      if (m) m.metrics.sinkThrottled.inc({ sink: m.label });
      // Nothing else of this client goes out before the system said; without a word, a short pause.
      this.o.pacer?.pauseFor(retryAfterMs ?? backoffMs(0, { baseMs: 5000 }));
    }
    return { ...res, retryAfterMs };
  }

  private async record(call: CallRecord): Promise<void> {
    if (!this.o.record) return;
    try {
      await this.o.record(call);
    } catch (err) {
      // An audit trail is a diagnostic aid; a full disk must not stop the calls.
      this.o.log.warn({ system: this.http.system, error: (err as Error).message }, 'cannot record the call');
    }
  }

  private async wait(endpoint: string, attempt: number, ms: number, problem: string, signal?: AbortSignal): Promise<void> {
    this.o.log.warn({ system: this.http.system, endpoint, attempt: attempt + 1, retryInMs: ms, problem }, 'call failed; waiting before trying again');
    await sleep(ms, signal);
  }
}
