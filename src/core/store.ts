// The state store, as roles (one interface per concern) that callers depend on one by one; the
// engines (SQLite embedded, PostgreSQL shared) implement them all as `Store`. Async even for
// SQLite so that both engines serve the same callers.
import type { Checkpoint, Claim, CommitUnit, DeadLetter, OutboxItem, SinkOp } from './types.js';

export interface OutboxStats {
  sink: string;
  pending: number;
  due: number;
  oldestEnqueuedAt: number | null;
}

/** One enforcement decision of the guard (audit trail of `threatbridge decisions`). */
export interface GuardDecision {
  at: number;
  sink: string;
  key: string;
  /** Source system whose claim asked for the action (opencti, misp), or "unknown". */
  source: string;
  sourceRef: string | null;
  wanted: string;
  /** What was done: the action sent, "skip", "evict" or "refuse". */
  action: string;
  /** allow | downgrade | skip | breaker | evict | refuse */
  outcome: string;
  reason: string;
  /** An enforcing action on a key the sink did not hold yet (what the breaker counts). */
  fresh: boolean;
}

/** The breaker of one source: open (enforcing actions paused) until `threatbridge resume` sets resumedAt. */
export interface BreakerState {
  source: string;
  trippedAt: number;
  reason: string;
  /** null while open; the breaker counts new Blocks only after the last resume. */
  resumedAt: number | null;
}

/** An object a sink holds for us (sink_ids) with what ranks it under a cap. */
export interface HeldObject {
  key: string;
  externalId: string;
  score: number | null;
  /** ms epoch; null when unknown or never. */
  expiresAt: number | null;
  updatedAt: number;
}

/** The right to be the one reader of a source among replicas. */
export interface SourceLock {
  /** Resolves with the reason when the lock is gone without release (store session lost): stop reading. */
  readonly lost: Promise<string>;
  release(): Promise<void>;
}

/** Where each source resumes. */
export interface CheckpointStore {
  getCheckpoint(source: string): Promise<Checkpoint | null>;
  setCheckpoint(source: string, checkpoint: Checkpoint): Promise<void>;
  /** Forget where a source stopped: its next start begins as a first start. */
  resetCheckpoint(source: string): Promise<boolean>;
}

/** Claims, and the one transaction that stores a batch of source events (claims, operations, dead letters, checkpoint). */
export interface ClaimStore {
  /**
   * Claims on the given keys, plus every claim made by the given source ids or by source ids
   * starting with one of `sourcePrefixes` (a MISP event's attributes), plus every claim on their keys.
   */
  loadClaims(keys: string[], sourceIds: string[], sourcePrefixes?: string[]): Promise<Claim[]>;
  commit(unit: CommitUnit): Promise<void>;
  /** True when a failed commit was refused for the values written (not a store outage): see store/errors.ts. */
  refusedData(err: unknown): boolean;
}

/** Claims an alert may have fired on (Defender alerts → sightings). */
export interface HitLookup extends Pick<ClaimStore, 'loadClaims'> {
  /**
   * Claims whose title (what the sinks were given as the indicator's title) is one of `titles`, at
   * most `limit`: matching a Defender alert of an Audit indicator, which names it only by title.
   */
  claimsByTitle(titles: string[], limit: number): Promise<Claim[]>;
}

/** Every stored claim, page by page (a new tenant's fill). */
export interface ClaimPages {
  /**
   * Every claim of the next `limit` distinct keys after `afterKey` (from the first key when null),
   * in key order: a key's claims are never split across pages; an empty page is the end.
   */
  claimsAfter(afterKey: string | null, limit: number): Promise<Claim[]>;
}

/** Operations waiting for their sink. */
export interface OutboxStore {
  /** Lease up to `limit` due operations of a sink (oldest first); a leased key is not handed out twice. */
  claimDue(sink: string, limit: number, now: number, leaseMs: number): Promise<OutboxItem[]>;
  /** Done: remove the row if it still holds this seq, record or forget the sink id. */
  ack(items: { item: OutboxItem; externalId: string | null }[]): Promise<void>;
  /** Try again later (transient failure). */
  retry(items: OutboxItem[], nextAttemptAt: number, error: string): Promise<void>;
  /** Permanent rejection: move to dead letters with the reason. */
  deadLetter(items: { item: OutboxItem; reason: string }[]): Promise<void>;
  /** Earliest time a not-leased operation of this sink becomes due, or null when none waits. */
  nextDueAt(sink: string): Promise<number | null>;
  /** Put operations back in the outbox unless a newer one for the same key waits. */
  enqueue(ops: SinkOp[]): Promise<number>;
  outboxStats(now: number): Promise<OutboxStats[]>;
}

/** What each sink holds for us: its ids by key, and what ranks them under a cap. */
export interface SinkIdStore {
  getSinkIds(sink: string, keys: string[]): Promise<Map<string, string>>;
  /** Record sink ids ahead of an ack (what a sink may already hold while an operation is still in flight). */
  setSinkIds(sink: string, entries: { key: string; externalId: string }[]): Promise<void>;
  /** How many objects the sink holds for us (known ids). */
  countSinkIds(sink: string): Promise<number>;
  /** Every recorded (key, sink id) of a sink, by key (read-back where the sink API has no query). */
  listSinkIds(sink: string): Promise<{ key: string; externalId: string; updatedAt: number }[]>;
  /** Everything the sink holds for us (its recorded ids) with score and expiry when known. */
  listHeld(sink: string): Promise<HeldObject[]>;
  /** Record (or re-record) objects the sink holds: id in sink_ids plus their rank. */
  putHeld(sink: string, objects: HeldObject[]): Promise<void>;
  /** Forget objects the sink no longer holds (evicted, expired, deleted by hand). */
  dropHeld(sink: string, keys: string[]): Promise<void>;
}

/** What could not be used or delivered, kept for `threatbridge dead-letters` and `replay`. */
export interface DeadLetterStore {
  listDeadLetters(filter?: { sink?: string; includeReplayed?: boolean; limit?: number }): Promise<DeadLetter[]>;
  /** Mark dead letters replayed and hand them back to the caller, which re-queues them. */
  takeDeadLetters(ids: number[] | 'all', sink?: string): Promise<DeadLetter[]>;
  /** Open dead letters counted per sink, and the newest `limit` without their payloads (the status page). */
  deadLetterSummary(limit: number): Promise<DeadLetterSummary>;
}

export interface DeadLetterSummary {
  bySink: { sink: string; count: number }[];
  recent: Omit<DeadLetter, 'payload'>[];
}

/** The guard's audit trail and breakers. */
export interface DecisionLog {
  /** Append only. */
  recordDecisions(decisions: GuardDecision[]): Promise<void>;
  /** Newest first. */
  listDecisions(filter?: { source?: string; since?: number; limit?: number }): Promise<GuardDecision[]>;
  /** Decisions of a source since a time, only `fresh` ones when asked and only these outcomes when given. */
  countDecisions(filter: { source: string; since: number; fresh?: boolean; outcomes?: string[]; sink?: string }): Promise<number>;
  /** Forget decisions older than `before` (retention); returns how many. */
  pruneDecisions(before: number): Promise<number>;
  /** Every source's breaker, open or released. */
  listBreakers(): Promise<BreakerState[]>;
  /** Open a source's breaker (no-op when already open). */
  tripBreaker(state: { source: string; trippedAt: number; reason: string }): Promise<void>;
  /** Release one source, or every open one when null; returns the sources released. */
  resumeBreakers(source: string | null, now?: number): Promise<string[]>;
}

/** One reader per source among replicas. */
export interface SourceLockStore {
  /** Try to become the one active reader of a source (PostgreSQL: session advisory lock; SQLite: one process owns the file). */
  acquireSourceLock(source: string): Promise<SourceLock | null>;
}

/** An engine: every role, plus its lifecycle. */
export interface Store extends CheckpointStore, ClaimStore, ClaimPages, HitLookup, OutboxStore, SinkIdStore, DeadLetterStore, DecisionLog, SourceLockStore {
  readonly engine: 'sqlite' | 'postgres';
  /** Cheap write probe for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
