// Delivery policy for CAR. Ordering design: one outbox op per CAR object we own, keyed so that
// superseding is always right:
//   machine:<id>  the machine's complete desired state (asset, hostname, addresses, accounts, CVEs);
//                 a newer snapshot replaces a waiting one. The edges to disable are computed here,
//                 at delivery, against the state CAR last acknowledged for that machine (kept as
//                 the key's sink id), so an edge PATCH can never overtake the import it belongs to
//                 and no superseded snapshot leaves a stale edge active. Within one op: nodes
//                 import → wait → edges import → wait → PATCHes → ack.
//   alert:<id>    the alert as a vulnerability of its machine: active edge, or disabled once resolved.
//   machine:<id> (op delete)  the 15-day inactive rule; it supersedes a waiting snapshot.
//   model-state   the run's save point, written to CAR only when nothing else is pending for CAR,
//                 i.e. after every import of that run and before completed.
// Failures: transport, 429, 5xx and job time-outs retry the same op with backoff (imports are
// upserts, repeating is harmless; we never fall back to a full re-import); 401/403 wait for a
// fix; 400 and job errors bisect a batch, then dead-letter the one op CAR rejects, with its message
// (a job error alone is retried a few times first: CAR's jobs also fail for reasons of its own).
import { backoffMs, decide } from '../../net/retry.js';
import type { SinkHandler } from '../../core/delivery.js';
import { HttpError, type HttpResponse } from '../../net/http.js';
import { errorFields, type Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { OutboxItem, Store } from '../../store/types.js';
import type { AlertSnapshot, CarNode, CarOpPayload, MachineSnapshot } from '../../sources/defender-assets/types.js';
import { carErrorText, type CarClient, type SourceInfo } from './client.js';
import { assetIdsOf, inFlightState, pages, parseDelivered, planImport, type ImportPlan } from './plan.js';

export const MODEL_STATE_KEY = 'model-state';
export const machineKey = (id: string) => `machine:${id}`;
export const alertKey = (id: string) => `alert:${id}`;

export interface CarDeliveryOptions {
  source: SourceInfo;
  pageSize: number;
  importTimeoutMs: number;
  /** First wait between import status polls; doubles up to 30 s (the framework: 1, 2, 4 … 60 s). */
  pollBaseMs?: number;
}

/** A lone operation whose import job fails this many times is CAR's refusal, not a hiccup. */
const JOB_FAILURE_ATTEMPTS = 3;

type Outcome = { kind: 'ok' } | { kind: 'rejected'; reason: string; jobFailed?: boolean } | { kind: 'retry'; reason: string; afterMs: number; level: 'warn' | 'error' };

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

export class CarDelivery implements SinkHandler {
  constructor(
    readonly sink: string,
    readonly batchSize: number,
    private readonly client: CarClient,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly o: CarDeliveryOptions,
  ) {}

  async handle(items: OutboxItem[], signal: AbortSignal): Promise<void> {
    const kind = (i: OutboxItem) => (i.payload as CarOpPayload | null)?.kind;
    const snapshots = items.filter((i) => i.op === 'upsert' && (kind(i) === 'machine' || kind(i) === 'alert'));
    const deletes = items.filter((i) => i.op === 'delete');
    const states = items.filter((i) => kind(i) === 'model-state');
    const unknown = items.filter((i) => !snapshots.includes(i) && !deletes.includes(i) && !states.includes(i));
    if (unknown.length) await this.reject(unknown, 'not a CAR operation this version understands');
    if (snapshots.length) await this.deliverSnapshots(snapshots, signal);
    if (deletes.length) await this.deleteMachines(deletes, signal);
    for (const s of states) await this.saveModelState(s);
  }

  // --- machines and alerts ---------------------------------------------------------------------

  private async deliverSnapshots(items: OutboxItem[], signal: AbortSignal): Promise<void> {
    const machines = items.filter((i) => (i.payload as CarOpPayload).kind === 'machine');
    const alerts = items.filter((i) => (i.payload as CarOpPayload).kind === 'alert');
    const alertSnapshots = alerts.map((a) => (a.payload as { snapshot: AlertSnapshot }).snapshot);
    const ids = await this.store.getSinkIds(this.sink, [...machines.map((m) => m.key), ...alertSnapshots.map((a) => machineKey(a.machineId))]);
    const knownAssets = new Map<string, string>();
    for (const a of alertSnapshots) {
      const d = parseDelivered(ids.get(machineKey(a.machineId)));
      if (d?.a) knownAssets.set(a.machineId, d.a);
    }
    const now = Date.now();
    const plan = planImport(
      machines.map((m) => ({ snapshot: (m.payload as { snapshot: MachineSnapshot }).snapshot, delivered: parseDelivered(ids.get(m.key)) })),
      alertSnapshots,
      { source: this.o.source._key, reportKey: String(now), timestamp: now },
      knownAssets,
    );
    const report: CarNode = { _key: String(now), timestamp: now, type: 'Microsoft Defender for Endpoint', description: 'ThreatBridge: Microsoft Defender for Endpoint assets' };

    let outcome = await this.importAll(report, plan.nodes, signal);
    if (outcome.kind === 'ok') {
      await this.recordInFlight(machines, ids, plan);
      outcome = await this.importAll(report, plan.edges, signal);
    }
    if (outcome.kind === 'ok') outcome = await this.patchEdges(plan, signal);
    if (outcome.kind === 'rejected' && items.length > 1 && !signal.aborted) {
      // One bad snapshot fails the whole import: split until it stands alone.
      const mid = Math.ceil(items.length / 2);
      this.log.info({ sink: this.sink, items: items.length, error: outcome.reason }, 'CAR rejected the import as a whole; bisecting');
      await this.deliverSnapshots(items.slice(0, mid), signal);
      await this.deliverSnapshots(items.slice(mid), signal);
      return;
    }
    if (outcome.kind === 'rejected' && outcome.jobFailed && items[0]!.attempts + 1 < JOB_FAILURE_ATTEMPTS) {
      return this.later(items, { kind: 'retry', reason: outcome.reason, afterMs: -1, level: 'warn' });
    }
    if (outcome.kind === 'rejected') return this.reject(items, outcome.reason);
    if (outcome.kind === 'retry') return this.later(items, outcome);
    await this.store.ack([
      ...machines.map((item) => ({ item, externalId: JSON.stringify(plan.delivered.get((item.payload as { snapshot: MachineSnapshot }).snapshot.machineId)) })),
      ...alerts.map((item) => ({ item, externalId: null })),
    ]);
    this.metrics.delivered.inc({ sink: this.sink, op: 'upsert' }, items.length);
    this.log.info({ sink: this.sink, machines: machines.length, alerts: alerts.length, disabledEdges: plan.patches.length }, 'assets imported into CAR');
  }

  /** Edges about to be imported count as held by CAR from now on, whatever happens to this delivery. */
  private async recordInFlight(machines: OutboxItem[], ids: Map<string, string>, plan: ImportPlan): Promise<void> {
    const entries: { key: string; externalId: string }[] = [];
    for (const m of machines) {
      const now = plan.delivered.get((m.payload as { snapshot: MachineSnapshot }).snapshot.machineId);
      const state = now && inFlightState(parseDelivered(ids.get(m.key)), now);
      if (state) entries.push({ key: m.key, externalId: JSON.stringify(state) });
    }
    if (entries.length) await this.store.setSinkIds(this.sink, entries);
  }

  /** POST /imports page by page, then wait until every job is complete. */
  private async importAll(report: CarNode, collections: Record<string, CarNode[]>, signal: AbortSignal): Promise<Outcome> {
    const jobs: string[] = [];
    for (const page of pages(collections, this.o.pageSize)) {
      const res = await this.send(() => this.client.importData(this.o.source, report, page));
      if ('kind' in res) return res;
      const id = res.data?.id ?? res.data?.job_id;
      if (res.status >= 200 && res.status < 300 && id) {
        jobs.push(String(id));
        continue;
      }
      return this.verdict(res, 'import');
    }
    return jobs.length ? this.waitForJobs(jobs, signal) : { kind: 'ok' };
  }

  private async waitForJobs(jobs: string[], signal: AbortSignal): Promise<Outcome> {
    let pending = [...jobs];
    let wait = this.o.pollBaseMs ?? 500;
    const deadline = Date.now() + this.o.importTimeoutMs;
    for (;;) {
      const res = await this.send(() => this.client.importStatus(pending));
      if ('kind' in res) return res;
      if (!res.parsed) return this.verdict(res, 'import status');
      const failed = res.parsed.errors.filter((e) => pending.includes(e.id));
      if (failed.length) return { kind: 'rejected', reason: `CAR import job failed: ${failed.map((f) => f.error).join('; ')}`, jobFailed: true };
      // As the framework: a job neither incomplete nor in error counts as done (not-found included).
      pending = pending.filter((id) => res.parsed!.incomplete.includes(id));
      if (pending.length === 0) return { kind: 'ok' };
      if (signal.aborted) return { kind: 'retry', reason: 'stopping while CAR imports', afterMs: 0, level: 'warn' };
      if (Date.now() > deadline) return { kind: 'retry', reason: `import jobs ${pending.join(',')} not complete after ${this.o.importTimeoutMs / 1000}s`, afterMs: 60_000, level: 'warn' };
      await sleep(wait, signal);
      wait = Math.min(30_000, wait * 2);
    }
  }

  private async patchEdges(plan: ImportPlan, signal: AbortSignal): Promise<Outcome> {
    for (const p of plan.patches) {
      if (signal.aborted) return { kind: 'retry', reason: 'stopping while CAR patches edges', afterMs: 0, level: 'warn' };
      const res = await this.send(() => this.client.patchEdge(p.edge, this.o.source._key, p.from, p.to, p.body));
      if ('kind' in res) return res;
      if (res.status >= 200 && res.status < 300) continue;
      if (res.status === 404) {
        this.log.debug({ sink: this.sink, edge: p.edge, from: p.from, to: p.to }, 'edge to disable is not in CAR; nothing to do');
        continue;
      }
      const v = this.verdict(res, `PATCH ${p.edge}`);
      if (v.kind === 'rejected') {
        // A PATCH CAR refuses must not hold back the machine's import; say so and go on.
        this.log.warn({ sink: this.sink, edge: p.edge, from: p.from, to: p.to, reason: v.reason }, 'CAR refused to disable an edge');
        continue;
      }
      return v;
    }
    return { kind: 'ok' };
  }

  // --- deletes and the save point --------------------------------------------------------------

  private async deleteMachines(items: OutboxItem[], signal: AbortSignal): Promise<void> {
    // Every asset the machine has had in CAR (a hostname change made a new one).
    const known = await this.store.getSinkIds(this.sink, items.map((i) => i.key));
    const assetsOf = (i: OutboxItem) => assetIdsOf((i.payload as { machineId: string }).machineId, parseDelivered(known.get(i.key)));
    // The framework pages ids at about 1,800 characters of query string.
    const chunks: OutboxItem[][] = [[]];
    let length = 0;
    for (const item of items) {
      const size = assetsOf(item).join(',').length + 1;
      if (chunks.at(-1)!.length && length + size > 1800) { chunks.push([]); length = 0; }
      chunks.at(-1)!.push(item);
      length += size;
    }
    for (const these of chunks) {
      if (signal.aborted) return this.later(items, { kind: 'retry', reason: 'stopping', afterMs: 0, level: 'warn' });
      const chunk = these.flatMap(assetsOf);
      const res = await this.send(() => this.client.deleteNodes(this.o.source._key, 'asset', chunk));
      if ('kind' in res) return this.later(items, res);
      if ((res.status >= 200 && res.status < 300) || res.status === 404) {
        await this.store.ack(these.map((item) => ({ item, externalId: null })));
        this.metrics.delivered.inc({ sink: this.sink, op: 'delete' }, these.length);
        this.log.info({ sink: this.sink, machines: chunk }, 'inactive machines deleted from CAR');
        continue;
      }
      const v = this.verdict(res, 'delete');
      if (v.kind === 'rejected') await this.reject(these, v.reason);
      else if (v.kind === 'retry') await this.later(these, v);
    }
  }

  private async saveModelState(item: OutboxItem): Promise<void> {
    const stats = (await this.store.outboxStats(Date.now())).find((s) => s.sink === this.sink);
    if ((stats?.pending ?? 0) > 1) {
      // Earlier work of this source is still on its way: the save point must not run ahead of it.
      await this.store.retry([item], Date.now() + 5_000, 'waiting for earlier CAR operations');
      return;
    }
    const id = (item.payload as { modelStateId: string }).modelStateId;
    const res = await this.send(() => this.client.saveModelState(this.o.source._key, id));
    if ('kind' in res) return this.later([item], res);
    if (res.status >= 200 && res.status < 300) {
      // Recorded, so that a CAR that loses it later (reset, rebuilt) can be told from one never written.
      await this.store.ack([{ item, externalId: id }]);
      this.log.info({ sink: this.sink, modelStateId: id }, 'CAR save point written');
      return;
    }
    const v = this.verdict(res, 'save point');
    if (v.kind === 'rejected') await this.reject([item], v.reason);
    else if (v.kind === 'retry') await this.later([item], v);
  }

  // --- outcomes --------------------------------------------------------------------------------

  private async send<R extends HttpResponse>(call: () => Promise<R>): Promise<R | Outcome> {
    try {
      return await call();
    } catch (err) {
      const level = err instanceof HttpError ? 'warn' : 'error';
      this.log[level]({ sink: this.sink, ...errorFields(err) }, 'CAR call failed');
      return { kind: 'retry', reason: (err as Error).message, afterMs: -1, level };
    }
  }

  private verdict(res: HttpResponse, what: string): Outcome {
    const text = carErrorText(res);
    const d = decide(res.status, res.headers, 0);
    if (d.kind === 'retry') return { kind: 'retry', reason: `CAR ${what}: ${d.reason}: ${text}`, afterMs: d.throttled ? d.afterMs : -1, level: 'warn' };
    if (d.kind === 'reauth' || res.status === 403 || res.status === 404) {
      const hint = res.status === 404 ? 'check car.url (it includes /api/car/v2)' : 'check car.api_key/car.password or car.token';
      return { kind: 'retry', reason: `CAR ${what} refused (${res.status}): ${text}; ${hint}`, afterMs: -2, level: 'error' };
    }
    return { kind: 'rejected', reason: `CAR ${what} rejected (${res.status}): ${text}` };
  }

  private async later(items: OutboxItem[], o: Outcome): Promise<void> {
    if (o.kind !== 'retry') return;
    const attempt = items.reduce((m, i) => Math.max(m, i.attempts), 0);
    const after = o.afterMs >= 0 ? o.afterMs : o.afterMs === -2 ? Math.max(60_000, backoffMs(attempt, { baseMs: 30_000, maxMs: 900_000 })) : backoffMs(attempt);
    this.log[o.level]({ sink: this.sink, keys: items.map((i) => i.key).slice(0, 10), items: items.length, retryInMs: after, error: o.reason }, 'CAR delivery will retry');
    await this.store.retry(items, Date.now() + after, o.reason);
  }

  private async reject(items: OutboxItem[], reason: string): Promise<void> {
    await this.store.deadLetter(items.map((item) => ({ item, reason })));
    this.metrics.deadLettered.inc({ sink: this.sink, reason: 'car_rejected' }, items.length);
    this.log.warn({ sink: this.sink, keys: items.map((i) => i.key).slice(0, 20), reason }, 'CAR rejected the operation; kept as dead letter');
  }
}
