// Wiring of the CAR sink from configuration: route, client, delivery handler, worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { SinkIdStore, Store } from '../../core/store.js';
import { CarClient } from './client.js';
import { CarDelivery } from './delivery.js';
import { carRoute, machineKey, MODEL_STATE_KEY } from './route.js';

export const CAR_SINK = 'car';

/** Of these Defender machine ids, those CAR holds from us. */
export const heldMachines = (store: SinkIdStore) => async (machineIds: string[]): Promise<Set<string>> => {
  const ids = await store.getSinkIds(CAR_SINK, machineIds.map(machineKey));
  return new Set(machineIds.filter((id) => ids.has(machineKey(id))));
};

export function createCarSink(config: Config, store: Store, log: Logger, metrics: Metrics, pollBaseMs?: number,
  wrap: (h: SinkHandler) => SinkHandler = (h) => h) {
  const c = config.car;
  const client = new CarClient({
    url: c.url!, apiKey: c.api_key, password: c.password, token: c.token,
    timeoutMs: c.request_timeout * 1000, verifyTls: c.ssl_verify, sink: CAR_SINK, log, metrics,
  });
  const handler = new CarDelivery(CAR_SINK, c.batch_size, client, store, log, {
    source: {
      _key: c.source,
      name: c.source_name ?? config.microsoft_defender_intel.tenant_id ?? c.source,
      description: 'Microsoft Defender for Endpoint imports (ThreatBridge)',
      product_link: 'https://security.microsoft.com/',
    },
    pageSize: c.page_size,
    importTimeoutMs: c.import_timeout * 1000,
    ...(pollBaseMs !== undefined ? { pollBaseMs } : {}),
  });
  return {
    route: carRoute(CAR_SINK),
    client,
    handler,
    worker: new DeliveryWorker(store, wrap(handler), log, metrics),
    held: heldMachines(store),
    savePointLost: () => lostSavePoint(client, store, c.source),
  };
}

/**
 * The save point CAR confirmed to us, when CAR no longer holds it (a reset or rebuilt CAR, or the
 * IBM framework's reset after a failure): the next run must import everything. Null otherwise,
 * including when CAR cannot be asked now.
 */
export async function lostSavePoint(client: CarClient, store: SinkIdStore, source: string): Promise<string | null> {
  const confirmed = (await store.getSinkIds(CAR_SINK, [MODEL_STATE_KEY])).get(MODEL_STATE_KEY);
  if (!confirmed) return null;
  const res = await client.getSource(source).catch(() => null);
  if (!res) return null;
  const held = res.status === 200 && res.data && typeof res.data === 'object' ? res.data.model_state_id : undefined;
  return res.status === 404 || (res.status === 200 && !held) ? confirmed : null;
}
