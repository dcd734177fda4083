// The OpenCTI live stream connection (eventsource v4). It owns reconnection: eventsource retries a
// dropped connection by itself (resending Last-Event-ID), but a non-200 answer closes it for good
// and silence is not noticed at all, so both are handled here with backoff and a watchdog.
import { EventSource, type FetchLike } from 'eventsource';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import type { Logger } from '../../observability/logger.js';
import { errorFields } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { streamIdTime } from '../../observability/activity.js';
import { backoffMs } from '../../net/retry.js';
import { limitSseEvents, oversizeOf } from './sse-limit.js';

export interface StreamMessage {
  name: string;
  id: string;
  data: string;
  /** Set when the event passed `limits.sse_event_bytes`: its size; its data was dropped unread. */
  oversizeBytes?: number;
}

export interface StreamOptions {
  baseUrl: string;
  streamId: string;
  token: string;
  verifyTls: boolean;
  listenDelete: boolean;
  noDependencies: boolean;
  withInferences: boolean;
  heartbeatTimeoutMs: number;
  /** Largest event read; a bigger one arrives as a message with `oversizeBytes` and no data. */
  maxEventBytes: number;
  /** Position to resume after (Last-Event-ID) on every (re)connection: the last id that is safe to skip past. */
  position: () => string;
  /** Recovery cut-off while the position is still before it, else null. */
  recoverUntil: () => string | null;
  onMessage: (message: StreamMessage) => void;
  /** The `connected` message's data: where the stream stood when we connected (`lastEventId`, …). */
  onConnected?: (data: string) => void;
  log: Logger;
  metrics: Metrics;
}

/** Names the platform sends; an unknown name cannot be subscribed to with EventSource, so list them. */
const EVENT_NAMES = ['create', 'update', 'delete', 'merge', 'heartbeat', 'no-recover', 'sync', 'message'];

/**
 * fetch over node:http(s) so that the per-system TLS setting applies, returning a web Response
 * whose body passes through the event size limit before eventsource buffers any of it.
 */
export function nodeFetch(verifyTls: boolean, maxEventBytes: number): FetchLike {
  const httpsAgent = new https.Agent({ keepAlive: false, rejectUnauthorized: verifyTls });
  return (url, init) =>
    new Promise((resolve, reject) => {
      const target = new URL(String(url));
      const lib = target.protocol === 'https:' ? https : http;
      const req = lib.request(target, {
        method: 'GET',
        headers: init.headers,
        agent: target.protocol === 'https:' ? httpsAgent : undefined,
      });
      const signal = init.signal as AbortSignal | undefined;
      const abort = () => req.destroy(new Error('aborted'));
      signal?.addEventListener('abort', abort, { once: true });
      req.on('error', (err) => reject(err));
      req.on('response', (res) => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
        const status = res.statusCode ?? 0;
        if (status !== 200) res.resume();
        const body = status === 200 ? (Readable.toWeb(res) as ReadableStream<Uint8Array>).pipeThrough(limitSseEvents(maxEventBytes)) : null;
        resolve({ body, url: target.toString(), status, redirected: false, headers });
      });
      req.end();
    });
}

export class OpenCtiStream {
  private source: EventSource | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private lastActivity = Date.now();
  private failures = 0;
  private stopped = true;
  private paused = false;
  connected = false;
  /** Why the last connection attempt failed, for /readyz and status. */
  lastError: string | null = null;

  constructor(private readonly o: StreamOptions) {}

  start(): void {
    this.stopped = false;
    this.open();
    this.watchdog = setInterval(() => this.checkSilence(), Math.min(5000, this.o.heartbeatTimeoutMs / 3));
  }

  stop(): void {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.close();
  }

  /** Backpressure: drop the connection; `resume` reconnects after the last stored-or-queued position. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.o.log.info({ source: 'opencti' }, 'ingest queue full; pausing the stream');
    this.close();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.stopped) this.open();
  }

  private url(): string {
    const u = new URL(`${this.o.baseUrl}/stream/${encodeURIComponent(this.o.streamId)}`);
    const recover = this.o.recoverUntil();
    if (recover) u.searchParams.set('recover', recover);
    return u.toString();
  }

  private open(): void {
    if (this.stopped || this.paused || this.source) return;
    const baseFetch = nodeFetch(this.o.verifyTls, this.o.maxEventBytes);
    const o = this.o;
    const fetchWithHeaders: FetchLike = (url, init) => {
      const headers: Record<string, string> = { ...init.headers };
      headers['Authorization'] = `Bearer ${o.token}`;
      headers['listen-delete'] = String(o.listenDelete);
      headers['no-dependencies'] = String(o.noDependencies);
      headers['with-inferences'] = String(o.withInferences);
      headers['Cache-Control'] = 'no-cache';
      // Always our position, also on eventsource's own reconnects: its last id may be a dependency
      // event whose parent (same id, still to come) would be skipped by resuming after it.
      for (const k of Object.keys(headers)) if (k.toLowerCase() === 'last-event-id') delete headers[k];
      headers['Last-Event-ID'] = o.position();
      return baseFetch(url, { ...init, headers: headers as never });
    };
    const es = new EventSource(this.url(), { fetch: fetchWithHeaders });
    this.source = es;
    this.lastActivity = Date.now();
    es.addEventListener('open', () => {
      this.o.log.info({ source: 'opencti', stream: o.streamId, from: o.position() }, 'stream connected');
    });
    es.addEventListener('connected', (ev: MessageEvent) => {
      if (this.source !== es) return;
      this.lastActivity = Date.now();
      this.o.onConnected?.(String(ev.data ?? ''));
      this.connected = true;
      this.failures = 0;
      this.lastError = null;
      this.o.metrics.reach.up('source', 'opencti');
    });
    for (const name of EVENT_NAMES) {
      es.addEventListener(name, (ev: MessageEvent) => {
        // eventsource keeps dispatching what it had already read after close() (its read loop does
        // not look at readyState), while the new connection resumes from the position taken at
        // open: such late messages of an old connection would be handed over twice.
        if (this.source !== es) return;
        this.lastActivity = Date.now();
        // Id-less messages carry no position (pycti ignores them too).
        if (!ev.lastEventId) return;
        if (name !== 'heartbeat') this.o.metrics.activity.event('opencti', streamIdTime(ev.lastEventId));
        const data = String(ev.data ?? '');
        const oversize = oversizeOf(data);
        if (oversize === null) this.o.onMessage({ name, id: ev.lastEventId, data });
        else {
          this.o.log.warn({ source: 'opencti', id: ev.lastEventId, event: name, bytes: oversize, limit: this.o.maxEventBytes },
            'stream event larger than limits.sse_event_bytes; dropped unread and kept as a dead letter');
          this.o.onMessage({ name, id: ev.lastEventId, data: '', oversizeBytes: oversize });
        }
      });
    }
    es.addEventListener('error', (err: Event & { code?: number; message?: string }) => {
      if (this.source !== es) return; // a connection we closed ourselves
      this.connected = false;
      const detail = err.code ? `HTTP ${err.code}${err.code === 401 ? ' (token or stream id not accepted)' : err.code === 410 ? ' (the live stream is stopped)' : ''}` : err.message ?? 'connection lost';
      this.lastError = detail;
      this.o.metrics.reach.down('source', 'opencti', detail);
      if (es.readyState === EventSource.CLOSED) {
        this.source = null;
        this.scheduleReconnect(detail);
      } else {
        this.o.metrics.sourceReconnects.inc({ source: 'opencti', reason: 'dropped' });
        this.o.log.warn({ source: 'opencti', error: detail }, 'stream dropped; reconnecting');
      }
    });
  }

  private close(): void {
    this.source?.close();
    this.source = null;
    if (this.connected) this.o.metrics.sourceConnected.set({ source: 'opencti' }, 0);
    this.connected = false;
  }

  private scheduleReconnect(reason: string): void {
    if (this.stopped || this.paused || this.reconnectTimer) return;
    const delay = backoffMs(this.failures++, { baseMs: 1000, maxMs: 60_000 });
    this.o.metrics.sourceReconnects.inc({ source: 'opencti', reason: 'failed' });
    const level = this.failures > 3 ? 'error' : 'warn';
    this.o.log[level]({ source: 'opencti', error: reason, retryInMs: delay, attempt: this.failures }, 'stream unavailable; reconnecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.open();
    }, delay);
  }

  private checkSilence(): void {
    if (this.stopped || this.paused || !this.source) return;
    const silent = Date.now() - this.lastActivity;
    if (silent < this.o.heartbeatTimeoutMs) return;
    this.o.log.warn({ source: 'opencti', silentMs: silent }, 'no heartbeat from the stream; reconnecting');
    this.o.metrics.sourceReconnects.inc({ source: 'opencti', reason: 'silence' });
    this.close();
    this.o.metrics.reach.down('source', 'opencti', `no heartbeat for ${Math.round(silent / 1000)} s`);
    try {
      this.open();
    } catch (err) {
      this.scheduleReconnect((err as Error).message);
      this.o.log.error({ source: 'opencti', ...errorFields(err) }, 'cannot reopen the stream');
    }
  }
}
