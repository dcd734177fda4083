// The state store: one async interface, engines behind it (SQLite embedded, PostgreSQL shared).
// Async even for SQLite so that both engines serve the same callers.
import type { IndicatorChange, SinkOp, SourceRef } from '../core/types.js';

export interface Checkpoint {
  position: string;
  /** Source-specific resume state (OpenCTI: {start_from, recover_until}). */
  state: Record<string, unknown>;
}

/** What one source object asserts about one observable key. */
export interface Claim {
  key: string;
  sourceId: string;
  change: IndicatorChange;
  updatedAt: number;
}

export interface DeadLetterInput {
  sink: string;
  key: string;
  op: string;
  payload: unknown;
  sourceRef: SourceRef | null;
  reason: string;
  attempts?: number;
}

export interface DeadLetter extends DeadLetterInput {
  id: number;
  createdAt: number;
  replayedAt: number | null;
}

/** Everything one batch of source events changes, written in one transaction. */
export interface CommitUnit {
  source: string;
  checkpoint: Checkpoint | null;
  claimUpserts: Claim[];
  claimDeletes: { key: string; sourceId: string }[];
  ops: SinkOp[];
  deadLetters: DeadLetterInput[];
}

export interface OutboxItem<P = unknown> extends SinkOp<P> {
  seq: number;
  attempts: number;
  enqueuedAt: number;
}

export interface OutboxStats {
  sink: string;
  pending: number;
  due: number;
  oldestEnqueuedAt: number | null;
}

/** The right to be the one reader of a source among replicas. */
export interface SourceLock {
  /** Resolves with the reason when the lock is gone without release (store session lost): stop reading. */
  readonly lost: Promise<string>;
  release(): Promise<void>;
}

export interface Store {
  readonly engine: 'sqlite' | 'postgres';
  getCheckpoint(source: string): Promise<Checkpoint | null>;
  setCheckpoint(source: string, checkpoint: Checkpoint): Promise<void>;
  /** Forget where a source stopped: its next start begins as a first start. */
  resetCheckpoint(source: string): Promise<boolean>;
  /** Claims on the given keys, plus every claim made by the given source ids. */
  loadClaims(keys: string[], sourceIds: string[]): Promise<Claim[]>;
  commit(unit: CommitUnit): Promise<void>;

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

  getSinkIds(sink: string, keys: string[]): Promise<Map<string, string>>;
  /** How many objects the sink holds for us (known ids). */
  countSinkIds(sink: string): Promise<number>;

  outboxStats(now: number): Promise<OutboxStats[]>;
  listDeadLetters(filter?: { sink?: string; includeReplayed?: boolean; limit?: number }): Promise<DeadLetter[]>;
  /** Mark dead letters replayed and hand them back to the caller, which re-queues them. */
  takeDeadLetters(ids: number[] | 'all', sink?: string): Promise<DeadLetter[]>;
  /** Put operations back in the outbox unless a newer one for the same key waits. */
  enqueue(ops: SinkOp[]): Promise<number>;

  /** Try to become the one active reader of a source (PostgreSQL: session advisory lock; SQLite: one process owns the file). */
  acquireSourceLock(source: string): Promise<SourceLock | null>;

  /** Cheap write probe for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
