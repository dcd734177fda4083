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
import { resolveSentinelTargets, type SentinelTarget } from '../../config/targets.js';

export const SENTINEL_SINK = 'sentinel';

/** Every configured workspace (`sentinel.workspace_id` is the one named `default`, sink `sentinel`). */
export function sentinelTargets(config: Config): SentinelTarget[] {
  return resolveSentinelTargets(config.sentinel);
}

/** The workspace target of a sink instance; the single workspace when none is named. */
export function sentinelTarget(config: Config, sink = SENTINEL_SINK): SentinelTarget {
  const t = sentinelTargets(config).find((x) => x.sink === sink);
  if (t) return t;
  return resolveSentinelTargets({ workspace_id: config.sentinel.workspace_id ?? 'unset', targets: [] })[0]!;
}

export function sentinelMapping(config: Config, sink = SENTINEL_SINK): SentinelMapping {
  const s = config.sentinel;
  return { sink, action: s.action, passiveOnly: s.passive_only, daysToExpire: s.days_to_expire, minScore: s.min_score, labels: s.labels };
}

/** A workspace's routing policy from configuration (the running service and `replay` share it). */
export function sentinelRoute(config: Config, target = sentinelTarget(config)): SentinelRoute {
  return new SentinelRoute(sentinelMapping(config, target.sink), target.filter);
}

/** Sentinel's actions as the guard sees them: `block` enforces, a downgrade becomes `alert`. */
export const SENTINEL_GATE_ACTIONS: SinkActions = { enforcing: new Set(['block']), safe: 'alert' };

/** One workspace's sink: its own client (workspace, application, pacer), gate and id records. */
export function createSentinelSink(config: Config, store: Store, log: Logger, metrics: Metrics, guard: Guard,
  wrap: (h: SinkHandler) => SinkHandler = (h) => h, target = sentinelTarget(config)) {
  const sink = target.sink;
  const app = { ...(target.tenantId ? { tenantId: target.tenantId } : {}), ...(target.clientId ? { clientId: target.clientId } : {}), ...(target.clientSecret ? { clientSecret: target.clientSecret } : {}) };
  const client = sentinelApi(config, log, metrics, sink, { workspaceId: target.workspaceId, app });
  const route = sentinelRoute(config, target);
  const gate = guard.gate(sink, SENTINEL_GATE_ACTIONS, {
    keys: async () => (await store.listSinkIds(sink)).map((r) => r.key),
    route,
    action: (payload) => sentinelAction(payload as StixIndicator),
    wake: () => worker.wake(),
  });
  const handler = new SentinelDelivery(sink, config.sentinel.batch_size, client, store, log, gate);
  const worker = new DeliveryWorker(store, wrap(handler), log, metrics);
  return { route, client, handler, worker };
}
