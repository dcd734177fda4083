// PostgreSQL engine: the shared store for several replicas. Same semantics as the SQLite engine
// (sqlite.ts), plus what sharing needs: migrations under an advisory lock (replicas may start at
// once), outbox leasing with FOR UPDATE SKIP LOCKED (delivery workers run on every replica), leases
// that die with the replica holding them, and one reader per source through a session advisory lock.
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Checkpoint, Claim, CommitUnit, DeadLetter, DeadLetterInput, OutboxItem, SinkOp } from '../core/types.js';
import { refusedData } from './errors.js';
import type { BreakerState, DeadLetterSummary, GuardDecision, HeldObject, OutboxStats, SourceLock, Store } from '../core/store.js';

const SCHEMA_VERSION = 3;

/** Applied in order inside the store's schema; append only. */
const MIGRATIONS: string[] = [
  `CREATE TABLE checkpoints (source TEXT PRIMARY KEY, position TEXT NOT NULL, state JSONB NOT NULL, updated_at BIGINT NOT NULL);
   CREATE TABLE claims (key TEXT NOT NULL, source_id TEXT NOT NULL, change JSONB NOT NULL, updated_at BIGINT NOT NULL,
     PRIMARY KEY (key, source_id));
   CREATE INDEX claims_by_source ON claims (source_id);
   CREATE SEQUENCE outbox_seq;
   CREATE TABLE outbox (sink TEXT NOT NULL, key TEXT NOT NULL, seq BIGINT NOT NULL, op TEXT NOT NULL, payload JSONB NOT NULL,
     source_ref JSONB, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL, lease_until BIGINT,
     lease_pid INTEGER, lease_started BIGINT, last_error TEXT, enqueued_at BIGINT NOT NULL, PRIMARY KEY (sink, key));
   CREATE INDEX outbox_due ON outbox (sink, next_attempt_at, seq);
   CREATE TABLE sink_ids (sink TEXT NOT NULL, key TEXT NOT NULL, external_id TEXT NOT NULL, updated_at BIGINT NOT NULL,
     PRIMARY KEY (sink, key));
   CREATE TABLE dead_letters (id BIGSERIAL PRIMARY KEY, sink TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL,
     payload JSONB NOT NULL, source_ref JSONB, reason TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
     created_at BIGINT NOT NULL, replayed_at BIGINT);
   CREATE INDEX dead_letters_open ON dead_letters (sink, replayed_at);`,
  // Guard (issue 7): enforcement audit trail, per-source breaker, rank of held objects under a cap.
  `CREATE TABLE guard_decisions (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, sink TEXT NOT NULL, key TEXT NOT NULL,
     source TEXT NOT NULL, source_ref TEXT, wanted TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL,
     fresh BOOLEAN NOT NULL DEFAULT false);
   CREATE INDEX guard_decisions_by_source ON guard_decisions (source, at);
   CREATE TABLE guard_breakers (source TEXT PRIMARY KEY, tripped_at BIGINT NOT NULL, reason TEXT NOT NULL, resumed_at BIGINT);
   CREATE TABLE held_rank (sink TEXT NOT NULL, key TEXT NOT NULL, score INTEGER, expires_at BIGINT, PRIMARY KEY (sink, key));`,
  // Set when a row is leased, kept when a newer op replaces it: a delete then knows an unconfirmed send may be out.
  'ALTER TABLE outbox ADD COLUMN unconfirmed_send BOOLEAN NOT NULL DEFAULT false;',
];

export interface PostgresOptions {
  url: string;
  /** Schema holding the tables (created when missing). */
  schema?: string;
  /** How often the holder of a source lock checks that its session is alive. */
  sessionCheckMs?: number;
  poolSize?: number;
}

interface OutboxRow {
  sink: string; key: string; seq: number; op: string; payload: unknown; source_ref: unknown;
  attempts: number; enqueued_at: number; next_attempt_at: number; unconfirmed_send: boolean;
}
interface DeadLetterRow {
  id: number; sink: string; key: string; op: string; payload: unknown; source_ref: unknown;
  reason: string; attempts: number; created_at: number; replayed_at: number | null;
}

// BIGINT columns hold epoch ms and sequence numbers, well inside Number's exact range.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** Stable 64-bit advisory lock key for a name (signed, as PostgreSQL's bigint). */
export function lockKey(name: string): string {
  return createHash('sha256').update(name).digest().readBigInt64BE(0).toString();
}

interface ClaimRow { key: string; source_id: string; change: Claim['change']; updated_at: number }
const toClaim = (row: ClaimRow): Claim => ({ key: row.key, sourceId: row.source_id, change: row.change, updatedAt: Number(row.updated_at) });
const jsonOrNull = (v: unknown) => (v === undefined || v === null ? null : JSON.stringify(v));
const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

function toOutboxItem(r: OutboxRow): OutboxItem {
  return {
    sink: r.sink, key: r.key, seq: r.seq, op: r.op as SinkOp['op'], payload: r.payload,
    sourceRef: (r.source_ref ?? null) as OutboxItem['sourceRef'], attempts: r.attempts, enqueuedAt: r.enqueued_at,
    unconfirmedSend: r.unconfirmed_send,
  };
}

function withoutPayload(r: DeadLetterRow): Omit<DeadLetter, 'payload'> {
  const { payload: _payload, ...rest } = toDeadLetter(r);
  return rest;
}

function toDeadLetter(r: DeadLetterRow): DeadLetter {
  return {
    id: r.id, sink: r.sink, key: r.key, op: r.op, payload: r.payload, sourceRef: (r.source_ref ?? null) as DeadLetter['sourceRef'],
    reason: r.reason, attempts: r.attempts, createdAt: r.created_at, replayedAt: r.replayed_at,
  };
}

/** Last entry per identity wins (a later operation supersedes an earlier one in the same batch). */
function lastBy<T>(items: T[], id: (t: T) => string): T[] {
  const m = new Map<string, T>();
  for (const t of items) { const k = id(t); m.delete(k); m.set(k, t); }
  return [...m.values()];
}

/** Rows locked in one order by every writer, so concurrent transactions do not deadlock. */
const byKey = <T extends { sink: string; key: string }>(a: T, b: T) =>
  a.sink < b.sink ? -1 : a.sink > b.sink ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0;

const RETRYABLE = new Set(['40P01', '40001']); // deadlock_detected, serialization_failure

export class PostgresStore implements Store {
  readonly engine = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly schema: string;
  /** One dedicated session per store: it holds the source locks and names the holder of our leases. */
  private session: { client: pg.Client; pid: number; started: number; locks: Map<string, (why: string) => void>; drop: (why: string) => void } | null = null;
  private sessionOpening: Promise<NonNullable<PostgresStore['session']>> | null = null;
  private sessionTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(private readonly options: PostgresOptions) {
    this.schema = options.schema ?? 'threatbridge';
    this.pool = new pg.Pool({
      connectionString: options.url, max: options.poolSize ?? 5, types,
      options: `-c search_path=${ident(this.schema)}`,
      application_name: 'threatbridge',
    });
    // An idle pooled connection that breaks is dropped by the pool; do not crash on it.
    this.pool.on('error', () => undefined);
  }

  static async open(options: PostgresOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await store.migrate();
      return store;
    } catch (err) {
      await store.pool.end().catch(() => undefined);
      throw err;
    }
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Two replicas starting together: the second waits here and then finds the schema current.
      await client.query('SELECT pg_advisory_xact_lock($1)', [lockKey(`threatbridge:migrate:${this.schema}`)]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident(this.schema)}`);
      await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
      const row = (await client.query<{ version: number }>('SELECT version FROM schema_version')).rows[0];
      const current = row?.version ?? 0;
      if (current > SCHEMA_VERSION) {
        throw new Error(`state store schema ${current} is newer than this version of ThreatBridge (${SCHEMA_VERSION}); upgrade the service`);
      }
      for (let v = current; v < SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v]!);
      await client.query('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
      if (!row) await client.query('INSERT INTO schema_version (version) VALUES ($1)', [SCHEMA_VERSION]);
      else if (current !== SCHEMA_VERSION) await client.query('UPDATE schema_version SET version = $1', [SCHEMA_VERSION]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Runs `fn` in a transaction; retried when PostgreSQL picks it as a deadlock victim. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      try {
        await client.query('BEGIN');
        const out = await fn(client);
        await client.query('COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (attempt < 5 && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
        throw err;
      } finally {
        client.release();
      }
    }
  }

  private async openSession(): Promise<NonNullable<PostgresStore['session']>> {
    if (this.session) return this.session;
    this.sessionOpening ??= (async () => {
      const client = new pg.Client({ connectionString: this.options.url, types, application_name: 'threatbridge-session' });
      await client.connect();
      const r = await client.query<{ pid: number; started: number }>(
        'SELECT pg_backend_pid() AS pid, (extract(epoch FROM backend_start) * 1000)::bigint AS started FROM pg_stat_activity WHERE pid = pg_backend_pid()');
      const lost = (why: string) => {
        if (this.session !== session) return;
        this.session = null;
        for (const notify of session.locks.values()) notify(why);
        session.locks.clear();
        client.end().catch(() => undefined);
      };
      const session = { client, pid: r.rows[0]!.pid, started: r.rows[0]!.started, locks: new Map<string, (why: string) => void>(), drop: lost };
      client.on('error', (err) => lost(`store session failed: ${err.message}`));
      client.on('end', () => lost('store session closed'));
      this.session = session;
      this.sessionTimer ??= setInterval(() => {
        const s = this.session;
        if (s && s.locks.size > 0) {
          s.client.query('SELECT 1').catch((err: Error) => lost(`store session check failed: ${err.message}`));
        }
      }, this.options.sessionCheckMs ?? 5_000);
      this.sessionTimer.unref();
      return session;
    })().finally(() => { this.sessionOpening = null; });
    return this.sessionOpening;
  }

  acquireSourceLock(source: string): Promise<SourceLock | null> {
    return this.tryLock(source, false);
  }

  private async tryLock(source: string, retried: boolean): Promise<SourceLock | null> {
    if (this.closed) return null;
    const session = await this.openSession();
    if (session.locks.has(source)) throw new Error(`source lock ${source} is already held by this store`);
    const key = lockKey(`threatbridge:source:${this.schema}:${source}`);
    let r: pg.QueryResult<{ ok: boolean }>;
    try {
      r = await session.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key]);
    } catch (err) {
      // The session died before we heard of it (killed by an administrator, a network cut): its locks went
      // with it, so drop it and ask once more on a fresh session rather than fail the caller.
      session.drop(`store session failed: ${(err as Error).message}`);
      if (retried) throw err;
      return this.tryLock(source, true);
    }
    if (!r.rows[0]!.ok) return null;
    let notifyLost!: (why: string) => void;
    const lost = new Promise<string>((resolve) => { notifyLost = resolve; });
    session.locks.set(source, notifyLost);
    return {
      lost,
      release: async () => {
        if (session.locks.delete(source) && this.session === session) {
          await session.client.query('SELECT pg_advisory_unlock($1)', [key]).catch(() => undefined);
        }
      },
    };
  }

  async getCheckpoint(source: string): Promise<Checkpoint | null> {
    const r = await this.pool.query<{ position: string; state: Record<string, unknown> }>(
      'SELECT position, state FROM checkpoints WHERE source = $1', [source]);
    const row = r.rows[0];
    return row ? { position: row.position, state: row.state } : null;
  }

  async setCheckpoint(source: string, checkpoint: Checkpoint): Promise<void> {
    await this.writeCheckpoint(this.pool, source, checkpoint);
  }

  async resetCheckpoint(source: string): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM checkpoints WHERE source = $1', [source])).rowCount ?? 0) > 0;
  }

  private async writeCheckpoint(c: pg.Pool | pg.PoolClient, source: string, cp: Checkpoint): Promise<void> {
    await c.query(`INSERT INTO checkpoints (source, position, state, updated_at) VALUES ($1, $2, $3, $4)
      ON CONFLICT (source) DO UPDATE SET position = excluded.position, state = excluded.state, updated_at = excluded.updated_at`,
    [source, cp.position, JSON.stringify(cp.state ?? {}), Date.now()]);
  }

  async loadClaims(keys: string[], sourceIds: string[], sourcePrefixes: string[] = []): Promise<Claim[]> {
    const r = await this.pool.query<ClaimRow>(
      // Every claim on the given keys and on the keys the given sources (or source prefixes) claim,
      // which includes the sources' own claims; one index lookup per key instead of an OR.
      `WITH wanted AS (SELECT unnest($1::text[]) AS key
         UNION SELECT key FROM claims WHERE source_id = ANY($2::text[])
         UNION SELECT c.key FROM claims c JOIN unnest($3::text[]) AS p(prefix) ON starts_with(c.source_id, p.prefix))
       SELECT c.key, c.source_id, c.change, c.updated_at FROM claims c JOIN wanted w ON c.key = w.key`,
      [[...new Set(keys)], [...new Set(sourceIds)], [...new Set(sourcePrefixes)]]);
    return r.rows.map(toClaim);
  }

  async claimsAfter(afterKey: string | null, limit: number): Promise<Claim[]> {
    // Keyset pagination on the primary key (key, source_id): the page's keys first, then their claims.
    const r = await this.pool.query<ClaimRow>(
      `WITH page AS (SELECT DISTINCT key FROM claims ${afterKey === null ? '' : 'WHERE key > $2'} ORDER BY key LIMIT $1)
       SELECT c.key, c.source_id, c.change, c.updated_at FROM page JOIN claims c ON c.key = page.key ORDER BY c.key, c.source_id`,
      afterKey === null ? [limit] : [limit, afterKey]);
    return r.rows.map(toClaim);
  }

  async claimsByTitle(titles: string[], limit: number): Promise<Claim[]> {
    if (titles.length === 0) return [];
    // A scan, but only for CustomTI alerts no evidence value matched (rare).
    const r = await this.pool.query<ClaimRow>(
      `SELECT key, source_id, change, updated_at FROM claims WHERE change->>'title' = ANY($1::text[]) LIMIT $2`, [titles, limit]);
    return r.rows.map(toClaim);
  }

  async commit(unit: CommitUnit): Promise<void> {
    const now = Date.now();
    await this.tx(async (c) => {
      if (unit.claimDeletes.length > 0) {
        await c.query(`DELETE FROM claims c USING unnest($1::text[], $2::text[]) AS d(key, source_id)
          WHERE c.key = d.key AND c.source_id = d.source_id`,
        [unit.claimDeletes.map((d) => d.key), unit.claimDeletes.map((d) => d.sourceId)]);
      }
      const upserts = lastBy(unit.claimUpserts, (u) => `${u.key}\u0000${u.sourceId}`)
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.sourceId < b.sourceId ? -1 : 1));
      if (upserts.length > 0) {
        await c.query(`INSERT INTO claims (key, source_id, change, updated_at)
          SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::bigint[])
          ON CONFLICT (key, source_id) DO UPDATE SET change = excluded.change, updated_at = excluded.updated_at`,
        [upserts.map((u) => u.key), upserts.map((u) => u.sourceId), upserts.map((u) => JSON.stringify(u.change)), upserts.map((u) => u.updatedAt)]);
      }
      if (unit.ops.length > 0) {
        // Sequence numbers in arrival order; then the last op per key, written in lock order.
        const seqs = (await c.query<{ s: number }>('SELECT nextval(\'outbox_seq\') AS s FROM generate_series(1, $1)', [unit.ops.length]))
          .rows.map((r) => r.s).sort((a, b) => a - b);
        const ops = lastBy(unit.ops.map((op, i) => ({ ...op, seq: seqs[i]! })), (o) => `${o.sink}\u0000${o.key}`).sort(byKey);
        // A newer operation supersedes the waiting one; the lease stays so an in-flight older op finishes first.
        await c.query(`INSERT INTO outbox (sink, key, seq, op, payload, source_ref, attempts, next_attempt_at, enqueued_at)
          SELECT sink, key, seq, op, payload, source_ref, 0, $7, $7
          FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::jsonb[], $6::jsonb[]) AS t(sink, key, seq, op, payload, source_ref)
          ON CONFLICT (sink, key) DO UPDATE SET seq = excluded.seq, op = excluded.op, payload = excluded.payload,
            source_ref = excluded.source_ref, attempts = 0, next_attempt_at = excluded.next_attempt_at, last_error = NULL,
            enqueued_at = excluded.enqueued_at`,
        [ops.map((o) => o.sink), ops.map((o) => o.key), ops.map((o) => o.seq), ops.map((o) => o.op),
          ops.map((o) => JSON.stringify(o.stored ?? o.payload ?? null)), ops.map((o) => (o.stored === undefined ? jsonOrNull(o.sourceRef) : null)), now]);
      }
      await this.insertDeadLetters(c, unit.deadLetters, now);
      if (unit.checkpoint) await this.writeCheckpoint(c, unit.source, unit.checkpoint);
    });
  }

  async claimDue(sink: string, limit: number, now: number, leaseMs: number): Promise<OutboxItem[]> {
    const session = await this.openSession();
    // A lease ends at its time, or as soon as the session of the replica that took it is gone (kill -9).
    const r = await this.pool.query<OutboxRow>(`WITH due AS (
        SELECT o.sink, o.key, o.unconfirmed_send AS was_unconfirmed FROM outbox o
        WHERE o.sink = $1 AND o.next_attempt_at <= $2
          AND (o.lease_until IS NULL OR o.lease_until < $2
               OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                              WHERE a.pid = o.lease_pid AND (extract(epoch FROM a.backend_start) * 1000)::bigint = o.lease_started))
        ORDER BY o.next_attempt_at, o.seq LIMIT $3
        FOR UPDATE OF o SKIP LOCKED)
      UPDATE outbox o SET lease_until = $4, lease_pid = $5, lease_started = $6, unconfirmed_send = true FROM due
      WHERE o.sink = due.sink AND o.key = due.key
      RETURNING o.sink, o.key, o.seq, o.op, o.payload, o.source_ref, o.attempts, o.enqueued_at, o.next_attempt_at,
        due.was_unconfirmed AS unconfirmed_send`,
    [sink, now, limit, now + leaseMs, session.pid, session.started]);
    return r.rows.sort((a, b) => a.next_attempt_at - b.next_attempt_at || a.seq - b.seq).map(toOutboxItem);
  }

  /** Frees the lease of rows that hold a newer op than the one handled; returns nothing. */
  private async release(c: pg.PoolClient, items: OutboxItem[]): Promise<void> {
    await c.query(`UPDATE outbox o SET lease_until = NULL, lease_pid = NULL, lease_started = NULL
      FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(sink, key, seq)
      WHERE o.sink = i.sink AND o.key = i.key AND o.seq <> i.seq`,
    [items.map((i) => i.sink), items.map((i) => i.key), items.map((i) => i.seq)]);
  }

  async ack(items: { item: OutboxItem; externalId: string | null }[]): Promise<void> {
    if (items.length === 0) return;
    const now = Date.now();
    const sorted = [...items].sort((a, b) => byKey(a.item, b.item));
    await this.tx(async (c) => {
      const drops = sorted.filter((i) => i.item.op === 'delete').map((i) => i.item);
      const sets = lastBy(sorted.filter((i) => i.item.op !== 'delete' && i.externalId), (i) => `${i.item.sink}\u0000${i.item.key}`);
      if (drops.length > 0) {
        await c.query(`DELETE FROM sink_ids s USING unnest($1::text[], $2::text[]) AS d(sink, key) WHERE s.sink = d.sink AND s.key = d.key`,
          [drops.map((d) => d.sink), drops.map((d) => d.key)]);
      }
      if (sets.length > 0) {
        await c.query(`INSERT INTO sink_ids (sink, key, external_id, updated_at)
          SELECT sink, key, external_id, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS t(sink, key, external_id)
          ON CONFLICT (sink, key) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at`,
        [sets.map((s) => s.item.sink), sets.map((s) => s.item.key), sets.map((s) => s.externalId), now]);
      }
      const handled = sorted.map((i) => i.item);
      await c.query(`DELETE FROM outbox o USING unnest($1::text[], $2::text[], $3::bigint[]) AS i(sink, key, seq)
        WHERE o.sink = i.sink AND o.key = i.key AND o.seq = i.seq`,
      [handled.map((i) => i.sink), handled.map((i) => i.key), handled.map((i) => i.seq)]);
      await this.release(c, handled);
    });
  }

  async retry(items: OutboxItem[], nextAttemptAt: number, error: string): Promise<void> {
    if (items.length === 0) return;
    const sorted = [...items].sort(byKey);
    await this.tx(async (c) => {
      await c.query(`UPDATE outbox o SET attempts = o.attempts + 1, next_attempt_at = $4, lease_until = NULL, lease_pid = NULL,
          lease_started = NULL, last_error = $5
        FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(sink, key, seq)
        WHERE o.sink = i.sink AND o.key = i.key AND o.seq = i.seq`,
      [sorted.map((i) => i.sink), sorted.map((i) => i.key), sorted.map((i) => i.seq), nextAttemptAt, error.slice(0, 2000)]);
      await this.release(c, sorted);
    });
  }

  async deadLetter(items: { item: OutboxItem; reason: string }[]): Promise<void> {
    if (items.length === 0) return;
    const now = Date.now();
    const sorted = [...items].sort((a, b) => byKey(a.item, b.item));
    await this.tx(async (c) => {
      // Only the operation that failed is dead; a newer one for the same key still gets its chance.
      const gone = await c.query<{ sink: string; key: string }>(`DELETE FROM outbox o USING unnest($1::text[], $2::text[], $3::bigint[]) AS i(sink, key, seq)
        WHERE o.sink = i.sink AND o.key = i.key AND o.seq = i.seq RETURNING o.sink, o.key`,
      [sorted.map((i) => i.item.sink), sorted.map((i) => i.item.key), sorted.map((i) => i.item.seq)]);
      const removed = new Set(gone.rows.map((r) => `${r.sink}\u0000${r.key}`));
      await this.insertDeadLetters(c, sorted.filter((i) => removed.has(`${i.item.sink}\u0000${i.item.key}`)).map(({ item, reason }) => ({
        sink: item.sink, key: item.key, op: item.op, payload: item.payload, sourceRef: item.sourceRef, reason, attempts: item.attempts + 1,
      })), now);
      await this.release(c, sorted.map((i) => i.item));
    });
  }

  async nextDueAt(sink: string): Promise<number | null> {
    const r = await this.pool.query<{ t: number | null }>(`SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at
      THEN lease_until ELSE next_attempt_at END) AS t FROM outbox WHERE sink = $1`, [sink]);
    return r.rows[0]?.t ?? null;
  }

  async getSinkIds(sink: string, keys: string[]): Promise<Map<string, string>> {
    const r = await this.pool.query<{ key: string; external_id: string }>(
      'SELECT key, external_id FROM sink_ids WHERE sink = $1 AND key = ANY($2::text[])', [sink, [...new Set(keys)]]);
    return new Map(r.rows.map((row) => [row.key, row.external_id]));
  }

  async setSinkIds(sink: string, entries: { key: string; externalId: string }[]): Promise<void> {
    if (entries.length === 0) return;
    const last = new Map(entries.map((e) => [e.key, e.externalId]));
    await this.pool.query(`INSERT INTO sink_ids (sink, key, external_id, updated_at)
      SELECT $1::text, key, external_id, $4::bigint FROM unnest($2::text[], $3::text[]) AS t(key, external_id)
      ON CONFLICT (sink, key) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at`,
    [sink, [...last.keys()], [...last.values()], Date.now()]);
  }

  async listSinkIds(sink: string): Promise<{ key: string; externalId: string; updatedAt: number }[]> {
    const r = await this.pool.query<{ key: string; external_id: string; updated_at: string }>(
      'SELECT key, external_id, updated_at FROM sink_ids WHERE sink = $1 ORDER BY key', [sink]);
    return r.rows.map((row) => ({ key: row.key, externalId: row.external_id, updatedAt: Number(row.updated_at) }));
  }

  async recordDecisions(decisions: GuardDecision[]): Promise<void> {
    if (decisions.length === 0) return;
    const col = <K extends keyof GuardDecision>(k: K) => decisions.map((d) => d[k]);
    await this.pool.query(`INSERT INTO guard_decisions (at, sink, key, source, source_ref, wanted, action, outcome, reason, fresh)
      SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[])`,
    [col('at'), col('sink'), col('key'), col('source'), col('sourceRef'), col('wanted'), col('action'), col('outcome'),
      decisions.map((d) => d.reason.slice(0, 2000)), col('fresh')]);
  }

  async listDecisions(filter: { source?: string; since?: number; limit?: number } = {}): Promise<GuardDecision[]> {
    const r = await this.pool.query<{ at: string; sink: string; key: string; source: string; source_ref: string | null; wanted: string;
      action: string; outcome: string; reason: string; fresh: boolean }>(
      `SELECT * FROM guard_decisions WHERE ($1::text IS NULL OR source = $1) AND ($2::bigint IS NULL OR at >= $2)
       ORDER BY id DESC LIMIT $3`, [filter.source ?? null, filter.since ?? null, filter.limit ?? 1000]);
    return r.rows.map((d) => ({ at: Number(d.at), sink: d.sink, key: d.key, source: d.source, sourceRef: d.source_ref, wanted: d.wanted,
      action: d.action, outcome: d.outcome, reason: d.reason, fresh: d.fresh }));
  }

  async countDecisions(filter: { source: string; since: number; fresh?: boolean; outcomes?: string[]; sink?: string }): Promise<number> {
    const r = await this.pool.query<{ n: string }>(`SELECT COUNT(*) AS n FROM guard_decisions WHERE source = $1 AND at >= $2
      AND (NOT $3::boolean OR fresh) AND (cardinality($4::text[]) = 0 OR outcome = ANY($4::text[])) AND ($5::text IS NULL OR sink = $5)`,
    [filter.source, filter.since, !!filter.fresh, filter.outcomes ?? [], filter.sink ?? null]);
    return Number(r.rows[0]!.n);
  }

  async pruneDecisions(before: number): Promise<number> {
    return (await this.pool.query('DELETE FROM guard_decisions WHERE at < $1', [before])).rowCount ?? 0;
  }

  async listBreakers(): Promise<BreakerState[]> {
    const r = await this.pool.query<{ source: string; tripped_at: string; reason: string; resumed_at: string | null }>(
      'SELECT source, tripped_at, reason, resumed_at FROM guard_breakers ORDER BY source');
    return r.rows.map((b) => ({ source: b.source, trippedAt: Number(b.tripped_at), reason: b.reason,
      resumedAt: b.resumed_at === null ? null : Number(b.resumed_at) }));
  }

  async tripBreaker(state: { source: string; trippedAt: number; reason: string }): Promise<void> {
    // An open breaker keeps its first trip; a released one trips anew.
    await this.pool.query(`INSERT INTO guard_breakers (source, tripped_at, reason, resumed_at) VALUES ($1, $2, $3, NULL)
      ON CONFLICT (source) DO UPDATE SET tripped_at = excluded.tripped_at, reason = excluded.reason, resumed_at = NULL
      WHERE guard_breakers.resumed_at IS NOT NULL`, [state.source, state.trippedAt, state.reason]);
  }

  async resumeBreakers(source: string | null, now = Date.now()): Promise<string[]> {
    const r = await this.pool.query<{ source: string }>(`UPDATE guard_breakers SET resumed_at = $1
      WHERE resumed_at IS NULL AND ($2::text IS NULL OR source = $2) RETURNING source`, [now, source]);
    return r.rows.map((b) => b.source).sort();
  }

  async listHeld(sink: string): Promise<HeldObject[]> {
    const r = await this.pool.query<{ key: string; external_id: string; updated_at: string; score: number | null; expires_at: string | null }>(
      `SELECT s.key, s.external_id, s.updated_at, h.score, h.expires_at FROM sink_ids s
       LEFT JOIN held_rank h ON h.sink = s.sink AND h.key = s.key WHERE s.sink = $1`, [sink]);
    return r.rows.map((h) => ({ key: h.key, externalId: h.external_id, score: h.score, updatedAt: Number(h.updated_at),
      expiresAt: h.expires_at === null ? null : Number(h.expires_at) }));
  }

  async putHeld(sink: string, objects: HeldObject[]): Promise<void> {
    if (objects.length === 0) return;
    const sorted = [...objects].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    await this.tx(async (c) => {
      await c.query(`INSERT INTO sink_ids (sink, key, external_id, updated_at)
        SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])
        ON CONFLICT (sink, key) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at`,
      [sink, sorted.map((o) => o.key), sorted.map((o) => o.externalId), sorted.map((o) => o.updatedAt)]);
      await c.query(`INSERT INTO held_rank (sink, key, score, expires_at)
        SELECT $1, * FROM unnest($2::text[], $3::integer[], $4::bigint[])
        ON CONFLICT (sink, key) DO UPDATE SET score = excluded.score, expires_at = excluded.expires_at`,
      [sink, sorted.map((o) => o.key), sorted.map((o) => o.score), sorted.map((o) => o.expiresAt)]);
    });
  }

  async dropHeld(sink: string, keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.tx(async (c) => {
      await c.query('DELETE FROM sink_ids WHERE sink = $1 AND key = ANY($2::text[])', [sink, keys]);
      await c.query('DELETE FROM held_rank WHERE sink = $1 AND key = ANY($2::text[])', [sink, keys]);
    });
  }

  async countSinkIds(sink: string): Promise<number> {
    return (await this.pool.query<{ n: number }>('SELECT COUNT(*) AS n FROM sink_ids WHERE sink = $1', [sink])).rows[0]!.n;
  }

  async outboxStats(now: number): Promise<OutboxStats[]> {
    const r = await this.pool.query<{ sink: string; pending: number; due: number; oldest: number | null }>(
      `SELECT sink, COUNT(*) AS pending, COUNT(*) FILTER (WHERE next_attempt_at <= $1) AS due, MIN(enqueued_at) AS oldest
       FROM outbox GROUP BY sink ORDER BY sink`, [now]);
    return r.rows.map((row) => ({ sink: row.sink, pending: row.pending, due: row.due, oldestEnqueuedAt: row.oldest }));
  }

  private async insertDeadLetters(c: pg.PoolClient, items: DeadLetterInput[], now: number): Promise<void> {
    if (items.length === 0) return;
    // WITH ORDINALITY keeps the input order in the ids.
    await c.query(`INSERT INTO dead_letters (sink, key, op, payload, source_ref, reason, attempts, created_at)
      SELECT sink, key, op, payload, source_ref, reason, attempts, $8
      FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[], $7::int[])
        WITH ORDINALITY AS t(sink, key, op, payload, source_ref, reason, attempts, n) ORDER BY n`,
    [items.map((d) => d.sink), items.map((d) => d.key), items.map((d) => d.op), items.map((d) => JSON.stringify(d.payload ?? null)),
      items.map((d) => jsonOrNull(d.sourceRef)), items.map((d) => d.reason.slice(0, 4000)), items.map((d) => d.attempts ?? 0), now]);
  }

  async listDeadLetters(filter: { sink?: string; includeReplayed?: boolean; limit?: number } = {}): Promise<DeadLetter[]> {
    const r = await this.pool.query<DeadLetterRow>(`SELECT * FROM dead_letters
      WHERE ($1::text IS NULL OR sink = $1) AND ($2 OR replayed_at IS NULL) ORDER BY id LIMIT $3`,
    [filter.sink ?? null, filter.includeReplayed ?? false, filter.limit ?? 1000]);
    return r.rows.map(toDeadLetter);
  }

  async deadLetterSummary(limit: number): Promise<DeadLetterSummary> {
    const bySink = await this.pool.query<{ sink: string; count: string }>('SELECT sink, COUNT(*) AS count FROM dead_letters WHERE replayed_at IS NULL GROUP BY sink ORDER BY sink');
    const rows = await this.pool.query<DeadLetterRow>(`SELECT id, sink, key, op, NULL AS payload, source_ref, reason, attempts, created_at, replayed_at
      FROM dead_letters WHERE replayed_at IS NULL ORDER BY id DESC LIMIT $1`, [limit]);
    return { bySink: bySink.rows.map((r) => ({ sink: r.sink, count: Number(r.count) })), recent: rows.rows.map((r) => withoutPayload(r)) };
  }

  async takeDeadLetters(ids: number[] | 'all', sink?: string): Promise<DeadLetter[]> {
    const r = await this.pool.query<DeadLetterRow>(`UPDATE dead_letters SET replayed_at = $3
      WHERE replayed_at IS NULL AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[])) AND ($2::text IS NULL OR sink = $2)
      RETURNING *`, [ids === 'all' ? null : ids, ids === 'all' ? (sink ?? null) : null, Date.now()]);
    return r.rows.sort((a, b) => a.id - b.id).map(toDeadLetter);
  }

  async enqueue(ops: SinkOp[]): Promise<number> {
    if (ops.length === 0) return 0;
    const now = Date.now();
    return this.tx(async (c) => {
      // The first op per key is the one that would be inserted; later ones would find it waiting.
      const first = [...new Map([...ops].reverse().map((o) => [`${o.sink}\u0000${o.key}`, o] as const)).values()].reverse();
      const r = await c.query(`INSERT INTO outbox (sink, key, seq, op, payload, source_ref, attempts, next_attempt_at, enqueued_at)
        SELECT sink, key, nextval('outbox_seq'), op, payload, source_ref, 0, $6, $6
        FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[]) WITH ORDINALITY AS t(sink, key, op, payload, source_ref, n)
        ORDER BY n
        ON CONFLICT (sink, key) DO NOTHING`,
      [first.map((o) => o.sink), first.map((o) => o.key), first.map((o) => o.op), first.map((o) => JSON.stringify(o.stored ?? o.payload ?? null)),
        first.map((o) => (o.stored === undefined ? jsonOrNull(o.sourceRef) : null)), now]);
      return r.rowCount ?? 0;
    });
  }

  refusedData(err: unknown): boolean {
    return refusedData(err);
  }

  async ping(): Promise<void> {
    await this.pool.query(`INSERT INTO meta (key, value) VALUES ('last_ping', $1)
      ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [String(Date.now())]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sessionTimer) clearInterval(this.sessionTimer);
    const s = this.session;
    this.session = null;
    if (s) {
      for (const notify of s.locks.values()) notify('store closed');
      await s.client.end().catch(() => undefined);
    }
    await this.pool.end();
  }
}
