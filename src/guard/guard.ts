// The guard's verdict for one wanted action: a pure function of (observable, wanted action, source)
// and the current protected list, so every indicator sink (Defender now, Sentinel next) asks the
// same question the same way. Only enforcing actions are checked: Audit/Alert/Allowed never take
// anything offline.
import type { Observable, SourceRef } from '../core/types.js';
import { specialAddress } from './addresses.js';
import { urlParts, type ProtectedValues } from './protected-values.js';

/** Actions that stop something on devices (Defender names; legacy AlertAndBlock included). */
export const ENFORCING_ACTIONS: ReadonlySet<string> = new Set(['Block', 'BlockAndRemediate', 'Warn', 'AlertAndBlock']);

export type GuardOutcome = 'allow' | 'downgrade' | 'skip' | 'breaker';

export interface GuardVerdict {
  outcome: GuardOutcome;
  /** The action to send ("Audit" on a downgrade); null when the indicator is not to be pushed. */
  action: string | null;
  reason: string;
}

export interface GuardPolicy {
  enabled: boolean;
  protectedValues: ProtectedValues;
  onProtected: 'audit' | 'skip';
  specialAddresses: 'audit' | 'skip';
  /** Sources whose enforcing actions the breaker paused. */
  paused: ReadonlySet<string>;
}

const withheld = (mode: 'audit' | 'skip', reason: string): GuardVerdict =>
  mode === 'skip' ? { outcome: 'skip', action: null, reason } : { outcome: 'downgrade', action: 'Audit', reason };

export function guardVerdict(observable: Observable, wanted: string, source: SourceRef | null, policy: GuardPolicy): GuardVerdict {
  if (!policy.enabled || !ENFORCING_ACTIONS.has(wanted)) return { outcome: 'allow', action: wanted, reason: 'not enforcing' };
  // A URL on a private or loopback host blocks an internal service just the same.
  const address = observable.type === 'ipv4' || observable.type === 'ipv6' ? observable.value
    : observable.type === 'url' ? urlParts(observable.value)?.host ?? null : null;
  const special = address === null ? null : specialAddress(address);
  if (special) return withheld(policy.specialAddresses, `${address} is in the ${special}`);
  const hit = policy.protectedValues.match(observable);
  if (hit) {
    const why = hit.why ? ` (${hit.why})` : '';
    return withheld(policy.onProtected, `protected value ${hit.entry}${why} from ${hit.origin}`);
  }
  const system = source?.system ?? 'unknown';
  if (policy.paused.has(system)) {
    return { outcome: 'breaker', action: 'Audit', reason: `breaker open for source ${system}: enforcing actions paused until \`threatbridge resume ${system}\`` };
  }
  return { outcome: 'allow', action: wanted, reason: 'no protected value touched' };
}
