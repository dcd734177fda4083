// DFIR-IRIS legacy REST API (v2.4, API 2.0.x): every answer is the envelope
// {status, message, data}; success is "success" with HTTP 200, anything else is a failure whose
// message is kept verbatim. The key goes in `Authorization: Bearer`; no cookies are ever sent.
import { ApiCaller, fixedHeaders } from '../../net/call.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';

export interface IrisEnvelope<T = unknown> {
  status: string;
  message: string;
  data: T;
}

export interface IrisAnswer<T = unknown> {
  httpStatus: number;
  ok: boolean;
  /** IRIS's message, or a short description of a non-envelope answer. */
  message: string;
  data: T | null;
  headers: Record<string, string>;
}

export interface IrisClientOptions {
  url: string;
  apiKey: string;
  verifyTls: boolean;
  timeoutMs: number;
  sink: string;
  log: Logger;
  metrics: Metrics;
}

/** What a failed IRIS answer says, for logs and dead letters. */
export function irisErrorText(a: IrisAnswer): string {
  return `IRIS answered ${a.httpStatus}: ${a.message || '(no message)'}`;
}

/** "not entitled" on create is a 400 but means a permission problem, not bad data. */
export function isEntitlementError(a: IrisAnswer): boolean {
  return /not entitled/i.test(a.message);
}

export class IrisClient {
  private readonly caller: ApiCaller;

  constructor(o: IrisClientOptions) {
    this.caller = new ApiCaller({
      system: 'iris', baseURL: o.url, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, log: o.log, userAgent: 'ThreatBridge',
      credentials: fixedHeaders({ Authorization: `Bearer ${o.apiKey}` }), headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      metrics: { metrics: o.metrics, label: o.sink },
    });
  }

  async call<T>(endpoint: string, method: 'GET' | 'POST', path: string, data?: unknown): Promise<IrisAnswer<T>> {
    const res = await this.caller.call(endpoint, { method, url: path, data });
    const body = res.data as Partial<IrisEnvelope<T>> | string | undefined;
    if (body && typeof body === 'object' && typeof body.status === 'string') {
      const ok = res.status === 200 && body.status === 'success';
      return { httpStatus: res.status, ok, message: typeof body.message === 'string' ? body.message : '', data: (body.data ?? null) as T | null, headers: res.headers };
    }
    const text = typeof body === 'string' ? body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200) : '';
    return { httpStatus: res.status, ok: false, message: text || `HTTP ${res.status} without the IRIS envelope`, data: null, headers: res.headers };
  }

  list<T>(what: string, path: string): Promise<IrisAnswer<T[]>> {
    return this.call<T[]>(what, 'GET', path);
  }

  addAlert(body: unknown): Promise<IrisAnswer<{ alert_id: number }>> {
    return this.call('alerts.add', 'POST', '/alerts/add', body);
  }

  getAlert(id: string): Promise<IrisAnswer<{ alert_id: number; alert_owner_id: number | null; alert_status_id: number; cases?: number[] }>> {
    return this.call('alerts.get', 'GET', `/alerts/${encodeURIComponent(id)}`);
  }

  updateAlert(id: string, body: unknown): Promise<IrisAnswer<{ alert_id: number }>> {
    return this.call('alerts.update', 'POST', `/alerts/update/${encodeURIComponent(id)}`, body);
  }

  mergeAlert(id: string, caseId: number, note: string): Promise<IrisAnswer<unknown>> {
    return this.call('alerts.merge', 'POST', `/alerts/merge/${encodeURIComponent(id)}`, {
      target_case_id: caseId, iocs_import_list: [], assets_import_list: [], note, import_as_event: false, case_tags: '',
    });
  }

  /**
   * IRIS alerts whose source reference is exactly `ref` (the server matches substrings, and an
   * unknown parameter would return everything: equality is checked here).
   */
  async findBySourceRef(ref: string, source: string): Promise<IrisAnswer<{ alert_id: number }[]>> {
    const found: { alert_id: number }[] = [];
    for (let page = 1; page <= 100; page++) {
      // Not narrowed by customer: an alert filed under another customer earlier (routing or
      // find_customer changed) is still ours, and must not be created twice.
      const q = new URLSearchParams({ source_reference: ref, alert_source: source, per_page: '100', page: String(page) });
      const a = await this.call<{ alerts?: { alert_id: number; alert_source_ref?: string | null; alert_source?: string | null }[]; next_page?: number | null }>('alerts.filter', 'GET', `/alerts/filter?${q}`);
      if (!a.ok) return { ...a, data: null };
      for (const row of a.data?.alerts ?? []) if (row.alert_source_ref === ref && row.alert_source === source) found.push({ alert_id: row.alert_id });
      if (!a.data?.next_page) return { ...a, data: found };
    }
    return { httpStatus: 200, ok: true, message: '', data: found, headers: {} };
  }
}
