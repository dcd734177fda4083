// The one ingest path of every source: change → (claims →) route → outbox, one store transaction
// per batch. The source's checkpoint is written in the same transaction as the operations its
// events produced, so a crash replays at most the batch that was not committed, and never skips one.
//
// One event cannot hold the others: an event whose normalising, routing or mapping throws, or
// whose rows the store refuses, is found by splitting the batch in halves and becomes one dead
// letter; the rest of the batch commits. Only a failure of the store itself propagates (the ingest
// loop then holds the source and retries).
import type { Logger } from '../observability/logger.js';
import { LabelTally, type Metrics } from '../observability/metrics.js';
import type { ClaimStore, DecisionLog, GuardDecision } from './store.js';
import { ClaimSet, observableKey } from './claims.js';
import { cutJson } from './raw-copy.js';
import type { Router } from './router.js';
import { isRecordChange, type Checkpoint, type CommitUnit, type DeadLetterInput, type NormalisedEvent, type SinkOp, type SourceChange, type SourceRef } from './types.js';

export interface IngestItem {
  normalised: SourceChange;
  /** The raw event, kept (bounded) in the dead-letter table when it cannot be used. */
  raw: unknown;
  /** Event name for logs and metrics (create, update, delete, alert, machine…). */
  event: string;
  /** Where to resume once this item is stored; null when it is not a safe resume point. */
  checkpoint: Checkpoint | null;
  /** Position for logs and dead-letter keys. */
  position: string;
}

export interface BatchResult {
  events: number;
  ops: SinkOp[];
  deadLetters: number;
}

/** An event the source could not make sense of: dead-lettered with its raw form, nothing else happens. */
export function rejectedEvent(code: string, detail: string): NormalisedEvent {
  return { sourceRef: null, changes: [], retractAll: false, alsoRetract: [], skipped: [], rejected: { code, detail }, ignored: null };
}

/** Nothing to do, on purpose: an item that only carries a checkpoint (the end of a poll, a heartbeat). */
export function ignoredEvent(reason: string): NormalisedEvent {
  return { sourceRef: null, changes: [], retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: reason };
}

/**
 * Runs a source's normaliser; a throw is that event's fault and becomes a rejection (shaped by
 * `asResult` when the normaliser returns more than one change), never an escape.
 */
export function normaliseSafely<T = SourceChange>(normalise: () => T, asResult: (rejection: NormalisedEvent) => T = (r) => r as T): T {
  try {
    return normalise();
  } catch (err) {
    return asResult(rejectedEvent('normalise_failed', messageOf(err)));
  }
}

/** A listener (SSE, ZeroMQ, timer) that cannot throw into its emitter: what escapes is logged. */
export function safeListener<A extends unknown[]>(log: Logger, source: string, listener: (...args: A) => void): (...args: A) => void {
  return (...args) => {
    try {
      listener(...args);
    } catch (err) {
      log.error({ source, error: messageOf(err) }, 'a source listener failed; the event it was handling is skipped');
    }
  };
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 1000);

/** What applying one item did, reported (logs, metrics) once its batch is stored. */
type Outcome = 'applied' | 'retracted' | 'ignored' | 'dead_letter';

interface Built {
  unit: CommitUnit;
  outcomes: Outcome[];
  /** Indicators a screen kept home (TLP policy), recorded in the decision log once the batch is stored. */
  withheld: GuardDecision[];
}

/** A policy applied to every indicator event before anything is claimed or routed (the TLP policy). */
export interface ChangeScreen {
  screen(event: NormalisedEvent, source: string, now: number): { event: NormalisedEvent; withheld: GuardDecision[] };
}

export interface PipelineOptions {
  /** How much of an event a dead letter keeps (`limits.raw_copy_bytes`). */
  rawCopyBytes?: number;
  /** What may leave (TLP policy); nothing is screened without one. */
  screen?: ChangeScreen | null;
  /** Where the screen's decisions are recorded (`threatbridge decisions`). */
  decisions?: DecisionLog | null;
}

export class Pipeline {
  constructor(
    private readonly store: ClaimStore,
    private readonly router: Router,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    options: PipelineOptions = {},
  ) {
    this.rawCopyBytes = options.rawCopyBytes ?? 1024 * 1024;
    this.screen = options.screen ?? null;
    this.decisions = options.decisions ?? null;
  }

  private readonly rawCopyBytes: number;
  private readonly screen: ChangeScreen | null;
  private readonly decisions: DecisionLog | null;

  async ingest(source: string, items: IngestItem[], now = Date.now()): Promise<BatchResult> {
    const timer = this.metrics.batchSeconds.startTimer({ source });
    const result = await this.settle(source, items, now);
    timer();
    return result;
  }

  /** Stores `items`, splitting them around an event that throws or that the store refuses. */
  private async settle(source: string, items: IngestItem[], now: number): Promise<BatchResult> {
    if (items.length === 0) return { events: 0, ops: [], deadLetters: 0 };
    const claims = await this.loadClaims(items);
    let built: Built;
    try {
      built = this.build(source, items, claims, now);
    } catch (err) {
      return this.split(source, items, now, 'route', err);
    }
    try {
      await this.store.commit(built.unit);
    } catch (err) {
      if (!this.store.refusedData(err)) throw err; // the store itself failed: hold everything
      return this.split(source, items, now, 'store', err);
    }
    this.report(source, items, built);
    if (built.withheld.length > 0) await this.decisions?.recordDecisions(built.withheld);
    return { events: items.length, ops: built.unit.ops, deadLetters: built.unit.deadLetters.length };
  }

  private async split(source: string, items: IngestItem[], now: number, stage: 'route' | 'store', err: unknown): Promise<BatchResult> {
    if (items.length === 1) return this.poison(source, items[0]!, stage, err);
    const mid = items.length >> 1;
    const a = await this.settle(source, items.slice(0, mid), now);
    const b = await this.settle(source, items.slice(mid), now);
    return { events: a.events + b.events, ops: [...a.ops, ...b.ops], deadLetters: a.deadLetters + b.deadLetters };
  }

  /** The one event a batch failed on: a dead letter with the error and a bounded copy of the event. */
  private async poison(source: string, item: IngestItem, stage: 'route' | 'store', err: unknown): Promise<BatchResult> {
    const n = item.normalised;
    const sourceRef = isRecordChange(n) ? null : n.sourceRef;
    const reason = `${stage === 'route' ? 'processing_failed' : 'store_refused'}: ${messageOf(err)}`;
    await this.store.commit({
      source, checkpoint: item.checkpoint, claimUpserts: [], claimDeletes: [], ops: [],
      deadLetters: [{ sink: `source:${source}`, key: keyOf(item), op: item.event, payload: cutJson(item.raw, this.rawCopyBytes), sourceRef, reason }],
    });
    this.metrics.events.inc({ source, event: item.event, outcome: 'dead_letter' });
    this.metrics.deadLettered.inc({ sink: `source:${source}`, reason: stage === 'route' ? 'processing_failed' : 'store_refused' });
    this.log.error({ source, event: item.event, position: item.position, sourceRef: sourceRef?.id, reason },
      'one event could not be processed; kept as dead letter, the rest of its batch goes on');
    return { events: 1, ops: [], deadLetters: 1 };
  }

  private async loadClaims(items: IngestItem[]): Promise<ClaimSet> {
    const keys: string[] = [];
    const sourceIds: string[] = [];
    const prefixes: string[] = [];
    for (const { normalised: n } of items) {
      if (isRecordChange(n)) continue;
      for (const c of n.changes) keys.push(observableKey(c.observable));
      if (n.sourceRef) sourceIds.push(n.sourceRef.id);
      sourceIds.push(...n.alsoRetract);
      if (n.retractGroup) prefixes.push(n.retractGroup.prefix);
    }
    if (keys.length === 0 && sourceIds.length === 0 && prefixes.length === 0) return new ClaimSet([]);
    return new ClaimSet(await this.store.loadClaims(keys, sourceIds, prefixes));
  }

  /** Pure: the commit unit of a batch. Throws when an event cannot be processed (the caller splits). */
  private build(source: string, items: IngestItem[], claims: ClaimSet, now: number): Built {
    const deadLetters: DeadLetterInput[] = [];
    const ops: SinkOp[] = [];
    const outcomes: Outcome[] = [];
    const withheld: GuardDecision[] = [];
    let checkpoint: Checkpoint | null = null;
    for (const item of items) {
      const n = item.normalised;
      if (isRecordChange(n)) {
        ops.push(...this.router.routeRecord(n, now));
        outcomes.push('applied');
      } else {
        let event = n;
        if (this.screen) {
          const screened = this.screen.screen(n, source, now);
          withheld.push(...screened.withheld);
          event = screened.event;
        }
        outcomes.push(this.apply(source, item, event, claims, deadLetters));
      }
      if (item.checkpoint) checkpoint = item.checkpoint;
    }
    const { upserts, deletes } = claims.changes();
    // A removal nobody claims any more is the withdrawing source's: the withdrawal breaker counts it.
    const retractedBy = new Map(deletes.map((d) => [d.key, d.sourceId]));
    const debug = this.log.isLevelEnabled('debug');
    for (const key of claims.touched) {
      const on = claims.claimsOn(key);
      for (const decision of this.router.route(key, on, now)) {
        if (decision.op) ops.push(decision.op.op === 'delete' && !decision.op.sourceRef
          ? { ...decision.op, sourceRef: { system: source as SourceRef['system'], id: retractedBy.get(key) ?? key } } : decision.op);
        if (debug) {
          this.log.debug({ source, key, sink: decision.sink, decision: decision.reason, sourceRefs: on.map((c) => c.change.sourceRef.id) }, 'routing decision');
        }
      }
    }
    return { unit: { source, checkpoint, claimUpserts: upserts, claimDeletes: deletes, ops, deadLetters }, outcomes, withheld };
  }

  private apply(source: string, item: IngestItem, n: NormalisedEvent, claims: ClaimSet, deadLetters: DeadLetterInput[]): Outcome {
    const ref = n.sourceRef?.id;
    // Objects merged into another one assert nothing any more, whatever becomes of the target.
    for (const id of n.alsoRetract) claims.retract(id);
    if (n.retractGroup) {
      const keep = new Set(n.retractGroup.keep);
      for (const id of claims.sourcesWithPrefix(n.retractGroup.prefix, n.retractGroup.onlyClaimedBefore)) if (!keep.has(id)) claims.retract(id);
    }
    if (n.rejected) {
      deadLetters.push({
        sink: `source:${source}`, key: keyOf(item), op: item.event, payload: cutJson(item.raw, this.rawCopyBytes), sourceRef: n.sourceRef,
        reason: `${n.rejected.code}: ${n.rejected.detail}`,
      });
      // A rejected update still means the object no longer asserts what it did.
      if (ref && n.retractAll) claims.retract(ref);
      return 'dead_letter';
    }
    if (n.ignored) return 'ignored';
    if (ref) {
      if (n.retractAll) claims.retract(ref);
      else claims.replace(ref, n.changes, Date.now());
    }
    return n.retractAll ? 'retracted' : 'applied';
  }

  /** Logs and metrics of a stored batch (after the commit, so a split batch does not count twice). */
  private report(source: string, items: IngestItem[], built: Built): void {
    const events = new LabelTally<'source' | 'event' | 'outcome'>(['source', 'event', 'outcome']);
    const skipped = new LabelTally<'source' | 'reason'>(['source', 'reason']);
    const debug = this.log.isLevelEnabled('debug');
    items.forEach((item, i) => {
      const outcome = built.outcomes[i]!;
      const n = item.normalised;
      events.add({ source, event: item.event, outcome });
      if (isRecordChange(n)) return;
      const ref = n.sourceRef?.id;
      // Skip reasons at debug, one line per decision (issue 16); the metrics count them all.
      for (const s of n.skipped) {
        skipped.add({ source, reason: s.code });
        if (debug) this.log.debug({ source, event: item.event, position: item.position, sourceRef: ref, reason: s.code, detail: s.detail }, 'observable skipped');
      }
      if (debug && n.withdrawn && outcome !== 'dead_letter') {
        this.log.debug({ source, event: item.event, position: item.position, sourceRef: ref, reason: n.withdrawn }, 'nothing asserted');
      }
      if (outcome === 'dead_letter' && n.rejected) {
        this.metrics.deadLettered.inc({ sink: `source:${source}`, reason: n.rejected.code });
        this.log.warn({ source, event: item.event, position: item.position, sourceRef: ref, reason: n.rejected.code, detail: n.rejected.detail },
          'event rejected, kept as dead letter');
      } else if (outcome === 'ignored' && this.log.isLevelEnabled('trace')) {
        // Heartbeats, identities, markings, "poll done": noise except when tracing.
        this.log.trace({ source, event: item.event, position: item.position, sourceRef: ref, reason: n.ignored }, 'event ignored');
      }
    });
    events.addTo(this.metrics.events);
    skipped.addTo(this.metrics.skipped);
    const enqueued = new LabelTally<'sink' | 'op'>(['sink', 'op']);
    for (const op of built.unit.ops) enqueued.add({ sink: op.sink, op: op.op });
    enqueued.addTo(this.metrics.opsEnqueued);
    for (const d of built.withheld) {
      this.metrics.guardDecisions.inc({ sink: d.sink, source, outcome: d.outcome });
      this.log.debug({ source, key: d.key, sourceRef: d.sourceRef, reason: d.reason }, 'TLP policy: indicator stays home');
    }
  }
}

/** Dead-letter key of an item: its source object or record id, else its position. */
function keyOf(item: IngestItem): string {
  const n = item.normalised;
  return (isRecordChange(n) ? n.id : n.sourceRef?.id) ?? item.position;
}
