// Whether each source and sink answers, and since when it has not. Parts report `up` / `down` as
// they learn it (a stream connects or drops, a poll or a delivery call gets no answer); this turns
// that into the connected gauge, ONE error line once a part has been unreachable for
// `connector.unreachable_after` seconds, and ONE line when it recovers — instead of a warning per
// retry that nobody reads, or silence at the default level (issue 16).
import type { Logger } from './logger.js';

export type PartKind = 'source' | 'sink';

export interface ReachState {
  kind: PartKind;
  name: string;
  /** null while reachable (or never reported down). */
  downSince: number | null;
  problem: string | null;
  /** The unreachable error was logged for the current outage. */
  reported: boolean;
  lastUpAt: number | null;
}

export class Reachability {
  private readonly parts = new Map<string, ReachState>();
  private log: Logger | null = null;
  private afterMs = 60_000;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    /** Called on every report: the source connected gauge follows it. */
    private readonly onChange: (kind: PartKind, name: string, up: boolean) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** Start logging: an error after `afterMs` unreachable, checked every few seconds. */
  attach(log: Logger, afterMs: number): void {
    this.log = log;
    this.afterMs = afterMs;
    this.timer ??= setInterval(() => this.check(), Math.max(250, Math.min(5000, afterMs / 4)));
    this.timer.unref();
  }

  detach(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  up(kind: PartKind, name: string): void {
    const s = this.state(kind, name);
    const now = this.now();
    if (s.downSince !== null && s.reported) {
      this.log?.info({ [kind]: name, downForS: Math.round((now - s.downSince) / 1000) },
        `${kind} ${name} reachable again after ${Math.round((now - s.downSince) / 1000)} s`);
    }
    s.downSince = null;
    s.problem = null;
    s.reported = false;
    s.lastUpAt = now;
    this.onChange(kind, name, true);
  }

  down(kind: PartKind, name: string, problem: string): void {
    const s = this.state(kind, name);
    s.downSince ??= this.now();
    s.problem = problem;
    this.onChange(kind, name, false);
    this.check();
  }

  /** Log the error of every part unreachable for long enough, once per outage. */
  check(): void {
    const now = this.now();
    for (const s of this.parts.values()) {
      if (s.downSince === null || s.reported || now - s.downSince < this.afterMs || !this.log) continue;
      s.reported = true;
      const forS = Math.round((now - s.downSince) / 1000);
      this.log.error({ [s.kind]: s.name, downForS: forS, problem: s.problem },
        `${s.kind} ${s.name} unreachable for ${forS} s: ${s.problem}`);
    }
  }

  snapshot(): ReachState[] {
    return [...this.parts.values()].map((s) => ({ ...s }));
  }

  get(kind: PartKind, name: string): ReachState | undefined {
    const s = this.parts.get(`${kind}\u0000${name}`);
    return s ? { ...s } : undefined;
  }

  private state(kind: PartKind, name: string): ReachState {
    const key = `${kind}\u0000${name}`;
    let s = this.parts.get(key);
    if (!s) this.parts.set(key, (s = { kind, name, downSince: null, problem: null, reported: false, lastUpAt: null }));
    return s;
  }
}
