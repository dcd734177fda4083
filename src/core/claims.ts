// Several source objects can assert the same observable (an indicator and its observable, MISP
// and OpenCTI). Each assertion is a claim; the sinks get the strongest live claim, and an
// observable is removed from a sink only when nobody claims it any more.
import type { Claim, IndicatorChange, Observable } from './types.js';

/** Key of an observable across sources; hostname and domain are one thing to every sink. */
export function observableKey(o: Observable): string {
  return `${o.type === 'hostname' ? 'domain' : o.type}:${o.value}`;
}

/** The claim the sinks follow: highest score, then the most recently updated. */
export function effectiveClaim(claims: Iterable<Claim>): Claim | null {
  let best: Claim | null = null;
  for (const c of claims) {
    if (!best) { best = c; continue; }
    const a = c.change.score ?? -1;
    const b = best.change.score ?? -1;
    if (a > b || (a === b && c.updatedAt >= best.updatedAt)) best = c;
  }
  return best;
}

/** In-memory view of the claims a batch touches, recording what changed for the commit. */
export class ClaimSet {
  private readonly byKey = new Map<string, Map<string, Claim>>();
  private readonly bySource = new Map<string, Set<string>>();
  readonly touched = new Set<string>();
  private readonly upserts = new Map<string, Claim>();
  private readonly deletes = new Map<string, { key: string; sourceId: string }>();

  constructor(existing: Claim[]) {
    for (const c of existing) this.put(c);
  }

  private put(c: Claim): void {
    let m = this.byKey.get(c.key);
    if (!m) this.byKey.set(c.key, (m = new Map()));
    m.set(c.sourceId, c);
    let s = this.bySource.get(c.sourceId);
    if (!s) this.bySource.set(c.sourceId, (s = new Set()));
    s.add(c.key);
  }

  private remove(key: string, sourceId: string): void {
    if (!this.byKey.get(key)?.delete(sourceId)) return;
    this.bySource.get(sourceId)?.delete(key);
    const id = `${key}\u0000${sourceId}`;
    this.upserts.delete(id);
    this.deletes.set(id, { key, sourceId });
    this.touched.add(key);
  }

  /** The object now asserts exactly these changes; claims it no longer makes are dropped. */
  replace(sourceId: string, changes: IndicatorChange[], now: number): void {
    const next = new Map<string, IndicatorChange>();
    for (const ch of changes) next.set(observableKey(ch.observable), ch);
    const held = this.bySource.get(sourceId);
    // A copy: remove() deletes from the set being walked.
    if (held?.size) for (const key of [...held]) if (!next.has(key)) this.remove(key, sourceId);
    for (const [key, change] of next) {
      // The same assertion again (both MISP paths, a re-sent event) changes nothing downstream.
      const current = this.byKey.get(key)?.get(sourceId);
      if (current && sameChange(current.change, change)) continue;
      const claim: Claim = { key, sourceId, change, updatedAt: now };
      const id = `${key}\u0000${sourceId}`;
      this.put(claim);
      this.deletes.delete(id);
      this.upserts.set(id, claim);
      this.touched.add(key);
    }
  }

  /** Source objects with claims whose id starts with `prefix`. */
  sourcesWithPrefix(prefix: string, onlyClaimedBefore = Infinity): string[] {
    return [...this.bySource.entries()]
      .filter(([id, keys]) => id.startsWith(prefix) && keys.size > 0
        && [...keys].every((k) => (this.byKey.get(k)?.get(id)?.updatedAt ?? 0) < onlyClaimedBefore))
      .map(([id]) => id);
  }

  retract(sourceId: string): void {
    for (const key of [...(this.bySource.get(sourceId) ?? [])]) this.remove(key, sourceId);
  }

  claimsOn(key: string): Claim[] {
    return [...(this.byKey.get(key)?.values() ?? [])];
  }

  changes(): { upserts: Claim[]; deletes: { key: string; sourceId: string }[] } {
    return { upserts: [...this.upserts.values()], deletes: [...this.deletes.values()] };
  }
}

function sameChange(a: IndicatorChange, b: IndicatorChange): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
