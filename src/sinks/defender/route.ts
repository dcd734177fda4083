// Defender's routing policy: a claim becomes an import (upsert) or a removal.
import type { RouteDecision, SinkRoute } from '../../core/router.js';
import type { Claim, ObservableType, SinkOp, SourceRef } from '../../core/types.js';
import { expandIpv6 } from '../../core/observables.js';
import { defenderBody, defenderTypeOf, defenderVerdict, type DefenderIndicatorBody, type DefenderIndicatorType, type DefenderMapping, type DefenderUpsertVerdict } from './mapper.js';
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
    if (!claim) return this.removal(key, sep, type, null, 'no source object claims it any more');
    const verdict = defenderVerdict(claim.change, this.mapping, now);
    if (verdict.kind === 'unsupported') return { sink: this.sink, op: null, reason: verdict.reason };
    if (verdict.kind === 'delete') return this.removal(key, sep, type, claim, verdict.reason);
    return { sink: this.sink, op: new DefenderUpsert(this.sink, key, claim, this.mapping, verdict, now), reason: `upsert ${verdict.reason}` };
  }

  private removal(key: string, sep: number, type: DefenderIndicatorType, claim: Claim | null, reason: string): RouteDecision {
    const raw = key.slice(sep + 1);
    const payload: DefenderDeletePayload = { indicatorType: type, indicatorValue: key.startsWith('ipv6:') ? expandIpv6(raw) : raw, reason };
    return { sink: this.sink, op: { sink: this.sink, key, op: 'delete', payload, sourceRef: claim?.change.sourceRef ?? null }, reason: `delete: ${reason}` };
  }
}

/**
 * A routed upsert whose indicator body is made when first read: the outbox keeps `stored`, so
 * ingest never needs the body, while the delivery, the guard's re-check and callers of ingest read
 * `payload` as usual (half the cost of routing a batch, and its garbage). The body is a getter, not
 * an own property: a copy of the op (`{ ...op }`, JSON) carries `stored` and not the body.
 */
class DefenderUpsert implements SinkOp<DefenderIndicatorBody> {
  op = 'upsert' as const;
  sourceRef: SourceRef;
  stored: DefenderClaimRef;
  readonly #claim: Claim;
  readonly #mapping: DefenderMapping;
  readonly #verdict: DefenderUpsertVerdict;
  #body: DefenderIndicatorBody | undefined;

  constructor(public sink: string, public key: string, claim: Claim, mapping: DefenderMapping, verdict: DefenderUpsertVerdict, now: number) {
    this.sourceRef = claim.change.sourceRef;
    this.stored = { claim: claim.sourceId, at: now, v: claim.updatedAt };
    this.#claim = claim;
    this.#mapping = mapping;
    this.#verdict = verdict;
  }

  get payload(): DefenderIndicatorBody {
    return (this.#body ??= defenderBody(this.#claim.change, this.#mapping, this.#verdict));
  }
}
