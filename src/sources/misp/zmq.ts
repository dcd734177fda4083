// MISP's ZeroMQ feed: a SUB socket on the publisher, one frame per message "<topic> <json>".
// Plain PUB/SUB: no replay, so a gap (reconnect, silence, overflow) is reported to the source,
// which repairs it with a REST catch-up. Silence beyond the heartbeat timeout forces a reconnect:
// MISP sends misp_json_self after 10 s without traffic.
// The receive loop only queues raw frames; a separate drain decodes them in batches and waits for
// the consumer. MISP's publisher drops past 1,000 queued messages per subscriber (its SNDHWM), so
// the socket must be emptied as fast as it fills, whatever decoding and storing cost.
import * as zmq from 'zeromq';
import type { Logger } from '../../observability/logger.js';

/** CURVE keys (Z85, 40 characters): the publisher's public key and this subscriber's key pair. */
export interface CurveKeys {
  serverKey: string;
  publicKey: string;
  secretKey: string;
}

export interface ZmqFeedOptions {
  url: string;
  username?: string;
  password?: string;
  /** Encrypt and authenticate the publisher with CURVE (PLAIN credentials, if any, then travel encrypted). */
  curve?: CurveKeys;
  /** Largest message accepted: ZeroMQ drops the connection on a bigger one before allocating it. */
  maxMessageBytes: number;
  heartbeatTimeoutMs: number;
  log: Logger;
  /** Decoded messages in arrival order; the next batch waits until the promise settles. */
  onBatch(messages: ZmqMessage[]): Promise<void>;
  /** Messages may have been missed (reconnect, silence): catch up through REST. */
  onGap(reason: string): void;
  /** Connected or not any more (reachability and the connected gauge). */
  onState?(): void;
}

export interface ZmqMessage {
  topic: string;
  payload: string;
}

/** Raw frames held in memory before the receive loop stops reading (then libzmq's RCVHWM holds more). */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;
/** Messages decoded and handed over at once. */
const BATCH = 500;

/** Topics we act on; `misp_json` is a prefix of all of them (ZeroMQ matches prefixes). */
const SUBSCRIPTION = 'misp_json';

export class ZmqFeed {
  private socket: zmq.Subscriber | null = null;
  private running = false;
  private watchdog: NodeJS.Timeout | null = null;
  private lastMessageAt = 0;
  connected = false;
  lastError: string | null = null;
  received = 0;
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private draining = false;
  /** Resolves the receive loop once the queue has room again. */
  private roomWaiter: (() => void) | null = null;
  private idleWaiters: (() => void)[] = [];
  private readonly context = new zmq.Context();

  constructor(private readonly o: ZmqFeedOptions) {}

  /** Messages received but not yet handed to the consumer. */
  get backlog(): number {
    return this.queue.length;
  }

  /** Resolves when every received message has been handed over (tests, shutdown). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && !this.draining) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  start(): void {
    this.running = true;
    this.open();
    this.watchdog = setInterval(() => this.checkSilence(), Math.max(1000, Math.floor(this.o.heartbeatTimeoutMs / 4)));
  }

  stop(): void {
    this.running = false;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    this.close();
  }

  private open(): void {
    const socket = new zmq.Subscriber({
      // Its own libzmq I/O thread: reading the publisher never waits for other sockets of the process.
      context: this.context,
      // MISP's publisher flushes what it queued while down about 1 s after it binds again: be back
      // before that (libzmq's default 100 ms, backing off to 500 ms, plus up to 100 ms of jitter,
      // while the publisher stays away; a doubling backoff to 30 s came back after seconds).
      reconnectInterval: 100, reconnectMaxInterval: 500,
      // Deep: a burst waits here rather than at the publisher, which drops past its HWM.
      receiveHighWaterMark: 1_000_000, maxMessageSize: this.o.maxMessageBytes,
      // A large kernel buffer (capped by net.core.rmem_max) holds a burst while libzmq's I/O thread
      // waits for a CPU on a loaded host; without it the publisher's 1,000-message HWM overflows.
      receiveBufferSize: 8 * 1024 * 1024,
    });
    if (this.o.curve) {
      socket.curveServerKey = this.o.curve.serverKey;
      socket.curvePublicKey = this.o.curve.publicKey;
      socket.curveSecretKey = this.o.curve.secretKey;
    } else if (this.o.username) {
      socket.plainUsername = this.o.username;
      socket.plainPassword = this.o.password ?? '';
    }
    // The TCP connect comes before the PLAIN handshake: only a completed handshake is a connection
    // (a refused password would otherwise flap between connected and refused, each time a catch-up).
    socket.events.on('handshake', () => {
      this.connected = true;
      this.lastError = null;
      this.lastMessageAt = Date.now();
      this.o.log.info({ source: 'misp', url: this.o.url }, 'ZeroMQ feed connected');
      this.o.onState?.();
      // Whatever was published while we were away is gone from ZeroMQ.
      this.o.onGap('connected');
    });
    socket.events.on('disconnect', () => {
      // ZeroMQ ends the connection on a message over maxMessageSize without saying so: name it as a cause.
      if (this.connected) {
        this.o.log.warn({ source: 'misp', url: this.o.url, maxMessageBytes: this.o.maxMessageBytes },
          'ZeroMQ feed disconnected (publisher gone, or a message over limits.zmq_message_bytes refused unread); reconnecting, the REST catch-up reads what was missed');
      }
      this.connected = false;
      this.lastError ??= 'ZeroMQ publisher disconnected';
      this.o.onState?.();
    });
    // A CURVE publisher drops a client holding the wrong server key mid-handshake (EPIPE here).
    const handshakeFailed = (e: { error?: Error }) => {
      const first = this.lastError === null || !this.lastError.startsWith('ZeroMQ handshake failed');
      this.connected = false;
      this.lastError = `ZeroMQ handshake failed (${e.error?.message ?? 'protocol error'}); check that misp.zmq_curve_server_key is set exactly when the publisher uses CURVE`;
      // Once per run of failures: libzmq retries every second.
      if (first) this.o.log.error({ source: 'misp', url: this.o.url }, this.lastError);
      this.o.onState?.();
    };
    socket.events.on('handshake:error:protocol', handshakeFailed);
    socket.events.on('handshake:error:other', handshakeFailed);
    socket.events.on('handshake:error:auth', (e) => {
      this.connected = false;
      this.lastError = `ZeroMQ PLAIN authentication refused (${e.error?.message ?? 'status 400'}); check misp.zmq_username and misp.zmq_password`;
      this.o.log.error({ source: 'misp', url: this.o.url }, this.lastError);
      this.o.onState?.();
    });
    socket.connect(this.o.url);
    socket.subscribe(SUBSCRIPTION);
    this.socket = socket;
    this.lastMessageAt = Date.now();
    void this.read(socket);
  }

  private close(): void {
    const s = this.socket;
    this.socket = null;
    this.connected = false;
    if (s && !s.closed) s.close();
  }

  private async read(socket: zmq.Subscriber): Promise<void> {
    try {
      for await (const frames of socket) {
        this.lastMessageAt = Date.now();
        this.connected = true;
        this.received++;
        const frame = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
        this.queue.push(frame);
        this.queuedBytes += frame.length;
        if (!this.draining) void this.drain();
        if (this.queuedBytes >= MAX_QUEUED_BYTES) {
          // Stop reading: libzmq buffers up to the RCVHWM, then the publisher drops. Whatever it
          // dropped meanwhile is read back through REST.
          await new Promise<void>((resolve) => { this.roomWaiter = resolve; });
          this.o.onGap('receive backlog');
        }
      }
    } catch (err) {
      if (this.running && this.socket === socket) {
        this.lastError = (err as Error).message;
        this.o.log.warn({ source: 'misp', err: this.lastError }, 'ZeroMQ read failed; reconnecting');
        this.reopen('read error');
      }
    }
  }

  /** Decodes queued frames in batches and hands them over one batch at a time. */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const frames = this.queue.splice(0, BATCH);
        const messages: ZmqMessage[] = [];
        for (const frame of frames) {
          this.queuedBytes -= frame.length;
          const text = frame.toString('utf8');
          const space = text.indexOf(' ');
          messages.push({ topic: space < 0 ? text : text.slice(0, space), payload: space < 0 ? '' : text.slice(space + 1) });
        }
        if (this.roomWaiter && this.queuedBytes < MAX_QUEUED_BYTES / 2) { this.roomWaiter(); this.roomWaiter = null; }
        try {
          await this.o.onBatch(messages);
        } catch (err) {
          this.o.log.error({ source: 'misp', err: (err as Error).message }, 'cannot process ZeroMQ messages; the REST catch-up reads them');
          this.o.onGap('processing failed');
        }
        // Let the receive loop run between batches.
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.draining = false;
      if (this.roomWaiter) { this.roomWaiter(); this.roomWaiter = null; }
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private checkSilence(): void {
    if (!this.running) return;
    // Busy with a backlog is not silence: reconnecting would not help.
    if (this.queue.length > 0 || this.draining) { this.lastMessageAt = Date.now(); return; }
    const silent = Date.now() - this.lastMessageAt;
    if (silent < this.o.heartbeatTimeoutMs) return;
    this.lastError = `no ZeroMQ message for ${Math.round(silent / 1000)} s`;
    this.o.log.warn({ source: 'misp', url: this.o.url, silentMs: silent }, 'ZeroMQ feed silent past the heartbeat timeout; reconnecting');
    this.reopen('silence');
    this.o.onState?.();
  }

  private reopen(reason: string): void {
    this.close();
    this.o.onGap(reason);
    if (this.running) this.open();
  }
}
