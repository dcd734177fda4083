// Pure, config-driven routing: for each observable key whose claims changed, what every sink
// must do now. A key nobody claims any more is removed from the sinks that hold it.
import type { Claim } from '../store/types.js';
import type { SinkOp } from './types.js';

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
}

export class Router {
  constructor(private readonly routes: SinkRoute[]) {}

  get sinks(): string[] {
    return this.routes.map((r) => r.sink);
  }

  route(key: string, claim: Claim | null, now: number): RouteDecision[] {
    return this.routes.map((r) => r.route(key, claim, now));
  }
}
