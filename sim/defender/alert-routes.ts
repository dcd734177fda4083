// HTTP surface of /api/alerts: list (OData, `$expand=evidence`), get by id, PATCH (status,
// assignment, classification, comment). Permissions as documented: Alert.Read.All or
// Alert.ReadWrite.All to read, Alert.ReadWrite.All to change.

import { AlertStore, type Alert } from './alerts.js';
import { MdeError } from './errors.js';
import { ODataError, parseQuery, queryWithSkip, runQuery, type EntitySchema } from './odata.js';
import type { Route, RouteContext, RouteResult } from './routing.js';

const READ = ['Alert.Read.All', 'Alert.ReadWrite.All'] as const;
const WRITE = ['Alert.ReadWrite.All'] as const;
const MAX_TOP = 10_000;

export const ALERT_SEVERITIES = ['UnSpecified', 'Informational', 'Low', 'Medium', 'High'] as const;
export const ALERT_STATUSES = ['Unknown', 'New', 'InProgress', 'Resolved'] as const;

export const ALERT_SCHEMA: EntitySchema = {
  typeName: 'Alert',
  fields: {
    id: 'string',
    alertCreationTime: 'datetime',
    lastUpdateTime: 'datetime',
    lastEventTime: 'datetime',
    firstEventTime: 'datetime',
    incidentId: 'number',
    investigationId: 'number',
    InvestigationId: 'number',
    assignedTo: 'string',
    asssignedTo: 'string',
    detectionSource: 'string',
    status: { enum: ALERT_STATUSES },
    severity: { enum: ALERT_SEVERITIES },
    category: 'string',
    machineId: 'string',
    computerDnsName: 'string',
  },
};

/** The alerts of the simulator, attached to it by `alertRoutes`; tests reach them through `defenderAlerts(sim)`. */
const STORES = new WeakMap<object, AlertStore>();

export function defenderAlerts(simulator: object): AlertStore {
  let store = STORES.get(simulator);
  if (!store) STORES.set(simulator, (store = new AlertStore()));
  return store;
}

/** Routes of one Defender simulator; its alerts live in `defenderAlerts(simulator)`. */
export function alertRoutes(simulator: object, pageSize = 10_000): Route[] {
  const store = defenderAlerts(simulator);
  return [
    { method: 'GET', pattern: /^\/api\/alerts$/i, endpoint: 'alerts.list', roles: READ, handle: (ctx) => list(ctx, store, pageSize) },
    { method: 'GET', pattern: /^\/api\/alerts\/([^/]+)$/i, endpoint: 'alerts.get', roles: READ, handle: (ctx) => getOne(ctx, store) },
    { method: 'PATCH', pattern: /^\/api\/alerts\/([^/]+)$/i, endpoint: 'alerts.update', roles: WRITE, handle: (ctx) => patch(ctx, store) },
  ];
}

function expandEvidence(url: URL): boolean {
  const expand = url.searchParams.get('$expand');
  if (expand === null) return false;
  if (expand.trim().toLowerCase() !== 'evidence') throw new MdeError(400, 'ODataError', `Could not find a property named '${expand}' on type 'Alert'.`);
  return true;
}

function view(alert: Alert, withEvidence: boolean): Alert {
  return { ...structuredClone(alert), evidence: withEvidence ? structuredClone(alert.evidence) : [] };
}

function list(ctx: RouteContext, store: AlertStore, pageSize: number): RouteResult {
  let query;
  try {
    query = parseQuery(ctx.url.searchParams, ALERT_SCHEMA, { maxTop: MAX_TOP, supported: ['$filter', '$top', '$skip', '$count', '$orderby', '$expand'] });
  } catch (err) {
    if (err instanceof ODataError) throw new MdeError(400, 'ODataError', err.message);
    throw err;
  }
  const withEvidence = expandEvidence(ctx.url);
  const result = runQuery(store.visible(ctx.caller.tenantId), query, ALERT_SCHEMA, pageSize);
  const body: Record<string, unknown> = { '@odata.context': `${ctx.baseUrl}/api/$metadata#Alerts` };
  if (query.count) body['@odata.count'] = result.total;
  body.value = result.page.map((a) => view(a, withEvidence));
  if (result.nextSkip !== null) body['@odata.nextLink'] = `${ctx.baseUrl}${ctx.url.pathname}?${queryWithSkip(ctx.url.searchParams, result.nextSkip)}`;
  return { status: 200, body, items: result.page.length };
}

function getOne(ctx: RouteContext, store: AlertStore): RouteResult {
  const id = ctx.params[0] ?? '';
  const alert = store.get(ctx.caller.tenantId, id);
  if (!alert) throw new MdeError(404, 'ResourceNotFound', `Alert ${id} was not found.`);
  return { status: 200, body: { '@odata.context': `${ctx.baseUrl}/api/$metadata#Alerts/$entity`, ...view(alert, expandEvidence(ctx.url)) }, items: 1 };
}

async function patch(ctx: RouteContext, store: AlertStore): Promise<RouteResult> {
  const id = ctx.params[0] ?? '';
  if (!store.get(ctx.caller.tenantId, id)) throw new MdeError(404, 'ResourceNotFound', `Alert ${id} was not found.`);
  const body = await ctx.body();
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new MdeError(400, 'InvalidRequestBody', 'Request body must be a JSON object.');
  const b = body as Record<string, unknown>;
  const changes: Record<string, unknown> = {};
  for (const key of ['status', 'assignedTo', 'classification', 'determination', 'comment']) {
    if (b[key] === undefined) continue;
    if (typeof b[key] !== 'string') throw new MdeError(400, 'InvalidRequestBody', `${key} must be a string.`);
    changes[key] = b[key];
  }
  if (changes.status !== undefined && !(ALERT_STATUSES as readonly string[]).includes(changes.status as string)) {
    throw new MdeError(400, 'InvalidRequestBody', `Invalid status '${String(changes.status)}'.`);
  }
  const updated = store.update(ctx.caller.tenantId, id, changes as Partial<Alert>);
  return { status: 200, body: { '@odata.context': `${ctx.baseUrl}/api/$metadata#Alerts/$entity`, ...view(updated, false) }, items: 1 };
}
