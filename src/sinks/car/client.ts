// IBM CAR REST client (car.md §1-2): Basic auth (api key + password) or `car-token`, JSON in and
// out, redirects not followed. Statuses are returned, not thrown, so the delivery handler decides.
import { ApiCaller, fixedHeaders } from '../../net/call.js';
import type { HttpResponse } from '../../net/http.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { CarNode } from '../../core/records.js';
import { registerSecret } from '../../observability/logger.js';

export interface CarClientOptions {
  url: string;
  apiKey?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
  timeoutMs: number;
  verifyTls: boolean;
  sink: string;
  log: Logger;
  metrics: Metrics;
}

export interface ImportStatus {
  complete: string[];
  incomplete: string[];
  notFound: string[];
  errors: { id: string; error: string }[];
}

export interface SourceInfo {
  _key: string;
  name?: string;
  description?: string;
  product_link?: string;
}

/** CAR's error bodies: {"errors":[{"code","message"}]} (message may be a JSON string of ajv errors) or {"error": "..."}. */
export function carErrorText(res: HttpResponse): string {
  const body = res.data as { errors?: { code?: string; message?: string }[]; error?: unknown; message?: unknown } | string | undefined;
  if (body && typeof body === 'object') {
    if (Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map((e) => `${e.code ?? 'error'}: ${readableMessage(e.message)}`).join('; ').slice(0, 2000);
    }
    if (body.error !== undefined) return String(typeof body.error === 'string' ? body.error : JSON.stringify(body.error)).slice(0, 2000);
    if (body.message !== undefined) return String(body.message).slice(0, 2000);
  }
  if (typeof body === 'string' && body) return body.slice(0, 500);
  return `HTTP ${res.status}`;
}

function readableMessage(message: string | undefined): string {
  if (!message) return '';
  try {
    const parsed = JSON.parse(message) as { dataPath?: string; instancePath?: string; message?: string }[];
    if (Array.isArray(parsed)) return parsed.map((p) => `${p.dataPath ?? p.instancePath ?? ''} ${p.message ?? ''}`.trim()).join(', ');
  } catch {
    // plain text
  }
  return message;
}

export class CarClient {
  private readonly caller: ApiCaller;

  constructor(o: CarClientOptions) {
    const basic = Buffer.from(`${o.apiKey ?? ''}:${o.password ?? ''}`).toString('base64');
    // The header's base64 form is a secret too: the scrubber only knows the key and password as typed.
    if (!o.token) registerSecret(basic);
    const auth = o.token ? `car-token ${o.token}` : `Basic ${basic}`;
    this.caller = new ApiCaller({
      system: 'car', baseURL: `${o.url.replace(/\/+$/, '')}/`, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, log: o.log,
      credentials: fixedHeaders({ Authorization: auth }), headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      metrics: { metrics: o.metrics, label: o.sink },
    });
  }

  call<T>(endpoint: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, data?: unknown): Promise<HttpResponse<T>> {
    return this.caller.call<T>(endpoint, { method, url: path.replace(/^\/+/, ''), data });
  }

  /** POST /imports: any answer with an `id` is an accepted job. */
  importData(source: SourceInfo, report: CarNode, collections: Record<string, CarNode[]>): Promise<HttpResponse<{ id?: string; job_id?: string; status?: string }>> {
    return this.call('imports', 'POST', 'imports', { source, report, ...collections });
  }

  async importStatus(ids: string[]): Promise<HttpResponse<ImportStatus | unknown> & { parsed?: ImportStatus }> {
    const res = await this.call<Record<string, unknown>>('importstatus', 'GET', `importstatus?ids=${ids.map(encodeURIComponent).join(',')}`);
    if (res.status !== 200 || !res.data || typeof res.data !== 'object') return res;
    const idsOf = (v: unknown) => (Array.isArray(v) ? v.map((x) => String((x as { id?: unknown })?.id ?? '')).filter(Boolean) : []);
    const errors = Array.isArray(res.data['error_imports'])
      ? (res.data['error_imports'] as { id?: unknown; error?: unknown; statusCode?: unknown }[]).map((e) => ({ id: String(e.id ?? ''), error: `${String(e.error ?? 'error')}${e.statusCode ? ` (${String(e.statusCode)})` : ''}` }))
      : [];
    return { ...res, parsed: { complete: idsOf(res.data['complete_imports']), incomplete: idsOf(res.data['incomplete_imports']), notFound: idsOf(res.data['notfound_imports']), errors } };
  }

  /** PATCH /{edge}?source=&from=&to= (car.md: `from` an external id, `to` an external id or the ip/mac/hostname key). */
  patchEdge(edge: string, source: string, from: string, to: string, body: unknown): Promise<HttpResponse> {
    const q = new URLSearchParams({ source, from, to });
    return this.call('edge_patch', 'PATCH', `${encodeURIComponent(edge)}?${q.toString()}`, body);
  }

  /** DELETE /source/{source}/{collection}?external_ids=a,b (ids comma-joined, as the framework sends them). */
  deleteNodes(source: string, collection: string, ids: string[]): Promise<HttpResponse> {
    const param = ['ipaddress', 'macaddress', 'hostname'].includes(collection) ? 'keys' : 'external_ids';
    return this.call('delete', 'DELETE', `source/${encodeURIComponent(source)}/${collection}?${param}=${ids.map(encodeURIComponent).join(',')}`);
  }

  saveModelState(source: string, modelStateId: string): Promise<HttpResponse> {
    return this.call('source', 'PATCH', `source?key=${encodeURIComponent(source)}`, { model_state_id: modelStateId });
  }

  getSource(source: string): Promise<HttpResponse<{ model_state_id?: string }>> {
    return this.call('source', 'GET', `source/${encodeURIComponent(source)}`);
  }
}
