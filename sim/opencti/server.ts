// A loopback OpenCTI platform for the demo, end-to-end tests and benchmarks: the live stream
// (`GET /stream/:id`, `GET /stream`, `POST /stream/connection/:id`) and the connector GraphQL
// calls, driven programmatically (create/update/delete/merge/...). Wire behaviour follows the
// platform's sseMiddleware and Redis stream processor; see doc section 13 of apis/opencti.md.
import http from 'node:http';
import { LoopbackServer } from '../loopback.js';
import { createMessage, defaultOrigin, deleteMessage, liveBody, mergeMessage, updateMessage, type Origin } from './bodies.js';
import { EventLog, type LogEntry, type NewEntry } from './event-log.js';
import { AUTH_REQUIRED, ConnectorApi, type ConnectorRecord } from './graphql.js';
import { SightingsApi, SightingsError } from './sightings.js';
import { comparePatch } from './json-patch.js';
import { bumped, ObjectStore, updatedAtOf, withPlatformFields } from './object-store.js';
import { SseConnection, type StreamHost, type StreamRequest, type StreamSettings } from './sse-connection.js';
import { ext, isRecord, OCTI_EXT, refsOf, type StixObject } from './stix.js';
import { convertParameterToDate, convertParameterToStreamId } from './stream-id.js';

export interface OpenCtiSimulatorOptions {
  /** The only accepted Bearer token (an admin: BYPASS, TAXIIAPI). */
  token: string;
  /** Ids of the live stream collections that exist and are started; others answer 401. */
  streams?: string[];
  /** Collections that exist but are stopped: 410. */
  stoppedStreams?: string[];
  /** Heartbeat period (app:live_stream:heartbeat_period). Default 5000. */
  heartbeatMs?: number;
  /** Send heartbeat data as an object, as platforms after 2026-02 may. Default false (a JSON string). */
  heartbeatAsObject?: boolean;
  /** Events kept in the log (redis:trimming). Default 2,000,000. */
  retention?: number;
  /** 0 = random. */
  port?: number;
  /** The token's user holds BYPASS, so `/stream` and `/stream/live` are open to it. Default true. */
  bypass?: boolean;
  /** XREAD COUNT. Default 100. */
  batchSize?: number;
  /** Pause after each XREAD. Default 50 ms. */
  batchPauseMs?: number;
  /** XREAD BLOCK: how long an idle read waits before an empty batch. Default 5000 ms. */
  blockMs?: number;
  /** Add `event_id` to live bodies as sseMiddleware @7af5740c does. Default true. */
  eventIdInBody?: boolean;
  /** Per-connection dependency cache (app:live_stream:cache_max_size / cache_max_time). */
  dependencyCacheSize?: number;
  dependencyCacheTtlMs?: number;
  /** `about { version }`. Default '6.8.10'. */
  version?: string;
  /** registerConnector answers a GraphQL error. */
  refuseRegistration?: boolean;
  log?: (message: string) => void;
}

export interface ConnectionLogEntry {
  at: Date;
  method: string;
  path: string;
  /** null for the generic `/stream`. */
  streamId: string | null;
  status: number;
  statusMessage: string;
  /** An Authorization header was sent (its value is not recorded). */
  authorization: boolean;
  lastEventId: string | null;
  from: string | null;
  recover: string | null;
  recoverDate: string | null;
  listenDelete: string | null;
  noDependencies: string | null;
  withInferences: string | null;
  query: Record<string, string>;
  connectionId: string | null;
}

export interface EmitOptions {
  origin?: Origin;
  scope?: 'external' | 'internal';
  message?: string;
}

const MAX_BODY = 1024 * 1024;

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function refuse(res: http.ServerResponse, status: number, statusMessage: string): void {
  // The platform answers with its message in the status line and an empty body.
  res.statusCode = status;
  res.statusMessage = statusMessage;
  res.end();
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export class OpenCtiSimulator {
  private readonly server: LoopbackServer;
  private readonly eventLog: EventLog;
  private readonly store = new ObjectStore();
  private readonly graphql: ConnectorApi;
  /** Sightings, identities and external references written over GraphQL (issue 17). */
  readonly sightings: SightingsApi;
  private readonly settings: StreamSettings;
  private readonly streams: Set<string>;
  private readonly stopped: Set<string>;
  private readonly open = new Map<string, SseConnection>();
  private readonly requests: ConnectionLogEntry[] = [];
  private readonly pauseWaiters = new Set<() => void>();
  private pausedUntil = 0;
  private pauseTimer: NodeJS.Timeout | null = null;
  private down: { status: number; message: string; graphql: boolean } | null = null;

  constructor(private readonly o: OpenCtiSimulatorOptions) {
    if (!o.token) throw new Error('OpenCtiSimulator needs a token');
    this.eventLog = new EventLog(o.retention ?? 2_000_000);
    this.streams = new Set(o.streams ?? []);
    this.stopped = new Set(o.stoppedStreams ?? []);
    this.settings = {
      heartbeatMs: o.heartbeatMs ?? 5000,
      heartbeatAsObject: o.heartbeatAsObject ?? false,
      batchSize: o.batchSize ?? 100,
      batchPauseMs: o.batchPauseMs ?? 50,
      blockMs: o.blockMs ?? 5000,
      readErrorRetryMs: 5000,
      eventIdInBody: o.eventIdInBody ?? true,
      cacheSize: o.dependencyCacheSize ?? 5000,
      cacheTtlMs: o.dependencyCacheTtlMs ?? 3_600_000,
    };
    this.graphql = new ConnectorApi({ version: o.version ?? '6.8.10', refuseRegistration: o.refuseRegistration ?? false });
    // A sighting written over GraphQL is published on the stream, as the platform does.
    this.sightings = new SightingsApi((id) => this.get(id), (event, obj) => (event === 'create' || !this.store.get(obj.id) ? this.create(obj) : this.update(obj)));
    this.server = new LoopbackServer((req, res) => this.route(req, res), {
      port: o.port,
      onError: (err, req) => this.o.log?.(`[opencti-sim] ${req.method ?? ''} ${req.url ?? ''} failed: ${(err as Error).message}`),
      onFailure: (res) => refuse(res, 500, 'Simulator error'),
    });
  }

  // ---- lifecycle ----

  async start(): Promise<void> {
    await this.server.start();
    this.o.log?.(`[opencti-sim] listening on ${this.url}`);
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  get port(): number {
    return this.server.port;
  }

  async stop(): Promise<void> {
    for (const c of [...this.open.values()]) c.close();
    this.releasePause();
    await this.server.stop();
  }

  // ---- driving the stream ----

  /**
   * Store a new object and emit `create`. Returns the event id. The platform stamps the OCTI
   * extension's created_at/updated_at with its own clock (use seed() for back-dated objects).
   */
  create(input: StixObject, opts: EmitOptions = {}): string {
    const now = Date.now();
    const data = withPlatformFields(input, now);
    const octi = ext(data, OCTI_EXT) as Record<string, unknown>;
    octi['created_at'] = octi['updated_at'] = new Date(now).toISOString();
    this.store.put(data, true);
    const body = liveBody({ type: 'create', scope: opts.scope ?? 'external', message: opts.message ?? createMessage(data), origin: opts.origin ?? defaultOrigin(), data });
    return this.append('create', body, data, true, true).id;
  }

  /** Store the new state (modified / updated_at bumped) and emit `update` with RFC 6902 patches. */
  update(input: StixObject, opts: EmitOptions = {}): string {
    const prev = this.store.get(input.id);
    if (!prev) throw new Error(`update: ${input.id} is not stored (create it first)`);
    return this.emitUpdate(input, prev.visible, prev.visible, opts);
  }

  /** An update after which the object no longer matches the stream: `event: delete`, update body. */
  filterExit(input: StixObject, opts: EmitOptions = {}): string {
    return this.emitUpdate(input, true, false, opts);
  }

  /** An update after which the object starts matching the stream: `event: create`, update body. */
  filterEnter(input: StixObject, opts: EmitOptions = {}): string {
    return this.emitUpdate(input, false, true, opts);
  }

  /** Remove the object and emit `delete` with its state just before deletion. */
  delete(stixId: string, opts: EmitOptions = {}): string {
    const prev = this.store.get(stixId);
    if (!prev) throw new Error(`delete: ${stixId} is not stored`);
    this.store.delete(stixId);
    const body = liveBody({ type: 'delete', scope: opts.scope ?? 'external', message: opts.message ?? deleteMessage(prev.obj), origin: opts.origin ?? defaultOrigin(), data: prev.obj });
    return this.append('delete', body, prev.obj, prev.visible, prev.visible).id;
  }

  /** Merge sources into the target: sources disappear, the target's new state is emitted as `merge`. */
  merge(target: StixObject, sources: StixObject[], opts: EmitOptions = {}): string {
    const prev = this.store.get(target.id);
    const now = Date.now();
    const next = bumped(target, prev, now);
    const sourceData = sources.map((s) => this.store.get(s.id)?.obj ?? withPlatformFields(s, now));
    for (const s of sources) if (s.id !== target.id) this.store.delete(s.id);
    const visible = prev?.visible ?? true;
    this.store.put(next, visible);
    const before = prev?.obj ?? next;
    const body = liveBody({
      type: 'merge', scope: opts.scope ?? 'external', message: opts.message ?? mergeMessage(next, sourceData), origin: opts.origin ?? defaultOrigin(), data: next,
      context: { patch: comparePatch(before, next), reverse_patch: comparePatch(next, before), sources: sourceData },
    });
    return this.append('merge', body, next, visible, visible).id;
  }

  /** Append a body as given, untouched (bad JSON, unknown event names such as `no-recover`). */
  publishRaw(eventName: string, body: string): string {
    return this.eventLog.append({
      event: eventName, body, raw: true, scope: 'external', version: 4, objectId: null, objectType: null, refs: [],
      inferred: false, hasEventId: true, updatedAtMs: null, visibleBefore: true, visibleAfter: true,
    }).id;
  }

  /**
   * Append a structured body under a stored type, processed like any platform event (scope,
   * version >= 4, inference, dependencies): e.g. `{version: "3", ...}` or `scope: "internal"`.
   */
  publishEvent(eventName: string, body: Record<string, unknown>, visible: { before?: boolean; after?: boolean } = {}): string {
    const data = isRecord(body['data']) ? (body['data'] as StixObject) : ({ id: '', type: '' } as StixObject);
    return this.append(eventName, body, data, visible.before ?? true, visible.after ?? true).id;
  }

  /** Objects the platform already holds, without events: recoverable, resolvable as dependencies. */
  seed(objects: StixObject[], opts: { visible?: boolean } = {}): void {
    const now = Date.now();
    for (const o of objects) this.store.put(withPlatformFields(o, now), opts.visible ?? true);
  }

  /** Current state of a stored object. */
  get(stixId: string): StixObject | undefined {
    const s = this.store.get(stixId);
    return s ? structuredClone(s.obj) : undefined;
  }

  // ---- failures ----

  /** Destroy every open stream socket mid-stream. Returns how many were dropped. */
  dropConnections(): number {
    const all = [...this.open.values()];
    for (const c of all) c.destroy();
    return all.length;
  }

  /** Send nothing at all (events, heartbeats, `connected`) for `ms`; output resumes afterwards. */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + ms);
    if (this.pauseTimer) clearTimeout(this.pauseTimer);
    this.pauseTimer = setTimeout(() => this.releasePause(), Math.max(0, this.pausedUntil - Date.now()));
  }

  resume(): void {
    this.releasePause();
  }

  /**
   * Answer new stream connections with `status` (e.g. 503, empty body) until called with null;
   * with `graphql: true` the GraphQL endpoint fails the same way (the whole platform is down).
   */
  setDown(status: number | null, statusMessage = 'Service Unavailable', opts: { graphql?: boolean } = {}): void {
    this.down = status === null ? null : { status, message: statusMessage, graphql: opts.graphql ?? false };
  }

  /** Stop or restart a collection: new connections get 410; open ones stop receiving events. */
  setStreamStopped(streamId: string, stopped: boolean): void {
    this.streams.add(streamId);
    if (stopped) this.stopped.add(streamId);
    else this.stopped.delete(streamId);
  }

  /** Keep only the newest `n` events (XTRIM MAXLEN), as retention does. */
  trim(n: number): void {
    this.eventLog.trim(n);
  }

  /** The UI's "reset connector state". */
  resetConnectorState(id: string): boolean {
    return this.graphql.resetState(id);
  }

  set refuseRegistration(v: boolean) {
    this.graphql.refuseRegistration = v;
  }

  // ---- inspection ----

  /** Events currently retained in the log. */
  get eventCount(): number {
    return this.eventLog.size;
  }

  /** Id of the newest event ('' when none). */
  get lastEventId(): string {
    return this.eventLog.newest?.id ?? '';
  }

  /** Open stream connections. */
  get connections(): number {
    return this.open.size;
  }

  /** Every stream request, refused ones included, oldest first. */
  get connectionLog(): readonly ConnectionLogEntry[] {
    return this.requests;
  }

  get connectors(): ReadonlyMap<string, ConnectorRecord> {
    return this.graphql.connectors;
  }

  /** Objects held (recoverable or resolvable), built-in markings and authors included. */
  get objectCount(): number {
    return this.store.size;
  }

  // ---- internals ----

  private emitUpdate(input: StixObject, before: boolean, after: boolean, opts: EmitOptions): string {
    const prev = this.store.get(input.id);
    const next = bumped(input, prev, Date.now());
    const old = prev?.obj ?? next;
    const patch = comparePatch(old, next);
    this.store.put(next, after);
    const body = liveBody({
      type: 'update', scope: opts.scope ?? 'external', message: opts.message ?? updateMessage(patch), origin: opts.origin ?? defaultOrigin(), data: next,
      context: { patch, reverse_patch: comparePatch(next, old) },
    });
    return this.append('update', body, next, before, after).id;
  }

  private append(event: string, body: Record<string, unknown>, data: StixObject, before: boolean, after: boolean): LogEntry {
    const entry: NewEntry = {
      event,
      body: JSON.stringify(body),
      raw: false,
      scope: typeof body['scope'] === 'string' ? body['scope'] : 'external',
      version: parseInt(String(body['version'] ?? '0'), 10) || 0,
      objectId: typeof data.id === 'string' && data.id ? data.id : null,
      objectType: typeof data.type === 'string' && data.type ? data.type : null,
      refs: refsOf(data),
      inferred: ext(data, OCTI_EXT)?.['is_inferred'] === true,
      hasEventId: body['event_id'] !== undefined,
      updatedAtMs: updatedAtOf(data),
      visibleBefore: before,
      visibleAfter: after,
    };
    return this.eventLog.append(entry);
  }

  private paused(): boolean {
    return Date.now() < this.pausedUntil;
  }

  private releasePause(): void {
    if (this.pauseTimer) clearTimeout(this.pauseTimer);
    this.pauseTimer = null;
    this.pausedUntil = 0;
    for (const wake of [...this.pauseWaiters]) wake();
  }

  private gate(signal: AbortSignal): Promise<void> {
    if (!this.paused()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.pauseWaiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.pauseWaiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private host(): StreamHost {
    return {
      log: this.eventLog,
      store: this.store,
      settings: this.settings,
      gate: (signal) => this.gate(signal),
      paused: () => this.paused(),
      collectionLive: (id) => id === 'live' || (this.streams.has(id) && !this.stopped.has(id)),
    };
  }

  private authorized(req: http.IncomingMessage): boolean {
    const auth = header(req, 'authorization');
    const m = auth ? /^Bearer\s+(.+)$/i.exec(auth.trim()) : null;
    return m?.[1] === this.o.token;
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (req.method === 'GET' && (path === '/stream' || path.startsWith('/stream/'))) {
      const rest = path.slice('/stream/'.length);
      if (path !== '/stream' && rest.includes('/')) return refuse(res, 404, 'Not Found');
      return this.handleStream(req, res, url, path === '/stream' ? null : decodeURIComponent(rest));
    }
    if (req.method === 'POST' && path.startsWith('/stream/connection/')) {
      return this.handleConnectionDelay(req, res, decodeURIComponent(path.slice('/stream/connection/'.length)));
    }
    if (req.method === 'POST' && path === '/graphql') return this.handleGraphql(req, res);
    if (req.method === 'GET' && path === '/_sim/status') {
      return json(res, 200, {
        events: this.eventCount, lastEventId: this.lastEventId, objects: this.objectCount, connections: this.connections,
        connectors: [...this.connectors.values()], paused: this.paused(), down: this.down,
      });
    }
    refuse(res, 404, 'Not Found');
  }

  private async handleGraphql(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const text = await readBody(req);
    if (this.down?.graphql) return refuse(res, this.down.status, this.down.message);
    if (!this.authorized(req)) return json(res, AUTH_REQUIRED.status, AUTH_REQUIRED.body);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    const req2 = parsed as { query?: unknown; variables?: unknown } | null;
    const fields = typeof req2?.query === 'string' ? this.sightings.handles(req2.query) : null;
    if (fields && typeof req2?.query === 'string') {
      const vars = req2.variables && typeof req2.variables === 'object' ? req2.variables as Record<string, unknown> : {};
      const data: Record<string, unknown> = {};
      const errors: unknown[] = [];
      for (const f of fields) {
        try {
          data[f] = this.sightings.run(f, req2.query, vars);
        } catch (err) {
          data[f] = null;
          errors.push({ message: (err as Error).message, path: [f], extensions: { code: err instanceof SightingsError ? err.code : 'INTERNAL_SERVER_ERROR' } });
        }
      }
      return json(res, 200, errors.length > 0 ? { errors, data } : { data });
    }
    const reply = this.graphql.handle(parsed);
    json(res, reply.status, reply.body);
  }

  private async handleConnectionDelay(req: http.IncomingMessage, res: http.ServerResponse, connectionId: string): Promise<void> {
    const text = await readBody(req);
    if (!this.authorized(req)) return refuse(res, 401, 'You are not authenticated, please check your credentials');
    const conn = this.open.get(connectionId);
    if (!conn) return refuse(res, 401, 'This is not your connection');
    let delay = 0;
    try {
      const body = JSON.parse(text || '{}') as { delay?: unknown };
      delay = typeof body.delay === 'number' ? body.delay : 0;
    } catch {
      return refuse(res, 500, 'Error in connection management: invalid JSON');
    }
    conn.delayMs = delay;
    json(res, 200, { message: 'ok' });
  }

  private async handleStream(req: http.IncomingMessage, res: http.ServerResponse, url: URL, streamId: string | null): Promise<void> {
    const q = (n: string): string | undefined => url.searchParams.get(n) ?? undefined;
    const h = (n: string): string | undefined => header(req, n);
    const entry: ConnectionLogEntry = {
      at: new Date(), method: req.method ?? 'GET', path: url.pathname, streamId, status: 0, statusMessage: '',
      authorization: h('authorization') !== undefined,
      lastEventId: h('last-event-id') ?? null, from: q('from') ?? h('from') ?? null,
      recover: q('recover') ?? h('recover') ?? null, recoverDate: h('recover-date') ?? null,
      listenDelete: q('listen-delete') ?? h('listen-delete') ?? null,
      noDependencies: q('no-dependencies') ?? h('no-dependencies') ?? null,
      withInferences: q('with-inferences') ?? h('with-inferences') ?? null,
      query: Object.fromEntries(url.searchParams.entries()), connectionId: null,
    };
    this.requests.push(entry);
    const fail = (status: number, message: string) => {
      entry.status = status;
      entry.statusMessage = message;
      refuse(res, status, message);
    };
    if (this.down) return fail(this.down.status, this.down.message);

    // Order of authenticateForPublic + computeUserAndCollection: the collection is looked up
    // as the system user, so a stopped stream says 410 before the token is even checked.
    const authed = this.authorized(req);
    const bypass = this.o.bypass ?? true;
    const notAuthenticated = 'You are not authenticated, please check your credentials';
    const notAuthorized = 'You are not authorized, please check your credentials';
    if (streamId === null) {
      if (!authed) return fail(401, notAuthenticated);
      if (!bypass) return fail(401, 'Consume generic stream is only authorized for bypass user');
    } else if (streamId === 'live') {
      if (authed && !bypass) return fail(401, notAuthorized);
      if (!authed) return fail(401, notAuthenticated);
    } else {
      if (!this.streams.has(streamId) && !this.stopped.has(streamId)) return fail(401, notAuthorized);
      if (this.stopped.has(streamId)) return fail(410, 'This live stream is stopped');
      if (!authed) return fail(401, notAuthenticated);
    }

    let request: StreamRequest;
    try {
      const start = q('from') || h('from') || h('last-event-id');
      const recover = q('recover') || h('recover') || h('recover-date');
      request = {
        streamId,
        startIso: convertParameterToDate(start),
        startStreamId: convertParameterToStreamId(start),
        recoverIso: streamId === null ? undefined : convertParameterToDate(recover),
        recoverStreamId: streamId === null ? undefined : convertParameterToStreamId(recover),
        noDependencies: (q('no-dependencies') || h('no-dependencies') || q('no-relationships') || h('no-relationships')) === 'true',
        publishDeletion: (q('listen-delete') || h('listen-delete')) !== 'false',
        withInferences: (q('with-inferences') || h('with-inferences')) === 'true',
        delayMs: parseInt(q('delay') || h('event-delay') || '0', 10) || 0,
      };
      if (request.recoverIso !== undefined && request.startIso === undefined) {
        throw new Error('Recovery mode is only possible with a start date.');
      }
    } catch (err) {
      return fail(500, `Error in stream ${streamId ?? ''}: ${(err as Error).message}`.replace(/[^\t\x20-\x7e]/g, '?'));
    }

    const conn = new SseConnection(this.host(), request, res, (c) => {
      this.open.delete(c.id);
      this.o.log?.(`[opencti-sim] stream connection ${c.id} closed`);
    });
    entry.status = 200;
    entry.connectionId = conn.id;
    this.open.set(conn.id, conn);
    this.o.log?.(`[opencti-sim] stream ${streamId ?? '(generic)'} connection ${conn.id} from ${request.startStreamId ?? 'now'}${request.recoverIso ? ` recovering to ${request.recoverIso}` : ''}`);
    await conn.run({ ...this.eventLog.info() });
  }
}
