// Polls one tenant's Defender alerts by lastUpdateTime and hands each new or changed alert to the
// ingest loop as a record change (the alert sink's route keys it by alert id, so a newer version
// supersedes a waiting one). Each page is stored before the next is read; the checkpoint (the time
// the poll started) is stored after the last page, so a crash re-reads at most one poll. Every poll
// re-reads an overlap window before the checkpoint (late or clock-skewed updates); alerts seen with
// the same lastUpdateTime are skipped, and keyed outbox rows make any re-read harmless anyway.
//
// Which alerts go on: those passing the status filter and severity floor, plus every alert already
// sent (held by the sink, or queued by an earlier poll), so that a resolved or downgraded alert
// still updates what the sink made of it.
import { ignoredEvent, normaliseSafely, rejectedEvent, type IngestItem } from '../../core/pipeline.js';
import { RECORD_TYPES, type DefenderAlertChange } from '../../core/records.js';
import { isRecordChange, type RecordChange, type SourceChange } from '../../core/types.js';
import { errorFields, type Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { CheckpointStore } from '../../core/store.js';
import type { DefenderApi } from '../../microsoft/defender/client.js';
import type { Machine } from '../../microsoft/defender/types.js';
import type { DefenderAlertsConfig } from './config.js';
import { idText, machineDetails, normaliseAlert, severityRank } from './normalise.js';
import { createHash } from 'node:crypto';

export interface PollerState {
  /** alert id → lastUpdateTime already handled, for alerts inside the overlap window. */
  seen: Record<string, string>;
  /** alert id → epoch ms when queued for IRIS without a recorded IRIS id yet. */
  queued: Record<string, number>;
}

export interface PollResult {
  read: number;
  queued: number;
  skipped: number;
  rejected: number;
}

/** Queued entries never acknowledged (dead-lettered) are forgotten after this long. */
const QUEUED_TTL_MS = 14 * 24 * 3600_000;
const MACHINE_TTL_MS = 3600_000;

/** What a poller reads from and writes to. */
export interface PollerDeps {
  checkpoints: CheckpointStore;
  /** The core's ingest loop of this source: `store` resolves once the items are committed. */
  ingest: { store(items: IngestItem[], signal?: AbortSignal): Promise<void> };
  /** Of these alert ids, those the sink already holds. */
  held(ids: string[]): Promise<Set<string>>;
}

export class DefenderAlertsPoller {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = true;
  /** Renewed at each start: the source lock can stop and start a poller again. */
  private abort = new AbortController();
  private failures = 0;
  lastError: string | null = null;
  lastPollAt: number | null = null;
  /** machine id → details (or null: unknown to Defender), kept for an hour. */
  private readonly machines = new Map<string, { at: number; details: Machine | null }>();
  private machinesForbidden = false;

  constructor(
    readonly source: string,
    private readonly tenantId: string,
    private readonly cfg: DefenderAlertsConfig,
    private readonly client: DefenderApi,
    private readonly deps: PollerDeps,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.stopped = false;
    if (this.abort.signal.aborted) this.abort = new AbortController();
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pollOnce()
        .then(() => {
          this.failures = 0;
          this.schedule(this.cfg.interval * 1000);
        })
        .catch((err: unknown) => {
          if (this.stopped) return; // the poll was cut short by shutdown; the next start reads it again
          this.failures++;
          this.lastError = (err as Error).message;
          this.metrics.reach.down('source', this.source, this.lastError);
          const retryAfter = (err as { retryAfterMs?: number | null }).retryAfterMs ?? null;
          const wait = Math.min(this.cfg.interval * 1000, retryAfter ?? 5000 * 2 ** Math.min(this.failures, 6));
          this.log.warn({ source: this.source, retryInMs: Math.max(wait, 1000), ...errorFields(err) }, 'Defender alerts poll failed; will retry');
          this.schedule(Math.max(wait, 1000));
        });
    }, ms);
  }

  private async addMachineDetails(c: DefenderAlertChange): Promise<void> {
    const id = c.machine?.id;
    if (!id || !this.cfg.machine_details || this.machinesForbidden) return;
    let hit = this.machines.get(id);
    if (!hit || this.now() - hit.at > MACHINE_TTL_MS) {
      let details: Machine | null;
      try {
        const got = await this.client.machine(id, this.abort.signal);
        if (got === 'forbidden') {
          this.machinesForbidden = true;
          this.log.warn({ source: this.source }, 'the application may not read machines (Machine.Read.All); alerts go to IRIS without machine details');
          return;
        }
        details = got;
      } catch (err) {
        // Details are a nicety: the alert goes without them rather than waiting.
        this.log.warn({ source: this.source, machine: id, ...errorFields(err) }, 'machine details unavailable');
        return;
      }
      hit = { at: this.now(), details };
      if (this.machines.size > 10_000) this.machines.clear();
      this.machines.set(id, hit);
    }
    if (hit.details && c.machine) c.machine = { ...c.machine, ...machineDetails(hit.details) };
  }

  /** One poll: read every alert updated since the checkpoint (minus the overlap) and queue what IRIS needs. */
  async pollOnce(): Promise<PollResult> {
    const started = this.now();
    const cp = await this.deps.checkpoints.getCheckpoint(this.source);
    const state: PollerState = {
      // Keyed by alert ids from Defender: no prototype, so an id `constructor` finds nothing.
      seen: Object.assign(Object.create(null) as Record<string, string>, (cp?.state as Partial<PollerState> | undefined)?.seen),
      queued: Object.assign(Object.create(null) as Record<string, number>, (cp?.state as Partial<PollerState> | undefined)?.queued),
    };
    const firstRun = !cp || Number.isNaN(Date.parse(cp.position));
    const fromMs = firstRun ? started - this.cfg.lookback_hours * 3600_000 : Date.parse(cp.position) - this.cfg.overlap_seconds * 1000;
    // Whole seconds, as the documented examples write them (the window only grows by the cut).
    const from = new Date(Math.floor(fromMs / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    const result: PollResult = { read: 0, queued: 0, skipped: 0, rejected: 0 };
    const floor = severityRank(this.cfg.min_severity);
    const statuses = new Set(this.cfg.statuses.map((s) => s.toLowerCase()));

    const onPage = async (rows: unknown[]): Promise<void> => {
      const items: IngestItem[] = [];
      const changes: { change: DefenderAlertChange; raw: unknown }[] = [];
      for (const raw of rows) {
        result.read++;
        const n = readAlert(raw, this.tenantId, this.cfg.portal_url);
        if (!isRecordChange(n)) {
          // Re-read in every overlap window: dead-letter a malformed alert once, not once per poll.
          const seenAs = rejectedKey(raw);
          if (state.seen[seenAs.key] !== undefined) { result.skipped++; continue; }
          state.seen[seenAs.key] = seenAs.at ?? new Date(started).toISOString();
          result.rejected++;
          items.push({ normalised: n, raw, event: 'alert', checkpoint: null, position: idText((raw as { id?: unknown } | null)?.id) ?? 'unknown' });
          continue;
        }
        const change = n.record as DefenderAlertChange;
        this.metrics.activity.event(this.source);
        if (state.seen[change.id] === change.lastUpdateTime) {
          result.skipped++;
          continue;
        }
        changes.push({ change, raw });
      }
      const held = await this.deps.held(changes.map(({ change }) => change.id));
      for (const { change: c, raw } of changes) {
        state.seen[c.id] = c.lastUpdateTime;
        const wanted = statuses.has(c.status.toLowerCase()) && severityRank(c.severity) >= floor;
        if (!wanted && !held.has(c.id) && state.queued[c.id] === undefined) {
          result.skipped++;
          continue;
        }
        if (!held.has(c.id)) state.queued[c.id] = state.queued[c.id] ?? started;
        await this.addMachineDetails(c);
        items.push({ normalised: alertChange(c), raw, event: 'alert', checkpoint: null, position: c.id });
        result.queued++;
      }
      // Each page is stored before the next is read (the checkpoint moves only after the last one).
      await this.deps.ingest.store(items, this.abort.signal);
    };
    if (firstRun) {
      // As the script: every alert in the chosen statuses, however old (lookback_hours > 0 bounds it).
      // One documented `status eq` filter per status; the later polls follow lastUpdateTime.
      const since = this.cfg.lookback_hours > 0 ? ` and lastUpdateTime ge ${from}` : '';
      for (const status of this.cfg.statuses) {
        await this.client.alertsWhere(`status eq '${status}'${since}`, this.cfg.page_size, onPage, this.abort.signal);
      }
    } else {
      await this.client.alertsUpdatedSince(from, this.cfg.page_size, onPage, this.abort.signal);
    }

    // Forget what the next poll cannot see again, and queued ids the sink holds since.
    const nextFrom = started - this.cfg.overlap_seconds * 1000;
    for (const [id, t] of Object.entries(state.seen)) if (Date.parse(t) < nextFrom) delete state.seen[id];
    const acked = await this.deps.held(Object.keys(state.queued));
    for (const [id, at] of Object.entries(state.queued)) if (acked.has(id) || started - at > QUEUED_TTL_MS) delete state.queued[id];
    await this.deps.ingest.store([{
      normalised: ignoredEvent('poll done'), raw: null, event: 'poll', position: new Date(started).toISOString(),
      checkpoint: { position: new Date(started).toISOString(), state: state as unknown as Record<string, unknown> },
    }], this.abort.signal);
    this.lastError = null;
    this.lastPollAt = this.now();
    this.metrics.reach.up('source', this.source);
    this.metrics.activity.polled(this.source, started);
    this.log.info({ source: this.source, from: firstRun && this.cfg.lookback_hours === 0 ? 'every alert in the chosen statuses' : from, ...result }, 'Defender alerts polled');
    return result;
  }
}

/** One raw alert as the change it asks for: a record change, or a rejection to dead-letter (never a throw). */
export function readAlert(raw: unknown, tenantId: string, portalUrl: string): SourceChange {
  return normaliseSafely(() => {
    const r = normaliseAlert(raw, tenantId, portalUrl);
    return 'rejected' in r ? rejectedEvent(r.rejected.code, r.rejected.detail) : alertChange(r.change);
  });
}

const alertChange = (change: DefenderAlertChange): RecordChange<DefenderAlertChange> =>
  ({ kind: 'record', type: RECORD_TYPES.alert, id: change.id, op: 'upsert', record: change });

/** A malformed alert's entry in `seen`: a digest of its content, and its lastUpdateTime when readable. */
function rejectedKey(raw: unknown): { key: string; at: string | null } {
  let text: string;
  try {
    text = JSON.stringify(raw) ?? String(typeof raw);
  } catch {
    text = String(typeof raw);
  }
  const t = (raw as { lastUpdateTime?: unknown } | null)?.lastUpdateTime;
  const at = typeof t === 'string' && !Number.isNaN(Date.parse(t)) ? t : null;
  return { key: `rejected:${createHash('sha256').update(text).digest('hex').slice(0, 32)}${at ?? ''}`, at };
}
