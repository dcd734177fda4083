// Loopback simulator of the IBM Security CAR REST API (car.md §2-4, §7): Basic or car-token auth,
// import validation with CAR's data_mal_formed answer, asynchronous import jobs polled through
// /importstatus, node deletes per source, edge PATCHes, the source's model_state_id, and faults
// (outage, injected failures, jobs that stay incomplete or end in error) for the tests.
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { LoopbackServer, readBody, sendJson, type TlsMaterial } from '../loopback.js';
import { SendLog } from '../send-log.js';

export interface CarSimOptions {
  apiKey: string;
  password: string;
  /** Also accept `Authorization: car-token <token>`. */
  token?: string;
  tls?: TlsMaterial;
  port?: number;
  /** Status polls an import job stays INPROGRESS before completing; default 1. */
  pollsBeforeComplete?: number;
  log?: (line: string) => void;
}

export interface CarEdge {
  type: string;
  source: string;
  from: string;
  to: string;
  active: boolean;
  report: unknown;
  timestamp: unknown;
  [field: string]: unknown;
}

interface Job {
  id: string;
  polls: number;
  error: string | null;
  apply: (() => void) | null;
}

export interface CarRequest {
  method: string;
  path: string;
  query: string;
  status: number;
  time: number;
  body?: unknown;
}

const API = '/api/car/v2';
const KEY_COLLECTIONS = new Set(['ipaddress', 'macaddress', 'hostname']);
const EXT_COLLECTIONS = new Set(['asset', 'user', 'account', 'application', 'vulnerability', 'database', 'container', 'port', 'geolocation', 'businessprocess']);
const REQUIRED: Record<string, string[]> = {
  asset: ['external_id', 'name'], ipaddress: ['_key'], macaddress: ['_key'], hostname: ['_key'], user: ['external_id'],
  account: ['external_id', 'name'], application: ['external_id', 'name'], vulnerability: ['external_id', 'name'],
  database: ['external_id'], container: ['external_id'], port: ['external_id'], geolocation: [], businessprocess: ['external_id'],
};
const IP_RE = /^[a-fA-F0-9:.]+$/;
const MAC_RE = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;

export class CarSimulator {
  private server: LoopbackServer | undefined;
  private baseUrl = '';
  /** collection → node key → node (with `source`). */
  readonly nodes = new Map<string, Map<string, Record<string, unknown>>>();
  /** `${type}|${source}|${from}|${to}` → edge. */
  readonly edges = new Map<string, CarEdge>();
  readonly sources = new Map<string, Record<string, unknown>>();
  readonly jobs = new Map<string, Job>();
  readonly requestLog: CarRequest[] = [];
  /**
   * Every node and edge of an accepted import, keyed `collection|key` or `edge|from|to`, with the
   * import's report in the content: each delivery (and each retry of one) is a new report, so only an
   * import sent twice repeats.
   */
  readonly sends = new SendLog();
  private down: 'reset' | 503 | null = null;
  private failures: { count: number; status: number; match: string }[] = [];
  private jobErrors = 0;
  private stuckJobs = 0;

  constructor(private readonly opts: CarSimOptions) {}

  /** `http(s)://127.0.0.1:PORT/api/car/v2`: what `car.url` takes. */
  get url(): string {
    if (!this.server) throw new Error('CarSimulator not started');
    return `${this.baseUrl}${API}`;
  }

  async start(): Promise<void> {
    const server = new LoopbackServer((req, res) => this.handle(req, res), {
      tls: this.opts.tls, port: this.opts.port,
      onFailure: (res) => sendJson(res, 500, { error: 'internal error' }),
      onError: (err) => this.opts.log?.(`car: handler error ${String(err)}`),
    });
    await server.start();
    this.server = server;
    this.baseUrl = `${server.tls ? 'https' : 'http'}://127.0.0.1:${server.port}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await s?.stop();
  }

  // --- faults ---------------------------------------------------------------------------------
  setDown(down: boolean, mode: 'reset' | 503 = 503): void { this.down = down ? mode : null; }
  /** The next `count` requests whose `METHOD path` contains `match` answer `status` without effect. */
  failNext(count: number, status: number, match = ''): void { this.failures.push({ count, status, match }); }
  /** The next `count` accepted imports end in error_imports (nothing applied). */
  failNextJobs(count: number): void { this.jobErrors += count; }
  /** The next `count` accepted imports never complete (and are not applied). */
  stickNextJobs(count: number): void { this.stuckJobs += count; }

  // --- inspection -----------------------------------------------------------------------------
  node(collection: string, key: string): Record<string, unknown> | undefined { return this.nodes.get(collection)?.get(key); }
  list(collection: string): Record<string, unknown>[] { return [...(this.nodes.get(collection)?.values() ?? [])]; }
  edgesOf(type: string, filter: { from?: string; to?: string; active?: boolean } = {}): CarEdge[] {
    return [...this.edges.values()].filter((e) => e.type === type && (filter.from === undefined || e.from === filter.from)
      && (filter.to === undefined || e.to === filter.to) && (filter.active === undefined || e.active === filter.active));
  }
  modelState(source: string): string | undefined { return this.sources.get(source)?.['model_state_id'] as string | undefined; }
  count(method: string, pathPart: string): number { return this.requestLog.filter((r) => r.method === method && r.path.includes(pathPart)).length; }

  // --- HTTP -----------------------------------------------------------------------------------
  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const method = req.method ?? 'GET';
    const entry: CarRequest = { method, path: url.pathname, query: url.search, status: 0, time: Date.now() };
    this.requestLog.push(entry);
    const reply = (status: number, body: unknown) => { entry.status = status; sendJson(res, status, body); };
    if (this.down === 'reset') { req.socket.destroy(); return; }
    if (this.down === 503) return reply(503, { error: 'Service Unavailable' });
    const failure = this.failures.find((f) => f.count > 0 && `${method} ${url.pathname}`.includes(f.match));
    if (failure) {
      failure.count--;
      return reply(failure.status, failure.status === 400 ? { errors: [{ code: 'bad_request', message: 'injected' }] } : { error: `injected ${failure.status}` });
    }
    const auth = req.headers.authorization ?? '';
    const basic = `Basic ${Buffer.from(`${this.opts.apiKey}:${this.opts.password}`).toString('base64')}`;
    if (auth !== basic && !(this.opts.token && auth === `car-token ${this.opts.token}`)) return reply(401, { error: 'Unauthorized' });
    if (!url.pathname.startsWith(`${API}/`) && url.pathname !== API) return reply(404, { error: 'Not Found' });
    const path = url.pathname.slice(API.length).replace(/\/+$/, '');
    let body: unknown;
    if (method === 'POST' || method === 'PATCH') {
      const raw = (await readBody(req, 64 * 1024 * 1024)).toString('utf8');
      try { body = raw ? JSON.parse(raw) : {}; } catch { return reply(400, { errors: [{ code: 'bad_request', message: 'body is not JSON' }] }); }
      entry.body = body;
    }
    const [status, out] = this.route(method, path, url.searchParams, body);
    this.opts.log?.(`car: ${method} ${url.pathname}${url.search} -> ${status}`);
    reply(status, out);
  }

  private route(method: string, path: string, q: URLSearchParams, body: unknown): [number, unknown] {
    let m: RegExpExecArray | null;
    if (method === 'GET' && path === '/health') return [200, { message: 'ok' }];
    if (method === 'GET' && path === '/databases') return [200, { databases: [{ name: 'assets-ACCT_1', graph_name: 'assets', missing_collections: [], collections_without_indexes: [], is_ready: true }] }];
    if (method === 'POST' && path === '/imports') return this.importData(body);
    if (method === 'GET' && path === '/importstatus') return this.importStatus((q.get('ids') ?? '').split(',').filter(Boolean));
    if (method === 'GET' && (m = /^\/importstatus\/([^/]+)$/.exec(path))) return this.importStatus([decodeURIComponent(m[1]!)]);
    if (method === 'GET' && (m = /^\/jobstatus\/([^/]+)$/.exec(path))) return [200, { status: this.jobs.get(decodeURIComponent(m[1]!))?.error ? 'ERROR' : 'COMPLETE' }];
    if ((m = /^\/source\/([^/]+)\/full-import-in-progress$/.exec(path)) && (method === 'POST' || method === 'DELETE')) return [200, { job_id: this.jobId() }];
    if (method === 'GET' && (m = /^\/source\/([^/]+)$/.exec(path))) {
      const s = this.sources.get(decodeURIComponent(m[1]!.replace(/\+/g, ' ')));
      return s ? [200, s] : [404, { error: 'source not found' }];
    }
    if (method === 'PATCH' && path === '/source') {
      const key = q.get('key');
      const id = (body as { model_state_id?: unknown })?.model_state_id;
      if (!key || typeof id !== 'string') return [400, { errors: [{ code: 'bad_request', message: 'key and model_state_id (string) are required' }] }];
      this.sources.set(key, { _key: key, ...(this.sources.get(key) ?? {}), model_state_id: id });
      return [200, { result: 'OK' }];
    }
    if (method === 'DELETE' && (m = /^\/source\/([^/]+)\/([a-z]+)$/.exec(path))) return this.deleteNodes(decodeURIComponent(m[1]!), m[2]!, q);
    if (method === 'PATCH' && (m = /^\/([a-z]+_[a-z]+)$/.exec(path))) return this.patchEdge(m[1]!, q, body);
    return [404, { error: `no route for ${method} ${path}` }];
  }

  private jobId(): string { return `${randomUUID()}-ACCT_722724471`; }

  private importData(body: unknown): [number, unknown] {
    const errors: { keyword: string; dataPath: string; message: string; params?: unknown }[] = [];
    const b = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
    const source = b['source'] as Record<string, unknown> | undefined;
    const report = b['report'] as Record<string, unknown> | undefined;
    if (typeof source?.['_key'] !== 'string' || !source['_key']) errors.push({ keyword: 'required', dataPath: '.source', message: "should have required property '_key'" });
    if (typeof report?.['timestamp'] !== 'number') errors.push({ keyword: 'required', dataPath: '.report', message: "should have required property 'timestamp'" });
    const writes: (() => void)[] = [];
    const sent: { key: string; content: string }[] = [];
    const src = String(source?.['_key'] ?? '');
    for (const [name, value] of Object.entries(b)) {
      if (name === 'source' || name === 'report') continue;
      if (!Array.isArray(value)) { errors.push({ keyword: 'type', dataPath: `.${name}`, message: 'should be array' }); continue; }
      if (REQUIRED[name]) {
        value.forEach((node, i) => {
          const n = (node ?? {}) as Record<string, unknown>;
          for (const f of REQUIRED[name]!) if (n[f] === undefined || n[f] === null || n[f] === '') errors.push({ keyword: 'required', dataPath: `.${name}[${i}]`, message: `should have required property '${f}'`, params: { missingProperty: f } });
          if (name === 'ipaddress' && typeof n['_key'] === 'string' && !IP_RE.test(n['_key'])) errors.push({ keyword: 'pattern', dataPath: `.${name}[${i}]._key`, message: 'should match pattern "^[a-fA-F0-9:\\.]+$"' });
          if (name === 'macaddress' && typeof n['_key'] === 'string' && !MAC_RE.test(n['_key'])) errors.push({ keyword: 'pattern', dataPath: `.${name}[${i}]._key`, message: 'should match the MAC pattern' });
          const key = String(KEY_COLLECTIONS.has(name) ? n['_key'] : n['external_id'] ?? n['_key']);
          sent.push({ key: `${name}|${key}`, content: JSON.stringify({ report, node: n }) });
          writes.push(() => {
            const coll = this.nodes.get(name) ?? new Map<string, Record<string, unknown>>();
            this.nodes.set(name, coll);
            coll.set(key, { ...(coll.get(key) ?? {}), ...n, source: src });
          });
        });
      } else if (/^[a-z]+_[a-z]+$/.test(name)) {
        value.forEach((edge, i) => {
          const e = (edge ?? {}) as Record<string, unknown>;
          const from = endpoint(e, 'from');
          const to = endpoint(e, 'to');
          if (!from || !to) { errors.push({ keyword: 'required', dataPath: `.${name}[${i}]`, message: 'an edge needs _from/_from_external_id and _to/_to_external_id' }); return; }
          sent.push({ key: `${name}|${from}|${to}`, content: JSON.stringify({ report, edge: e }) });
          writes.push(() => {
            const k = `${name}|${src}|${from}|${to}`;
            this.edges.set(k, { ...(this.edges.get(k) ?? {}), ...e, type: name, source: src, from, to, active: e['active'] !== false, report: e['report'], timestamp: e['timestamp'] });
          });
        });
      } else {
        errors.push({ keyword: 'additionalProperties', dataPath: '', message: `should NOT have additional property '${name}'` });
      }
    }
    if (errors.length) return [400, { errors: [{ code: 'data_mal_formed', message: JSON.stringify(errors) }], trace: randomUUID() }];
    if (src && !this.sources.has(src)) this.sources.set(src, { _key: src, name: source?.['name'], description: source?.['description'] });
    const id = this.jobId();
    const error = this.jobErrors > 0 ? (this.jobErrors--, 'data_mal_formed') : null;
    const stuck = this.stuckJobs > 0 ? (this.stuckJobs--, true) : false;
    // Recorded when accepted: real CAR runs every accepted job, polled or not.
    this.sends.record(sent, Date.now(), true);
    this.jobs.set(id, { id, polls: stuck ? -Infinity : 0, error, apply: error || stuck ? null : () => writes.forEach((w) => w()) });
    return [200, { id, status: 'INPROGRESS', message: 'Check the status of the import by calling the endpoint GET /importstatus/{uuid} or GET /importstatus?ids=uuid#1, uuid#2, etc' }];
  }

  private importStatus(ids: string[]): [number, unknown] {
    const out = { success: true, complete_imports: [] as unknown[], incomplete_imports: [] as unknown[], notfound_imports: [] as unknown[], error_imports: [] as unknown[] };
    for (const id of ids) {
      const job = this.jobs.get(id);
      if (!job) { out.notfound_imports.push({ id }); continue; }
      if (job.error) { out.error_imports.push({ id, error: job.error, statusCode: 400 }); continue; }
      job.polls++;
      if (job.polls < (this.opts.pollsBeforeComplete ?? 1)) { out.incomplete_imports.push({ id }); continue; }
      if (job.apply) { job.apply(); job.apply = null; }
      out.complete_imports.push({ id, status: 'COMPLETE' });
    }
    return [200, out];
  }

  private deleteNodes(source: string, collection: string, q: URLSearchParams): [number, unknown] {
    const param = KEY_COLLECTIONS.has(collection) ? 'keys' : 'external_ids';
    if (!KEY_COLLECTIONS.has(collection) && !EXT_COLLECTIONS.has(collection)) return [400, { errors: [{ code: 'bad_request', message: `unknown collection ${collection}` }] }];
    const ids = (q.get(param) ?? '').split(',').filter(Boolean);
    if (ids.length === 0) return [400, { errors: [{ code: 'bad_request', message: `${param} is required` }] }];
    const coll = this.nodes.get(collection);
    for (const id of ids) {
      if (coll?.get(id)?.['source'] === source) coll.delete(id);
      // Edges of a removed node are gone for this source.
      for (const e of this.edges.values()) if (e.source === source && (e.from === id || e.to === id)) e.active = false;
    }
    return [200, { result: 'OK' }];
  }

  private patchEdge(type: string, q: URLSearchParams, body: unknown): [number, unknown] {
    const source = q.get('source');
    const from = q.get('from');
    let to = q.get('to');
    if (!source || !from || !to) return [400, { errors: [{ code: 'bad_request', message: 'source, from and to are required' }] }];
    if (to.startsWith('0/')) to = to.slice(2); // crowdstrike's region-prefixed ip key
    const edge = this.edges.get(`${type}|${source}|${from}|${to}`);
    if (!edge) return [404, { error: 'edge not found' }];
    const b = (body ?? {}) as Record<string, unknown>;
    if (typeof b['active'] === 'boolean') edge.active = b['active'];
    if (typeof b['last_modified'] === 'number') edge['last_modified'] = b['last_modified'];
    return [200, { job_id: this.jobId() }];
  }
}

/** `_from_external_id: X` → X; `_from: "ipaddress/1.2.3.4"` → 1.2.3.4. */
function endpoint(e: Record<string, unknown>, side: 'from' | 'to'): string | null {
  const ext = e[`_${side}_external_id`];
  if (typeof ext === 'string' && ext) return ext;
  const key = e[`_${side}`];
  if (typeof key === 'string' && key.includes('/')) return key.slice(key.indexOf('/') + 1);
  return null;
}
