// Wiring of the IRIS sink from configuration: route, client, delivery handler, worker and its part.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import { workerPart, type ServicePart } from '../../core/parts.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { SinkIdStore, Store } from '../../core/store.js';
import { IrisClient } from './client.js';
import { IrisDelivery } from './delivery.js';
import { irisRoute } from './route.js';

export const IRIS_SINK = 'iris';

/** Of these Defender alert ids, those IRIS holds an alert for (IRIS alerts are keyed by Defender alert id). */
export const heldAlerts = (store: SinkIdStore) => async (ids: string[]): Promise<Set<string>> =>
  new Set((await store.getSinkIds(IRIS_SINK, ids)).keys());

export function createIrisSink(config: Config, store: Store, log: Logger, metrics: Metrics, wrap: (h: SinkHandler) => SinkHandler = (h) => h) {
  const i = config.iris;
  const client = new IrisClient({ url: i.url!, apiKey: i.api_key!, verifyTls: i.verify_cert, timeoutMs: i.request_timeout * 1000, sink: IRIS_SINK, log, metrics });
  const handler = new IrisDelivery(IRIS_SINK, i, client, store, log);
  const worker = new DeliveryWorker(store, wrap(handler), log, metrics);
  const base = workerPart(IRIS_SINK, IRIS_SINK, worker);
  const part: ServicePart = {
    ...base,
    start: async () => {
      // Look IRIS's ids up now, so a configuration problem shows at start, not with the first alert.
      void handler.ensureRefs().catch((err: Error) => log.warn({ sink: IRIS_SINK, error: err.message }, 'IRIS not ready at start; alerts will wait'));
      await base.start();
    },
    health: async () => handler.setupError ?? worker.setupProblem,
  };
  return {
    route: irisRoute(IRIS_SINK),
    worker,
    part,
    held: heldAlerts(store),
  };
}
