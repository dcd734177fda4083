// MISP warninglists on every path. ZeroMQ messages carry no warninglist hits, so before anything
// MISP sends reaches a sink its values are checked with MISP itself (POST /warninglists/checkValue:
// MISP matches string, hostname, CIDR and regex lists; we do not re-implement them). Answers are
// kept for `misp.warninglist_refresh` seconds; while MISP cannot answer, the caller holds the items.
import type { MispRest } from './rest.js';

interface Answer {
  /** Name of the first warninglist that matched, or null. */
  hit: string | null;
  at: number;
}

/** Values asked per call: MISP answers for each value in one request. */
const CHUNK = 1000;

export class WarninglistCheck {
  private readonly answers = new Map<string, Answer>();

  constructor(
    private readonly rest: Pick<MispRest, 'checkWarninglists'>,
    private readonly ttlMs: number,
    private readonly max = 200_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The values that hit a warninglist, with the list's name. Throws when MISP cannot answer. */
  async hits(values: string[], signal?: AbortSignal): Promise<Map<string, string>> {
    const now = this.now();
    const out = new Map<string, string>();
    const ask: string[] = [];
    for (const v of new Set(values)) {
      const known = this.answers.get(v);
      if (known && now - known.at < this.ttlMs) {
        if (known.hit !== null) out.set(v, known.hit);
      } else {
        ask.push(v);
      }
    }
    for (let i = 0; i < ask.length; i += CHUNK) {
      const chunk = ask.slice(i, i + CHUNK);
      const found = await this.rest.checkWarninglists(chunk, signal);
      for (const v of chunk) {
        const hit = found.get(v) ?? null;
        if (hit !== null) out.set(v, hit);
        this.remember(v, { hit, at: now });
      }
    }
    return out;
  }

  private remember(value: string, answer: Answer): void {
    this.answers.delete(value);
    this.answers.set(value, answer);
    if (this.answers.size > this.max) this.answers.delete(this.answers.keys().next().value!);
  }
}
