// Defender assets → IBM CAR: a poller part (source) and a CAR delivery worker part (sink).
import { createCarSink, CAR_SINK, lostSavePoint } from '../sinks/car/index.js';
import { defenderApi } from '../microsoft/defender/client.js';
import { POLLER_WAIT_OUT } from './alerts-to-iris.js';
import { DefenderAssetsPoller, SOURCE } from '../sources/defender-assets/poller.js';
import type { IndicatorHub } from './indicator-hub.js';
import { workerPart, type ServiceContext, type ServicePart } from './parts.js';

/** The poller part; it brings the CAR worker part along (started first by the service as a sink). */
export function assetsToCarParts(ctx: ServiceContext): ServicePart[] {
  const { config, store, log, metrics } = ctx;
  const a = config.defender_assets;
  const client = defenderApi(config, { callsPerMinute: a.calls_per_minute, callsPerHour: a.calls_per_hour }, log,
    { metrics, label: SOURCE, waitOut: POLLER_WAIT_OUT });
  const car = createCarSink(config, store, log, metrics);
  const poller = new DefenderAssetsPoller(config, client, store, log, metrics, () => car.worker.wake(),
    () => lostSavePoint(car.client, store, config.car.source));
  const source: ServicePart = {
    name: SOURCE,
    kind: 'source',
    start: async () => poller.start(),
    stop: (boundMs) => poller.stop(boundMs),
    health: async () => (poller.lastError ? `last run failed: ${poller.lastError}` : null),
  };
  return [source, workerPart(CAR_SINK, CAR_SINK, car.worker)];
}

/** SOURCE_PARTS entry: the service takes one part per source, so the sink part rides along as a composite. */
export function defenderAssetsPart(ctx: ServiceContext, _hub: IndicatorHub): ServicePart {
  const [source, sink] = assetsToCarParts(ctx) as [ServicePart, ServicePart];
  return {
    name: source.name,
    kind: 'source',
    sinks: sink.sinks,
    // The worker first, so the first committed run finds it.
    start: async () => { await sink.start(); await source.start(); },
    stop: async (boundMs) => { await source.stop(boundMs); await sink.stop(boundMs); },
    health: source.health,
  };
}
