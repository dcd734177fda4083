// What a sink simulator received, item by item. A sink that upserts by key (Defender by type and
// value, Sentinel by STIX id, CAR by node key and edge ends) hides an item sent twice, so tests that
// promise "no duplicates" count what the service SENT here rather than what the store kept.
//
// A send REPEATS when the previous send of the same key carried the same content, its answer reached
// the service, and nothing removed the key in between: the service already knew it was applied and
// sent it again anyway. Not a repeat: an update (different content), a re-send after the key was
// deleted, a retry after an answer was lost (a dropped connection, a client timeout, or a kill -9 or
// full disk that kept the service from recording the answer: see `repeats`).

export interface Send {
  /** Sink key, e.g. `tenant␀IpAddress␀10.0.0.1`. */
  key: string;
  /** The item as received, serialised. */
  content: string;
  /** Order among sends and removals of this simulator. */
  seq: number;
  /** Wall-clock ms when the request arrived. */
  at: number;
  /** Wall-clock ms when the answer was written, or null when the service never got it. */
  answeredAt: number | null;
}

/** When the service could not record answers: a moment (kill -9, a broken database session) or a period (a full disk). */
export type Interruption = number | { from: number; to: number };

export interface RepeatOptions {
  /** Wall-clock ms of each interruption of the service. */
  interruptions?: readonly Interruption[];
  /**
   * An answer this long before an interruption may not have been recorded yet; its send may be
   * repeated afterwards. Default 5 s (a loaded 2-core machine).
   */
  graceMs?: number;
}

export class SendLog {
  readonly sends: Send[] = [];
  private readonly removals = new Map<string, number[]>(); // key → seq of each removal
  private seq = 0;

  /** Items applied by one request; `answered` is false when the answer never reached the service. */
  record(items: readonly { key: string; content: string }[], at: number, answered: boolean): void {
    const answeredAt = answered ? Date.now() : null;
    for (const item of items) this.sends.push({ key: item.key, content: item.content, seq: ++this.seq, at, answeredAt });
  }

  /** The key left the sink's store (deleted by the service or by hand). */
  removed(key: string): void {
    const list = this.removals.get(key) ?? [];
    list.push(++this.seq);
    this.removals.set(key, list);
  }

  /** Sends that repeat an answered send of the same key and content with no removal in between. */
  repeats(opts: RepeatOptions = {}): Send[] {
    const periods = (opts.interruptions ?? []).map((i) => (typeof i === 'number' ? { from: i, to: i } : i));
    const grace = opts.graceMs ?? 5_000;
    const last = new Map<string, Send>();
    const out: Send[] = [];
    for (const send of this.sends) {
      const prev = last.get(send.key);
      last.set(send.key, send);
      if (!prev || prev.content !== send.content || prev.answeredAt === null) continue;
      if ((this.removals.get(send.key) ?? []).some((r) => r > prev.seq && r < send.seq)) continue;
      const answered = prev.answeredAt!;
      const answerMayBeLost = periods.some((p) => answered >= p.from - grace && answered <= p.to && send.at >= p.from);
      if (!answerMayBeLost) out.push(send);
    }
    return out;
  }

  /** Sends per key (for reports and per-key assertions). */
  perKey(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.sends) out.set(s.key, (out.get(s.key) ?? 0) + 1);
    return out;
  }

  clear(): void {
    this.sends.length = 0;
    this.removals.clear();
  }
}
