// Pure, config-driven routing, the one place changes become sink operations. Indicator sinks get,
// for each observable key whose claims changed, what they must hold now (a key nobody claims any
// more is removed from the sinks that hold it); record sinks get the operations a record change
// of a type they know asks for.
import { effectiveClaim } from './claims.js';
import type { Claim, RecordChange, SinkOp, SourceRef } from './types.js';

export interface RouteDecision {
  sink: string;
  op: SinkOp | null;
  /** Why: shown at debug level for every event. */
  reason: string;
}

/** An indicator sink's routing policy (claims on an observable key → what the sink holds). */
export interface SinkRoute {
  readonly sink: string;
  route(key: string, claim: Claim | null, now: number): RouteDecision;
  /** Claims this sink listens to (its sources' `targets`); all when absent. */
  accepts?(claim: Claim): boolean;
}

/** A record sink's routing policy: the operations one change of a record type it knows asks for. */
export interface RecordRoute {
  readonly sink: string;
  /** The record types (RecordChange.type) this sink takes. */
  readonly types: readonly string[];
  route(change: RecordChange, now: number): SinkOp[];
}

/** The same route, fed only by claims of the given source systems (and that its own filter accepts). */
export function fromSources(route: SinkRoute, systems: Iterable<SourceRef['system']>): SinkRoute {
  const allowed = new Set(systems);
  const own = route.accepts?.bind(route);
  return {
    sink: route.sink,
    route: (key, claim, now) => route.route(key, claim, now),
    accepts: (claim) => allowed.has(claim.change.sourceRef.system) && (own ? own(claim) : true),
  };
}

export class Router {
  constructor(private readonly routes: SinkRoute[], private readonly records: RecordRoute[] = []) {}

  /** The operations of every record sink that takes this record type. */
  routeRecord(change: RecordChange, now: number): SinkOp[] {
    return this.records.filter((r) => r.types.includes(change.type)).flatMap((r) => r.route(change, now));
  }

  /** `claims`: every live claim on the key; each sink follows the strongest one it accepts. */
  route(key: string, claims: readonly Claim[], now: number): RouteDecision[] {
    const all = effectiveClaim(claims);
    return this.routes.map((r) => r.route(key, r.accepts ? effectiveClaim(claims.filter((c) => r.accepts!(c))) : all, now));
  }
}
