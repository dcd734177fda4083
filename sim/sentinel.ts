// Loopback simulator of the Microsoft Sentinel threat-intelligence STIX upload API
// (POST /workspaces/{id}/threat-intelligence-stix-objects:upload?api-version=2024-02-01-preview),
// as documented: bearer tokens from the Entra simulator with the management audience, the
// Sentinel Contributor role per workspace, ≤100 objects per request, 100 requests per minute per
// caller (429 with "Try again in N seconds"), and per-record errors inside a 200 answer. Stored
// objects (newest `modified` per id) can be read back by tests; the real API has no read call.
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { parsePattern } from '../src/sources/opencti/stix-pattern/index.js';
import type { EntraSimulator } from './entra.js';
import { BodyTooLargeError, LoopbackServer, readBody, sendJson, type TlsMaterial } from './loopback.js';
import { SendLog } from './send-log.js';

export const SENTINEL_API_VERSIONS = ['2024-02-01-preview'];
const AUDIENCES = ['https://management.azure.com', 'https://management.azure.com/', 'https://management.core.windows.net', 'https://management.core.windows.net/'];
const STIX_TYPES = new Set(['indicator', 'attack-pattern', 'threat-actor', 'identity', 'relationship']);
const MAX_OBJECTS = 100;
const BODY_LIMIT = 10 * 1024 * 1024;
const ID_RE = /^([a-z0-9-]+)--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export interface SentinelSimulatorOptions {
  entra: EntraSimulator;
  tls?: TlsMaterial;
  /** Workspaces that exist; each maps to the client ids holding Microsoft Sentinel Contributor on it. */
  workspaces: Record<string, string[]>;
  requestsPerMinute?: number;
  maxObjects?: number;
  /** > 1 shortens the rate-limit window (time-scaled benchmarks). */
  timeScale?: number;
  rateLimits?: boolean;
  /** Request body limit (undocumented by Microsoft; 413 above it). */
  bodyLimitBytes?: number;
}

export interface StoredObject {
  workspaceId: string;
  sourceSystem: string;
  object: Record<string, unknown> & { id: string; type: string; modified: string };
}

export interface SentinelRequestLogEntry {
  at: number;
  workspaceId: string;
  status: number;
  objects: number;
  recordErrors: number;
}

interface Injected {
  remaining: number;
  status: number;
  retryAfter?: number;
}

class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

export class SentinelSimulator {
  private server: LoopbackServer | undefined;
  private readonly stored = new Map<string, StoredObject>();
  private readonly windows = new Map<string, number[]>();
  private readonly injected: Injected[] = [];
  /** Uploads still to apply without answering (the service never learns they landed). */
  private unanswered = 0;
  readonly requestLog: SentinelRequestLogEntry[] = [];
  /** Every object accepted, keyed `workspace␀sourcesystem␀id`: what the service sent, not what the store kept. */
  readonly sends = new SendLog();

  constructor(private readonly opts: SentinelSimulatorOptions) {}

  get url(): string {
    if (!this.server) throw new Error('SentinelSimulator not started');
    return `${this.server.tls ? 'https' : 'http'}://localhost:${this.server.port}`;
  }

  async start(): Promise<void> {
    this.server = new LoopbackServer((req, res) => this.handle(req, res), {
      tls: this.opts.tls,
      onFailure: (res) => sendJson(res, 500, { statusCode: 500, message: 'Internal server error', activityId: randomUUID() }),
    });
    await this.server.start();
  }

  async stop(): Promise<void> {
    await this.server?.stop();
  }

  /** The next `count` uploads answer `status` (429 carries Retry-After `retryAfter` seconds). */
  failNext(count: number, status: number, options: { retryAfter?: number } = {}): void {
    this.injected.push({ remaining: count, status, retryAfter: options.retryAfter });
  }

  /**
   * The next `count` uploads are applied but never answered: the request hangs until the client
   * gives up or dies, as when a crash or a cut connection loses an answer.
   */
  loseAnswers(count: number): void {
    this.unanswered = count;
  }

  grantContributor(workspaceId: string, clientId: string): void {
    (this.opts.workspaces[workspaceId] ??= []).push(clientId);
  }

  /** Current version of every stored object (tests; the real API has no read-back). */
  objects(workspaceId?: string): StoredObject[] {
    return [...this.stored.values()].filter((o) => !workspaceId || o.workspaceId === workspaceId);
  }

  /** Stored indicators as plain STIX objects. */
  indicators(workspaceId?: string): Record<string, unknown>[] {
    return this.objects(workspaceId).filter((o) => o.object.type === 'indicator').map((o) => o.object);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const arrived = Date.now();
    const m = /^\/workspaces\/([^/]+)\/threat-intelligence-stix-objects:upload$/.exec(url.pathname);
    let workspaceId = '';
    let objects = 0;
    const log = (status: number, recordErrors = 0) => this.requestLog.push({ at: Date.now(), workspaceId, status, objects, recordErrors });
    try {
      if (!m || req.method !== 'POST') throw new ApiError(404, `No route for ${req.method} ${url.pathname}`);
      workspaceId = decodeURIComponent(m[1]!);
      const version = url.searchParams.get('api-version');
      if (!version) throw new ApiError(400, 'The api-version query parameter is required.');
      if (!SENTINEL_API_VERSIONS.includes(version)) throw new ApiError(400, `The api-version '${version}' is invalid. Supported versions: ${SENTINEL_API_VERSIONS.join(', ')}.`);
      const clientId = this.authenticate(req);
      this.throttle(clientId);
      const fault = this.injected[0];
      if (fault) {
        if (--fault.remaining <= 0) this.injected.shift();
        const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'Retry-After': String(fault.retryAfter) } : {};
        const message = fault.status === 429 ? `Rate limit is exceeded. Try again in ${fault.retryAfter ?? 1} seconds.` : 'Internal server error';
        throw new ApiError(fault.status, message, headers);
      }
      if (!(workspaceId in this.opts.workspaces)) throw new ApiError(404, `Workspace '${workspaceId}' was not found.`);
      if (!this.opts.workspaces[workspaceId]!.includes(clientId)) {
        throw new ApiError(403, `The client '${clientId}' does not have authorization to perform action on workspace '${workspaceId}'.`);
      }
      let body: { sourcesystem?: unknown; stixobjects?: unknown };
      try {
        body = JSON.parse((await readBody(req, this.opts.bodyLimitBytes ?? BODY_LIMIT)).toString('utf8')) as typeof body;
      } catch (err) {
        if (err instanceof BodyTooLargeError) throw new ApiError(413, `The request body is larger than ${this.opts.bodyLimitBytes ?? BODY_LIMIT} bytes.`);
        throw new ApiError(400, 'The request body is not valid JSON.');
      }
      if (typeof body !== 'object' || body === null) throw new ApiError(400, 'The request body must be a JSON object.');
      if (typeof body.sourcesystem !== 'string' || body.sourcesystem.trim() === '') throw new ApiError(400, 'Property sourcesystem is required.');
      if (body.sourcesystem.trim().toLowerCase() === 'microsoft sentinel') throw new ApiError(400, "The sourcesystem 'Microsoft Sentinel' is reserved.");
      if (!Array.isArray(body.stixobjects)) throw new ApiError(400, 'Property stixobjects must be an array.');
      objects = body.stixobjects.length;
      if (objects > (this.opts.maxObjects ?? MAX_OBJECTS)) throw new ApiError(400, `Too many objects: ${objects}. At most ${this.opts.maxObjects ?? MAX_OBJECTS} per request.`);
      const errors: { recordIndex: number; errorMessages: string[] }[] = [];
      const sent: { key: string; content: string }[] = [];
      body.stixobjects.forEach((raw, index) => {
        const messages = validate(raw);
        if (messages.length) { errors.push({ recordIndex: index, errorMessages: messages }); return; }
        const object = raw as StoredObject['object'];
        this.store(workspaceId, body.sourcesystem as string, object);
        sent.push({ key: `${workspaceId}\u0000${body.sourcesystem as string}\u0000${object.id}`, content: JSON.stringify(raw) });
      });
      log(200, errors.length);
      if (this.unanswered > 0) {
        this.unanswered--;
        this.sends.record(sent, arrived, false);
        return; // applied, never answered: the socket stays open until the client goes away
      }
      // A client that gave up (its timeout) closed the socket: it never sees this answer.
      this.sends.record(sent, arrived, !res.destroyed);
      if (errors.length === 0) { res.writeHead(200, { 'Content-Length': '0' }); res.end(); return; }
      sendJson(res, 200, { errors });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      log(err.status);
      sendJson(res, err.status, { statusCode: err.status, message: err.message }, err.headers);
    }
  }

  private authenticate(req: http.IncomingMessage): string {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m?.[1]) throw new ApiError(401, 'Authentication failed. The Authorization header is missing.');
    const info = this.opts.entra.tokenInfo(m[1]);
    if (info === 'expired') throw new ApiError(401, 'Authentication failed. The access token has expired.');
    if (info === 'unknown') throw new ApiError(401, 'Authentication failed. The access token is invalid.');
    if (!AUDIENCES.includes(info.audience)) throw new ApiError(401, `Authentication failed. The audience '${info.audience}' is invalid.`);
    return info.clientId;
  }

  private throttle(caller: string): void {
    if (this.opts.rateLimits === false) return;
    const windowMs = 60_000 / Math.max(1, this.opts.timeScale ?? 1);
    const limit = this.opts.requestsPerMinute ?? 100;
    const now = Date.now();
    const calls = (this.windows.get(caller) ?? []).filter((t) => t > now - windowMs);
    if (calls.length >= limit) {
      this.windows.set(caller, calls);
      const seconds = Math.max(1, Math.ceil((calls[0]! + windowMs - now) / 1000));
      throw new ApiError(429, `Rate limit is exceeded. Try again in ${seconds} seconds.`, { 'Retry-After': String(seconds) });
    }
    calls.push(now);
    this.windows.set(caller, calls);
  }

  private store(workspaceId: string, sourceSystem: string, object: StoredObject['object']): void {
    const key = `${workspaceId}\u0000${sourceSystem}\u0000${object.id}`;
    const previous = this.stored.get(key);
    // A version is replaced only by a later `modified` (STIX versioning).
    if (previous && Date.parse(previous.object.modified) > Date.parse(object.modified)) return;
    this.stored.set(key, { workspaceId, sourceSystem, object });
  }
}

const missing = (p: string) => `Error for Property=${p}: Required property is missing. Actual value: NULL.`;
const invalid = (p: string, why: string, v: unknown) => `Error for Property=${p}: ${why} Actual value: ${JSON.stringify(v)}.`;

/** Per-object checks of the documented schema; empty when the object is accepted. */
export function validate(raw: unknown): string[] {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return ['Error: the STIX object must be a JSON object.'];
  const o = raw as Record<string, unknown>;
  const out: string[] = [];
  for (const p of ['id', 'type', 'created', 'modified']) if (o[p] === undefined || o[p] === null) out.push(missing(p));
  if (typeof o['type'] === 'string' && !STIX_TYPES.has(o['type'])) out.push(invalid('type', 'Unsupported STIX object type.', o['type']));
  if (o['id'] !== undefined && o['id'] !== null) {
    const m = typeof o['id'] === 'string' ? ID_RE.exec(o['id']) : null;
    if (!m) out.push(invalid('id', 'Must be <type>--<UUID>.', o['id']));
    else if (typeof o['type'] === 'string' && m[1] !== o['type']) out.push(invalid('id', `Prefix must match type '${o['type']}'.`, o['id']));
  }
  for (const p of ['created', 'modified', 'valid_from', 'valid_until']) {
    if (o[p] !== undefined && o[p] !== null && (typeof o[p] !== 'string' || !TIME_RE.test(o[p] as string) || Number.isNaN(Date.parse(o[p] as string)))) {
      out.push(invalid(p, 'Must be an RFC 3339 UTC timestamp.', o[p]));
    }
  }
  if (typeof o['created'] === 'string' && typeof o['modified'] === 'string' && Date.parse(o['modified']) < Date.parse(o['created'])) {
    out.push(invalid('modified', 'Must not be earlier than created.', o['modified']));
  }
  if (o['spec_version'] !== undefined && o['spec_version'] !== '2.1') out.push(invalid('spec_version', "Must be '2.1'.", o['spec_version']));
  if (o['revoked'] !== undefined && typeof o['revoked'] !== 'boolean') out.push(invalid('revoked', 'Must be a boolean.', o['revoked']));
  if (o['confidence'] !== undefined && !(Number.isInteger(o['confidence']) && (o['confidence'] as number) >= 0 && (o['confidence'] as number) <= 100)) {
    out.push(invalid('confidence', 'Must be an integer from 0 to 100.', o['confidence']));
  }
  if (o['labels'] !== undefined && !(Array.isArray(o['labels']) && o['labels'].every((l) => typeof l === 'string'))) {
    out.push(invalid('labels', 'Must be a list of strings.', o['labels']));
  }
  if (o['object_marking_refs'] !== undefined && !(Array.isArray(o['object_marking_refs']) && o['object_marking_refs'].every((r) => typeof r === 'string' && r.startsWith('marking-definition--')))) {
    out.push(invalid('object_marking_refs', 'Must be a list of marking-definition ids.', o['object_marking_refs']));
  }
  if (o['external_references'] !== undefined && !(Array.isArray(o['external_references'])
    && o['external_references'].every((r) => typeof r === 'object' && r !== null && typeof (r as Record<string, unknown>)['source_name'] === 'string'))) {
    out.push(invalid('external_references', 'Each reference needs a source_name.', o['external_references']));
  }
  if (o['type'] === 'indicator') {
    for (const p of ['pattern', 'pattern_type', 'valid_from']) if (o[p] === undefined || o[p] === null) out.push(missing(p));
    if (o['pattern_type'] === 'stix' && typeof o['pattern'] === 'string') {
      const parsed = parsePattern(o['pattern']);
      if (!parsed.ok) out.push(invalid('pattern', `Invalid STIX pattern (${parsed.rejection.detail}).`, o['pattern']));
    }
    if (typeof o['valid_from'] === 'string' && typeof o['valid_until'] === 'string' && !(Date.parse(o['valid_until']) > Date.parse(o['valid_from']))) {
      out.push(invalid('valid_until', 'Must be later than valid_from.', o['valid_until']));
    }
  }
  return out;
}
