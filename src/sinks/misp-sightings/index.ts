// Wiring of the MISP sightings sink: route, REST client, delivery and its worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import type { Store } from '../../core/store.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { MispSightingsClient } from './client.js';
import { MispSightingsDelivery } from './delivery.js';
import { mispSightingsRoute } from './route.js';

export const MISP_SIGHTINGS_SINK = 'misp-sightings';

export function createMispSightingsSink(config: Config, store: Store, log: Logger, metrics: Metrics,
  wrap: (h: SinkHandler) => SinkHandler = (h) => h) {
  const m = config.misp;
  const client = new MispSightingsClient({
    url: m.url!, key: m.key!, verifyTls: m.verify_cert, timeoutMs: config.sightings.request_timeout * 1000, sink: MISP_SIGHTINGS_SINK, log, metrics,
  });
  const handler = new MispSightingsDelivery(MISP_SIGHTINGS_SINK, client, store, config.sightings.misp_source, log);
  return { route: mispSightingsRoute(MISP_SIGHTINGS_SINK), worker: new DeliveryWorker(store, wrap(handler), log, metrics) };
}
