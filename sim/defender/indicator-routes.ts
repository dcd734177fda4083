// HTTP surface of /api/indicators: submit, import, list (OData), delete, BatchDelete.

import { MdeError } from './errors.js';
import { validateIndicator, INDICATOR_ACTIONS, INDICATOR_TYPES, SEVERITIES } from './indicator-validation.js';
import { indicatorKey, type Caller, type IndicatorStore } from './indicators.js';
import { ODataError, parseQuery, queryWithSkip, runQuery, type EntitySchema } from './odata.js';
import type { Route, RouteContext, RouteResult } from './routing.js';

export const MAX_BATCH = 500;
export const MAX_TOP = 10_000;
const ROLES = ['Ti.ReadWrite', 'Ti.ReadWrite.All'] as const;

export const INDICATOR_SCHEMA: EntitySchema = {
  typeName: 'Indicator',
  fields: {
    id: 'string',
    indicatorValue: 'string',
    indicatorType: { enum: INDICATOR_TYPES },
    action: { enum: INDICATOR_ACTIONS },
    application: 'string',
    source: 'string',
    sourceType: { enum: ['User', 'AadApp'] },
    createdBy: 'string',
    createdByDisplayName: 'string',
    createdBySource: 'string',
    lastUpdatedBy: 'string',
    severity: { enum: SEVERITIES },
    category: 'string',
    title: 'string',
    description: 'string',
    recommendedActions: 'string',
    externalId: 'string',
    generateAlert: 'boolean',
    expirationTime: 'datetime',
    creationTimeDateTimeUtc: 'datetime',
    lastUpdateTime: 'datetime',
  },
};

export interface IndicatorRouteDeps {
  store(tenantId: string): IndicatorStore;
  /** Rows per page when $top is absent (and the cap on $top pages). */
  pageSize: number;
}

export function indicatorRoutes(deps: IndicatorRouteDeps): Route[] {
  const store = (caller: Caller): IndicatorStore => deps.store(caller.tenantId);
  return [
    { method: 'POST', pattern: /^\/api\/indicators\/import$/i, endpoint: 'indicators.import', roles: ROLES, handle: (ctx) => importIndicators(ctx, store(ctx.caller)) },
    { method: 'POST', pattern: /^\/api\/indicators\/batchdelete$/i, endpoint: 'indicators.batchDelete', roles: ROLES, handle: (ctx) => batchDelete(ctx, store(ctx.caller)) },
    { method: 'POST', pattern: /^\/api\/indicators$/i, endpoint: 'indicators.submit', roles: ROLES, handle: (ctx) => submit(ctx, store(ctx.caller)) },
    { method: 'GET', pattern: /^\/api\/indicators$/i, endpoint: 'indicators.list', roles: ROLES, handle: (ctx) => list(ctx, store(ctx.caller), deps.pageSize) },
    { method: 'DELETE', pattern: /^\/api\/indicators\/([^/]+)$/i, endpoint: 'indicators.delete', roles: ROLES, handle: (ctx) => deleteOne(ctx, store(ctx.caller)) },
  ];
}

async function submit(ctx: RouteContext, store: IndicatorStore): Promise<RouteResult> {
  const raw = await ctx.body();
  const input = validateIndicator(raw);
  const { indicator } = store.upsert(input, ctx.caller);
  const sent = [{ key: indicatorKey(input.indicatorType, input.indicatorValue), content: JSON.stringify(raw) }];
  return { status: 200, body: { '@odata.context': `${ctx.baseUrl}/api/$metadata#Indicators/$entity`, ...indicator }, items: 1, sent };
}

async function importIndicators(ctx: RouteContext, store: IndicatorStore): Promise<RouteResult> {
  const body = objectBody(await ctx.body());
  // Case-sensitive: a lower-case `indicators` key is simply absent.
  const items = body.Indicators;
  if (items === undefined || items === null) throw new MdeError(400, 'MissingRequiredParameter', 'Parameter Indicators is missing.');
  if (!Array.isArray(items)) throw new MdeError(400, 'InvalidRequestBody', 'Indicators must be a list.');
  if (items.length > MAX_BATCH) {
    throw new MdeError(400, 'MaximumBatchSizeExceeded', `Maximum batch size exceeded. Received: ${items.length}, allowed: ${MAX_BATCH}.`);
  }
  if (items.length === 0) throw new MdeError(400, 'InvalidInput', 'Indicators list is empty.');
  const sent: { key: string; content: string }[] = [];
  const value = items.map((raw: unknown) => {
    try {
      const input = validateIndicator(raw);
      const { indicator } = store.upsert(input, ctx.caller);
      sent.push({ key: indicatorKey(input.indicatorType, input.indicatorValue), content: JSON.stringify(raw) });
      return { id: indicator.id, indicator: indicator.indicatorValue, isFailed: false, failureReason: null };
    } catch (err) {
      if (!(err instanceof MdeError)) throw err;
      return { id: null, indicator: rawValue(raw), isFailed: true, failureReason: err.message };
    }
  });
  return { status: 200, body: { '@odata.context': `${ctx.baseUrl}/api/$metadata#Collection(microsoft.windowsDefenderATP.api.ImportIndicatorResult)`, value }, items: items.length, sent };
}

function list(ctx: RouteContext, store: IndicatorStore, pageSize: number): RouteResult {
  let query;
  try {
    query = parseQuery(ctx.url.searchParams, INDICATOR_SCHEMA, { maxTop: MAX_TOP });
  } catch (err) {
    if (err instanceof ODataError) throw new MdeError(400, 'ODataError', err.message);
    throw err;
  }
  const result = runQuery(store.list(ctx.caller), query, INDICATOR_SCHEMA, pageSize);
  const body: Record<string, unknown> = { '@odata.context': `${ctx.baseUrl}/api/$metadata#Indicators` };
  if (query.count) body['@odata.count'] = result.total;
  body.value = result.page;
  if (result.nextSkip !== null) body['@odata.nextLink'] = `${ctx.baseUrl}${ctx.url.pathname}?${queryWithSkip(ctx.url.searchParams, result.nextSkip)}`;
  return { status: 200, body, items: result.page.length };
}

function deleteOne(ctx: RouteContext, store: IndicatorStore): RouteResult {
  const id = ctx.params[0] ?? '';
  if (!store.remove(id, ctx.caller)) throw new MdeError(404, 'ResourceNotFound', `Indicator ${id} was not found.`);
  return { status: 204, items: 1 };
}

// Whether the real BatchDelete is atomic is unconfirmed; the simulator deletes nothing when
// any id is unknown, so a client cannot rely on partial success.
async function batchDelete(ctx: RouteContext, store: IndicatorStore): Promise<RouteResult> {
  const body = objectBody(await ctx.body());
  const ids = body.IndicatorIds;
  if (ids === undefined || ids === null) throw new MdeError(400, 'MissingRequiredParameter', 'Parameter IndicatorIds is missing.');
  if (!Array.isArray(ids)) throw new MdeError(400, 'InvalidRequestBody', 'IndicatorIds must be a list.');
  if (ids.length === 0) throw new MdeError(400, 'InvalidInput', 'IndicatorIds list is empty.');
  if (ids.length > MAX_BATCH) {
    throw new MdeError(400, 'MaximumBatchSizeExceeded', `Maximum batch size exceeded. Received: ${ids.length}, allowed: ${MAX_BATCH}.`);
  }
  const normalised = ids.map((id: unknown) => {
    const s = typeof id === 'number' && Number.isSafeInteger(id) ? String(id) : id;
    if (typeof s !== 'string' || !/^\d+$/.test(s)) throw new MdeError(400, 'InvalidInput', `Invalid indicator id '${String(id)}'.`);
    return s;
  });
  const missing = store.removeAll(normalised, ctx.caller);
  if (missing.length > 0) throw new MdeError(404, 'ResourceNotFound', `Indicators not found: ${missing.join(', ')}.`);
  return { status: 204, items: normalised.length };
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new MdeError(400, 'InvalidRequestBody', 'Request body must be a JSON object.');
  return body as Record<string, unknown>;
}

function rawValue(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const v = (raw as Record<string, unknown>).indicatorValue;
  return typeof v === 'string' ? v : null;
}
