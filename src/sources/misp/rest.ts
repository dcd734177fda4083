// MISP REST: POST /attributes/restSearch with paging (no total is given: page until a short
// page). Raw key auth (no "Bearer"); 403 is a configuration problem, 429 and 5xx are waited out.
import { HttpError, createHttpClient, type HttpClient } from '../../net/http.js';
import { backoffMs, parseRetryAfter } from '../../core/retry.js';
import type { Logger } from '../../observability/logger.js';
import { isObject } from './model.js';

export interface MispRestOptions {
  url: string;
  key: string;
  verifyTls: boolean;
  timeoutMs: number;
  log: Logger;
  /** Give up waiting for MISP after this many failed attempts of one page (the caller retries later). */
  maxAttempts?: number;
}

/** A MISP answer that retrying will not fix (bad key, role without API search). */
export class MispAuthError extends Error {
  readonly code = 'misp_auth';
}

export type RestSearchBody = Record<string, unknown>;

export class MispRest {
  private readonly http: HttpClient;

  constructor(private readonly o: MispRestOptions) {
    this.http = createHttpClient({ system: 'misp', baseURL: o.url, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, log: o.log, userAgent: 'ThreatBridge' });
  }

  /** One page of attributes. */
  async searchAttributes(body: RestSearchBody, signal?: AbortSignal): Promise<unknown[]> {
    const data = await this.post('/attributes/restSearch', { returnFormat: 'json', ...body }, signal);
    const response = isObject(data) ? data['response'] : undefined;
    // PyMISP-style unwrapping: {"response": {"Attribute": [...]}}; an empty result may be [] or {}.
    const list = isObject(response) ? response['Attribute'] : isObject(data) ? data['Attribute'] : undefined;
    return Array.isArray(list) ? list : [];
  }

  /** Event headers (threat level, org, tags, publish time; no attributes) of the given events. */
  async eventHeaders(ids: string[], signal?: AbortSignal): Promise<unknown[]> {
    const data = await this.post('/events/restSearch', { returnFormat: 'json', metadata: 1, eventid: ids, limit: ids.length, page: 1 }, signal);
    const list = isObject(data) ? data['response'] : data;
    return Array.isArray(list) ? list.map((e) => (isObject(e) && isObject(e['Event']) ? e['Event'] : e)) : [];
  }

  /** Every page of a search, oldest first when MISP honours the order; yields page by page. */
  async *pages(body: RestSearchBody, pageSize: number, signal?: AbortSignal): AsyncGenerator<unknown[]> {
    for (let page = 1; ; page++) {
      const rows = await this.searchAttributes({ ...body, limit: pageSize, page }, signal);
      // MISP gives no total: a short page is not the end (filters such as warninglists may apply
      // after the limit), only an empty one is.
      if (rows.length === 0) return;
      yield rows;
    }
  }

  private async post(path: string, body: RestSearchBody, signal?: AbortSignal): Promise<unknown> {
    const max = this.o.maxAttempts ?? 8;
    for (let attempt = 1; ; attempt++) {
      let wait: number;
      let problem: string;
      try {
        const res = await this.http.request({
          url: path, method: 'POST', data: body, signal,
          headers: { Authorization: this.o.key, Accept: 'application/json', 'Content-Type': 'application/json' },
        });
        if (res.status === 200) return res.data;
        const msg = isObject(res.data) ? String(res.data['message'] ?? res.data['name'] ?? '') : '';
        if (res.status === 403 || res.status === 401) {
          throw new MispAuthError(`MISP refused the key (${res.status}${msg ? `: ${msg}` : ''}); check misp.key and that its user has API access`);
        }
        if (res.status === 405) throw new MispAuthError(`MISP refused the search (${msg || res.status}); the key's role must allow API searches`);
        if (res.status === 429) {
          // The rate-limit window is 900 s; X-Rate-Limit-Reset says when it reopens.
          const reset = Number(res.headers['x-rate-limit-reset']);
          wait = parseRetryAfter(res.headers['retry-after']) ?? (Number.isFinite(reset) && reset > 0 ? Math.min(reset, 900) * 1000 : 60_000);
          problem = 'rate limited (429)';
        } else if (res.status >= 500) {
          wait = backoffMs(attempt, { maxMs: 60_000 });
          problem = `HTTP ${res.status}${msg ? `: ${msg}` : ''}`;
        } else {
          throw new Error(`MISP ${path} answered ${res.status}${msg ? `: ${msg}` : ''}`);
        }
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        wait = backoffMs(attempt, { maxMs: 60_000 });
        problem = err.message;
      }
      if (attempt >= max) throw new Error(`MISP ${path}: ${problem}; giving up for now after ${attempt} attempts`);
      this.o.log.warn({ source: 'misp', path, attempt, retryInMs: wait, problem }, 'MISP search failed; retrying');
      await sleep(wait, signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('aborted'));
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(new Error('aborted')); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
