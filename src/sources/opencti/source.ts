// The OpenCTI live stream as a source: resume state, stream connection, normalisation, registration.
// Resume state has pycti's shape {start_from, recover_until} so that it reads the same in the UI.
import type { Config } from '../../config/schema.js';
import { normaliseSafely, safeListener, type IngestItem } from '../../core/pipeline.js';
import type { IngestLoop } from '../../core/ingest-loop.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Store } from '../../core/store.js';
import type { Checkpoint } from '../../core/types.js';
import { ConnectorApi } from './connector-api.js';
import { cutText } from '../../core/raw-copy.js';
import { createContext, normaliseEvent, oversizeEvent, type NormaliseContext } from './normalise.js';
import { OpenCtiStream, type StreamMessage } from './stream.js';

export const SOURCE = 'opencti';

export interface ResumeState {
  start_from: string;
  recover_until: string | false;
}

/** Stream ids `<ms>-<seq>` in order: negative, zero or positive. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

/** Epoch ms of a stream id `<ms>-<seq>`. */
export function idTime(id: string): number {
  const ms = Number(id.split('-')[0]);
  return Number.isFinite(ms) ? ms : 0;
}

/** State for a connector that never ran: pycti's defaults (backfill up to now unless told otherwise). */
export function initialState(config: Config, now = new Date()): ResumeState {
  const c = config.connector;
  const startFrom = c.live_stream_start_timestamp !== undefined ? `${c.live_stream_start_timestamp}-0` : '0-0';
  const recover = c.live_stream_recover_iso_date;
  let recoverUntil: string | false;
  if (recover !== undefined && /^(no|false|none)$/i.test(recover)) recoverUntil = false;
  else recoverUntil = recover ? new Date(recover).toISOString().replace(/\.\d{3}Z$/, 'Z') : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { start_from: startFrom, recover_until: recoverUntil };
}

export class OpenCtiSource {
  private stream: OpenCtiStream | null = null;
  private api: ConnectorApi | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private state!: ResumeState;
  /** Last id received (queued or stored) that is not a dependency: where a new connection resumes. */
  private lastReceived = '0-0';
  private readonly ctx: NormaliseContext;
  /** `run --once`: told about the connection and each message, to see when the stream is caught up. */
  private once: { connected(data: string): void; message(id: string): void } | null = null;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly ingest: IngestLoop,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.ctx = createContext(config.opencti.url!, { maxChars: config.limits.pattern_chars, maxDepth: config.limits.pattern_depth });
  }

  get connected(): boolean {
    return this.stream?.connected ?? false;
  }

  get lastError(): string | null {
    return this.stream?.lastError ?? null;
  }

  async start(opts: { register?: boolean } = {}): Promise<void> {
    const saved = await this.store.getCheckpoint(SOURCE);
    this.state = saved ? (saved.state as unknown as ResumeState) : initialState(this.config);
    this.lastReceived = this.state.start_from;
    this.log.info({ source: SOURCE, resume: this.state, fresh: !saved }, saved ? 'resuming the live stream' : 'first start of the live stream');
    const c = this.config.connector;
    this.stream = new OpenCtiStream({
      baseUrl: this.config.opencti.url!,
      streamId: c.live_stream_id!,
      token: this.config.opencti.token!,
      verifyTls: this.config.opencti.ssl_verify,
      listenDelete: c.live_stream_listen_delete,
      noDependencies: c.live_stream_no_dependencies,
      withInferences: c.live_stream_with_inferences,
      heartbeatTimeoutMs: c.heartbeat_timeout * 1000,
      maxEventBytes: this.config.limits.sse_event_bytes,
      position: () => this.lastReceived,
      recoverUntil: () => this.recoverParam(),
      onMessage: safeListener(this.log, SOURCE, (m) => this.onMessage(m)),
      onConnected: (data) => this.once?.connected(data),
      log: this.log,
      metrics: this.metrics,
    });
    this.stream.start();
    if (c.register && opts.register !== false) {
      this.api = new ConnectorApi({
        url: this.config.opencti.url!, token: this.config.opencti.token!, verifyTls: this.config.opencti.ssl_verify,
        connectorId: c.id!, name: c.name, scope: ['Indicator', 'Stix-Cyber-Observable'], log: this.log, metrics: this.metrics,
      });
      void this.api.register().then(() => this.ping());
      this.pingTimer = setInterval(() => void this.ping(), c.ping_interval * 1000);
    }
  }

  /**
   * `run --once`: read from the stored position until the stream reached the last event it held when
   * we connected (`connected.lastEventId`), then stop. Gives up when nothing arrives for
   * `connector.heartbeat_timeout` (OpenCTI heartbeats every 5 s). Not registered in OpenCTI.
   */
  async readUntilCaughtUp(): Promise<{ events: number; caughtUp: boolean }> {
    let target: string | null = null;
    // While recovering, events carry their object's updated_at as id (up to the cut-off) and live
    // reading starts at the cut-off: only an id past it is live, whatever the target.
    let liveAfter = '0-0';
    const reached = (id: string) => target !== null && compareIds(id, target) >= 0 && compareIds(id, liveAfter) > 0;
    let events = 0;
    let progress = Date.now();
    let finish!: (caughtUp: boolean) => void;
    const finished = new Promise<boolean>((resolve) => { finish = resolve; });
    this.once = {
      connected: (data) => {
        progress = Date.now();
        if (target !== null) return; // a reconnect: the goal stays where it was
        let last: unknown;
        try { last = (JSON.parse(data) as { lastEventId?: unknown }).lastEventId; } catch { last = undefined; }
        target = typeof last === 'string' && /^\d+-\d+$/.test(last) ? last : '0-0';
        const cut = this.recoverParam();
        if (cut) liveAfter = `${Date.parse(cut)}-0`;
        else if (compareIds(this.lastReceived, target) >= 0) finish(true);
      },
      message: (id) => {
        events++;
        progress = Date.now();
        if (reached(id)) finish(true);
      },
    };
    const silence = this.config.connector.heartbeat_timeout * 1000;
    const watchdog = setInterval(() => { if (Date.now() - progress > silence) finish(false); }, Math.min(1000, silence));
    try {
      await this.start({ register: false });
      const caughtUp = await finished;
      if (!caughtUp) this.log.error({ source: SOURCE, target, lastReceived: this.lastReceived, silentMs: silence }, 'the stream went silent before it was caught up');
      return { events, caughtUp };
    } finally {
      clearInterval(watchdog);
      this.stop();
      this.once = null;
    }
  }

  pause(): void { this.stream?.pause(); }
  resume(): void { this.stream?.resume(); }

  stop(): void {
    this.stream?.stop();
    if (this.pingTimer) clearInterval(this.pingTimer);
  }

  /** `?recover=` only while the position is before the cut-off (a restart mid-backfill continues it). */
  private recoverParam(): string | null {
    const until = this.state.recover_until;
    if (!until) return null;
    const cutoff = Date.parse(until);
    return Number.isNaN(cutoff) || idTime(this.lastReceived) >= cutoff ? null : until;
  }

  private onMessage(m: StreamMessage): void {
    if (m.name === 'no-recover') this.state = { ...this.state, recover_until: false };
    const final = !this.isDependency(m);
    // A dependency shares its parent's id: resuming after it would skip the parent.
    if (final) this.lastReceived = m.id;
    const checkpoint: Checkpoint | null = final
      ? { position: m.id, state: { start_from: m.id, recover_until: this.state.recover_until } }
      : null;
    if (checkpoint) this.state = checkpoint.state as unknown as ResumeState;
    const limits = this.config.limits;
    const item: IngestItem = {
      normalised: m.oversizeBytes !== undefined ? oversizeEvent(m.oversizeBytes, limits.sse_event_bytes)
        : m.name === 'heartbeat' || m.name === 'no-recover'
          ? { sourceRef: null, changes: [], retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: m.name }
          : normaliseSafely(() => normaliseEvent(m.name, m.data, this.ctx)),
      raw: { event: m.name, id: m.id, data: cutText(m.data, limits.raw_copy_bytes) },
      event: m.name,
      checkpoint,
      position: m.id,
    };
    this.ingest.push(item);
    // A dependency comes before its event, under the same id: only the event itself can be the last.
    if (final) this.once?.message(m.id);
  }

  /** Dependency events reuse the id of the event that needs them and come first. */
  private isDependency(m: StreamMessage): boolean {
    if (m.name !== 'create') return false;
    return m.data.includes(`"referer":"init-dependencies"`);
  }

  private async ping(): Promise<void> {
    if (!this.api) return;
    const cp = await this.store.getCheckpoint(SOURCE).catch(() => null);
    const reset = await this.api.ping(cp?.state ?? (this.state as unknown as Record<string, unknown>));
    if (reset) {
      this.log.warn({ source: SOURCE }, 'OpenCTI asked for a state reset; ignored because the local store is the source of truth (run `threatbridge reset-checkpoint opencti` to replay the stream)');
    }
  }
}
