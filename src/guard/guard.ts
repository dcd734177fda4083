// The guard's verdict for one wanted action: a pure function of (observable, wanted action, source)
// and the current protected list, so every indicator sink (Defender, Sentinel, any later one) asks
// the same question the same way, each in its own action vocabulary. Only enforcing actions are
// checked: Audit/Alert/Allowed never take anything offline.
import type { Observable, SourceRef } from '../core/types.js';
import { parse as parseDomain } from 'tldts';
import { specialAddress } from './addresses.js';
import { urlParts, type ProtectedValues } from './protected-values.js';

/** A sink's action vocabulary as the guard sees it: what enforces, and the safe action instead. */
export interface SinkActions {
  enforcing: ReadonlySet<string>;
  /** What a downgraded enforcing action becomes (Defender Audit, Sentinel alert). */
  safe: string;
}

/** Actions that stop something on devices (Defender names; legacy AlertAndBlock included). */
export const ENFORCING_ACTIONS: ReadonlySet<string> = new Set(['Block', 'BlockAndRemediate', 'Warn', 'AlertAndBlock']);

export const DEFENDER_GATE_ACTIONS: SinkActions = { enforcing: ENFORCING_ACTIONS, safe: 'Audit' };

export type GuardOutcome = 'allow' | 'downgrade' | 'skip' | 'breaker';

export interface GuardVerdict {
  outcome: GuardOutcome;
  /** The action to send ("Audit" on a downgrade); null when the indicator is not to be pushed. */
  action: string | null;
  reason: string;
}

export interface GuardPolicy {
  enabled: boolean;
  protectedValues: Pick<ProtectedValues, 'match'>;
  onProtected: 'audit' | 'skip';
  specialAddresses: 'audit' | 'skip';
  /** Sources whose enforcing actions the breaker paused. */
  paused: ReadonlySet<string>;
  actions: SinkActions;
}


export function guardVerdict(observable: Observable, wanted: string, source: SourceRef | null, policy: GuardPolicy): GuardVerdict {
  if (!policy.enabled || !policy.actions.enforcing.has(wanted)) return { outcome: 'allow', action: wanted, reason: 'not enforcing' };
  const withheld = (mode: 'audit' | 'skip', reason: string): GuardVerdict =>
    mode === 'skip' ? { outcome: 'skip', action: null, reason } : { outcome: 'downgrade', action: policy.actions.safe, reason };
  // A URL on a private or loopback host blocks an internal service just the same.
  const address = observable.type === 'ipv4' || observable.type === 'ipv6' ? observable.value
    : observable.type === 'url' ? urlParts(observable.value)?.host ?? null : null;
  const special = address === null ? null : specialAddress(address);
  if (special) return withheld(policy.specialAddresses, `${address} is in the ${special}`);
  const suffix = publicSuffix(observable);
  if (suffix) return withheld(policy.onProtected, `${suffix} is a public suffix: a Block covers every domain registered under it`);
  const hit = policy.protectedValues.match(observable);
  if (hit) {
    const why = hit.why ? ` (${hit.why})` : '';
    return withheld(policy.onProtected, `protected value ${hit.entry}${why} from ${hit.origin}`);
  }
  const system = source?.system ?? 'unknown';
  if (policy.paused.has(system)) {
    return { outcome: 'breaker', action: policy.actions.safe, reason: `breaker open for source ${system}: enforcing actions paused until \`threatbridge resume ${system}\`` };
  }
  return { outcome: 'allow', action: wanted, reason: 'no protected value touched' };
}

/**
 * The domain (or URL host) when it is a bare public suffix (co.uk, github.io, a lone TLD), from the
 * Public Suffix List as the tldts package ships it (ICANN and private sections), else null.
 */
export function publicSuffix(observable: Observable): string | null {
  const host = observable.type === 'domain' || observable.type === 'hostname' ? observable.value
    : observable.type === 'url' ? urlParts(observable.value)?.host ?? null : null;
  if (!host) return null;
  const name = host.replace(/\.$/, '').toLowerCase();
  const parsed = parseDomain(name, { allowPrivateDomains: true });
  if (parsed.isIp) return null;
  return parsed.domain === null && parsed.publicSuffix === name ? name : null;
}
