// Wiring of the Sentinel sink from configuration: routing policy, client (src/microsoft), worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Store } from '../../core/store.js';
import { sentinelApi } from '../../microsoft/sentinel/client.js';
import { SentinelDelivery } from './delivery.js';
import { sentinelAction, type SentinelMapping, type StixIndicator } from './mapper.js';
import type { Guard } from '../../guard/index.js';
import type { SinkActions } from '../../guard/guard.js';
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

/** Sentinel's actions as the guard sees them: `block` enforces, a downgrade becomes `alert`. */
export const SENTINEL_GATE_ACTIONS: SinkActions = { enforcing: new Set(['block']), safe: 'alert' };

export function createSentinelSink(config: Config, store: Store, log: Logger, metrics: Metrics, guard: Guard,
  wrap: (h: SinkHandler) => SinkHandler = (h) => h) {
  const client = sentinelApi(config, log, metrics, SENTINEL_SINK);
  const route = sentinelRoute(config);
  const gate = guard.gate(SENTINEL_SINK, SENTINEL_GATE_ACTIONS, {
    keys: async () => (await store.listSinkIds(SENTINEL_SINK)).map((r) => r.key),
    route,
    action: (payload) => sentinelAction(payload as StixIndicator),
    wake: () => worker.wake(),
  });
  const handler = new SentinelDelivery(SENTINEL_SINK, config.sentinel.batch_size, client, store, log, gate);
  const worker = new DeliveryWorker(store, wrap(handler), log, metrics);
  return { route, client, handler, worker };
}
