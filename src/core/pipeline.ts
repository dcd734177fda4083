// normalise → claims → route → outbox, one store transaction per batch. The source's checkpoint
// is written in the same transaction as the operations its events produced, so a crash replays at
// most the batch that was not committed, and never skips one.
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Checkpoint, DeadLetterInput, Store } from '../store/types.js';
import { ClaimSet, observableKey } from './claims.js';
import type { Router } from './router.js';
import type { NormalisedEvent, SinkOp, SourceRef } from './types.js';
import type { GuardDecision } from '../store/types.js';
import type { TlpPolicy } from '../guard/tlp.js';

export interface IngestItem {
  normalised: NormalisedEvent;
  /** The raw event, kept for the dead-letter table when it cannot be used. */
  raw: unknown;
  /** Event name for logs and metrics (create, update, delete, …). */
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

export class Pipeline {
  constructor(
    private readonly store: Store,
    private readonly router: Router,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** What may leave by TLP, applied before anything is claimed or routed. */
    private readonly tlp: TlpPolicy | null = null,
  ) {}

  async ingest(source: string, input: IngestItem[], now = Date.now()): Promise<BatchResult> {
    const timer = this.metrics.batchSeconds.startTimer({ source });
    const { items, withheld } = this.screenTlp(source, input, now);
    const keys: string[] = [];
    const sourceIds: string[] = [];
    const prefixes: string[] = [];
    for (const { normalised: n } of items) {
      for (const c of n.changes) keys.push(observableKey(c.observable));
      if (n.sourceRef) sourceIds.push(n.sourceRef.id);
      sourceIds.push(...n.alsoRetract);
      if (n.retractGroup) prefixes.push(n.retractGroup.prefix);
    }
    const claims = new ClaimSet(await this.store.loadClaims(keys, sourceIds, prefixes));
    const deadLetters: DeadLetterInput[] = [];
    let checkpoint: Checkpoint | null = null;

    for (const item of items) {
      this.apply(source, item, claims, deadLetters);
      if (item.checkpoint) checkpoint = item.checkpoint;
    }

    const { upserts, deletes } = claims.changes();
    // A removal nobody claims any more is the withdrawing source's: the withdrawal breaker counts it.
    const retractedBy = new Map(deletes.map((d) => [d.key, d.sourceId]));
    const ops: SinkOp[] = [];
    for (const key of claims.touched) {
      const on = claims.claimsOn(key);
      for (const decision of this.router.route(key, on, now)) {
        if (decision.op) ops.push(decision.op.op === 'delete' && !decision.op.sourceRef
          ? { ...decision.op, sourceRef: { system: source as SourceRef['system'], id: retractedBy.get(key) ?? key } } : decision.op);
        if (this.log.isLevelEnabled('debug')) {
          this.log.debug({ source, key, sink: decision.sink, decision: decision.reason, sourceRefs: on.map((c) => c.change.sourceRef.id) }, 'routing decision');
        }
      }
    }
    await this.store.commit({ source, checkpoint, claimUpserts: upserts, claimDeletes: deletes, ops, deadLetters });
    if (withheld.length) await this.store.recordDecisions(withheld);
    for (const op of ops) this.metrics.opsEnqueued.inc({ sink: op.sink, op: op.op });
    timer();
    return { events: items.length, ops, deadLetters: deadLetters.length };
  }

  private screenTlp(source: string, items: IngestItem[], now: number): { items: IngestItem[]; withheld: GuardDecision[] } {
    if (!this.tlp) return { items, withheld: [] };
    const withheld: GuardDecision[] = [];
    const screened = items.map((item) => {
      const r = this.tlp!.screen(item.normalised, source, now);
      for (const d of r.withheld) {
        this.metrics.guardDecisions.inc({ sink: d.sink, source, outcome: d.outcome });
        this.log.warn({ source, key: d.key, sourceRef: d.sourceRef, reason: d.reason }, 'TLP policy: indicator stays home');
      }
      withheld.push(...r.withheld);
      return r.withheld.length ? { ...item, normalised: r.event } : item;
    });
    return { items: screened, withheld };
  }

  private apply(source: string, item: IngestItem, claims: ClaimSet, deadLetters: DeadLetterInput[]): void {
    const n = item.normalised;
    const ref = n.sourceRef?.id;
    // Objects merged into another one assert nothing any more, whatever becomes of the target.
    for (const id of n.alsoRetract) claims.retract(id);
    if (n.retractGroup) {
      const keep = new Set(n.retractGroup.keep);
      for (const id of claims.sourcesWithPrefix(n.retractGroup.prefix, n.retractGroup.onlyClaimedBefore)) if (!keep.has(id)) claims.retract(id);
    }
    for (const s of n.skipped) {
      this.metrics.skipped.inc({ source, reason: s.code });
      this.log.info({ source, event: item.event, position: item.position, sourceRef: ref, reason: s.code, detail: s.detail }, 'observable skipped');
    }
    if (n.rejected) {
      this.metrics.events.inc({ source, event: item.event, outcome: 'dead_letter' });
      this.metrics.deadLettered.inc({ sink: `source:${source}`, reason: n.rejected.code });
      this.log.warn({ source, event: item.event, position: item.position, sourceRef: ref, reason: n.rejected.code, detail: n.rejected.detail },
        'event rejected, kept as dead letter');
      deadLetters.push({
        sink: `source:${source}`, key: ref ?? item.position, op: item.event, payload: item.raw, sourceRef: n.sourceRef,
        reason: `${n.rejected.code}: ${n.rejected.detail}`,
      });
      // A rejected update still means the object no longer asserts what it did.
      if (ref && n.retractAll) claims.retract(ref);
      return;
    }
    if (n.ignored) {
      this.metrics.events.inc({ source, event: item.event, outcome: 'ignored' });
      this.log.debug({ source, event: item.event, position: item.position, sourceRef: ref, reason: n.ignored }, 'event ignored');
      return;
    }
    if (ref) {
      if (n.retractAll) claims.retract(ref);
      else claims.replace(ref, n.changes, Date.now());
    }
    this.metrics.events.inc({ source, event: item.event, outcome: n.retractAll ? 'retracted' : 'applied' });
  }
}
