// What every part is built from: the configuration, the store, the logger and the metrics.
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../core/store.js';

export interface ServiceContext {
  config: Config;
  store: Store;
  log: Logger;
  metrics: Metrics;
  /** `run --once`: sinks count what their deliveries did, for the summary. */
  once?: boolean;
}
