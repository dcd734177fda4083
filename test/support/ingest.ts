// The core's ingest path for a poller under test: a real pipeline over the given record routes
// into the given store, as the hub builds it.
import { IngestLoop } from '../../src/core/ingest-loop.js';
import { Pipeline } from '../../src/core/pipeline.js';
import { Router, type RecordRoute } from '../../src/core/router.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { ClaimStore } from '../../src/core/store.js';

export function recordIngest(store: ClaimStore, source: string, routes: RecordRoute[]): IngestLoop {
  const log = createLogger('silent');
  return new IngestLoop(source, new Pipeline(store, new Router([], routes), log, new Metrics()), { batchSize: 500, batchMs: 1, queueSize: 10_000 }, log);
}
