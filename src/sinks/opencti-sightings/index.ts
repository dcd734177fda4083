// Wiring of the OpenCTI sightings sink: route, GraphQL client, delivery and its worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import type { Store } from '../../core/store.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import { OpenctiSightingsClient } from './client.js';
import { OpenctiSightingsDelivery } from './delivery.js';
import { openctiSightingsRoute } from './route.js';

export const OPENCTI_SIGHTINGS_SINK = 'opencti-sightings';

export function createOpenctiSightingsSink(config: Config, store: Store, log: Logger, metrics: Metrics,
  wrap: (h: SinkHandler) => SinkHandler = (h) => h) {
  const o = config.opencti;
  const client = new OpenctiSightingsClient({
    url: o.url!, token: o.token!, verifyTls: o.ssl_verify, timeoutMs: config.sightings.request_timeout * 1000, sink: OPENCTI_SIGHTINGS_SINK, log, metrics,
  });
  const handler = new OpenctiSightingsDelivery(OPENCTI_SIGHTINGS_SINK, client, store, config.sightings.identity_name, log);
  return { route: openctiSightingsRoute(OPENCTI_SIGHTINGS_SINK), worker: new DeliveryWorker(store, wrap(handler), log, metrics) };
}
