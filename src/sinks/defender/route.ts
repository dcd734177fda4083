// Defender's routing policy: a claim becomes an import (upsert) or a removal.
import type { RouteDecision, SinkRoute } from '../../core/router.js';
import type { Claim, ObservableType } from '../../core/types.js';
import { expandIpv6 } from '../../core/observables.js';
import { defenderTypeOf, mapToDefender, type DefenderMapping } from './mapper.js';
import { targetAccepts, type TargetFilter } from '../../config/targets.js';

export { targetAccepts };

/**
 * What the outbox keeps for an upsert: the claim the body is made from and the time it was routed
 * (the expiry counts from it), instead of the body. The delivery makes the body again from the
 * claim (delivery-bodies.ts): the same body, as a claim that changes is routed again.
 */
export interface DefenderClaimRef {
  claim: string;
  at: number;
  /** The claim's `updatedAt` when routed: a claim changed since was routed again, and that newer row is what goes. */
  v?: number;
}

/** A stored upsert that names its claim (rows written before carry the whole body). */
export function isClaimRef(payload: unknown): payload is DefenderClaimRef {
  const p = payload as Partial<DefenderClaimRef> | null;
  return typeof p === 'object' && p !== null && typeof p.claim === 'string' && typeof p.at === 'number' && !('indicatorValue' in p);
}

/** Payload of a delete: what to look the indicator up by when no id was recorded. */
export interface DefenderDeletePayload {
  indicatorType: string;
  indicatorValue: string;
  reason: string;
}

export class DefenderRoute implements SinkRoute {
  readonly accepts?: (claim: Claim) => boolean;

  /** `filter`: the target's route; a claim it does not take is as if absent (what it put there is removed). */
  constructor(readonly sink: string, private readonly mapping: DefenderMapping, filter?: TargetFilter) {
    if (filter) this.accepts = (claim) => targetAccepts(filter, claim);
  }

  route(key: string, claim: Claim | null, now: number): RouteDecision {
    const sep = key.indexOf(':');
    const obsType = key.slice(0, sep) as ObservableType;
    const type = defenderTypeOf(obsType);
    if (!type) return { sink: this.sink, op: null, reason: `Defender indicators have no ${obsType} type` };
    const remove = (reason: string): RouteDecision => {
      const raw = key.slice(sep + 1);
      const payload: DefenderDeletePayload = { indicatorType: type, indicatorValue: obsType === 'ipv6' ? expandIpv6(raw) : raw, reason };
      return { sink: this.sink, op: { sink: this.sink, key, op: 'delete', payload, sourceRef: claim?.change.sourceRef ?? null }, reason: `delete: ${reason}` };
    };
    if (!claim) return remove('no source object claims it any more');
    const mapped = mapToDefender(claim.change, this.mapping, now);
    if (mapped.kind === 'unsupported') return { sink: this.sink, op: null, reason: mapped.reason };
    if (mapped.kind === 'delete') return remove(mapped.reason);
    return {
      sink: this.sink,
      op: { sink: this.sink, key, op: 'upsert', payload: mapped.body, sourceRef: claim.change.sourceRef, stored: { claim: claim.sourceId, at: now, v: claim.updatedAt } satisfies DefenderClaimRef },
      reason: `upsert ${mapped.reason}`,
    };
  }
}
