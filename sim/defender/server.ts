// Loopback simulator of the Microsoft Defender for Endpoint API. This file owns the request
// pipeline shared by every entity: outage/latency faults → routing → injected failures →
// bearer-token check → per-(tenant, app, endpoint) throttling → route → optional lost answer.
// Entity behaviour lives in route modules (indicator-routes.ts; alerts/machines to come).

import type http from 'node:http';
import type { TokenInfo } from '../entra.js';
import { BodyTooLargeError, LoopbackServer, readBody, sendJson, sleep, type TlsMaterial } from '../loopback.js';
import { defaultErrorForStatus, errorBody, MdeError } from './errors.js';
import { FaultInjector, type DownMode, type InjectedFailure } from './faults.js';
import { alertRoutes } from './alert-routes.js';
import { indicatorRoutes } from './indicator-routes.js';
import { assetRoutes } from './asset-routes.js';
import { validateIndicator } from './indicator-validation.js';
import { IndicatorStore, type Caller, type Indicator } from './indicators.js';
import { DEFENDER_QUOTAS, RateLimiter, ScaledClock, type Quota } from './ratelimit.js';
import { matchRoute, type Route } from './routing.js';
import { SendLog } from '../send-log.js';

/** Token audiences of the WindowsDefenderATP resource (current and legacy scope). */
export const MDE_AUDIENCES: readonly string[] = ['https://api.securitycenter.microsoft.com', 'https://securitycenter.onmicrosoft.com/windowsatpservice'];

/** What the simulator needs from Entra: the EntraSimulator satisfies it. */
export interface TokenValidator {
  tokenInfo(token: string): TokenInfo | 'expired' | 'unknown';
}

export interface DefenderSimulatorOptions {
  entra: TokenValidator;
  /** Serve HTTPS with this key/cert (see tls.ts); plain HTTP when absent. */
  tls?: TlsMaterial;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Simulated time runs this many times faster for rate-limit windows (60: a minute lasts a second). Default 1. */
  timeScale?: number;
  /**
   * Simulated ms for the rate-limit windows, for tests that move time by hand instead of waiting
   * (no timing flakes on a loaded machine). Default: real time × timeScale. Retry-After stays in
   * real seconds (simulated time / timeScale).
   */
  limitClock?: () => number;
  /** false disables throttling; an object overrides the quotas of the endpoints it names. */
  rateLimits?: boolean | Record<string, Quota[]>;
  /** Active indicators per tenant; default 15,000. */
  maxIndicators?: number;
  /** Answer when the cap is hit (unconfirmed upstream); default 400 BadRequest. */
  capError?: { status: number; code: string };
  /** Rows per page without $top; default 10,000. */
  pageSize?: number;
  /** Wall clock for indicator timestamps and expiry; default Date.now. */
  now?: () => number;
  log?: (line: string) => void;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  query: string;
  /** Route key such as `indicators.import`; null when no route matched. */
  endpoint: string | null;
  /** 0 when the connection was reset or the answer dropped. */
  status: number;
  /** Indicators/ids in the request (writes) or rows returned (list). */
  items: number | null;
  /** Real epoch ms when the request arrived. */
  time: number;
  tenantId: string | null;
  clientId: string | null;
  /** 'down' | 'injected' | 'dropped' when a fault shaped the answer. */
  fault: string | null;
}

export interface FailNextOptions {
  /** Endpoint key (e.g. `indicators.import`) or 'all' (default). */
  endpoint?: string;
  retryAfter?: number;
  body?: unknown;
}

const BODY_LIMIT = 16 * 1024 * 1024;
const ODATA_JSON = 'application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8';

export class DefenderSimulator {
  private server: LoopbackServer | undefined;
  private readonly routes: Route[];
  private readonly stores = new Map<string, IndicatorStore>();
  private readonly limiter: RateLimiter | null;
  private readonly faults = new FaultInjector();
  private readonly tenantsDown = new Set<string>();
  private readonly now: () => number;
  private lastId = 0;
  private baseUrl = ''; // kept after stop() so in-flight requests can still build URLs
  /** Every /api request, oldest first. */
  readonly requestLog: RequestLogEntry[] = [];
  /** Every indicator written, keyed `tenant␀type␀value` (lower-cased): what the service sent, not what the store kept. */
  readonly sends = new SendLog();

  constructor(private readonly opts: DefenderSimulatorOptions) {
    this.now = opts.now ?? Date.now;
    const clock = new ScaledClock(opts.timeScale ?? 1, opts.limitClock);
    const quotas = typeof opts.rateLimits === 'object' ? { ...DEFENDER_QUOTAS, ...opts.rateLimits } : DEFENDER_QUOTAS;
    this.limiter = opts.rateLimits === false ? null : new RateLimiter(quotas, clock);
    this.routes = [
      ...indicatorRoutes({ store: (t) => this.storeFor(t), pageSize: opts.pageSize ?? 10_000 }),
      ...alertRoutes(this, opts.pageSize),
      ...assetRoutes(this, { pageSize: opts.pageSize }),
    ];
  }

  /** `https://127.0.0.1:PORT` (or http://). The certificate of tls.ts covers 127.0.0.1 and localhost. */
  get url(): string {
    if (!this.server) throw new Error('DefenderSimulator not started');
    return this.baseUrl;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = new LoopbackServer((req, res) => this.handle(req, res), {
      tls: this.opts.tls,
      port: this.opts.port,
      onError: (err) => this.opts.log?.(`defender: handler error ${String(err)}`),
    });
    await server.start();
    this.server = server;
    this.baseUrl = `${server.tls ? 'https' : 'http'}://127.0.0.1:${server.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.stop();
  }

  // --- fault injection ------------------------------------------------------------------------

  /** The next `count` matching requests fail with `status` without touching any state. */
  failNext(count: number, status: number, options: FailNextOptions = {}): void {
    const failure: InjectedFailure = { status };
    if (options.retryAfter !== undefined) failure.retryAfter = options.retryAfter;
    if (options.body !== undefined) failure.body = options.body;
    this.faults.failNext(count, failure, options.endpoint ?? 'all');
  }

  /** Delay before every request is processed. */
  setLatency(ms: number): void {
    this.faults.latencyMs = ms;
  }

  /** Outage: `'reset'` (default) destroys each connection, `503` answers ServiceUnavailable. */
  setDown(down: boolean, mode: DownMode = 'reset'): void {
    this.faults.down = down ? mode : null;
  }

  /**
   * One tenant's service is unavailable (503 ServiceUnavailable after authentication) while the
   * other tenants on the same host answer as usual.
   */
  setTenantDown(tenantId: string, down: boolean): void {
    if (down) this.tenantsDown.add(tenantId);
    else this.tenantsDown.delete(tenantId);
  }

  /** The next `count` matching requests are applied, then the connection is destroyed unanswered. */
  dropNextResponse(count = 1, endpoint = 'all'): void {
    this.faults.dropNext(count, endpoint);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  // --- inspection -----------------------------------------------------------------------------

  /** Active (unexpired) indicators of one tenant, or of every tenant. */
  indicators(tenantId?: string): Indicator[] {
    if (tenantId !== undefined) return this.stores.get(tenantId)?.list() ?? [];
    return [...this.stores.values()].flatMap((s) => s.list());
  }

  /** The active indicator with this type and (case-insensitive) value. */
  find(type: string, value: string, tenantId?: string): Indicator | undefined {
    const stores = tenantId !== undefined ? [this.stores.get(tenantId)] : [...this.stores.values()];
    for (const s of stores) {
      const hit = s?.find(type, value);
      if (hit) return hit;
    }
    return undefined;
  }

  /** Requests per endpoint key (every status, faults included). */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.requestLog) if (e.endpoint) out[e.endpoint] = (out[e.endpoint] ?? 0) + 1;
    return out;
  }

  /**
   * Stores indicators directly (no HTTP, no quota), e.g. to start a benchmark near the cap. Invalid
   * input throws. `clientId` is the creating application's id, or with `user` a person's UPN (the
   * portal: sourceType User, createdBy and source the UPN).
   */
  seed(tenantId: string, clientId: string, indicators: unknown[], opts: { displayName?: string; seesAll?: boolean; user?: boolean } = {}): Indicator[] {
    const caller: Caller = { tenantId, clientId, displayName: opts.displayName ?? clientId, seesAll: opts.seesAll ?? true, ...(opts.user ? { kind: 'User' as const } : {}) };
    return indicators.map((raw) => this.storeFor(tenantId).upsert(validateIndicator(raw), caller).indicator);
  }

  /** Simulates a duplicate the service created itself (same type and value, new id). */
  duplicateIndicator(id: string): Indicator | undefined {
    for (const s of this.stores.values()) {
      const dup = s.duplicate(id);
      if (dup) return dup;
    }
    return undefined;
  }

  /** Simulates an administrator deleting an indicator by hand in the portal. */
  deleteByHand(id: string): boolean {
    return [...this.stores.values()].some((s) => s.removeAsAdmin(id));
  }

  /** Forgets indicators, the request log, throttling state and faults. */
  reset(): void {
    for (const s of this.stores.values()) s.clear();
    this.requestLog.length = 0;
    this.sends.clear();
    this.limiter?.reset();
    this.faults.clear();
  }

  // --- pipeline -------------------------------------------------------------------------------

  private storeFor(tenantId: string): IndicatorStore {
    let store = this.stores.get(tenantId);
    if (!store) {
      store = new IndicatorStore({
        maxIndicators: this.opts.maxIndicators ?? 15_000,
        capError: this.opts.capError ?? { status: 400, code: 'BadRequest' },
        now: this.now,
        nextId: () => String(++this.lastId),
        onRemoved: (key) => this.sends.removed(`${tenantId}\u0000${key}`),
      });
      this.stores.set(tenantId, store);
    }
    return store;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', this.baseUrl);
    if (url.pathname.startsWith('/_sim/')) return this.handleSim(method, url, res);

    const entry: RequestLogEntry = {
      method, path: url.pathname, query: url.search, endpoint: null, status: 0, items: null,
      time: Date.now(), tenantId: null, clientId: null, fault: null,
    };
    try {
      await this.pipeline(req, res, url, entry);
    } finally {
      this.requestLog.push(entry);
      this.opts.log?.(`defender: ${method} ${url.pathname}${url.search} -> ${entry.status || 'no answer'}${entry.items !== null ? ` (${entry.items} items)` : ''}${entry.fault ? ` [${entry.fault}]` : ''}`);
    }
  }

  private async pipeline(req: http.IncomingMessage, res: http.ServerResponse, url: URL, entry: RequestLogEntry): Promise<void> {
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}, contentType?: string): void => {
      entry.status = status;
      sendJson(res, status, body, headers, contentType);
    };
    const replyError = (e: MdeError): void => reply(e.status, errorBody(e.code, e.message), e.headers);

    const down = this.faults.down;
    if (down !== null) {
      entry.fault = 'down';
      if (down === 'reset') {
        req.socket.destroy();
        return;
      }
      return replyError(new MdeError(503, 'ServiceUnavailable', 'The service is temporarily unavailable.'));
    }
    if (this.faults.latencyMs > 0) await sleep(this.faults.latencyMs);

    const match = matchRoute(this.routes, entry.method, url.pathname);
    if (match === null) return replyError(new MdeError(404, 'NotFound', `No resource matches ${entry.method} ${url.pathname}.`));
    if (match === 'method-not-allowed') return replyError(new MdeError(405, 'MethodNotAllowed', `The requested resource does not support http method '${entry.method}'.`));
    const { route, params } = match;
    entry.endpoint = route.endpoint;

    const failure = this.faults.takeFailure(route.endpoint);
    if (failure) {
      entry.fault = 'injected';
      const headers: Record<string, string> = failure.retryAfter !== undefined ? { 'Retry-After': String(failure.retryAfter) } : {};
      const fallback = defaultErrorForStatus(failure.status);
      return reply(failure.status, failure.body ?? errorBody(fallback.code, fallback.message), headers);
    }

    const caller = this.authenticate(req, route);
    if (caller instanceof MdeError) return replyError(caller);
    entry.tenantId = caller.tenantId;
    entry.clientId = caller.clientId;
    if (this.tenantsDown.has(caller.tenantId)) {
      entry.fault = 'down';
      return replyError(new MdeError(503, 'ServiceUnavailable', 'The service is temporarily unavailable.'));
    }

    const decision = this.limiter?.hit(caller.tenantId, caller.clientId, route.endpoint) ?? { ok: true };
    if (!decision.ok) {
      return replyError(
        new MdeError(429, 'TooManyRequests', `Rate limit is exceeded. Try again in ${decision.retryAfterSeconds} seconds.`, {
          'Retry-After': String(decision.retryAfterSeconds),
        }),
      );
    }

    let result;
    try {
      result = await route.handle({ req, url, params, caller, body: () => readJson(req), baseUrl: this.baseUrl });
    } catch (err) {
      if (err instanceof MdeError) return replyError(err);
      this.opts.log?.(`defender: handler error ${String(err)}`);
      return replyError(new MdeError(500, 'InternalServerError', ''));
    }
    entry.items = result.items ?? null;
    const sent = (result.sent ?? []).map((s) => ({ key: `${caller.tenantId}\u0000${s.key}`, content: s.content }));
    if (this.faults.takeDrop(route.endpoint)) {
      // The change is applied; only the answer is lost (tests idempotent retries).
      entry.fault = 'dropped';
      req.socket.destroy();
      this.sends.record(sent, entry.time, false);
      return;
    }
    const isOData = result.body !== undefined && entry.method === 'GET';
    // A client that gave up (its timeout) closed the socket: it never sees this answer.
    const answered = !res.destroyed;
    reply(result.status, result.body, { ...(isOData ? { 'OData-Version': '4.0' } : {}), ...result.headers }, isOData ? ODATA_JSON : undefined);
    this.sends.record(sent, entry.time, answered);
  }

  private authenticate(req: http.IncomingMessage, route: Route): Caller | MdeError {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const unauthorized = (message: string): MdeError =>
      new MdeError(401, 'Unauthorized', message, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
    if (!m?.[1]) return unauthorized('Authorization header is missing or is not a Bearer token.');
    const info = this.opts.entra.tokenInfo(m[1]);
    if (info === 'expired') return unauthorized('Invalid or expired authorization header: the token has expired.');
    if (info === 'unknown') return unauthorized('Invalid or expired authorization header.');
    if (!MDE_AUDIENCES.includes(info.audience)) return unauthorized(`Invalid authorization header: audience '${info.audience}' is not accepted.`);
    if (!route.roles.some((r) => info.roles.includes(r))) {
      return new MdeError(403, 'Forbidden', `The application does not have any of the required application permissions (${route.roles.join(', ')}) to access the resource.`);
    }
    return { tenantId: info.tenantId, clientId: info.clientId, displayName: info.displayName, seesAll: info.roles.includes('Ti.ReadWrite.All') };
  }

  // Read-only view for humans (the demo prints what reached Defender); deliberately not under /api.
  private async handleSim(method: string, url: URL, res: http.ServerResponse): Promise<void> {
    if (method !== 'GET' || url.pathname.replace(/\/+$/, '') !== '/_sim/indicators') {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    const tenant = url.searchParams.get('tenant');
    const tenants = tenant !== null ? [tenant] : [...this.stores.keys()];
    const value = tenants.flatMap((t) => (this.stores.get(t)?.list() ?? []).map((ind) => ({ tenantId: t, ...ind })));
    sendJson(res, 200, { count: value.length, value, requests: this.counts() });
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  if (!type.startsWith('application/json')) {
    throw new MdeError(415, 'UnsupportedMediaType', `Content-Type '${type || '(none)'}' is not supported; use application/json.`);
  }
  let raw: Buffer;
  try {
    raw = await readBody(req, BODY_LIMIT);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new MdeError(413, 'RequestEntityTooLarge', 'The request body is too large.');
    throw err;
  }
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    throw new MdeError(400, 'InvalidRequestBody', 'The request body is not valid JSON.');
  }
}
