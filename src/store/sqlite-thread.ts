// The SQLite store on its own thread: the service's SqliteStore runs in a worker, so its b-tree
// work, JSON and fsyncs no longer block the event loop (stream reading, /healthz, delivery) and the
// next events are normalised while the previous batch is stored. Every call is a message
// {id, method, args} answered by {id, result} or {id, error}; one worker takes them in the order
// made, so the effects are those of the in-thread store.
import { Worker } from 'node:worker_threads';
import type { Store } from '../core/store.js';
import type { Logger } from '../observability/logger.js';
import { refusedData } from './errors.js';
import { alwaysGrantedLock } from './sqlite.js';

/** What stays on the caller's thread: nothing to store, or (the lock) nothing to share. */
type Local = 'engine' | 'refusedData' | 'acquireSourceLock' | 'close';
export type Forwarded = Exclude<keyof Store, Local>;

/** Every forwarded method, once: the mapped type fails the build when Store gains or loses one. */
const FORWARDED: { [M in Forwarded]: true } = {
  getCheckpoint: true, setCheckpoint: true, resetCheckpoint: true, loadClaims: true, claimsAfter: true, commit: true, claimsByTitle: true,
  claimDue: true, ack: true, retry: true, deadLetter: true, nextDueAt: true, enqueue: true, outboxStats: true,
  getSinkIds: true, setSinkIds: true, countSinkIds: true, listSinkIds: true, listHeld: true, putHeld: true, dropHeld: true,
  listDeadLetters: true, takeDeadLetters: true, deadLetterSummary: true,
  recordDecisions: true, listDecisions: true, countDecisions: true, pruneDecisions: true, listBreakers: true,
  tripBreaker: true, resumeBreakers: true, ping: true,
};

export interface Call { id: number; method: Forwarded | 'open' | 'close'; args: unknown[] }
/** An error as it crosses the thread: what `refusedData` and the logs read of it. */
export interface WireError { name: string; message: string; code?: string }
export type Reply = { id: number; result: unknown } | { id: number; error: WireError };

const WORKER_ENTRY = new URL('./sqlite-thread-worker.js', import.meta.url);

/** An error as the worker sends it (a driver's SqliteError, JSON.stringify's TypeError…). */
export function toWire(err: unknown): WireError {
  const e = err as { name?: unknown; message?: unknown; code?: unknown } | null;
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
  };
}

/** The worker's error as the caller's own: the same class and code, so `refusedData` judges it as before. */
export function fromWire(wire: WireError): Error {
  const Kind = wire.name === 'TypeError' ? TypeError : wire.name === 'RangeError' ? RangeError : Error;
  const err = new Kind(wire.message);
  err.name = wire.name;
  if (wire.code !== undefined) Object.assign(err, { code: wire.code });
  return err;
}

interface Pending { resolve(value: unknown): void; reject(err: unknown): void }

/** The one worker, respawned after an unexpected exit; calls in flight are answered in order. */
class StoreThread {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Only the first open voids leases a crashed run left: a respawn must keep this run's in-flight ones. */
  private owner: boolean;

  constructor(
    private readonly dir: string,
    private readonly fileName: string | undefined,
    owner: boolean,
    private readonly log: Logger | undefined,
    private readonly entry: URL,
  ) {
    this.owner = owner;
  }

  /** Starts the worker and resolves once it has opened the store (migrations included). */
  open(): Promise<unknown> {
    return this.spawn().opened;
  }

  call(method: Forwarded, args: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('the SQLite store is closed'));
    return this.post(this.worker ?? this.spawn().worker, method, args);
  }

  /** Waits for the calls in flight (FIFO), closes the database in the worker and ends it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker;
    if (!worker) return;
    try {
      await this.post(worker, 'close', []);
    } finally {
      this.worker = null;
      await worker.terminate();
    }
  }

  private spawn(): { worker: Worker; opened: Promise<unknown> } {
    // A smaller young generation than V8's default (48 MiB): the service's peak RSS (bench/service-rss)
    // was 205–221 MiB with it, 185 with 12; 4 saved 3 MiB more but promoted each batch, tripling GC time.
    const worker = new Worker(this.entry, { resourceLimits: { maxYoungGenerationSizeMb: 12 } });
    this.worker = worker;
    let failure: Error | null = null;
    worker.on('message', (reply: Reply) => { if (this.worker === worker) this.settle(reply); });
    worker.on('error', (err) => { failure = err; });
    worker.on('exit', (code) => {
      if (this.worker !== worker) return; // closed or already given up
      const reason = `the SQLite store thread stopped unexpectedly (${failure?.message ?? `exit code ${code}`})`;
      this.log?.error({ inFlight: this.pending.size }, `${reason}; the calls in flight fail (a batch stays queued and is retried) and the next call opens the store on a new thread`);
      this.discard(worker, new Error(reason));
    });
    const opened = this.post(worker, 'open', [this.dir, this.fileName, { owner: this.owner }]);
    this.owner = false;
    // A worker that cannot open the store answers nothing else: its queued calls get the reason, the next call tries anew.
    opened.catch((err: unknown) => { if (this.worker === worker) this.discard(worker, err); });
    return { worker, opened };
  }

  private post(worker: Worker, method: Call['method'], args: unknown[]): Promise<unknown> {
    const id = this.nextId++;
    try {
      worker.postMessage({ id, method, args } satisfies Call);
    } catch (err) {
      // DataCloneError: a value (a function, a symbol) that cannot be stored; refusedData says it is the data's fault.
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => { this.pending.set(id, { resolve, reject }); });
  }

  private settle(reply: Reply): void {
    const call = this.pending.get(reply.id);
    if (!call) return;
    this.pending.delete(reply.id);
    if ('error' in reply) call.reject(fromWire(reply.error));
    else call.resolve(reply.result);
  }

  private discard(worker: Worker, err: unknown): void {
    this.worker = null;
    for (const call of this.pending.values()) call.reject(err);
    this.pending.clear();
    void worker.terminate();
  }
}

export interface SqliteThreadOptions {
  /** As for SqliteStore: the service process, which voids a crashed run's leases. */
  owner?: boolean;
  fileName?: string;
  /** Hears of the thread stopping unexpectedly. */
  log?: Logger;
  /** The worker's entry (tests: one that crashes). */
  entry?: URL;
}

/** The service's SQLite store on a worker thread. Resolves once the store is open; rejects with the reason when it cannot be. */
export async function openSqliteThread(dir: string, options: SqliteThreadOptions = {}): Promise<Store> {
  const thread = new StoreThread(dir, options.fileName, options.owner ?? false, options.log, options.entry ?? WORKER_ENTRY);
  await thread.open();
  const forwarded = Object.fromEntries((Object.keys(FORWARDED) as Forwarded[])
    .map((method) => [method, (...args: unknown[]) => thread.call(method, args)])) as unknown as Pick<Store, Forwarded>;
  return {
    ...forwarded,
    engine: 'sqlite',
    refusedData,
    acquireSourceLock: alwaysGrantedLock,
    close: () => thread.close(),
  };
}
