// When each source last delivered an event and how far behind its source that event was. Read at
// scrape time, so an idle source's last-event age grows without anyone having to tick it.
//
// Lag, by kind of source (doc/operations.md): a stream (OpenCTI, MISP ZeroMQ) sets it at each event
// to the time it was read minus the event's own time (the OpenCTI stream id is a millisecond
// timestamp; MISP attributes carry theirs); a poller (Defender alerts, assets) sets the time its last
// completed poll started, and its lag is how old that is now (what we hold can be that stale).
export interface SourceActivity {
  source: string;
  lastEventAt: number | null;
  /** Seconds, or null when not known yet. */
  lagSeconds: number | null;
}

export class Activity {
  private readonly lastEvent = new Map<string, number>();
  private readonly streamLag = new Map<string, number>();
  private readonly polledAt = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** An event was read; `eventTimeMs` is its own time when the source gives one. */
  event(source: string, eventTimeMs?: number | null): void {
    const now = this.now();
    this.lastEvent.set(source, now);
    if (eventTimeMs !== undefined && eventTimeMs !== null && Number.isFinite(eventTimeMs)) {
      this.streamLag.set(source, Math.max(0, (now - eventTimeMs) / 1000));
    }
  }

  /** A poll that started at `startedAt` completed: what we hold is at most that old. */
  polled(source: string, startedAt: number): void {
    this.polledAt.set(source, startedAt);
  }

  /** A source known before it read anything, so that it shows (age unknown) rather than missing. */
  known(source: string): void {
    if (!this.lastEvent.has(source)) this.lastEvent.set(source, Number.NaN);
  }

  snapshot(): SourceActivity[] {
    const now = this.now();
    const names = new Set([...this.lastEvent.keys(), ...this.streamLag.keys(), ...this.polledAt.keys()]);
    return [...names].sort().map((source) => {
      const at = this.lastEvent.get(source);
      const polled = this.polledAt.get(source);
      const lag = polled !== undefined ? Math.max(0, (now - polled) / 1000) : this.streamLag.get(source) ?? null;
      return { source, lastEventAt: at !== undefined && !Number.isNaN(at) ? at : null, lagSeconds: lag };
    });
  }
}

/** Milliseconds of an OpenCTI stream id (`<ms>-<seq>`), or null. */
export function streamIdTime(id: string): number | null {
  const m = /^(\d{10,15})-\d+$/.exec(id);
  return m ? Number(m[1]) : null;
}
