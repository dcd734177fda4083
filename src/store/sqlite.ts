// SQLite engine (better-sqlite3, WAL, synchronous=FULL): the embedded default store.
// One process owns the file; statements are synchronous and wrapped in promises for the interface.
import Database from 'better-sqlite3';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Checkpoint, Claim, CommitUnit, DeadLetter, DeadLetterInput, OutboxItem, SinkOp } from '../core/types.js';
import { refusedData } from './errors.js';
import type { BreakerState, DeadLetterSummary, GuardDecision, HeldObject, OutboxStats, SourceLock, Store } from '../core/store.js';

const SCHEMA_VERSION = 3;

const MIGRATIONS: string[] = [
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE checkpoints (source TEXT PRIMARY KEY, position TEXT NOT NULL, state TEXT NOT NULL, updated_at INTEGER NOT NULL);
   CREATE TABLE claims (key TEXT NOT NULL, source_id TEXT NOT NULL, change TEXT NOT NULL, updated_at INTEGER NOT NULL,
     PRIMARY KEY (key, source_id));
   CREATE INDEX claims_by_source ON claims (source_id);
   CREATE TABLE outbox (sink TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL,
     source_ref TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL, lease_until INTEGER,
     last_error TEXT, enqueued_at INTEGER NOT NULL, PRIMARY KEY (sink, key));
   CREATE INDEX outbox_due ON outbox (sink, next_attempt_at, seq);
   CREATE TABLE sink_ids (sink TEXT NOT NULL, key TEXT NOT NULL, external_id TEXT NOT NULL, updated_at INTEGER NOT NULL,
     PRIMARY KEY (sink, key));
   CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL,
     payload TEXT NOT NULL, source_ref TEXT, reason TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL, replayed_at INTEGER);
   CREATE INDEX dead_letters_open ON dead_letters (sink, replayed_at);`,
  // Guard (issue 7): enforcement audit trail, per-source breaker, rank of held objects under a cap.
  `CREATE TABLE guard_decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, sink TEXT NOT NULL, key TEXT NOT NULL,
     source TEXT NOT NULL, source_ref TEXT, wanted TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL,
     fresh INTEGER NOT NULL DEFAULT 0);
   CREATE INDEX guard_decisions_by_source ON guard_decisions (source, at);
   CREATE TABLE guard_breakers (source TEXT PRIMARY KEY, tripped_at INTEGER NOT NULL, reason TEXT NOT NULL, resumed_at INTEGER);
   CREATE TABLE held_rank (sink TEXT NOT NULL, key TEXT NOT NULL, score INTEGER, expires_at INTEGER, PRIMARY KEY (sink, key));`,
  // Set when a row is leased, kept when a newer op replaces it: a delete then knows an unconfirmed send may be out.
  'ALTER TABLE outbox ADD COLUMN unconfirmed_send INTEGER NOT NULL DEFAULT 0;',
];

interface OutboxRow {
  sink: string; key: string; seq: number; op: string; payload: string; source_ref: string | null;
  attempts: number; enqueued_at: number; unconfirmed_send: number | boolean;
}
interface DeadLetterRow {
  id: number; sink: string; key: string; op: string; payload: string; source_ref: string | null;
  reason: string; attempts: number; created_at: number; replayed_at: number | null;
}

const json = (v: unknown) => JSON.stringify(v ?? null);

interface ClaimRow { key: string; source_id: string; change: string; updated_at: number }
const toClaim = (r: ClaimRow): Claim => ({ key: r.key, sourceId: r.source_id, change: JSON.parse(r.change), updatedAt: r.updated_at });
/** An operation kept in its stored form names what its source ref is rebuilt from (SinkOp.stored). */
const storedRef = (op: SinkOp): string | null => (op.stored === undefined && op.sourceRef ? json(op.sourceRef) : null);

function toOutboxItem(r: OutboxRow): OutboxItem {
  return {
    sink: r.sink, key: r.key, seq: r.seq, op: r.op as SinkOp['op'], payload: JSON.parse(r.payload),
    sourceRef: r.source_ref ? JSON.parse(r.source_ref) : null, attempts: r.attempts, enqueuedAt: r.enqueued_at,
    unconfirmedSend: Boolean(r.unconfirmed_send),
  };
}

function withoutPayload(r: DeadLetterRow): Omit<DeadLetter, 'payload'> {
  const { payload: _payload, ...rest } = toDeadLetter(r);
  return rest;
}

function toDeadLetter(r: DeadLetterRow): DeadLetter {
  return {
    id: r.id, sink: r.sink, key: r.key, op: r.op, payload: JSON.parse(r.payload),
    sourceRef: r.source_ref ? JSON.parse(r.source_ref) : null, reason: r.reason, attempts: r.attempts,
    createdAt: r.created_at, replayedAt: r.replayed_at,
  };
}

/** SQLite limits bound parameters; chunk IN lists well below it. */
function chunks<T>(items: T[], size = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** `x IN ${IN_JSON}` with one parameter, a JSON array: any length, one compiled statement (the claim lookups of every batch). */
const IN_JSON = '(SELECT value FROM json_each(?))';

/** One process owns a SQLite file, so it is always the reader. */
export async function alwaysGrantedLock(): Promise<SourceLock | null> {
  return { lost: new Promise<string>(() => undefined), release: async () => undefined };
}

export class SqliteStore implements Store {
  readonly engine = 'sqlite' as const;
  private readonly db: Database.Database;
  /** Compiled statements by SQL text: compiling costs more than running a one-row statement. */
  private readonly statements = new Map<string, Database.Statement>();
  private seq: number;

  /**
   * `owner`: the service process, which voids leases a crashed run left behind. CLI commands open
   * the same file beside a running service and must leave its in-flight leases alone.
   */
  constructor(dir: string, fileName = 'threatbridge.db', options: { owner?: boolean } = {}) {
    // Private to the service user: the store holds claims, dead-lettered input and sink ids. Created
    // so (SQLite gives its -wal and -shm files the database file's mode); existing ones keep theirs.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, fileName);
    closeSync(openSync(file, 'a', 0o600));
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    // One service process owns a SQLite store: leases left by a previous (crashed) run are void.
    if (options.owner) this.db.exec('UPDATE outbox SET lease_until = NULL');
    this.seq = (this.sql('SELECT COALESCE(MAX(seq), 0) AS s FROM outbox').get() as { s: number }).s;
  }

  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.db.prepare(text)));
    return statement;
  }

  /**
   * Increasing across processes too (a CLI `replay` beside the running service): time-based
   * (µs-scaled ms), and never below what this process handed out.
   */
  private nextSeq(): number {
    this.seq = Math.max(this.seq + 1, Date.now() * 1000);
    return this.seq;
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const row = this.sql("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
    const current = row ? Number(row.value) : 0;
    if (current > SCHEMA_VERSION) {
      throw new Error(`state store schema ${current} is newer than this version of ThreatBridge (${SCHEMA_VERSION}); upgrade the service`);
    }
    this.db.transaction(() => {
      for (let v = current; v < SCHEMA_VERSION; v++) this.db.exec(MIGRATIONS[v]!);
      this.sql("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .run(String(SCHEMA_VERSION));
    })();
  }

  async getCheckpoint(source: string): Promise<Checkpoint | null> {
    const row = this.sql('SELECT position, state FROM checkpoints WHERE source = ?').get(source) as
      | { position: string; state: string } | undefined;
    return row ? { position: row.position, state: JSON.parse(row.state) } : null;
  }

  async setCheckpoint(source: string, checkpoint: Checkpoint): Promise<void> {
    this.writeCheckpoint(source, checkpoint);
  }

  async resetCheckpoint(source: string): Promise<boolean> {
    return this.sql('DELETE FROM checkpoints WHERE source = ?').run(source).changes > 0;
  }

  private writeCheckpoint(source: string, cp: Checkpoint): void {
    this.sql(`INSERT INTO checkpoints (source, position, state, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(source) DO UPDATE SET position = excluded.position, state = excluded.state, updated_at = excluded.updated_at`)
      .run(source, cp.position, json(cp.state), Date.now());
  }

  async loadClaims(keys: string[], sourceIds: string[], sourcePrefixes: string[] = []): Promise<Claim[]> {
    const found = new Map<string, Claim>();
    const add = (rows: ClaimRow[]) => {
      for (const r of rows) found.set(`${r.key}\u0000${r.source_id}`, toClaim(r));
    };
    // One statement per lookup whatever the batch size: the list travels as one JSON parameter.
    if (sourceIds.length > 0) add(this.sql(`SELECT * FROM claims WHERE source_id IN ${IN_JSON}`).all(JSON.stringify(sourceIds)) as never);
    for (const prefix of new Set(sourcePrefixes)) {
      add(this.sql('SELECT * FROM claims WHERE source_id >= ? AND source_id < ?').all(prefix, `${prefix}\uffff`) as never);
    }
    const wanted = new Set(keys);
    for (const c of found.values()) wanted.add(c.key);
    if (wanted.size > 0) add(this.sql(`SELECT * FROM claims WHERE key IN ${IN_JSON}`).all(JSON.stringify([...wanted])) as never);
    return [...found.values()];
  }

  async claimsAfter(afterKey: string | null, limit: number): Promise<Claim[]> {
    // Keyset pagination on the primary key (key, source_id): the page's keys first, then their claims.
    const rows = this.sql(`WITH page AS (SELECT DISTINCT key FROM claims ${afterKey === null ? '' : 'WHERE key > @afterKey'} ORDER BY key LIMIT @limit)
      SELECT c.* FROM page JOIN claims c ON c.key = page.key ORDER BY c.key, c.source_id`)
      .all(afterKey === null ? { limit } : { afterKey, limit }) as ClaimRow[];
    return rows.map(toClaim);
  }

  async claimsByTitle(titles: string[], limit: number): Promise<Claim[]> {
    if (titles.length === 0) return [];
    // A scan, but only for CustomTI alerts no evidence value matched (rare).
    const rows = this.sql(`SELECT * FROM claims WHERE json_extract(change, '$.title') IN ${IN_JSON} LIMIT ?`)
      .all(JSON.stringify(titles), limit) as ClaimRow[];
    return rows.map(toClaim);
  }

  async commit(unit: CommitUnit): Promise<void> {
    const now = Date.now();
    const upsertClaim = this.sql(`INSERT INTO claims (key, source_id, change, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(key, source_id) DO UPDATE SET change = excluded.change, updated_at = excluded.updated_at`);
    const deleteClaim = this.sql('DELETE FROM claims WHERE key = ? AND source_id = ?');
    // A newer operation supersedes the waiting one; the lease stays so an in-flight older op finishes first.
    const putOp = this.sql(`INSERT INTO outbox (sink, key, seq, op, payload, source_ref, attempts, next_attempt_at, enqueued_at)
      VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)
      ON CONFLICT(sink, key) DO UPDATE SET seq = excluded.seq, op = excluded.op, payload = excluded.payload,
        source_ref = excluded.source_ref, attempts = 0, next_attempt_at = excluded.next_attempt_at, last_error = NULL,
        enqueued_at = excluded.enqueued_at`);
    this.db.transaction(() => {
      for (const c of unit.claimDeletes) deleteClaim.run(c.key, c.sourceId);
      for (const c of unit.claimUpserts) upsertClaim.run(c.key, c.sourceId, json(c.change), c.updatedAt);
      for (const op of unit.ops) {
        putOp.run(op.sink, op.key, this.nextSeq(), op.op, json(op.stored ?? op.payload), storedRef(op), now, now);
      }
      this.insertDeadLetters(unit.deadLetters, now);
      if (unit.checkpoint) this.writeCheckpoint(unit.source, unit.checkpoint);
    })();
  }

  async claimDue(sink: string, limit: number, now: number, leaseMs: number): Promise<OutboxItem[]> {
    return this.db.transaction(() => {
      const rows = this.sql(`SELECT sink, key, seq, op, payload, source_ref, attempts, enqueued_at, unconfirmed_send FROM outbox
        WHERE sink = ? AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)
        ORDER BY next_attempt_at, seq LIMIT ?`).all(sink, now, now, limit) as OutboxRow[];
      const lease = this.sql('UPDATE outbox SET lease_until = ?, unconfirmed_send = 1 WHERE sink = ? AND key = ?');
      for (const r of rows) lease.run(now + leaseMs, r.sink, r.key);
      return rows.map(toOutboxItem);
    })();
  }

  async ack(items: { item: OutboxItem; externalId: string | null }[]): Promise<void> {
    const now = Date.now();
    const done = this.sql('DELETE FROM outbox WHERE sink = ? AND key = ? AND seq = ?');
    const release = this.sql('UPDATE outbox SET lease_until = NULL WHERE sink = ? AND key = ?');
    const setId = this.sql(`INSERT INTO sink_ids (sink, key, external_id, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(sink, key) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at`);
    const dropId = this.sql('DELETE FROM sink_ids WHERE sink = ? AND key = ?');
    this.db.transaction(() => {
      for (const { item, externalId } of items) {
        if (item.op === 'delete') dropId.run(item.sink, item.key);
        else if (externalId) setId.run(item.sink, item.key, externalId, now);
        if (done.run(item.sink, item.key, item.seq).changes === 0) release.run(item.sink, item.key);
      }
    })();
  }

  async setSinkIds(sink: string, entries: { key: string; externalId: string }[]): Promise<void> {
    const now = Date.now();
    const setId = this.sql(`INSERT INTO sink_ids (sink, key, external_id, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(sink, key) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at`);
    this.db.transaction(() => {
      for (const e of entries) setId.run(sink, e.key, e.externalId, now);
    })();
  }

  async retry(items: OutboxItem[], nextAttemptAt: number, error: string): Promise<void> {
    const again = this.sql(`UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, lease_until = NULL, last_error = ?
      WHERE sink = ? AND key = ? AND seq = ?`);
    const release = this.sql('UPDATE outbox SET lease_until = NULL WHERE sink = ? AND key = ?');
    this.db.transaction(() => {
      for (const item of items) {
        if (again.run(nextAttemptAt, error.slice(0, 2000), item.sink, item.key, item.seq).changes === 0) release.run(item.sink, item.key);
      }
    })();
  }

  async deadLetter(items: { item: OutboxItem; reason: string }[]): Promise<void> {
    const now = Date.now();
    const done = this.sql('DELETE FROM outbox WHERE sink = ? AND key = ? AND seq = ?');
    const release = this.sql('UPDATE outbox SET lease_until = NULL WHERE sink = ? AND key = ?');
    this.db.transaction(() => {
      for (const { item, reason } of items) {
        // Only the operation that failed is dead; a newer one for the same key still gets its chance.
        if (done.run(item.sink, item.key, item.seq).changes === 0) {
          release.run(item.sink, item.key);
          continue;
        }
        this.insertDeadLetters([{ sink: item.sink, key: item.key, op: item.op, payload: item.payload, sourceRef: item.sourceRef,
          reason, attempts: item.attempts + 1 }], now);
      }
    })();
  }

  async nextDueAt(sink: string): Promise<number | null> {
    const row = this.sql(`SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at THEN lease_until
      ELSE next_attempt_at END) AS t FROM outbox WHERE sink = ?`).get(sink) as { t: number | null };
    return row.t;
  }

  async getSinkIds(sink: string, keys: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const part of chunks([...new Set(keys)])) {
      const rows = this.db.prepare(`SELECT key, external_id FROM sink_ids WHERE sink = ? AND key IN (${part.map(() => '?').join(',')})`)
        .all(sink, ...part) as { key: string; external_id: string }[];
      for (const r of rows) out.set(r.key, r.external_id);
    }
    return out;
  }

  async countSinkIds(sink: string): Promise<number> {
    return (this.sql('SELECT COUNT(*) AS n FROM sink_ids WHERE sink = ?').get(sink) as { n: number }).n;
  }

  async listSinkIds(sink: string): Promise<{ key: string; externalId: string; updatedAt: number }[]> {
    const rows = this.sql('SELECT key, external_id, updated_at FROM sink_ids WHERE sink = ? ORDER BY key').all(sink) as
      { key: string; external_id: string; updated_at: number }[];
    return rows.map((r) => ({ key: r.key, externalId: r.external_id, updatedAt: r.updated_at }));
  }

  async outboxStats(now: number): Promise<OutboxStats[]> {
    const rows = this.sql(`SELECT sink, COUNT(*) AS pending, SUM(CASE WHEN next_attempt_at <= ? THEN 1 ELSE 0 END) AS due,
      MIN(enqueued_at) AS oldest FROM outbox GROUP BY sink`).all(now) as { sink: string; pending: number; due: number; oldest: number | null }[];
    return rows.map((r) => ({ sink: r.sink, pending: r.pending, due: r.due, oldestEnqueuedAt: r.oldest }));
  }

  private insertDeadLetters(items: DeadLetterInput[], now: number): void {
    if (items.length === 0) return;
    const ins = this.sql(`INSERT INTO dead_letters (sink, key, op, payload, source_ref, reason, attempts, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    for (const d of items) {
      ins.run(d.sink, d.key, d.op, json(d.payload), d.sourceRef ? json(d.sourceRef) : null, d.reason.slice(0, 4000), d.attempts ?? 0, now);
    }
  }

  async listDeadLetters(filter: { sink?: string; includeReplayed?: boolean; limit?: number } = {}): Promise<DeadLetter[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.sink) { where.push('sink = ?'); args.push(filter.sink); }
    if (!filter.includeReplayed) where.push('replayed_at IS NULL');
    const sql = `SELECT * FROM dead_letters ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`;
    return (this.sql(sql).all(...args, filter.limit ?? 1000) as DeadLetterRow[]).map(toDeadLetter);
  }

  async deadLetterSummary(limit: number): Promise<DeadLetterSummary> {
    const bySink = this.sql('SELECT sink, COUNT(*) AS count FROM dead_letters WHERE replayed_at IS NULL GROUP BY sink ORDER BY sink').all() as { sink: string; count: number }[];
    const rows = this.sql(`SELECT id, sink, key, op, 'null' AS payload, source_ref, reason, attempts, created_at, replayed_at FROM dead_letters
      WHERE replayed_at IS NULL ORDER BY id DESC LIMIT ?`).all(limit) as DeadLetterRow[];
    return { bySink: bySink.map((r) => ({ sink: r.sink, count: Number(r.count) })), recent: rows.map((r) => withoutPayload({ ...r, payload: 'null' })) };
  }

  async takeDeadLetters(ids: number[] | 'all', sink?: string): Promise<DeadLetter[]> {
    return this.db.transaction(() => {
      let rows: DeadLetterRow[];
      if (ids === 'all') {
        rows = this.sql(`SELECT * FROM dead_letters WHERE replayed_at IS NULL ${sink ? 'AND sink = ?' : ''} ORDER BY id`)
          .all(...(sink ? [sink] : [])) as DeadLetterRow[];
      } else {
        rows = chunks(ids).flatMap((part) => this.db.prepare(
          `SELECT * FROM dead_letters WHERE replayed_at IS NULL AND id IN (${part.map(() => '?').join(',')}) ORDER BY id`,
        ).all(...part) as DeadLetterRow[]);
      }
      const mark = this.sql('UPDATE dead_letters SET replayed_at = ? WHERE id = ?');
      const now = Date.now();
      for (const r of rows) mark.run(now, r.id);
      return rows.map(toDeadLetter);
    })();
  }

  async enqueue(ops: SinkOp[]): Promise<number> {
    const now = Date.now();
    const ins = this.sql(`INSERT INTO outbox (sink, key, seq, op, payload, source_ref, attempts, next_attempt_at, enqueued_at)
      VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT(sink, key) DO NOTHING`);
    return this.db.transaction(() => {
      let n = 0;
      for (const op of ops) {
        n += ins.run(op.sink, op.key, this.nextSeq(), op.op, json(op.stored ?? op.payload), storedRef(op), now, now).changes;
      }
      return n;
    })();
  }

  async recordDecisions(decisions: GuardDecision[]): Promise<void> {
    const ins = this.sql(`INSERT INTO guard_decisions (at, sink, key, source, source_ref, wanted, action, outcome, reason, fresh)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.db.transaction(() => {
      for (const d of decisions) {
        ins.run(d.at, d.sink, d.key, d.source, d.sourceRef, d.wanted, d.action, d.outcome, d.reason.slice(0, 2000), d.fresh ? 1 : 0);
      }
    })();
  }

  async listDecisions(filter: { source?: string; since?: number; limit?: number } = {}): Promise<GuardDecision[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.source) { where.push('source = ?'); args.push(filter.source); }
    if (filter.since !== undefined) { where.push('at >= ?'); args.push(filter.since); }
    const rows = this.sql(`SELECT * FROM guard_decisions ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY id DESC LIMIT ?`).all(...args, filter.limit ?? 1000) as (Omit<GuardDecision, 'fresh' | 'sourceRef'> & { fresh: number; source_ref: string | null })[];
    return rows.map((r) => ({ at: r.at, sink: r.sink, key: r.key, source: r.source, sourceRef: r.source_ref, wanted: r.wanted,
      action: r.action, outcome: r.outcome, reason: r.reason, fresh: r.fresh === 1 }));
  }

  async countDecisions(filter: { source: string; since: number; fresh?: boolean; outcomes?: string[]; sink?: string }): Promise<number> {
    const outcomes = filter.outcomes ?? [];
    const sql = `SELECT COUNT(*) AS n FROM guard_decisions WHERE source = ? AND at >= ?${filter.fresh ? ' AND fresh = 1' : ''}
      ${filter.sink ? 'AND sink = ?' : ''} ${outcomes.length ? `AND outcome IN (${outcomes.map(() => '?').join(',')})` : ''}`;
    return (this.db.prepare(sql).get(filter.source, filter.since, ...(filter.sink ? [filter.sink] : []), ...outcomes) as { n: number }).n;
  }

  async pruneDecisions(before: number): Promise<number> {
    return this.sql('DELETE FROM guard_decisions WHERE at < ?').run(before).changes;
  }

  async listBreakers(): Promise<BreakerState[]> {
    const rows = this.sql('SELECT source, tripped_at, reason, resumed_at FROM guard_breakers ORDER BY source').all() as
      { source: string; tripped_at: number; reason: string; resumed_at: number | null }[];
    return rows.map((r) => ({ source: r.source, trippedAt: r.tripped_at, reason: r.reason, resumedAt: r.resumed_at }));
  }

  async tripBreaker(state: { source: string; trippedAt: number; reason: string }): Promise<void> {
    // An open breaker keeps its first trip; a released one trips anew.
    this.sql(`INSERT INTO guard_breakers (source, tripped_at, reason, resumed_at) VALUES (?, ?, ?, NULL)
      ON CONFLICT(source) DO UPDATE SET tripped_at = excluded.tripped_at, reason = excluded.reason, resumed_at = NULL
      WHERE guard_breakers.resumed_at IS NOT NULL`).run(state.source, state.trippedAt, state.reason);
  }

  async resumeBreakers(source: string | null, now = Date.now()): Promise<string[]> {
    return this.db.transaction(() => {
      const rows = (source === null
        ? this.sql('SELECT source FROM guard_breakers WHERE resumed_at IS NULL').all()
        : this.sql('SELECT source FROM guard_breakers WHERE resumed_at IS NULL AND source = ?').all(source)) as { source: string }[];
      const release = this.sql('UPDATE guard_breakers SET resumed_at = ? WHERE source = ?');
      for (const r of rows) release.run(now, r.source);
      return rows.map((r) => r.source);
    // IMMEDIATE: a deferred read-then-write beside a busy service fails with "database is locked"
    // at the upgrade (SQLite does not wait there); taking the write lock first waits busy_timeout.
    }).immediate();
  }

  async listHeld(sink: string): Promise<HeldObject[]> {
    const rows = this.sql(`SELECT s.key, s.external_id, s.updated_at, h.score, h.expires_at FROM sink_ids s
      LEFT JOIN held_rank h ON h.sink = s.sink AND h.key = s.key WHERE s.sink = ?`).all(sink) as
      { key: string; external_id: string; updated_at: number; score: number | null; expires_at: number | null }[];
    return rows.map((r) => ({ key: r.key, externalId: r.external_id, score: r.score, expiresAt: r.expires_at, updatedAt: r.updated_at }));
  }

  async putHeld(sink: string, objects: HeldObject[]): Promise<void> {
    const setId = this.sql(`INSERT INTO sink_ids (sink, key, external_id, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(sink, key) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at`);
    const setRank = this.sql(`INSERT INTO held_rank (sink, key, score, expires_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(sink, key) DO UPDATE SET score = excluded.score, expires_at = excluded.expires_at`);
    this.db.transaction(() => {
      for (const o of objects) {
        setId.run(sink, o.key, o.externalId, o.updatedAt);
        setRank.run(sink, o.key, o.score, o.expiresAt);
      }
    })();
  }

  async dropHeld(sink: string, keys: string[]): Promise<void> {
    const dropId = this.sql('DELETE FROM sink_ids WHERE sink = ? AND key = ?');
    const dropRank = this.sql('DELETE FROM held_rank WHERE sink = ? AND key = ?');
    this.db.transaction(() => {
      for (const k of keys) { dropId.run(sink, k); dropRank.run(sink, k); }
    })();
  }

  async acquireSourceLock(): Promise<SourceLock | null> {
    return alwaysGrantedLock();
  }

  refusedData(err: unknown): boolean {
    return refusedData(err);
  }

  async ping(): Promise<void> {
    this.sql("INSERT INTO meta (key, value) VALUES ('last_ping', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
      .run(String(Date.now()));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
