// A MISP instance on loopback: REST (/attributes/restSearch, /events/restSearch) with MISP's key
// auth and error shapes, and the ZeroMQ publisher with MISP's topic framing and idle heartbeat.
// Test helpers mutate data the way MISP's UI/API would and publish what MISP publishes.
import type http from 'node:http';
import * as zmq from 'zeromq';
import { LoopbackServer, readBody, sendJson } from '../loopback.js';
import { attributeRow, eventHeader, fullEvent, MispData, type NewAttribute, type SimAttribute } from './data.js';
import { searchAttributes } from './rest-search.js';
import { MispSightings } from './sightings.js';

export interface MispSimulatorOptions {
  key: string;
  /** ms without a message before misp_json_self (MISP: 10 s). */
  heartbeatMs?: number;
  /** Attribute restSearch calls allowed per window before 429 (MISP's optional role limit); unset = none. */
  searchLimit?: number;
  /**
   * Publish over CURVE with this server key pair. MISP's own mispzmq.py speaks PLAIN only; this is
   * the publisher as a CURVE relay in front of it is (see doc/misp.md). Any client key is accepted
   * (no ZAP handler: ZeroMQ then admits every client that knows the server key).
   */
  curve?: { publicKey: string; secretKey: string };
  /**
   * ms after the publisher binds again before it flushes what queued while it was down (MISP's
   * PHP side RPUSHes to Redis whatever happens; mispzmq.py drains the lists once it is back).
   * Default 1000, as observed.
   */
  flushDelayMs?: number;
  /**
   * Messages per second the publisher sends at most. mispzmq.py is one Python loop doing a Redis
   * BLPOP per message on MISP's own host; unset = as fast as zeromq.js sends (a harsher burst,
   * whose sending competes for this machine's CPU with the subscriber under test).
   */
  sendRate?: number;
}

export interface ZmqPublished {
  topic: string;
  payload: string;
  delivered: boolean;
}

export class MispSimulator {
  readonly data = new MispData();
  /** Sightings added over REST (issue 17). */
  readonly sightings = new MispSightings(this.data);
  private readonly http: LoopbackServer;
  private pub: zmq.Publisher | null = null;
  private zmqPort = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  private lastSentAt = Date.now();
  private searches = 0;
  private down = false;
  private sendChain: Promise<void> = Promise.resolve();
  /** Published while the publisher was down: waiting in Redis for mispzmq.py. */
  private queued: ZmqPublished[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  readonly published: ZmqPublished[] = [];
  readonly requests: { path: string; body: Record<string, unknown>; status: number }[] = [];

  constructor(private readonly o: MispSimulatorOptions) {
    this.http = new LoopbackServer((req, res) => this.handle(req, res), {
      onFailure: (res) => sendJson(res, 500, { name: 'An Internal Error Has Occurred.', message: 'An Internal Error Has Occurred.', url: '' }),
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.http.port}`;
  }

  get zmqUrl(): string {
    return `tcp://127.0.0.1:${this.zmqPort}`;
  }

  async start(): Promise<this> {
    await this.http.start();
    await this.startZmq();
    this.heartbeat = setInterval(() => {
      // misp_json_self comes from mispzmq.py itself: none while it is down.
      if (this.pub && Date.now() - this.lastSentAt >= (this.o.heartbeatMs ?? 10_000)) {
        this.send('misp_json_self', JSON.stringify({ status: 'And when you\'re dead I will be still alive.', uptime: 10 }));
      }
    }, Math.max(50, Math.floor((this.o.heartbeatMs ?? 10_000) / 2)));
    return this;
  }

  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await this.stopZmq();
    await this.http.stop();
  }

  /**
   * The publisher goes away (mispzmq.py stopped): what MISP publishes meanwhile queues in Redis and
   * is flushed `flushDelayMs` after the publisher is back; a subscriber not connected by then loses it.
   */
  async stopZmq(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    await this.sendChain;
    const p = this.pub;
    this.pub = null;
    if (p && !p.closed) {
      await p.unbind(this.zmqUrl).catch(() => undefined);
      p.close();
    }
  }

  /** The publisher comes back on the same port. */
  async startZmq(): Promise<void> {
    const pub = new zmq.Publisher({ linger: 0 });
    if (this.o.curve) {
      pub.curveServer = true;
      pub.curveSecretKey = this.o.curve.secretKey;
    }
    // The port of a publisher just closed is released asynchronously.
    for (let attempt = 0; ; attempt++) {
      try {
        await pub.bind(`tcp://127.0.0.1:${this.zmqPort}`);
        break;
      } catch (err) {
        if (attempt >= 50 || this.zmqPort === 0) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.zmqPort = Number(/:(\d+)$/.exec(pub.lastEndpoint ?? '')?.[1] ?? 0);
    this.pub = pub;
    if (this.queued.length > 0) {
      // What arrives meanwhile goes behind the backlog, as in the Redis list.
      this.flushing = true;
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flushing = false;
        const backlog = this.queued;
        this.queued = [];
        for (const entry of backlog) this.deliver(entry);
      }, this.o.flushDelayMs ?? 1000);
    }
  }

  private flushing = false;

  /** Redis lost what it held for the publisher (restarted without persistence): subscribers never see it. */
  dropBacklog(): void {
    this.queued = [];
  }

  /** Messages still waiting for the publisher (Redis backlog). */
  get backlog(): number {
    return this.queued.length;
  }

  private paceStart = 0;
  private paced = 0;

  private deliver(entry: ZmqPublished): void {
    const pub = this.pub;
    if (!pub) { this.queued.push(entry); return; }
    entry.delivered = true;
    this.sendChain = this.sendChain.then(async () => {
      const rate = this.o.sendRate;
      if (rate) {
        const now = performance.now();
        if (now - this.paceStart > 1000 + (this.paced * 1000) / rate) { this.paceStart = now; this.paced = 0; }
        const ahead = this.paceStart + (++this.paced * 1000) / rate - now;
        if (ahead > 10) await new Promise((r) => setTimeout(r, ahead));
      }
      await pub.send(`${entry.topic} ${entry.payload}`);
    }).catch(() => undefined);
  }

  /** /warninglists/checkValue answers 500 while set (the rest of REST keeps working). */
  warninglistDown = false;

  /** REST answers 500 while down (MISP behind a failing proxy or DB). */
  setRestDown(down: boolean): void {
    this.down = down;
  }

  /** Publish one raw frame (malformed payloads for tests). */
  send(topic: string, payload: string): void {
    this.lastSentAt = Date.now();
    const entry: ZmqPublished = { topic, payload, delivered: false };
    this.published.push(entry);
    if (!this.pub || this.flushing) { this.queued.push(entry); return; }
    this.deliver(entry);
  }

  private emit(topic: string, body: unknown): void {
    this.send(topic, JSON.stringify(body));
  }

  // ---- what MISP does, and publishes, on each change ----

  createEvent(input: { info: string; tags?: string[]; threat_level_id?: string }): string {
    const e = this.data.createEvent(input);
    this.emit('misp_json_event', {
      Event: eventHeader(e), Orgc: e.orgc,
      EventTag: e.tags.map((t, i) => ({ id: String(i + 1), event_id: e.id, tag_id: String(i + 1), local: false, relationship_type: '', Tag: { id: String(i + 1), name: t, colour: '#33FF00', exportable: true } })),
      action: 'add',
    });
    return e.id;
  }

  /**
   * AttributesController::add: the attribute's afterSave publishes it while the event still says
   * published, and only then is the event unpublished (unpublishEvent).
   */
  addAttribute(eventId: string, input: NewAttribute): SimAttribute {
    const wasPublished = this.data.event(eventId).published;
    const a = this.data.addAttribute(eventId, input);
    this.emitAttribute(a, 'add', wasPublished);
    return a;
  }

  addObject(eventId: string, name: string, attributes: NewAttribute[]): SimAttribute[] {
    const o = this.data.addObject(eventId, name);
    this.emit('misp_json_object', { Object: { ...o }, action: 'add' });
    return attributes.map((a) => this.addAttribute(eventId, { ...a, object_id: o.id, object_relation: a.object_relation ?? a.type }));
  }

  /** AttributesController::edit: saved and published before the event is unpublished, as add. */
  editAttribute(uuid: string, patch: Parameters<MispData['editAttribute']>[1]): SimAttribute {
    const wasPublished = this.data.event(this.data.attribute(uuid).event_id).published;
    const a = this.data.editAttribute(uuid, patch);
    this.emitAttribute(a, 'edit', wasPublished);
    return a;
  }

  softDeleteAttribute(uuid: string, sanitise = false): void {
    const a = this.data.softDeleteAttribute(uuid, sanitise);
    this.emitAttribute(a, 'soft-delete');
  }

  hardDeleteAttribute(uuid: string): void {
    const a = this.data.hardDeleteAttribute(uuid);
    const { tags: _tags, ...row } = a;
    this.emit('misp_json_attribute', { Attribute: row, action: 'delete' });
  }

  /** Publish: the full event on misp_json (serialised before published=1 is saved, as MISP does). */
  publish(eventId: string): void {
    const before = this.data.event(eventId).published;
    const e = this.data.publish(eventId);
    const body = fullEvent(this.data, e);
    body['published'] = before;
    this.emit('misp_json', { Event: body });
  }

  deleteEvent(eventId: string): void {
    const e = this.data.deleteEvent(eventId);
    this.emit('misp_json_event', { Event: eventHeader(e), action: 'delete' });
  }

  private emitAttribute(a: SimAttribute, action: string, published = this.data.event(a.event_id).published): void {
    const e = this.data.event(a.event_id);
    const body: Record<string, unknown> = {
      Attribute: attributeRow(a),
      Event: { id: e.id, date: e.date, info: e.info, uuid: e.uuid, published, analysis: e.analysis, threat_level_id: e.threat_level_id,
        org_id: '1', orgc_id: e.orgc.id, distribution: e.distribution, sharing_group_id: '0', Orgc: e.orgc },
      action: a.deleted ? 'soft-delete' : action,
    };
    if (a.object_id !== '0') {
      const o = this.data.objects.get(a.object_id);
      if (o) body['Object'] = { id: o.id, name: o.name, uuid: o.uuid, 'meta-category': o.meta_category, event_id: o.event_id, deleted: o.deleted };
    }
    this.emit('misp_json_attribute', body);
  }

  // ---- REST ----

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const path = url.pathname.replace(/\/+$/, '');
    const key = req.headers['authorization'] ?? req.headers['x-misp-auth'];
    const keys = typeof key === 'string' ? key.split(',').map((k) => k.trim()) : [];
    const fail = (status: number, message: string, headers: Record<string, string> = {}) => {
      this.requests.push({ path, body: {}, status });
      sendJson(res, status, { name: message, message, url: path }, headers);
    };
    if (!keys.includes(this.o.key)) {
      return fail(403, 'Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.');
    }
    if (this.down) return fail(500, 'An Internal Error Has Occurred.');
    const sightings = path === '/sightings/add' || path === '/sightings/restSearch' || path.startsWith('/sightings/restSearch/');
    if (path !== '/attributes/restSearch' && path !== '/events/restSearch' && path !== '/warninglists/checkValue' && !sightings) return fail(404, 'Not Found');
    if (req.method === 'GET' && [...url.searchParams.keys()].length === 0) return fail(400, 'Restsearch queries using GET and no parameters are not allowed.');
    if (req.method !== 'POST') return fail(405, 'Method Not Allowed');
    let body: Record<string, unknown>;
    try {
      const text = (await readBody(req, 10 * 1024 * 1024)).toString('utf8');
      body = text.trim() ? JSON.parse(text) as Record<string, unknown> : {};
      if (typeof body !== 'object' || body === null || (Array.isArray(body) && path !== '/warninglists/checkValue')) throw new Error('not an object');
    } catch {
      return fail(400, 'Invalid JSON input. Make sure that the JSON input is a correctly formatted JSON string.');
    }
    if (sightings) {
      const reply = path === '/sightings/add' ? this.sightings.add(body) : this.sightings.search(body, path.split('/')[3] ?? null);
      this.requests.push({ path, body, status: reply.status });
      return sendJson(res, reply.status, reply.body);
    }
    if (this.o.searchLimit !== undefined && ++this.searches > this.o.searchLimit) {
      return fail(429, 'Rate limit exceeded.', { 'X-Rate-Limit-Limit': String(this.o.searchLimit), 'X-Rate-Limit-Remaining': '0', 'X-Rate-Limit-Reset': '1' });
    }
    const now = this.data.clock();
    let out: unknown;
    let count: number;
    if (path === '/warninglists/checkValue') {
      if (this.warninglistDown) return fail(500, 'An Internal Error Has Occurred.');
      // WarninglistsController::checkValue: a list of values (or {"value": …}); hits only, keyed by value.
      const raw: unknown = Array.isArray(body) ? body : body['value'];
      const values = (Array.isArray(raw) ? raw : [raw]).filter((v): v is string => typeof v === 'string').map((v) => v.trim());
      const hits: Record<string, unknown> = {};
      for (const v of values) {
        if (this.data.warninglist.has(v)) hits[v] = [{ id: '1', name: 'List of known IPv4 public DNS resolvers', matched: v }];
      }
      this.requests.push({ path, body: { values }, status: 200 });
      return sendJson(res, 200, Object.keys(hits).length > 0 ? hits : []);
    }
    if (path === '/attributes/restSearch') {
      const rows = searchAttributes(this.data, body, now);
      out = { response: { Attribute: rows } };
      count = rows.length;
    } else {
      // `eventid` names events directly; `metadata` leaves their attributes and objects out.
      const named = body['eventid'] === undefined ? null : new Set((Array.isArray(body['eventid']) ? body['eventid'] : [body['eventid']]).map(String));
      const ids = named ?? new Set(searchAttributes(this.data, { ...body, limit: undefined, page: undefined }, now).map((r) => String(r['event_id'])));
      const metadataOnly = body['metadata'] === true || body['metadata'] === 1 || body['metadata'] === '1';
      const events = [...this.data.events.values()].filter((e) => ids.has(e.id)).map((e) => {
        const { Attribute: _a, Object: _o, ...header } = fullEvent(this.data, e);
        return { Event: metadataOnly ? header : fullEvent(this.data, e) };
      });
      out = { response: events };
      count = events.length;
    }
    this.requests.push({ path, body, status: 200 });
    sendJson(res, 200, out, { 'X-Result-Count': String(count), 'X-Response-Format': 'json' });
  }

  /** Let the search limit window reopen. */
  resetSearchLimit(): void {
    this.searches = 0;
  }
}
