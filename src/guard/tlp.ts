// TLP policy for every indicator source, applied before routing: a change marked above its
// source's maximum TLP asserts nothing, so it reaches no sink, and what it asserted before is
// withdrawn. Default maximum TLP:AMBER+STRICT (TLP:RED never leaves); a marking we do not know
// (TLP:EX:CHR, a typo) ranks as TLP:RED: it stays home unless the source may send RED.
import type { NormalisedEvent } from '../core/types.js';
import { observableKey } from '../core/claims.js';
import type { GuardDecision } from '../core/store.js';

export const TLP_ORDER = ['TLP:CLEAR', 'TLP:GREEN', 'TLP:AMBER', 'TLP:AMBER+STRICT', 'TLP:RED'] as const;
export const DEFAULT_MAX_TLP = 'TLP:AMBER+STRICT';

/** Position in TLP_ORDER; an unknown marking ranks as TLP:RED. */
export function tlpRank(tlp: string): number {
  const t = tlp.trim().toUpperCase().replace(/^TLP:WHITE$/, 'TLP:CLEAR');
  const i = (TLP_ORDER as readonly string[]).indexOf(t);
  return i < 0 ? TLP_ORDER.length - 1 : i;
}

export class TlpPolicy {
  /** `max`: per source system, the highest TLP that may leave (absent: TLP:AMBER+STRICT). */
  constructor(private readonly max: Partial<Record<string, string>>) {}

  maxFor(source: string): string {
    return this.max[source] ?? DEFAULT_MAX_TLP;
  }

  /** The event without the changes its source may not send, and a decision per change withheld. */
  screen(event: NormalisedEvent, source: string, now: number): { event: NormalisedEvent; withheld: GuardDecision[] } {
    const max = this.maxFor(source);
    const limit = tlpRank(max);
    const withheld: GuardDecision[] = [];
    const changes = event.changes.filter((c) => {
      if (c.tlp === null || tlpRank(c.tlp) <= limit) return true;
      withheld.push({ at: now, sink: 'all', key: observableKey(c.observable), source: c.sourceRef.system, sourceRef: c.sourceRef.id,
        wanted: 'send', action: 'withhold', outcome: 'tlp', reason: `marked ${c.tlp}, above the ${max} that may leave ${source}`, fresh: false });
      return false;
    });
    return { event: withheld.length ? { ...event, changes } : event, withheld };
  }
}
