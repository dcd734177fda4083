// Pure, config-driven routing: for each observable key whose claims changed, what every sink
// must do now. A key nobody claims any more is removed from the sinks that hold it.
import type { Claim } from '../store/types.js';
import { effectiveClaim } from './claims.js';
import type { SinkOp, SourceRef } from './types.js';

export interface RouteDecision {
  sink: string;
  op: SinkOp | null;
  /** Why: shown at debug level for every event. */
  reason: string;
}

/** One sink's routing policy. */
export interface SinkRoute {
  readonly sink: string;
  route(key: string, claim: Claim | null, now: number): RouteDecision;
  /** Claims this sink listens to (its sources' `targets`); all when absent. */
  accepts?(claim: Claim): boolean;
}

/** The same route, fed only by claims of the given source systems. */
export function fromSources(route: SinkRoute, systems: Iterable<SourceRef['system']>): SinkRoute {
  const allowed = new Set(systems);
  return {
    sink: route.sink,
    route: (key, claim, now) => route.route(key, claim, now),
    accepts: (claim) => allowed.has(claim.change.sourceRef.system),
  };
}

export class Router {
  constructor(private readonly routes: SinkRoute[]) {}

  get sinks(): string[] {
    return this.routes.map((r) => r.sink);
  }

  /** `claims`: every live claim on the key; each sink follows the strongest one it accepts. */
  route(key: string, claims: readonly Claim[], now: number): RouteDecision[] {
    const all = effectiveClaim(claims);
    return this.routes.map((r) => r.route(key, r.accepts ? effectiveClaim(claims.filter((c) => r.accepts!(c))) : all, now));
  }
}
