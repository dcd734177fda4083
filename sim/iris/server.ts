// Loopback simulator of the DFIR-IRIS 2.4 legacy REST API (design/apis/iris.md §10): API-key
// auth with per-user permissions and customers, the {status,message,data} envelope, reference
// lists, /alerts/add validation with IRIS's messages, /alerts/filter with its substring match on
// source_reference, partial updates with the owner side effect, delete and merge into a case.
// Fault injection (outage, injected statuses, lost answers) and a request log for tests.

import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { LoopbackServer, readBody, sendJson, type TlsMaterial } from '../loopback.js';
import { ALERT_STATUSES, ASSET_TYPES, FRESH_SEVERITIES, IOC_TYPES, pyRepr, RESOLUTIONS, TLPS, UPGRADED_SEVERITIES } from './reference.js';

export type IrisPermission = 'alerts_read' | 'alerts_write' | 'alerts_delete' | 'customers_read';

export interface IrisUser {
  id: number;
  name: string;
  apiKey: string;
  permissions: IrisPermission[];
  /** Customer ids the user is linked to; 'all' for a server administrator. */
  customers: number[] | 'all';
}

export interface IrisCustomer {
  customer_id: number;
  customer_name: string;
  customer_uuid: string;
  customer_description: string;
  customer_sla: string;
  custom_attributes: Record<string, unknown>;
}

export interface IrisIoc {
  ioc_id: number;
  ioc_uuid: string;
  ioc_value: string;
  ioc_type_id: number | null;
  ioc_tlp_id: number | null;
  ioc_description: string | null;
  ioc_tags: string | null;
  ioc_enrichment: unknown;
}

export interface IrisAsset {
  asset_id: number;
  asset_uuid: string;
  asset_name: string;
  asset_type_id: number;
  asset_description: string | null;
  asset_ip: string | null;
  asset_domain: string | null;
  asset_tags: string | null;
  asset_enrichment: unknown;
}

export interface IrisAlert {
  alert_id: number;
  alert_uuid: string;
  alert_title: string;
  alert_description: string | null;
  alert_source: string | null;
  alert_source_ref: string | null;
  alert_source_link: string | null;
  alert_source_content: unknown;
  alert_source_event_time: string;
  alert_creation_time: string;
  alert_severity_id: number;
  alert_status_id: number;
  alert_customer_id: number;
  alert_context: unknown;
  alert_tags: string | null;
  alert_note: string | null;
  alert_owner_id: number | null;
  alert_classification_id: number | null;
  alert_resolution_status_id: number | null;
  iocs: IrisIoc[];
  assets: IrisAsset[];
  cases: number[];
  comments: number[];
  modification_history: Record<string, { user: string; user_id: number; action: string }>;
}

export interface IrisSimulatorOptions {
  tls?: TlsMaterial;
  port?: number;
  /** 'fresh' (default, Medium=1) or 'upgraded' (1=Unspecified … 6=Critical). */
  severityLayout?: 'fresh' | 'upgraded';
  log?: (line: string) => void;
}

export interface IrisRequestLogEntry {
  method: string;
  path: string;
  query: string;
  status: number;
  time: number;
  fault: string | null;
}

type Reply = { status: number; message?: string; data?: unknown; error?: boolean };

class IrisError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const ALERT_SCALARS = [
  'alert_title', 'alert_description', 'alert_source', 'alert_source_ref', 'alert_source_link', 'alert_source_content',
  'alert_source_event_time', 'alert_severity_id', 'alert_status_id', 'alert_customer_id', 'alert_context', 'alert_tags',
  'alert_note', 'alert_owner_id', 'alert_classification_id', 'alert_resolution_status_id',
] as const;
const INT_FIELDS = ['alert_severity_id', 'alert_status_id', 'alert_customer_id', 'alert_owner_id', 'alert_classification_id', 'alert_resolution_status_id'];
const REQUIRED = ['alert_title', 'alert_severity_id', 'alert_status_id', 'alert_customer_id'];

export class IrisSimulator {
  private server: LoopbackServer | undefined;
  private baseUrl = '';
  private nextAlertId = 1;
  private nextIocId = 1;
  private nextAssetId = 1;
  private readonly severities: readonly [number, string][];
  readonly users: IrisUser[] = [];
  readonly customers: IrisCustomer[] = [];
  readonly alerts = new Map<number, IrisAlert>();
  readonly cases = new Set<number>();
  readonly requestLog: IrisRequestLogEntry[] = [];
  private down = false;
  private failures: { status: number; count: number; path: RegExp; message?: string }[] = [];
  private drops: { count: number; path: RegExp }[] = [];

  constructor(private readonly opts: IrisSimulatorOptions = {}) {
    this.severities = opts.severityLayout === 'upgraded' ? UPGRADED_SEVERITIES : FRESH_SEVERITIES;
    this.addCustomer('IrisInitialClient');
  }

  get url(): string {
    if (!this.server) throw new Error('IrisSimulator not started');
    return this.baseUrl;
  }

  async start(): Promise<this> {
    if (this.server) return this;
    const server = new LoopbackServer((req, res) => this.handle(req, res), {
      tls: this.opts.tls,
      port: this.opts.port,
      onError: (err) => this.opts.log?.(`iris: handler error ${String(err)}`),
      onFailure: (res) => sendJson(res, 500, { status: 'error', message: 'Internal server error', data: [] }),
    });
    await server.start();
    this.server = server;
    this.baseUrl = `${server.tls ? 'https' : 'http'}://127.0.0.1:${server.port}`;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await s?.stop();
  }

  // --- set-up ---------------------------------------------------------------------------------

  addCustomer(name: string): IrisCustomer {
    const c: IrisCustomer = {
      customer_id: this.customers.length + 1, customer_name: name, customer_uuid: randomUUID(),
      customer_description: '', customer_sla: '', custom_attributes: {},
    };
    this.customers.push(c);
    return c;
  }

  addUser(name: string, permissions: IrisPermission[], customers: number[] | 'all'): IrisUser {
    const user: IrisUser = { id: this.users.length + 1, name, apiKey: `iris-key-${name}-${randomUUID()}`, permissions, customers };
    this.users.push(user);
    return user;
  }

  addCase(caseId: number): void {
    this.cases.add(caseId);
  }

  // --- faults ---------------------------------------------------------------------------------

  /** Outage: every connection is reset until turned off. */
  setDown(down: boolean): void {
    this.down = down;
  }

  /** The next `count` requests whose path matches fail with `status` (state untouched). */
  failNext(count: number, status: number, path: RegExp = /./, message?: string): void {
    this.failures.push({ status, count, path, ...(message !== undefined ? { message } : {}) });
  }

  /** The next `count` matching requests are applied, then the connection is destroyed unanswered. */
  dropNextResponse(count = 1, path: RegExp = /./): void {
    this.drops.push({ count, path });
  }

  // --- inspection -----------------------------------------------------------------------------

  alertList(): IrisAlert[] {
    return [...this.alerts.values()];
  }

  severityId(name: string): number {
    return this.severities.find(([, n]) => n === name)![0];
  }

  statusId(name: string): number {
    return ALERT_STATUSES.find(([, n]) => n === name)![0];
  }

  iocTypeName(id: number | null): string | null {
    return IOC_TYPES.find(([i]) => i === id)?.[1] ?? null;
  }

  /** Requests per `METHOD /path` with numeric ids folded to `<id>`. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.requestLog) {
      const k = `${e.method} ${e.path.replace(/\/\d+$/, '/<id>')}`;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }

  // --- pipeline -------------------------------------------------------------------------------

  private take<T extends { count: number; path: RegExp }>(list: T[], path: string): T | null {
    const hit = list.find((f) => f.count > 0 && f.path.test(path));
    if (!hit) return null;
    hit.count--;
    return hit;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', this.baseUrl || 'http://127.0.0.1');
    const entry: IrisRequestLogEntry = { method, path: url.pathname, query: url.search, status: 0, time: Date.now(), fault: null };
    this.requestLog.push(entry);
    const send = (r: Reply): void => {
      entry.status = r.status;
      sendJson(res, r.status, { status: r.error || r.status >= 400 ? 'error' : 'success', message: r.message ?? '', data: r.data ?? [] });
    };
    try {
      if (this.down) {
        entry.fault = 'down';
        req.socket.destroy();
        return;
      }
      const failure = this.take(this.failures, url.pathname);
      if (failure) {
        entry.fault = 'injected';
        return send({ status: failure.status, message: failure.message ?? (failure.status >= 500 ? 'Internal server error' : 'Injected failure') });
      }
      const user = this.authenticate(req);
      if (!user) return send({ status: 401, message: 'Authentication required' });
      const reply = await this.route(method, url, req, user);
      if (this.take(this.drops, url.pathname)) {
        entry.fault = 'dropped';
        req.socket.destroy();
        return;
      }
      send(reply);
    } catch (err) {
      if (err instanceof IrisError) return send({ status: err.status, message: err.message });
      throw err;
    } finally {
      this.opts.log?.(`iris: ${method} ${url.pathname}${url.search} -> ${entry.status || 'no answer'}`);
    }
  }

  private authenticate(req: http.IncomingMessage): IrisUser | null {
    const raw = (req.headers['x-iris-auth'] as string | undefined) ?? req.headers.authorization ?? '';
    const key = raw.replace(/^Bearer /, '').trim();
    if (!key) return null;
    return this.users.find((u) => u.apiKey === key) ?? null;
  }

  private require(user: IrisUser, permission: IrisPermission): void {
    if (!user.permissions.includes(permission)) throw new IrisError(403, 'Permission denied');
  }

  private canAccess(user: IrisUser, customerId: number): boolean {
    return user.customers === 'all' || user.customers.includes(customerId);
  }

  private async route(method: string, url: URL, req: http.IncomingMessage, user: IrisUser): Promise<Reply> {
    const p = url.pathname.replace(/\/+$/, '');
    let m: RegExpExecArray | null;
    if (method === 'GET' && p === '/api/ping') return { status: 200, message: 'pong' };
    if (method === 'GET' && p === '/api/versions') return { status: 200, data: { iris_current: 'v2.4.20', api_min: '2.0.4', api_current: '2.0.5' } };
    if (method === 'GET' && p === '/manage/severities/list') {
      return { status: 200, data: this.severities.map(([id, name]) => ({ severity_id: id, severity_name: name, severity_description: name })) };
    }
    if (method === 'GET' && p === '/manage/alert-status/list') {
      return { status: 200, data: ALERT_STATUSES.map(([id, name]) => ({ status_id: id, status_name: name, status_description: name })) };
    }
    if (method === 'GET' && p === '/manage/alert-resolutions/list') {
      return { status: 200, data: RESOLUTIONS.map(([id, name]) => ({ resolution_status_id: id, resolution_status_name: name, resolution_status_description: name })) };
    }
    if (method === 'GET' && p === '/manage/tlp/list') return { status: 200, data: TLPS.map(([id, name, color]) => ({ tlp_id: id, tlp_name: name, tlp_bscolor: color })) };
    if (method === 'GET' && p === '/manage/ioc-types/list') {
      return { status: 200, data: IOC_TYPES.map(([id, name, regex]) => ({ type_id: id, type_name: name, type_description: name, type_taxonomy: null, type_validation_regex: regex, type_validation_expect: regex ? `${regex}` : null })) };
    }
    if (method === 'GET' && p === '/manage/asset-type/list') {
      return { status: 200, data: ASSET_TYPES.map((name, i) => ({ asset_id: i + 1, asset_name: name, asset_description: name, asset_icon_compromised: '', asset_icon_not_compromised: '' })) };
    }
    if (method === 'GET' && p === '/manage/customers/list') {
      this.require(user, 'customers_read');
      return { status: 200, data: this.customers.filter((c) => this.canAccess(user, c.customer_id)) };
    }
    if (method === 'POST' && p === '/alerts/add') {
      this.require(user, 'alerts_write');
      return this.addAlert(await readJson(req), user);
    }
    if (method === 'GET' && p === '/alerts/filter') {
      this.require(user, 'alerts_read');
      return this.filter(url.searchParams, user);
    }
    if (method === 'GET' && (m = /^\/alerts\/(\d+)$/.exec(p))) {
      this.require(user, 'alerts_read');
      const alert = this.alerts.get(Number(m[1]));
      if (!alert || !this.canAccess(user, alert.alert_customer_id)) throw new IrisError(400, 'Alert not found');
      return { status: 200, data: this.dump(alert) };
    }
    if (method === 'POST' && (m = /^\/alerts\/update\/(\d+)$/.exec(p))) {
      this.require(user, 'alerts_write');
      return this.update(Number(m[1]), await readJson(req), user);
    }
    if (method === 'POST' && (m = /^\/alerts\/delete\/(\d+)$/.exec(p))) {
      this.require(user, 'alerts_delete');
      const alert = this.alerts.get(Number(m[1]));
      if (!alert) throw new IrisError(400, 'Alert not found');
      if (!this.canAccess(user, alert.alert_customer_id)) throw new IrisError(403, 'User not entitled to delete alerts for the client');
      this.alerts.delete(alert.alert_id);
      return { status: 200, data: { alert_id: alert.alert_id } };
    }
    if (method === 'POST' && (m = /^\/alerts\/merge\/(\d+)$/.exec(p))) {
      this.require(user, 'alerts_write');
      return this.merge(Number(m[1]), await readJson(req), user);
    }
    throw new IrisError(404, 'Not found');
  }

  private addAlert(body: unknown, user: IrisUser): Reply {
    if (!body || typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length === 0) throw new IrisError(400, 'No JSON data provided');
    const b = { ...(body as Record<string, unknown>) };
    const iocs = (b.alert_iocs ?? []) as unknown[];
    const assets = (b.alert_assets ?? []) as unknown[];
    delete b.alert_iocs;
    delete b.alert_assets;
    const parsedIocs = this.validateIocs(iocs);
    const parsedAssets = this.validateAssets(assets);
    const fields = this.validateAlert(b, false);
    const customer = fields.alert_customer_id as number;
    if (!this.canAccess(user, customer)) throw new IrisError(400, 'User not entitled to create alerts for the client');
    this.checkForeignKeys(fields);
    const now = new Date().toISOString().replace('Z', '');
    const alert: IrisAlert = {
      alert_id: this.nextAlertId++, alert_uuid: randomUUID(), alert_title: '', alert_description: null, alert_source: null,
      alert_source_ref: null, alert_source_link: null, alert_source_content: null, alert_source_event_time: now,
      alert_creation_time: now, alert_severity_id: 0, alert_status_id: 0, alert_customer_id: 0, alert_context: null,
      alert_tags: null, alert_note: null, alert_owner_id: null, alert_classification_id: null, alert_resolution_status_id: null,
      iocs: parsedIocs, assets: parsedAssets, cases: [], comments: [],
      modification_history: { [String(Date.now() / 1000)]: { user: user.name, user_id: user.id, action: 'Alert created' } },
      ...(fields as Partial<IrisAlert>),
    };
    alert.alert_creation_time = now;
    this.alerts.set(alert.alert_id, alert);
    return { status: 200, data: this.dump(alert) };
  }

  private validateIocs(iocs: unknown[]): IrisIoc[] {
    if (!Array.isArray(iocs)) throw new IrisError(400, pyRepr({ _schema: ['Invalid input type.'] }));
    const errors: Record<string, unknown> = {};
    const out: IrisIoc[] = [];
    iocs.forEach((raw, i) => {
      const ioc = (raw ?? {}) as Record<string, unknown>;
      if (typeof ioc.ioc_value !== 'string' || ioc.ioc_value.length === 0) {
        errors[i] = { ioc_value: [ioc.ioc_value === undefined ? 'Missing data for required field.' : 'Shorter than minimum length 1.'] };
        return;
      }
      let typeId: number | null = null;
      if (ioc.ioc_type_id !== undefined && ioc.ioc_type_id !== null) {
        const type = IOC_TYPES.find(([id]) => id === Number(ioc.ioc_type_id));
        if (!type) throw new IrisError(400, pyRepr({ ioc_type_id: ['Invalid IOC type ID'] }));
        typeId = type[0];
        if (type[2] && !new RegExp(`^(?:${type[2]})$`, 'i').test(ioc.ioc_value)) {
          throw new IrisError(400, pyRepr({ ioc_ioc_value: [`The input doesn't match the expected format (expected: ${type[2]})`] }));
        }
      }
      if (ioc.ioc_tlp_id !== undefined && ioc.ioc_tlp_id !== null && !TLPS.some(([id]) => id === Number(ioc.ioc_tlp_id))) {
        throw new IrisError(400, '(psycopg2.errors.ForeignKeyViolation) insert or update on table "ioc" violates foreign key constraint "ioc_ioc_tlp_id_fkey"');
      }
      out.push({
        ioc_id: this.nextIocId++, ioc_uuid: randomUUID(), ioc_value: ioc.ioc_value, ioc_type_id: typeId,
        ioc_tlp_id: ioc.ioc_tlp_id === undefined || ioc.ioc_tlp_id === null ? null : Number(ioc.ioc_tlp_id),
        ioc_description: (ioc.ioc_description as string | undefined) ?? null, ioc_tags: (ioc.ioc_tags as string | undefined) ?? null,
        ioc_enrichment: ioc.ioc_enrichment ?? null,
      });
    });
    if (Object.keys(errors).length > 0) throw new IrisError(400, pyRepr(errors));
    return out;
  }

  private validateAssets(assets: unknown[]): IrisAsset[] {
    if (!Array.isArray(assets)) throw new IrisError(400, pyRepr({ _schema: ['Invalid input type.'] }));
    return assets.map((raw, i) => {
      const a = (raw ?? {}) as Record<string, unknown>;
      if (typeof a.asset_name !== 'string') throw new IrisError(400, pyRepr({ [i]: { asset_name: ['Missing data for required field.'] } }));
      if (a.asset_type_id === undefined || a.asset_type_id === null) throw new IrisError(400, pyRepr({ asset_type_id: ['Invalid data - non null expected'] }));
      if (!Number.isInteger(Number(a.asset_type_id))) throw new IrisError(400, pyRepr({ asset_type_id: ['Invalid data type'] }));
      const typeId = Number(a.asset_type_id);
      if (typeId < 1 || typeId > ASSET_TYPES.length) throw new IrisError(400, pyRepr({ asset_type_id: ['Invalid asset type ID'] }));
      const str = (k: string) => (typeof a[k] === 'string' ? (a[k] as string) : null);
      return {
        asset_id: this.nextAssetId++, asset_uuid: randomUUID(), asset_name: a.asset_name, asset_type_id: typeId,
        asset_description: str('asset_description'), asset_ip: str('asset_ip'), asset_domain: str('asset_domain'),
        asset_tags: str('asset_tags'), asset_enrichment: a.asset_enrichment ?? null,
      };
    });
  }

  /** Marshmallow-like load of the alert's own fields; unknown keys are dropped silently. */
  private validateAlert(b: Record<string, unknown>, partial: boolean): Record<string, unknown> {
    const errors: Record<string, string[]> = {};
    const out: Record<string, unknown> = {};
    if (!partial) for (const k of REQUIRED) if (b[k] === undefined) errors[k] = ['Missing data for required field.'];
    for (const k of ALERT_SCALARS) {
      if (!(k in b) || b[k] === undefined) continue;
      const v = b[k];
      if (INT_FIELDS.includes(k)) {
        if (v === null) {
          if (REQUIRED.includes(k)) errors[k] = ['Field may not be null.'];
          else out[k] = null;
          continue;
        }
        const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
        if (!Number.isInteger(n)) errors[k] = ['Not a valid integer.'];
        else out[k] = n;
      } else if (k === 'alert_source_event_time') {
        if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) errors[k] = ['Not a valid datetime.'];
        else out[k] = v.replace(/Z$/, '');
      } else if (k === 'alert_source_content' || k === 'alert_context') {
        out[k] = v;
      } else {
        if (v !== null && typeof v !== 'string') errors[k] = ['Not a valid string.'];
        else out[k] = v;
      }
    }
    if (Object.keys(errors).length > 0) throw new IrisError(400, pyRepr(errors));
    return out;
  }

  private checkForeignKeys(fields: Record<string, unknown>): void {
    const fk = (table: string, column: string) =>
      new IrisError(400, `(psycopg2.errors.ForeignKeyViolation) insert or update on table "${table}" violates foreign key constraint "${table}_${column}_fkey"`);
    if (fields.alert_severity_id !== undefined && !this.severities.some(([id]) => id === fields.alert_severity_id)) throw fk('alerts', 'alert_severity_id');
    if (fields.alert_status_id !== undefined && !ALERT_STATUSES.some(([id]) => id === fields.alert_status_id)) throw fk('alerts', 'alert_status_id');
    if (fields.alert_resolution_status_id !== undefined && fields.alert_resolution_status_id !== null && !RESOLUTIONS.some(([id]) => id === fields.alert_resolution_status_id)) throw fk('alerts', 'alert_resolution_status_id');
    if (fields.alert_customer_id !== undefined && !this.customers.some((c) => c.customer_id === fields.alert_customer_id)) throw fk('alerts', 'alert_customer_id');
  }

  private update(id: number, body: unknown, user: IrisUser): Reply {
    if (!body || typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length === 0) throw new IrisError(400, 'No JSON data provided');
    const alert = this.alerts.get(id);
    if (!alert) throw new IrisError(400, 'Alert not found');
    if (!this.canAccess(user, alert.alert_customer_id)) throw new IrisError(403, 'User not entitled to update alerts for the client');
    const b = { ...(body as Record<string, unknown>) };
    // IOCs and assets cannot be changed through update in 2.4.
    delete b.alert_iocs;
    delete b.alert_assets;
    const fields = this.validateAlert(b, true);
    this.checkForeignKeys(fields);
    if (fields.alert_customer_id !== undefined && !this.canAccess(user, fields.alert_customer_id as number)) {
      throw new IrisError(403, 'User not entitled to update alerts for the client');
    }
    // IRIS makes the API user the owner unless the body says otherwise (-1 = unassigned).
    if (!('alert_owner_id' in fields) && alert.alert_owner_id === null) fields.alert_owner_id = user.id;
    if (fields.alert_owner_id === -1) fields.alert_owner_id = null;
    Object.assign(alert, fields);
    alert.modification_history[String(Date.now() / 1000)] = { user: user.name, user_id: user.id, action: 'Alert updated' };
    return { status: 200, data: this.dump(alert) };
  }

  private merge(id: number, body: unknown, user: IrisUser): Reply {
    const alert = this.alerts.get(id);
    if (!alert) throw new IrisError(400, 'Alert not found');
    if (!this.canAccess(user, alert.alert_customer_id)) throw new IrisError(403, 'User not entitled to merge alerts for the client');
    const b = (body ?? {}) as Record<string, unknown>;
    if (b.target_case_id === undefined || b.target_case_id === null) throw new IrisError(400, 'No target case id provided');
    const caseId = Number(b.target_case_id);
    if (!this.cases.has(caseId)) throw new IrisError(400, 'Target case not found');
    if (!alert.cases.includes(caseId)) alert.cases.push(caseId);
    alert.alert_status_id = this.statusId('Merged');
    return { status: 200, data: { case_id: caseId } };
  }

  private filter(q: URLSearchParams, user: IrisUser): Reply {
    let rows = this.alertList().filter((a) => this.canAccess(user, a.alert_customer_id));
    const ref = q.get('source_reference');
    if (ref !== null) rows = rows.filter((a) => (a.alert_source_ref ?? '').includes(ref)); // LIKE '%v%', case-sensitive
    for (const k of ['alert_source', 'alert_title', 'alert_description', 'alert_tags'] as const) {
      const v = q.get(k);
      if (v !== null) rows = rows.filter((a) => (a[k] ?? '').toLowerCase().includes(v.toLowerCase()));
    }
    for (const k of ['alert_status_id', 'alert_severity_id', 'alert_customer_id'] as const) {
      const v = q.get(k);
      if (v !== null) rows = rows.filter((a) => String(a[k]) === v);
    }
    const ids = q.get('alert_ids');
    if (ids !== null) {
      const list = ids.split(',').map((s) => s.trim());
      if (list.some((s) => !/^\d+$/.test(s))) throw new IrisError(400, 'Invalid alert id');
      rows = rows.filter((a) => list.includes(String(a.alert_id)));
    }
    const desc = (q.get('sort') ?? 'desc') === 'desc';
    rows.sort((x, y) => (desc ? -1 : 1) * x.alert_source_event_time.localeCompare(y.alert_source_event_time));
    const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
    const perPage = Math.max(1, Number(q.get('per_page') ?? 10) || 10);
    const lastPage = Math.max(1, Math.ceil(rows.length / perPage));
    return {
      status: 200,
      data: {
        total: rows.length, alerts: rows.slice((page - 1) * perPage, page * perPage).map((a) => this.dump(a)),
        last_page: lastPage, current_page: page, next_page: page < lastPage ? page + 1 : null,
      },
    };
  }

  private dump(a: IrisAlert): Record<string, unknown> {
    const sev = this.severities.find(([id]) => id === a.alert_severity_id);
    const st = ALERT_STATUSES.find(([id]) => id === a.alert_status_id);
    const cust = this.customers.find((c) => c.customer_id === a.alert_customer_id);
    return {
      ...structuredClone(a),
      severity: sev ? { severity_id: sev[0], severity_name: sev[1], severity_description: sev[1] } : null,
      status: st ? { status_id: st[0], status_name: st[1], status_description: st[1] } : null,
      customer: cust ?? null,
      iocs: a.iocs.map((i) => ({ ...i, ioc_type: i.ioc_type_id ? { type_id: i.ioc_type_id, type_name: this.iocTypeName(i.ioc_type_id) } : null })),
      assets: a.assets.map((s) => ({ ...s, case_id: null, asset_type: { asset_id: s.asset_type_id, asset_name: ASSET_TYPES[s.asset_type_id - 1] } })),
    };
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const raw = (await readBody(req, 16 * 1024 * 1024)).toString('utf8');
  if (!raw.trim()) return null;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw new IrisError(400, 'No JSON data provided');
  }
}
