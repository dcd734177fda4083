// The platform's Redis stream (`stream.opencti`) in memory: XADD with `*` ids, XREAD after an
// id, XINFO for the `connected` event and MAXLEN trimming. Connections never see this directly;
// they read batches and decide what each entry becomes on their wire.
import { compareStreamIds, formatStreamId, parseStreamId, type StreamId } from './stream-id.js';

export interface LogEntry {
  id: string;
  ms: number;
  seq: number;
  /** The stored event type (Redis field `type`): create, update, delete, merge, or a raw name. */
  event: string;
  /** JSON text of the stored body, without `event_id` (the stream handler adds it). */
  body: string;
  /** Injected with publishRaw: written to the wire untouched, never parsed. */
  raw: boolean;
  scope: string;
  version: number;
  objectId: string | null;
  objectType: string | null;
  refs: string[];
  inferred: boolean;
  /** The stored body already has an `event_id` (the platform keeps it rather than computing one). */
  hasEventId: boolean;
  /** `extensions[OCTI].updated_at` of the data, for `event_id`; null when the data has none. */
  updatedAtMs: number | null;
  /** Whether the object matches the collection's filters before / after this event. */
  visibleBefore: boolean;
  visibleAfter: boolean;
}

export type NewEntry = Omit<LogEntry, 'id' | 'ms' | 'seq'>;

export interface StreamInfo {
  lastEventId: string;
  firstEventId: string;
  firstEventDate: string;
  lastEventDate: string;
  streamSize: number;
}

export class EventLog {
  private entries: LogEntry[] = [];
  private head = 0;
  private last: StreamId = { ms: 0, seq: 0 };
  private waiters = new Set<() => void>();

  constructor(
    private retention: number,
    private readonly clock: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.length - this.head;
  }

  /** Id of the newest entry ever added ('0-0' before the first), like XINFO last-generated-id. */
  get lastGeneratedId(): string {
    return formatStreamId(this.last);
  }

  get newest(): LogEntry | undefined {
    return this.size > 0 ? this.entries[this.entries.length - 1] : undefined;
  }

  get oldest(): LogEntry | undefined {
    return this.size > 0 ? this.entries[this.head] : undefined;
  }

  /** XADD * : `<now>-0`, or the next sequence number when the clock has not moved on. */
  append(entry: NewEntry): LogEntry {
    const now = this.clock();
    const id: StreamId = now > this.last.ms ? { ms: now, seq: 0 } : { ms: this.last.ms, seq: this.last.seq + 1 };
    this.last = id;
    const full: LogEntry = { ...entry, id: formatStreamId(id), ms: id.ms, seq: id.seq };
    this.entries.push(full);
    if (this.size > this.retention) this.trim(this.retention);
    for (const wake of [...this.waiters]) wake();
    return full;
  }

  /** XTRIM MAXLEN n: keep the n newest entries. */
  trim(maxLen: number): void {
    const drop = Math.max(0, this.size - Math.max(0, maxLen));
    this.head += drop;
    // Compact now and then so that trimming stays O(1) amortised on a 2M-entry log.
    if (this.head > 65_536 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  setRetention(n: number): void {
    this.retention = n;
    this.trim(n);
  }

  /** XREAD COUNT n STREAMS s <after>: up to `count` entries strictly after `after`. */
  readAfter(after: StreamId, count: number): LogEntry[] {
    let lo = this.head;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.entries[mid] as LogEntry;
      if (compareStreamIds(e, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return this.entries.slice(lo, Math.min(lo + count, this.entries.length));
  }

  /** Entries from the oldest retained, for scans. */
  *all(): IterableIterator<LogEntry> {
    for (let i = this.head; i < this.entries.length; i++) yield this.entries[i] as LogEntry;
  }

  /** XINFO STREAM, as the `connected` event reports it. An empty log reports empty ids. */
  info(): StreamInfo {
    const first = this.oldest;
    const last = this.newest;
    return {
      lastEventId: last?.id ?? '',
      firstEventId: first?.id ?? '',
      firstEventDate: first ? new Date(first.ms).toISOString() : '',
      lastEventDate: last ? new Date(last.ms).toISOString() : '',
      streamSize: this.size,
    };
  }

  /** Resolves on the next append, after `timeoutMs`, or when `signal` aborts (XREAD BLOCK). */
  waitForAppend(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** The parsed form of an id a reader was given; null when Redis would refuse it. */
  static parse(id: string): StreamId | null {
    return parseStreamId(id);
  }
}
