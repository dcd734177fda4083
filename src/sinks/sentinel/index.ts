// Wiring of the Sentinel sink from configuration: routing policy, client (src/microsoft), worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Store } from '../../store/types.js';
import { sentinelApi } from '../../microsoft/sentinel/client.js';
import { SentinelDelivery } from './delivery.js';
import type { SentinelMapping } from './mapper.js';
import { SentinelRoute } from './route.js';

export const SENTINEL_SINK = 'sentinel';

export function sentinelMapping(config: Config): SentinelMapping {
  const s = config.sentinel;
  return { sink: SENTINEL_SINK, action: s.action, passiveOnly: s.passive_only, daysToExpire: s.days_to_expire, minScore: s.min_score, labels: s.labels };
}

/** Sentinel's routing policy from configuration (the running service and `replay` share it). */
export function sentinelRoute(config: Config): SentinelRoute {
  return new SentinelRoute(sentinelMapping(config));
}

export function createSentinelSink(config: Config, store: Store, log: Logger, metrics: Metrics, wrap: (h: SinkHandler) => SinkHandler = (h) => h) {
  const client = sentinelApi(config, log, metrics, SENTINEL_SINK);
  const handler = new SentinelDelivery(SENTINEL_SINK, config.sentinel.batch_size, client, store, log);
  return { route: sentinelRoute(config), client, handler, worker: new DeliveryWorker(store, wrap(handler), log, metrics) };
}
