// Drains one sink's outbox: lease due operations, hand them to the sink's delivery, settle the
// outcomes it returns (src/core/outcome.ts) the same way for every sink, repeat. An unexpected
// error puts the batch back with backoff, so work is delayed, never dropped.
import { backoffMs } from '../net/retry.js';
import { sleep } from '../net/sleep.js';
import type { Logger } from '../observability/logger.js';
import { errorFields } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { OutboxStore } from './store.js';
import { all, attemptOf, type Settled } from './outcome.js';
import type { OutboxItem } from './types.js';

export interface SinkHandler {
  readonly sink: string;
  readonly batchSize: number;
  /**
   * Optional first stage, once per leased batch (never again for the halves of a bisected one):
   * what goes on to `deliver`, and what is settled already (the enforcement gate, the cap).
   */
  prepare?(items: OutboxItem[], signal: AbortSignal): Promise<{ send: OutboxItem[]; settled: Settled[] }>;
  /** The sink's calls: an outcome for each item (an item left without one is retried). */
  deliver(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]>;
  /** Resolves when the sink could take a call now (quota); due work is leased only then, so batches fill up. */
  waitForCapacity?(signal: AbortSignal): Promise<void>;
}

/** Retry reasons (net/retry.ts `decide`) that mean the sink did not really answer. */
const UNREACHABLE = /server error \(\d+\)|no answer/;

export interface DeliveryOptions {
  leaseMs?: number;
  idlePollMs?: number;
}

/** How long a sink that refuses our set-up waits before trying again: a minute, growing to 15. */
export function setupWaitMs(attempt: number): number {
  return Math.max(60_000, backoffMs(attempt, { baseMs: 30_000, maxMs: 900_000 }));
}

export class DeliveryWorker {
  private running = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private readonly abort = new AbortController();
  /** Ends a wait for quota or set-up at once on stop (no batch is in flight then). */
  private readonly idleAbort = new AbortController();
  private readonly leaseMs: number;
  private readonly idlePollMs: number;
  /** Nothing is leased before this: the sink refused our set-up. */
  private setupWaitUntil = 0;
  lastError: string | null = null;
  /** What the sink said is wrong with our set-up, until a delivery succeeds again (shown by /readyz). */
  setupProblem: string | null = null;
  /**
   * Handled items whose outcome the store could not record (a full disk, a lost database): their
   * rows stay leased, so they are put back as soon as the store takes writes again instead of
   * waiting out the lease.
   */
  private unrecorded: { items: OutboxItem[]; at: number }[] = [];

  constructor(
    private readonly store: OutboxStore,
    private readonly handler: SinkHandler,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    options: DeliveryOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 10 * 60_000;
    this.idlePollMs = options.idlePollMs ?? 5_000;
  }

  private get sink(): string {
    return this.handler.sink;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** New operations were committed: look now instead of at the next poll. */
  wake(): void {
    this.wakeUp?.();
  }

  /** Stop leasing; give the batch in flight up to `timeoutMs` to finish, then abort it. */
  async stop(timeoutMs: number): Promise<void> {
    this.running = false;
    this.idleAbort.abort();
    this.wake();
    const timer = setTimeout(() => this.abort.abort(), timeoutMs);
    await this.loop;
    clearTimeout(timer);
  }

  /** Deliver everything due now (tests and one-shot runs). Returns the number of operations handled. */
  async drainOnce(): Promise<number> {
    let total = 0;
    for (;;) {
      const items = await this.store.claimDue(this.sink, this.handler.batchSize, Date.now(), this.leaseMs);
      if (items.length === 0) return total;
      total += items.length;
      await this.deliver(items);
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      let items: OutboxItem[] = [];
      try {
        if (this.setupWaitUntil > Date.now()) await sleep(this.setupWaitUntil - Date.now(), this.idleAbort.signal);
        await this.recordLater();
        if (this.handler.waitForCapacity && (await this.store.nextDueAt(this.sink)) !== null) {
          await this.handler.waitForCapacity(this.idleAbort.signal);
        }
        if (!this.running) break;
        items = await this.store.claimDue(this.sink, this.handler.batchSize, Date.now(), this.leaseMs);
      } catch (err) {
        this.log.error({ sink: this.sink, ...errorFields(err) }, 'cannot read the outbox');
      }
      if (items.length > 0) {
        await this.deliver(items);
        continue;
      }
      await this.idle();
    }
  }

  /** One leased batch: prepare, deliver (bisecting what the sink refused whole), settle every outcome. */
  async deliver(items: OutboxItem[]): Promise<void> {
    const signal = this.abort.signal;
    const done = new Set<OutboxItem>();
    try {
      let send = items;
      if (this.handler.prepare) {
        const prepared = await this.handler.prepare(items, signal);
        await this.settle(prepared.settled, done);
        send = prepared.send;
      }
      if (send.length) await this.deliverSplitting(send, signal, done);
      this.lastError = null;
    } catch (err) {
      // A call without an answer (network, timeout), or a bug: what is not settled yet waits.
      this.lastError = (err as Error).message;
      this.metrics.reach.down('sink', this.sink, this.lastError);
      // No token (refused credentials) is the set-up's fault: /readyz shows it until a delivery succeeds.
      if ((err as { code?: unknown }).code === 'token_failed') this.setupProblem = this.lastError;
      const open = items.filter((i) => !done.has(i));
      const after = backoffMs(attemptOf(open));
      this.log.warn({ sink: this.sink, items: open.length, retryInMs: after, ...errorFields(err) }, 'delivery failed; will retry');
      await this.store.retry(open, Date.now() + after, (err as Error).message).catch((e) => {
        this.log.error({ sink: this.sink, items: open.length, ...errorFields(e) }, 'cannot reschedule; the batch is put back once the store takes writes again');
        this.unrecorded.push({ items: open, at: Date.now() });
      });
    }
  }

  /**
   * Puts back what the store could not record before (sent again: at least once, never lost). A
   * batch older than half a lease is left to its lease, which may have ended and been taken anew.
   */
  private async recordLater(): Promise<void> {
    const now = Date.now();
    const items = this.unrecorded.filter((u) => now - u.at < this.leaseMs / 2).flatMap((u) => u.items);
    if (this.unrecorded.length === 0) return;
    try {
      if (items.length) await this.store.retry(items, now, 'outcome not recorded: the store refused the write');
    } catch {
      return; // still refused: the next turn tries again
    }
    this.unrecorded = [];
    if (items.length) this.log.info({ sink: this.sink, items: items.length }, 'the store takes writes again: unrecorded operations put back');
  }

  private async deliverSplitting(items: OutboxItem[], signal: AbortSignal, done: Set<OutboxItem>): Promise<void> {
    const settled = await this.handler.deliver(items, signal);
    const answered = new Set(settled.map((s) => s.item));
    const unanswered = items.filter((i) => !answered.has(i));
    const split = settled.filter((s) => s.outcome.kind === 'split');
    const rest = [...settled.filter((s) => s.outcome.kind !== 'split'), ...all(unanswered, { kind: 'retry', reason: 'no verdict from the delivery' })];
    const first = split[0]?.outcome;
    const reason = first?.kind === 'split' ? first.reason : '';
    const lone = split.length === 1 ? split[0]!.outcome : null;
    if (lone?.kind === 'split') rest.push({ item: split[0]!.item, outcome: { kind: 'dead', reason: lone.reason, ...(lone.code ? { code: lone.code } : {}) } });
    if (split.length > 1 && signal.aborted) rest.push(...all(split.map((s) => s.item), { kind: 'retry', reason: 'stopping', notBefore: Date.now() }));
    await this.settle(rest, done);
    if (split.length <= 1 || signal.aborted) return;
    // One bad item fails the whole call: split until the culprits stand alone.
    const batch = split.map((s) => s.item);
    const mid = Math.ceil(batch.length / 2);
    this.log.info({ sink: this.sink, items: batch.length, error: reason }, 'rejected as a whole; bisecting');
    await this.deliverSplitting(batch.slice(0, mid), signal, done);
    await this.deliverSplitting(batch.slice(mid), signal, done);
  }

  /** Store, count and log the outcomes: the same for every sink. */
  private async settle(settled: Settled[], done: Set<OutboxItem>): Promise<void> {
    if (settled.length === 0) return;
    const now = Date.now();
    const acks: { item: OutboxItem; externalId: string | null }[] = [];
    const dead: { item: OutboxItem; reason: string }[] = [];
    const later = new Map<string, { items: OutboxItem[]; reason: string; notBefore?: number; setup: boolean; logged: boolean; unreachable: boolean }>();
    const counted = new Map<string, number>();
    for (const { item, outcome: o } of settled) {
      if (o.kind === 'ack') {
        acks.push({ item, externalId: o.externalId });
        counted.set(o.counted ?? item.op, (counted.get(o.counted ?? item.op) ?? 0) + 1);
      } else if (o.kind === 'dead' || o.kind === 'split') {
        dead.push({ item, reason: o.reason });
        this.metrics.deadLettered.inc({ sink: this.sink, reason: o.code ?? 'rejected' });
      } else {
        const setup = o.kind === 'wait-for-setup';
        const notBefore = o.kind === 'retry' ? o.notBefore : undefined;
        const logged = o.kind === 'retry' && o.logged === true;
        const unreachable = o.kind === 'retry' && o.unreachable === true;
        const key = `${o.kind}\u0000${o.reason}\u0000${notBefore ?? ''}\u0000${logged}\u0000${unreachable}`;
        const group = later.get(key) ?? { items: [], reason: o.reason, setup, logged, unreachable, ...(notBefore !== undefined ? { notBefore } : {}) };
        group.items.push(item);
        later.set(key, group);
      }
    }
    if (acks.length) {
      await this.store.ack(acks);
      for (const [op, n] of counted) this.metrics.delivered.inc({ sink: this.sink, op }, n);
      this.setupProblem = null;
      this.metrics.reach.up('sink', this.sink);
    }
    if (dead.length) {
      await this.store.deadLetter(dead);
      this.metrics.reach.up('sink', this.sink); // a refusal is an answer
      for (const d of dead) this.log.warn({ sink: this.sink, key: d.item.key, sourceRef: d.item.sourceRef?.id, reason: d.reason }, 'operation rejected, kept as dead letter');
    }
    for (const g of later.values()) {
      const at = g.setup ? now + setupWaitMs(attemptOf(g.items)) : g.notBefore ?? now + backoffMs(attemptOf(g.items));
      await this.store.retry(g.items, at, g.reason);
      const fields = { sink: this.sink, items: g.items.length, keys: g.items.slice(0, 10).map((i) => i.key), retryInMs: at - now, error: g.reason };
      // An outage (5xx, no answer) or a refused set-up makes the sink unreachable; throttling and
      // items waiting their turn do not.
      if (!acks.length && (g.setup || g.unreachable || UNREACHABLE.test(g.reason))) this.metrics.reach.down('sink', this.sink, g.reason);
      if (g.setup) {
        // Not the items' fault: nothing of this sink goes out until then (a fixed set-up and a restart deliver at once).
        this.setupProblem = g.reason;
        this.setupWaitUntil = Math.max(this.setupWaitUntil, at);
        this.log.error(fields, 'the sink refuses our set-up; delivery waits until it is fixed');
      } else if (!g.logged) {
        this.log.warn(fields, 'delivery will retry');
      }
    }
    // Only once stored: a write that fails leaves them to the caller's reschedule.
    for (const s of settled) done.add(s.item);
  }

  private async idle(): Promise<void> {
    let wait = this.idlePollMs;
    try {
      const next = await this.store.nextDueAt(this.sink);
      if (next !== null) wait = Math.min(wait, Math.max(5, next - Date.now()));
    } catch {
      // keep the poll interval
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, wait);
      function done() { clearTimeout(timer); resolve(); }
      this.wakeUp = done;
    });
    this.wakeUp = null;
  }
}
