// MISP REST: POST /attributes/restSearch with paging (no total is given: page until a short
// page). Raw key auth (no "Bearer"); 403 is a configuration problem, 429 and 5xx are waited out.
import type { Metrics } from '../../observability/metrics.js';
import { ApiCaller, fixedHeaders, type ApiResponse } from '../../net/call.js';
import { HttpError, type HttpResponse } from '../../net/http.js';
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
  /** Calls counted as threatbridge_sink_requests_total{sink="misp"}. */
  metrics?: Metrics;
}

/** A MISP answer that retrying will not fix (bad key, role without API search). */
export class MispAuthError extends Error {
  readonly code = 'misp_auth';
}

export type RestSearchBody = Record<string, unknown>;

export class MispRest {
  private readonly caller: ApiCaller;
  private readonly maxAttempts: number;

  constructor(o: MispRestOptions) {
    this.maxAttempts = o.maxAttempts ?? 8;
    // Nothing retries under a catch-up: MISP's throttling and outages are waited out here.
    this.caller = new ApiCaller({
      system: 'misp', baseURL: o.url, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, log: o.log, userAgent: 'ThreatBridge',
      credentials: fixedHeaders({ Authorization: o.key }), headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      waitOut: this.maxAttempts - 1, retryAfter: rateLimitReset,
      ...(o.metrics ? { metrics: { metrics: o.metrics, label: 'misp' } } : {}),
    });
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

  /**
   * The values that hit an enabled warninglist, with the first list's name. MISP answers
   * `{"<value>": [{"id", "name", "matched"}]}` for hits only (an empty answer may be `[]`).
   */
  async checkWarninglists(values: string[], signal?: AbortSignal): Promise<Map<string, string>> {
    const data = await this.post('/warninglists/checkValue', values, signal);
    const out = new Map<string, string>();
    if (!isObject(data)) return out;
    for (const v of values) {
      if (!Object.hasOwn(data, v)) continue;
      const lists = data[v];
      if (!Array.isArray(lists) || lists.length === 0) continue;
      const first = lists[0];
      const name = isObject(first) && typeof first['name'] === 'string' ? first['name'] : 'a MISP warninglist';
      out.set(v, name.slice(0, 200));
    }
    return out;
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

  private async post(path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const giveUp = (problem: string) => new Error(`MISP ${path}: ${problem}; giving up for now after ${this.maxAttempts} attempts`);
    let res: ApiResponse;
    try {
      res = await this.caller.call('search', { url: path, method: 'POST', data: body }, signal);
    } catch (err) {
      if (err instanceof HttpError) throw giveUp(err.message);
      throw err;
    }
    if (res.status === 200) return res.data;
    const msg = isObject(res.data) ? String(res.data['message'] ?? res.data['name'] ?? '') : '';
    if (res.status === 403 || res.status === 401) {
      throw new MispAuthError(`MISP refused the key (${res.status}${msg ? `: ${msg}` : ''}); check misp.key and that its user has API access`);
    }
    if (res.status === 405) throw new MispAuthError(`MISP refused the search (${msg || res.status}); the key's role must allow API searches`);
    if (res.status === 429) throw giveUp('rate limited (429)');
    if (res.status >= 500) throw giveUp(`HTTP ${res.status}${msg ? `: ${msg}` : ''}`);
    throw new Error(`MISP ${path} answered ${res.status}${msg ? `: ${msg}` : ''}`);
  }
}

/** MISP's rate limit window is 900 s; X-Rate-Limit-Reset says when it reopens (Retry-After first). */
function rateLimitReset(res: HttpResponse): number | null {
  if (res.status !== 429) return null;
  const reset = Number(res.headers['x-rate-limit-reset']);
  return Number.isFinite(reset) && reset > 0 ? Math.min(reset, 900) * 1000 : 60_000;
}
