// Sentinel's routing policy: a claim becomes an upload of its STIX indicator, a key nobody claims
// (or a claim that expired or scores too low) becomes a revocation of what Sentinel holds.
import type { RouteDecision, SinkRoute } from '../../core/router.js';
import type { Claim } from '../../core/types.js';
import { mapToSentinel, type SentinelMapping, type StixIndicator } from './mapper.js';
import { targetAccepts, type TargetFilter } from '../../config/targets.js';

/** Payload of a delete: the delivery revokes the recorded object (nothing to do if none was uploaded). */
export interface SentinelDeletePayload {
  reason: string;
}

export type SentinelPayload = StixIndicator | SentinelDeletePayload;

export class SentinelRoute implements SinkRoute {
  readonly sink: string;
  readonly accepts?: (claim: Claim) => boolean;

  /** `filter`: a workspace target's route; a claim it does not take is as if absent (what it uploaded is revoked). */
  constructor(private readonly mapping: SentinelMapping, filter?: TargetFilter) {
    this.sink = mapping.sink;
    if (filter) this.accepts = (claim) => targetAccepts(filter, claim);
  }

  route(key: string, claim: Claim | null, now: number): RouteDecision {
    const remove = (reason: string): RouteDecision => ({
      sink: this.sink,
      op: { sink: this.sink, key, op: 'delete', payload: { reason } satisfies SentinelDeletePayload, sourceRef: claim?.change.sourceRef ?? null },
      reason: `revoke: ${reason}`,
    });
    if (!claim) return remove('no source object claims it any more');
    const mapped = mapToSentinel(key, claim.change, this.mapping, now);
    if (mapped.kind === 'delete') return remove(mapped.reason);
    return {
      sink: this.sink,
      op: { sink: this.sink, key, op: 'upsert', payload: mapped.object, sourceRef: claim.change.sourceRef },
      reason: `upload ${mapped.reason}`,
    };
  }
}
