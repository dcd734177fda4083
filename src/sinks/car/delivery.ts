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
// upserts, repeating is harmless; we never fall back to a full re-import); 401/403/404 wait for a
// fix of the set-up; 400 and job errors split a batch, then dead-letter the one op CAR rejects,
// with its message (a job error alone is retried a few times first: CAR's jobs also fail for
// reasons of its own).
import type { SinkHandler } from '../../core/delivery.js';
import { all, answerOutcome, attemptOf, type Outcome, type Settled } from '../../core/outcome.js';
import type { AlertSnapshot, CarNode, MachineSnapshot } from '../../core/records.js';
import type { OutboxItem } from '../../core/types.js';
import type { HttpResponse } from '../../net/http.js';
import { sleep } from '../../net/sleep.js';
import type { Logger } from '../../observability/logger.js';
import type { Store } from '../../core/store.js';
import { carErrorText, type CarClient, type SourceInfo } from './client.js';
import { assetIdsOf, inFlightState, pages, parseDelivered, planImport, type ImportPlan } from './plan.js';
import { machineKey, MODEL_STATE_KEY, type CarOpPayload } from './route.js';

export interface CarDeliveryOptions {
  source: SourceInfo;
  pageSize: number;
  importTimeoutMs: number;
  /** First wait between import status polls; doubles up to 30 s (the framework: 1, 2, 4 … 60 s). */
  pollBaseMs?: number;
}

/** A lone operation whose import job fails this many times is CAR's refusal, not a hiccup. */
const JOB_FAILURE_ATTEMPTS = 3;

/** One step of a delivery: done, refused by CAR (a job error may be CAR's own hiccup), or an outcome for the core. */
type Step = { kind: 'ok' } | { kind: 'rejected'; reason: string; jobFailed?: boolean } | Outcome;

const CREDENTIALS_FIX = 'check car.api_key/car.password or car.token';

export class CarDelivery implements SinkHandler {
  constructor(
    readonly sink: string,
    readonly batchSize: number,
    private readonly client: CarClient,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly o: CarDeliveryOptions,
  ) {}

  /** Attempts so far of the batch in flight (backoff of its retries). */
  private attempt = 0;

  async deliver(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]> {
    this.attempt = attemptOf(items);
    const kind = (i: OutboxItem) => (i.payload as CarOpPayload | null)?.kind;
    const snapshots = items.filter((i) => i.op === 'upsert' && (kind(i) === 'machine' || kind(i) === 'alert'));
    const deletes = items.filter((i) => i.op === 'delete');
    const states = items.filter((i) => kind(i) === 'model-state');
    const unknown = items.filter((i) => !snapshots.includes(i) && !deletes.includes(i) && !states.includes(i));
    const out = all(unknown, { kind: 'dead', reason: 'not a CAR operation this version understands', code: 'car_rejected' });
    if (snapshots.length) out.push(...await this.deliverSnapshots(snapshots, signal));
    if (deletes.length) out.push(...await this.deleteMachines(deletes, signal));
    // The save point goes alone, once the rest of its batch is settled.
    if (states.length) out.push(...states.length < items.length ? all(states, { kind: 'retry', reason: 'after the rest of its batch', notBefore: Date.now() }) : await this.saveModelStates(states));
    return out;
  }

  // --- machines and alerts ---------------------------------------------------------------------

  private async deliverSnapshots(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]> {
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

    let step = await this.importAll(report, plan.nodes, signal);
    if (step.kind === 'ok') {
      await this.recordInFlight(machines, ids, plan);
      step = await this.importAll(report, plan.edges, signal);
    }
    if (step.kind === 'ok') step = await this.patchEdges(plan, signal);
    if (step.kind === 'rejected') {
      // One bad snapshot fails the whole import: the core splits the batch until it stands alone.
      if (items.length > 1) return all(items, { kind: 'split', reason: step.reason, code: 'car_rejected' });
      if (step.jobFailed && items[0]!.attempts + 1 < JOB_FAILURE_ATTEMPTS) return all(items, { kind: 'retry', reason: step.reason });
      return all(items, { kind: 'dead', reason: step.reason, code: 'car_rejected' });
    }
    if (step.kind !== 'ok') return all(items, step);
    this.log.info({ sink: this.sink, machines: machines.length, alerts: alerts.length, disabledEdges: plan.patches.length }, 'assets imported into CAR');
    return [
      ...machines.map((item): Settled => ({ item, outcome: { kind: 'ack', externalId: JSON.stringify(plan.delivered.get((item.payload as { snapshot: MachineSnapshot }).snapshot.machineId)) } })),
      ...all(alerts, { kind: 'ack', externalId: null }),
    ];
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
  private async importAll(report: CarNode, collections: Record<string, CarNode[]>, signal: AbortSignal): Promise<Step> {
    const jobs: string[] = [];
    for (const page of pages(collections, this.o.pageSize)) {
      const res = await this.client.importData(this.o.source, report, page);
      const id = res.data?.id ?? res.data?.job_id;
      if (res.status >= 200 && res.status < 300 && id) {
        jobs.push(String(id));
        continue;
      }
      return this.verdict(res, 'import');
    }
    return jobs.length ? this.waitForJobs(jobs, signal) : { kind: 'ok' };
  }

  private async waitForJobs(jobs: string[], signal: AbortSignal): Promise<Step> {
    let pending = [...jobs];
    let wait = this.o.pollBaseMs ?? 500;
    const deadline = Date.now() + this.o.importTimeoutMs;
    for (;;) {
      const res = await this.client.importStatus(pending);
      if (!res.parsed) return this.verdict(res, 'import status');
      const failed = res.parsed.errors.filter((e) => pending.includes(e.id));
      if (failed.length) return { kind: 'rejected', reason: `CAR import job failed: ${failed.map((f) => f.error).join('; ')}`, jobFailed: true };
      // As the framework: a job neither incomplete nor in error counts as done (not-found included).
      pending = pending.filter((id) => res.parsed!.incomplete.includes(id));
      if (pending.length === 0) return { kind: 'ok' };
      if (signal.aborted) return { kind: 'retry', reason: 'stopping while CAR imports', notBefore: Date.now() };
      if (Date.now() > deadline) return { kind: 'retry', reason: `import jobs ${pending.join(',')} not complete after ${this.o.importTimeoutMs / 1000}s`, notBefore: Date.now() + 60_000 };
      await sleep(wait, signal);
      wait = Math.min(30_000, wait * 2);
    }
  }

  private async patchEdges(plan: ImportPlan, signal: AbortSignal): Promise<Step> {
    for (const p of plan.patches) {
      if (signal.aborted) return { kind: 'retry', reason: 'stopping while CAR patches edges', notBefore: Date.now() };
      const res = await this.client.patchEdge(p.edge, this.o.source._key, p.from, p.to, p.body);
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

  private async deleteMachines(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]> {
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
    const out: Settled[] = [];
    for (const [index, these] of chunks.entries()) {
      if (signal.aborted) return [...out, ...all(chunks.slice(index).flat(), { kind: 'retry', reason: 'stopping', notBefore: Date.now() })];
      const chunk = these.flatMap(assetsOf);
      const res = await this.client.deleteNodes(this.o.source._key, 'asset', chunk);
      if ((res.status >= 200 && res.status < 300) || res.status === 404) {
        this.log.info({ sink: this.sink, machines: chunk }, 'inactive machines deleted from CAR');
        out.push(...all(these, { kind: 'ack', externalId: null }));
        continue;
      }
      out.push(...all(these, this.outcomeOf(this.verdict(res, 'delete'))));
    }
    return out;
  }

  private async saveModelStates(states: OutboxItem[]): Promise<Settled[]> {
    const out: Settled[] = [];
    for (const item of states) out.push({ item, outcome: await this.saveModelState(item) });
    return out;
  }

  private async saveModelState(item: OutboxItem): Promise<Outcome> {
    const stats = (await this.store.outboxStats(Date.now())).find((s) => s.sink === this.sink);
    // Earlier work of this source is still on its way: the save point must not run ahead of it.
    if ((stats?.pending ?? 0) > 1) return { kind: 'retry', reason: 'waiting for earlier CAR operations', notBefore: Date.now() + 5_000 };
    const id = (item.payload as { modelStateId: string }).modelStateId;
    const res = await this.client.saveModelState(this.o.source._key, id);
    if (res.status >= 200 && res.status < 300) {
      this.log.info({ sink: this.sink, modelStateId: id }, 'CAR save point written');
      // Recorded, so that a CAR that loses it later (reset, rebuilt) can be told from one never written.
      return { kind: 'ack', externalId: id };
    }
    return this.outcomeOf(this.verdict(res, 'save point'));
  }

  // --- outcomes --------------------------------------------------------------------------------

  private verdict(res: HttpResponse, what: string): Step {
    const o = answerOutcome(res, this.attempt, `CAR ${what}: ${carErrorText(res)}`, {
      401: CREDENTIALS_FIX, 403: CREDENTIALS_FIX, 404: 'check car.url (it includes /api/car/v2)',
    });
    return o.kind === 'dead' ? { kind: 'rejected', reason: o.reason } : o;
  }

  private outcomeOf(step: Step): Outcome {
    if (step.kind === 'rejected') return { kind: 'dead', reason: step.reason, code: 'car_rejected' };
    return step.kind === 'ok' ? { kind: 'retry', reason: 'no verdict' } : step;
  }
}
