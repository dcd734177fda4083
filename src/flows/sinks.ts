// Every sink ThreatBridge can feed, by the name flows use (config/flows.ts). A sink is one folder
// under src/sinks/ that exports its route (pure: change → operations) and a factory for its
// delivery worker; this table is the one place the service learns about it.
import type { Config } from '../config/schema.js';
import type { DeliveryWorker, SinkHandler } from '../core/delivery.js';
import type { ServicePart } from '../core/parts.js';
import type { Guard } from '../guard/index.js';
import type { RecordRoute, SinkRoute } from '../core/router.js';
import { CAR_SINK, createCarSink } from '../sinks/car/index.js';
import { carRoute } from '../sinks/car/route.js';
import { createDefenderSink, defenderRoute, defenderRouteWarnings, defenderTargets } from '../sinks/defender/index.js';
import type { DefenderTarget } from '../config/targets.js';
import { createIrisSink, IRIS_SINK } from '../sinks/iris/index.js';
import { irisRoute } from '../sinks/iris/route.js';
import { createMispSightingsSink, MISP_SIGHTINGS_SINK } from '../sinks/misp-sightings/index.js';
import { mispSightingsRoute } from '../sinks/misp-sightings/route.js';
import { createOpenctiSightingsSink, OPENCTI_SIGHTINGS_SINK } from '../sinks/opencti-sightings/index.js';
import { openctiSightingsRoute } from '../sinks/opencti-sightings/route.js';
import { createSentinelSink, sentinelRoute, sentinelTarget, sentinelTargets } from '../sinks/sentinel/index.js';
import { targetRouteWarnings } from '../config/targets.js';
import type { ServiceContext } from './parts.js';

/** A sink built from configuration. */
export interface BuiltSink {
  route: SinkRoute | RecordRoute;
  worker: DeliveryWorker;
  /** The worker's part, when the sink needs more than start and stop (IRIS: set-up check and health). */
  part?: ServicePart;
  /** Companion parts (guard, reconciliation). */
  parts?: ServicePart[];
  /** Record sinks: of these record ids, those the sink holds for us (the sources keep following them). */
  held?(ids: string[]): Promise<Set<string>>;
  /** The save point the sink confirmed and no longer holds (it was reset): its source sends everything again. */
  savePointLost?(): Promise<string | null>;
}

export interface SinkModule {
  /**
   * A sink written to several times over (Defender: one instance per tenant, each with its own
   * outbox queue, client, cap and id map): the instance names. Absent: one, named as the sink.
   */
  instances?(config: Config): string[];
  /** Start-up warnings about an instance's route (one that can match nothing), given the sources feeding the sink. */
  routeWarnings?(config: Config, instance: string, sources: string[]): string[];
  /** The route alone, without clients (replay). */
  route(config: Config, instance: string): SinkRoute | RecordRoute;
  /** `wrap`: around the handler (dry run and review file for indicator sinks, counting for `run --once`); `guard`: the one enforcement gate of every indicator sink. */
  create(ctx: ServiceContext, wrap: (handler: SinkHandler) => SinkHandler, guard: Guard, instance: string): BuiltSink;
}

/** The Defender target whose sink is `instance`. */
function targetOf(config: Config, instance: string): DefenderTarget {
  const t = defenderTargets(config).find((x) => x.sink === instance);
  if (!t) throw new Error(`no Defender target for sink ${instance}`);
  return t;
}

/** Each instance of a sink with the module that builds it. */
export function sinkInstances(config: Config, sink: string): string[] {
  return SINKS[sink]!.instances?.(config) ?? [sink];
}

export const SINKS: Record<string, SinkModule> = {
  defender: {
    instances: (config) => defenderTargets(config).map((t) => t.sink),
    routeWarnings: (config, instance, sources) => defenderRouteWarnings(targetOf(config, instance), sources),
    route: (config, instance) => defenderRoute(config, targetOf(config, instance)),
    create: ({ config, store, log, metrics }, wrap, guard, instance) =>
      createDefenderSink(config, store, log, metrics, guard, wrap, targetOf(config, instance)),
  },
  sentinel: {
    instances: (config) => sentinelTargets(config).map((t) => t.sink),
    routeWarnings: (config, instance, sources) => targetRouteWarnings(sentinelTarget(config, instance).filter, sources, 'Sentinel'),
    route: (config, instance) => sentinelRoute(config, sentinelTarget(config, instance)),
    create: ({ config, store, log, metrics }, wrap, guard, instance) =>
      createSentinelSink(config, store, log, metrics, guard, wrap, sentinelTarget(config, instance)),
  },
  [IRIS_SINK]: {
    route: () => irisRoute(IRIS_SINK),
    create: ({ config, store, log, metrics }, wrap) => createIrisSink(config, store, log, metrics, wrap),
  },
  [CAR_SINK]: {
    route: () => carRoute(CAR_SINK),
    create: ({ config, store, log, metrics }, wrap) => createCarSink(config, store, log, metrics, undefined, wrap),
  },
  [OPENCTI_SIGHTINGS_SINK]: {
    route: () => openctiSightingsRoute(OPENCTI_SIGHTINGS_SINK),
    create: ({ config, store, log, metrics }, wrap) => createOpenctiSightingsSink(config, store, log, metrics, wrap),
  },
  [MISP_SIGHTINGS_SINK]: {
    route: () => mispSightingsRoute(MISP_SIGHTINGS_SINK),
    create: ({ config, store, log, metrics }, wrap) => createMispSightingsSink(config, store, log, metrics, wrap),
  },
};
