// The Defender assets poller: an initial import, then incremental runs on an interval. Each run
// reads what changed (machines by lastSeen, alerts by lastUpdateTime), builds snapshots and hands
// them to the ingest loop as record changes, the run's end last with the new checkpoint: a crash
// anywhere re-reads from the last completed run (what was stored meanwhile is keyed, so storing it
// again only supersedes it), and nothing read is lost.
//
// Call planning under the documented quotas: machines, CVE pairs, CVE details and alerts come
// from paged list calls (a handful per run, whatever the fleet size); logon users need one call
// per machine, so each run spends at most `users_calls_per_run` of them and leaves the rest to
// the next run (their accounts stay as CAR has them meanwhile); addresses come from the machine's
// `ipAddresses`, and only machines without them are looked up by advanced hunting, 150 ids per query.
import type { Config } from '../../config/schema.js';
import { ignoredEvent, type IngestItem } from '../../core/pipeline.js';
import { RECORD_TYPES, type AddressSnapshot, type AssetsRunEnd, type MachineGone } from '../../core/records.js';
import type { RecordChange } from '../../core/types.js';
import { errorFields, type Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { CheckpointStore } from '../../core/store.js';
import { DefenderApiError, odataDate, type DefenderApi } from '../../microsoft/defender/client.js';
import type { LogonUser, Machine, MachineVulnerability, Vulnerability } from '../../microsoft/defender/types.js';
import { TokenError } from '../../microsoft/token.js';
import { alertSnapshot, huntedAddresses, isExpiredInactive, machineSnapshot } from './snapshot.js';
import { createHash } from 'node:crypto';

export const SOURCE = 'defender_assets';

/** What the poller reads from and writes to. */
export interface AssetsPollerDeps {
  checkpoints: CheckpointStore;
  /** The core's ingest loop of this source: `store` resolves once the items are committed. */
  ingest: { store(items: IngestItem[]): Promise<void> };
  /** Of these machine ids, those the asset sink holds (only those are deleted there). */
  held(machineIds: string[]): Promise<Set<string>>;
  /** The confirmed save point the asset sink no longer holds, if so (then everything is imported again). */
  savePointLost(): Promise<string | null>;
}

interface PollerState {
  /** Start of the last committed run (epoch ms); absent before the initial import. */
  lastRunMs?: number;
  /** Machines whose logon users did not fit in a run's call budget. */
  usersPending?: string[];
  /** Machines whose CVEs did not fit in a run's per-machine call budget (bulk TVM listing unavailable). */
  vulnsPending?: string[];
  /** Alerts were last read completely at this run start; absent until the first successful read. */
  alertsSince?: number;
  /** The save point CAR had lost when we last imported everything again (so that happens once). */
  resyncedFor?: string;
  /** Machine id → digest of its CVE set at the last run (bulk TVM listing): what moved since is sent again. */
  vulnDigest?: Record<string, string>;
}

/** A short digest of a machine's CVE ids (order-free). */
function cveDigest(rows: MachineVulnerability[] | undefined): string {
  const ids = [...new Set((rows ?? []).map((r) => r.cveId))].sort();
  return createHash('sha1').update(ids.join(',')).digest('base64url').slice(0, 12);
}

export interface RunSummary {
  initial: boolean;
  machines: number;
  deleted: number;
  alerts: number;
  usersDeferred: number;
  /** Machines sent again only because their CVE set moved (lastSeen did not). */
  vulnerabilitiesRefreshed: number;
}

const HUNT_BATCH = 150;

export class DefenderAssetsPoller {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  lastError: string | null = null;
  lastSuccess: number | null = null;

  constructor(
    private readonly config: Config,
    private readonly client: DefenderApi,
    private readonly deps: AssetsPollerDeps,
    private readonly log: Logger,
    /** Reachability and activity of the source (connected gauge, lag, the unreachable line). */
    private readonly metrics?: Metrics,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops scheduling; a run in progress gives up at its next call (nothing is committed, the next start reads again). */
  async stop(boundMs = 10_000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise<void>((r) => { timer = setTimeout(r, boundMs); })]);
    clearTimeout(timer);
  }

  private checkStopped(): void {
    if (this.stopped) throw new Error('stopping: this run is abandoned and will be read again');
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const started = Date.now();
      this.running = this.runOnce(started)
        .then(() => {
          this.lastError = null;
          this.lastSuccess = Date.now();
          this.metrics?.reach.up('source', SOURCE);
          this.metrics?.activity.polled(SOURCE, started);
        })
        .catch((err) => {
          if (this.stopped) {
            this.log.info({ source: SOURCE }, 'Defender assets run abandoned for shutdown; the next start reads it again');
            return;
          }
          this.lastError = (err as Error).message;
          this.metrics?.reach.down('source', SOURCE, this.lastError);
          const status = err instanceof DefenderApiError ? err.status : 0;
          if (status === 401 || status === 403 || err instanceof TokenError) {
            // Setup, not an outage: say what to fix.
            this.log.error({ source: SOURCE, ...errorFields(err) }, 'Defender refused the assets run: check microsoft_defender_intel credentials and the Machine.Read.All role');
          } else {
            this.log.warn({ source: SOURCE, ...errorFields(err) }, 'Defender assets run failed; the next run reads from the last stored point');
          }
        })
        .finally(() => {
          this.running = null;
          this.schedule(this.config.defender_assets.interval * 1000);
        });
    }, ms);
  }

  /** One run: read, build, commit ops + checkpoint. */
  async runOnce(now = Date.now()): Promise<RunSummary> {
    const cfg = this.config.defender_assets;
    const checkpoint = await this.deps.checkpoints.getCheckpoint(SOURCE);
    let state = (checkpoint?.state ?? {}) as PollerState;
    let resyncedFor = state.resyncedFor;
    if (typeof state.lastRunMs === 'number') {
      const lost = await this.deps.savePointLost();
      if (lost && lost !== state.resyncedFor) {
        this.log.warn({ source: SOURCE, savePoint: lost }, 'CAR no longer holds our save point (reset or rebuilt): importing everything again');
        state = {};
        resyncedFor = lost;
      }
    }
    const initial = typeof state.lastRunMs !== 'number';
    const since = initial ? null : state.lastRunMs! - cfg.overlap * 1000;

    const changed = new Map<string, Machine>();
    for (const m of await this.client.machines(since)) if (m?.id) changed.set(m.id, m);
    const pending = [...new Set([...state.usersPending ?? [], ...state.vulnsPending ?? []])].filter((id) => !changed.has(id));
    if (pending.length) for (const m of await this.client.machinesById(pending)) if (m?.id) changed.set(m.id, m);

    const expired = [...changed.values()].filter((m) => isExpiredInactive(m, now, cfg.inactive_days));
    for (const m of expired) changed.delete(m.id);
    const machines = [...changed.values()];
    /** Machines read only because their CVEs moved: their users were not read this run. */
    const refreshedOnly = new Set<string>();

    // Logon users: bounded calls per run; the rest next run.
    const users = new Map<string, LogonUser[]>();
    const usersPending: string[] = [];
    if (cfg.include_users) {
      let budget = cfg.users_calls_per_run;
      // Machines carried over from an earlier run go first, so no machine waits forever.
      const carried = new Set(pending);
      const order = [...machines].sort((a, b) => Number(carried.has(b.id)) - Number(carried.has(a.id)));
      for (const m of order) {
        if (budget-- <= 0) { usersPending.push(m.id); continue; }
        this.checkStopped();
        const list = await this.optional('logon users', 'User.Read.All', () => this.client.logonUsers(m.id));
        if (list === null) break; // not permitted: accounts stay as CAR has them
        users.set(m.id, list);
      }
    }

    // A missing permission or endpoint leaves that part out (CAR keeps what it has) instead of
    // stopping the machines from flowing.
    let vulnRows: Map<string, MachineVulnerability[]> | null = null;
    const details = new Map<string, Vulnerability>();
    const vulnsPending: string[] = [];
    let vulnDigest = state.vulnDigest;
    if (cfg.include_vulnerabilities) {
      let bulkMissing = false;
      const pairs = await this.optional('TVM vulnerabilities', 'Vulnerability.Read.All', () => this.client.machineVulnerabilities(), (status) => { bulkMissing = status === 404; });
      const known = pairs && await this.optional('TVM vulnerabilities', 'Vulnerability.Read.All', () => this.client.vulnerabilities());
      if (pairs && known) {
        const byMachine = new Map<string, MachineVulnerability[]>();
        for (const row of pairs) {
          if (typeof row?.machineId !== 'string') continue;
          const list = byMachine.get(row.machineId);
          if (list) list.push(row);
          else byMachine.set(row.machineId, [row]);
        }
        for (const v of known) if (v?.id) details.set(v.id, v);
        // As the IBM connector, every machine that is not inactive gets its CVEs refreshed each run,
        // not only those whose lastSeen moved: the bulk listing covers the estate in a few calls, and
        // a machine whose CVE set moved since the last run is read (50 ids a call) and sent again.
        const before = state.vulnDigest ?? {};
        const next: Record<string, string> = {};
        const moved: string[] = [];
        for (const id of new Set([...Object.keys(before), ...byMachine.keys()])) {
          const digest = cveDigest(byMachine.get(id));
          if (digest !== cveDigest([])) next[id] = digest;
          if (!changed.has(id) && (before[id] ?? cveDigest([])) !== digest && !expired.some((m) => m.id === id)) moved.push(id);
        }
        if (!initial && moved.length > 0) {
          for (const m of await this.client.machinesById(moved)) {
            if (!m?.id || changed.has(m.id) || m.healthStatus === 'Inactive') continue;
            changed.set(m.id, m);
            machines.push(m);
            refreshedOnly.add(m.id);
          }
        }
        vulnDigest = next;
        vulnRows = new Map(machines.map((m) => [m.id, byMachine.get(m.id) ?? []]));
      } else if (bulkMissing && machines.length > 0) {
        // No bulk listing here: per-machine calls (50/min) within a run budget, the rest next run.
        vulnRows = new Map();
        let budget = cfg.vulnerabilities_calls_per_run;
        const carried = new Set(state.vulnsPending ?? []);
        for (const m of [...machines].sort((a, b) => Number(carried.has(b.id)) - Number(carried.has(a.id)))) {
          if (budget-- <= 0) { vulnsPending.push(m.id); continue; }
          this.checkStopped();
          const list = await this.optional('machine vulnerabilities', 'Vulnerability.Read.All', () => this.client.vulnerabilitiesOfMachine(m.id));
          if (list === null) break;
          vulnRows.set(m.id, list.filter((v) => v?.id).map((v) => ({ cveId: v.id, machineId: m.id })));
          for (const v of list) if (v?.id) details.set(v.id, v);
        }
      }
    }

    const withoutAddresses = machines.filter((m) => !m.ipAddresses?.length);
    const hunted = cfg.hunting && withoutAddresses.length
      ? await this.optional('advanced hunting', 'AdvancedQuery.Read.All', () => this.huntAddresses(withoutAddresses)) ?? new Map<string, AddressSnapshot[]>()
      : new Map<string, AddressSnapshot[]>();

    const changes: RecordChange[] = [];
    let refreshed = 0;
    const change = <T>(type: string, id: string, op: 'upsert' | 'delete', record: T): RecordChange<T> => ({ kind: 'record', type, id, op, record });
    for (const m of machines) {
      const snapshot = machineSnapshot(m, {
        users: cfg.include_users ? users.get(m.id) ?? null : null,
        // Absent = not read this run (deferred or refused): CAR keeps what it has.
        vulnerabilities: vulnRows?.get(m.id) ?? null,
        vulnerabilityDetails: details,
        hunted: hunted.get(m.id) ?? [],
      });
      changes.push(change(RECORD_TYPES.machine, m.id, 'upsert', snapshot));
      if (refreshedOnly.has(m.id)) refreshed++;
    }

    let alerts = 0;
    let alertsSince = state.alertsSince;
    if (cfg.include_alerts) {
      // Only eq/ne/and/in are safe across Defender's OData implementations (no `or`).
      const filter = alertsSince === undefined ? "status ne 'Resolved'" : `lastUpdateTime ge ${odataDate(alertsSince - cfg.overlap * 1000)}`;
      const read = await this.optional('alerts', 'Alert.Read.All', () => this.client.alerts(filter));
      if (read) alertsSince = now;
      for (const a of read ?? []) {
        const snapshot = alertSnapshot(a);
        if (!snapshot) continue;
        changes.push(change(RECORD_TYPES.machineAlert, a.id, 'upsert', snapshot));
        alerts++;
      }
    }

    // The 15-day rule: machines the sink holds from us that are Inactive and unseen for inactive_days.
    const cutoff = now - cfg.inactive_days * 86_400_000;
    const candidates = new Set<string>();
    for (const m of [...expired, ...await this.client.inactiveMachines(cutoff)]) if (m?.id) candidates.add(m.id);
    const held = await this.deps.held([...candidates]);
    let deleted = 0;
    for (const id of candidates) {
      if (!held.has(id)) continue;
      changes.push(change<MachineGone>(RECORD_TYPES.machine, id, 'delete', { reason: `Inactive and not seen for ${cfg.inactive_days} days` }));
      deleted++;
    }

    changes.push(change<AssetsRunEnd>(RECORD_TYPES.assetsRun, String(now), 'upsert', { runId: String(now) }));
    const next: PollerState = { lastRunMs: now, usersPending, vulnsPending, ...(alertsSince !== undefined ? { alertsSince } : {}),
      ...(resyncedFor !== undefined ? { resyncedFor } : {}), ...(vulnDigest !== undefined ? { vulnDigest } : {}) };
    this.checkStopped();
    const items: IngestItem[] = changes.map((c) => ({ normalised: c, raw: c.record, event: c.type, checkpoint: null, position: c.id }));
    // The run's end carries the checkpoint: stored last, so the run counts only once all of it is stored.
    items[items.length - 1]!.checkpoint = { position: String(now), state: next as Record<string, unknown> };
    await this.deps.ingest.store(items);
    if (items.length > 1) this.metrics?.activity.event(SOURCE);
    const summary = { initial, machines: machines.length, vulnerabilitiesRefreshed: refreshed, deleted, alerts, usersDeferred: usersPending.length };
    this.log.info({ source: SOURCE, ...summary, calls: { ...this.client.calls } }, initial ? 'initial Defender assets import stored' : 'incremental Defender assets run stored');
    return summary;
  }

  /** A part of the run that may be refused (403), absent (404) or not understood (400): logged, skipped. */
  private async optional<T>(what: string, role: string, read: () => Promise<T>, onRefused?: (status: number) => void): Promise<T | null> {
    try {
      return await read();
    } catch (err) {
      if (!(err instanceof DefenderApiError) || ![400, 403, 404].includes(err.status)) throw err;
      onRefused?.(err.status);
      if (err.status === 404 && onRefused) return null; // the caller has a fallback
      this.log.error({ source: SOURCE, what, status: err.status, error: err.message },
        `Defender refused ${what}; grant the application ${role} (WindowsDefenderATP, admin consent). Carrying on without it`);
      return null;
    }
  }

  /** DeviceNetworkInfo for machines whose entity carries no ipAddresses (150 ids per query, paced at 45/min). */
  private async huntAddresses(machines: Machine[]): Promise<Map<string, AddressSnapshot[]>> {
    const out = new Map<string, AddressSnapshot[]>();
    for (let i = 0; i < machines.length; i += HUNT_BATCH) {
      // Defender machine ids are hex; anything else is left out rather than quoted into KQL.
      const ids = machines.slice(i, i + HUNT_BATCH).map((m) => m.id).filter((id) => /^[\w-]+$/.test(id));
      if (ids.length === 0) continue;
      const query = `DeviceNetworkInfo | where Timestamp > ago(30d) | where DeviceId in (${ids.map((id) => `"${id}"`).join(',')}) `
        + '| summarize arg_max(Timestamp, *) by DeviceId, MacAddress | project DeviceId, MacAddress, IPAddresses';
      for (const [id, list] of huntedAddresses(await this.client.hunt(query))) out.set(id, [...(out.get(id) ?? []), ...list]);
    }
    return out;
  }
}
