// One open live stream: the per-connection part of the platform's sseMiddleware. It sends
// `connected`, replays recovery from the object store, then reads the event log in batches like
// the Redis stream processor, resolving dependencies with a per-connection cache and writing
// heartbeats on a fixed period that repeat the last id.
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { initBody, withEventId } from './bodies.js';
import type { EventLog, LogEntry } from './event-log.js';
import { LruCache } from './lru.js';
import type { ObjectStore, StoredObject } from './object-store.js';
import { OCTI_EXT, ext, refsOf, type StixObject } from './stix.js';
import { idTimeMs, parseStreamId, streamEventId } from './stream-id.js';

export interface StreamSettings {
  heartbeatMs: number;
  heartbeatAsObject: boolean;
  /** XREAD COUNT (MAX_RANGE_MESSAGES). */
  batchSize: number;
  /** Pause after every XREAD (the processor's bufferTime). */
  batchPauseMs: number;
  /** XREAD BLOCK (STREAM_BATCH_TIME). */
  blockMs: number;
  /** Wait before retrying when Redis refuses the start id (the processor's autoReconnect). */
  readErrorRetryMs: number;
  eventIdInBody: boolean;
  cacheSize: number;
  cacheTtlMs: number;
}

/** What a connection needs from the simulator. */
export interface StreamHost {
  readonly log: EventLog;
  readonly store: ObjectStore;
  readonly settings: StreamSettings;
  /** Resolves once output is allowed (see OpenCtiSimulator.pause) or the signal aborts. */
  gate(signal: AbortSignal): Promise<void>;
  paused(): boolean;
  /** Re-checked after every batch: a stopped collection stops the flow, not the connection. */
  collectionLive(streamId: string): boolean;
}

export interface StreamRequest {
  /** null for the generic `/stream`. */
  streamId: string | null;
  startStreamId: string | undefined;
  startIso: string | undefined;
  recoverStreamId: string | undefined;
  recoverIso: string | undefined;
  noDependencies: boolean;
  publishDeletion: boolean;
  withInferences: boolean;
  delayMs: number;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

export function frame(id: string | undefined, event: string, data: string): string {
  return `${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${data}\n\n`;
}

export class SseConnection {
  readonly id = randomUUID();
  readonly openedAt = new Date();
  delayMs: number;
  /** Frames written, heartbeats and `connected` included. */
  framesSent = 0;
  private lastEventId: string | undefined;
  private closed = false;
  private readonly abort = new AbortController();
  private readonly cache: LruCache;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    private readonly host: StreamHost,
    readonly request: StreamRequest,
    private readonly res: http.ServerResponse,
    private readonly onClosed: (c: SseConnection) => void,
  ) {
    this.delayMs = request.delayMs;
    this.lastEventId = request.startStreamId;
    this.cache = new LruCache(host.settings.cacheSize, host.settings.cacheTtlMs);
    res.on('close', () => this.markClosed());
  }

  get open(): boolean {
    return !this.closed;
  }

  /** End the response cleanly (server shutdown). */
  close(): void {
    this.markClosed();
    if (!this.res.writableEnded) this.res.end();
  }

  /** Drop the TCP connection mid-stream, as a network failure would. */
  destroy(): void {
    this.markClosed();
    this.res.socket?.destroy();
    this.res.destroy();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.onClosed(this);
  }

  async run(info: Record<string, unknown>): Promise<void> {
    this.heartbeat = setInterval(() => this.beat(), this.host.settings.heartbeatMs);
    this.res.writeHead(200, {
      Connection: 'keep-alive',
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Access-Control-Allow-Origin': '*',
      'Cache-Control': 'no-cache, no-transform',
    });
    await this.send(undefined, 'connected', JSON.stringify({ ...info, connectionId: this.id }));
    const r = this.request;
    let start = r.startStreamId;
    if (r.streamId !== null && r.recoverIso !== undefined && r.startIso !== undefined && Date.parse(r.recoverIso) > Date.parse(r.startIso)) {
      await this.recover(Date.parse(r.startIso), Date.parse(r.recoverIso));
      start = r.recoverStreamId;
    }
    await this.readLive(start);
  }

  private beat(): void {
    if (this.closed || this.host.paused() || !this.lastEventId) return;
    const ms = idTimeMs(this.lastEventId);
    // The platform's timer throws on an unparseable id; it then simply sends nothing.
    if (!Number.isFinite(ms)) return;
    const date = new Date(ms).toISOString();
    const data = this.host.settings.heartbeatAsObject ? { date, lastEventId: this.lastEventId } : date;
    this.framesSent++;
    this.res.write(frame(this.lastEventId, 'heartbeat', JSON.stringify(data)));
  }

  private async send(id: string | undefined, event: string, data: string): Promise<void> {
    await this.host.gate(this.abort.signal);
    if (this.closed || this.res.writableEnded) return;
    if (id) this.lastEventId = id;
    this.framesSent++;
    if (!this.res.write(frame(id, event, data))) await this.drained();
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.abort.signal.removeEventListener('abort', done);
        resolve();
      };
      this.res.on('drain', done);
      this.abort.signal.addEventListener('abort', done, { once: true });
    });
  }

  // ---- dependencies (resolveMissingReferences / resolveAndPublishMissingRefs) ----

  /** Referenced objects not sent yet, their own references first. */
  private resolveMissing(refs: string[], seen: Set<string>): StixObject[] {
    const toResolve = refs.filter((r) => !this.cache.has(r) && !seen.has(r));
    for (const r of toResolve) seen.add(r);
    const elements = toResolve.map((r) => this.host.store.get(r)?.obj).filter((o): o is StixObject => o !== undefined);
    if (elements.length === 0) return [];
    const resolved = new Set(elements.map((e) => e.id));
    const parents = [...new Set(elements.flatMap((e) => refsOf(e)))].filter((r) => !resolved.has(r));
    if (parents.length === 0) return elements;
    return [...this.resolveMissing(parents, seen), ...elements];
  }

  private async publishMissingRefs(eventId: string, stix: StixObject, refs: string[] = refsOf(stix)): Promise<boolean> {
    const missing = this.resolveMissing(refs, new Set());
    if (stix.type === 'relationship' || stix.type === 'sighting') {
      // A relationship whose ends cannot be loaded is dropped, not sent half-resolved.
      const ids = new Set(missing.map((m) => m.id));
      const from = (stix['source_ref'] ?? stix['sighting_of_ref']) as string | undefined;
      const where = stix['where_sighted_refs'];
      const to = (stix['target_ref'] ?? (Array.isArray(where) ? where[0] : undefined)) as string | undefined;
      const reachable = (id: string | undefined) => id !== undefined && (ids.has(id) || this.cache.has(id));
      if (!reachable(from) || !reachable(to)) return false;
    }
    for (const m of missing) {
      if (this.closed) break;
      if (this.cache.has(m.id)) continue;
      await this.send(eventId, 'create', JSON.stringify(initBody(m, 'init-dependencies')));
      this.cache.set(m.id);
    }
    return true;
  }

  private async publishDependencies(eventId: string, stix: StixObject, refs?: string[]): Promise<boolean> {
    const valid = await this.publishMissingRefs(eventId, stix, refs);
    if (valid && !this.request.noDependencies) {
      // Core relationships of the object go out too (what no-dependencies=true skips).
      const relations = this.host.store.relationsOf(stix.id).filter((r) => !this.cache.has(r.obj.id));
      for (const rel of relations) {
        if (this.closed) break;
        await this.publishMissingRefs(eventId, rel.obj);
        await this.send(eventId, 'create', JSON.stringify(initBody(rel.obj, 'init-dependencies')));
        this.cache.set(rel.obj.id);
      }
    }
    return valid;
  }

  // ---- recovery ----

  private async recover(startMs: number, recoverMs: number): Promise<void> {
    const inferred = (s: StoredObject) => ext(s.obj, OCTI_EXT)?.['is_inferred'] === true;
    const items = [...this.host.store.values()]
      .filter((s) => s.visible && s.updatedAtMs >= startMs && s.updatedAtMs <= recoverMs && (this.request.withInferences || !inferred(s)))
      .sort((a, b) => a.updatedAtMs - b.updatedAtMs || (a.internalId < b.internalId ? -1 : a.internalId > b.internalId ? 1 : 0));
    let n = 0;
    for (const item of items) {
      if (this.closed) return;
      if (this.cache.has(item.obj.id)) continue;
      const eventId = streamEventId(item.updatedAtMs);
      const valid = await this.publishDependencies(eventId, item.obj);
      if (valid && !this.cache.has(item.obj.id)) {
        await this.send(eventId, 'create', JSON.stringify(initBody(item.obj, 'init-create')));
        this.cache.set(item.obj.id);
      }
      // One Elasticsearch page at a time, then the channel delay.
      if (++n % 500 === 0) await sleep(this.delayMs, this.abort.signal);
    }
    await sleep(this.delayMs, this.abort.signal);
  }

  // ---- live reading (rawCreateStreamProcessor + the live callback) ----

  private async readLive(start: string | undefined): Promise<void> {
    const { log, settings } = this.host;
    // Without a start point the processor reads from `$`: only what arrives after each XREAD.
    let cursor = start ?? '$';
    while (!this.closed) {
      await this.host.gate(this.abort.signal);
      if (this.closed) return;
      const after = parseStreamId(cursor === '$' ? log.lastGeneratedId : cursor);
      if (!after) {
        // Redis refuses the id; the processor logs, waits and tries again, forever.
        await sleep(settings.readErrorRetryMs, this.abort.signal);
        continue;
      }
      let batch = log.readAfter(after, settings.batchSize);
      if (batch.length === 0) {
        await log.waitForAppend(settings.blockMs, this.abort.signal);
        if (this.closed) return;
        batch = log.readAfter(after, settings.batchSize);
      }
      // Only external events reach consumers; an all-internal or empty batch reports now-0.
      const events = batch.filter((e) => e.scope === 'external');
      const last = events[events.length - 1];
      const lastEventId = last ? last.id : `${Date.now()}-0`;
      await this.processBatch(events, lastEventId);
      if (batch.length > 0) cursor = lastEventId;
      await sleep(settings.batchPauseMs, this.abort.signal);
    }
  }

  private async processBatch(events: LogEntry[], lastEventId: string): Promise<void> {
    const streamId = this.request.streamId;
    if (streamId === null) {
      for (const e of events) await this.send(e.id, e.event, e.body);
    } else if (this.host.collectionLive(streamId)) {
      for (let i = 0; i < events.length && !this.closed; i++) await this.processEvent(events[i] as LogEntry, i);
    }
    // Heartbeats then carry the batch's last id, sent or not.
    if (!this.closed) this.lastEventId = lastEventId;
    if (this.delayMs > 0) await sleep(this.delayMs, this.abort.signal);
  }

  private async processEvent(e: LogEntry, index: number): Promise<void> {
    if (e.raw) {
      await this.send(e.id, e.event, e.body);
      return;
    }
    if (e.version < 4) return;
    if (e.inferred && !this.request.withInferences) return;
    const body = this.host.settings.eventIdInBody && !e.hasEventId
      ? withEventId(e.body, streamEventId(e.updatedAtMs ?? Date.now(), index))
      : e.body;
    const publishDeletion = this.request.publishDeletion;
    const dependencies = (): Promise<boolean> => {
      // Only relationships need their full data (their ends); the refs were extracted at XADD.
      const isRelation = e.objectType === 'relationship' || e.objectType === 'sighting';
      const stix: StixObject = isRelation
        ? (JSON.parse(e.body) as { data: StixObject }).data
        : { id: e.objectId ?? '', type: e.objectType ?? '' };
      return this.publishDependencies(e.id, stix, e.refs);
    };
    if (e.event === 'update') {
      if (e.visibleBefore && !e.visibleAfter) {
        // Left the filter: a delete carrying the update body.
        if (publishDeletion) {
          await this.send(e.id, 'delete', body);
          if (e.objectId) this.cache.set(e.objectId);
        }
      } else if (!e.visibleBefore && e.visibleAfter) {
        if (await dependencies()) {
          await this.send(e.id, 'create', body);
          if (e.objectId) this.cache.set(e.objectId);
        }
      } else if (e.visibleAfter) {
        if (await dependencies()) {
          await this.send(e.id, 'update', body);
          if (e.objectId) this.cache.set(e.objectId);
        }
      }
    } else if (e.visibleAfter) {
      if (e.event === 'delete') {
        if (publishDeletion) {
          await this.send(e.id, 'delete', body);
          if (e.objectId) this.cache.set(e.objectId);
        }
      } else if (await dependencies()) {
        await this.send(e.id, e.event, body);
        if (e.objectId) this.cache.set(e.objectId);
      }
    }
  }
}
