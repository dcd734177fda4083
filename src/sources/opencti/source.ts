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

  async start(): Promise<void> {
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
      log: this.log,
      metrics: this.metrics,
    });
    this.stream.start();
    if (c.register) {
      this.api = new ConnectorApi({
        url: this.config.opencti.url!, token: this.config.opencti.token!, verifyTls: this.config.opencti.ssl_verify,
        connectorId: c.id!, name: c.name, scope: ['Indicator', 'Stix-Cyber-Observable'], log: this.log, metrics: this.metrics,
      });
      void this.api.register().then(() => this.ping());
      this.pingTimer = setInterval(() => void this.ping(), c.ping_interval * 1000);
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
