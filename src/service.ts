// Wires the configured flows together: source → ingest loop → pipeline → outbox → delivery workers,
// plus the health/metrics port. Start-up refuses a configuration that cannot work.
import { activeFlows, type Config } from './config/schema.js';
import { ConfigError, requireKeys } from './config/load.js';
import type { DeliveryWorker } from './core/delivery.js';
import { IngestLoop } from './core/ingest-loop.js';
import { Pipeline } from './core/pipeline.js';
import { Router } from './core/router.js';
import { HealthServer } from './observability/health.js';
import { errorFields, registerSecret, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { createDefenderSink } from './sinks/defender/index.js';
import { OpenCtiSource, SOURCE as OPENCTI } from './sources/opencti/source.js';
import { openStore } from './store/index.js';
import type { Store } from './store/types.js';

export interface RunningService {
  healthPort: number | null;
  stop(): Promise<void>;
}

export function warnInsecureTls(config: Config, log: Logger): void {
  if (!config.opencti.ssl_verify) log.warn({ key: 'opencti.ssl_verify' }, 'TLS verification is OFF for OpenCTI');
  if (!config.microsoft_defender_intel.ssl_verify) {
    log.warn({ key: 'microsoft_defender_intel.ssl_verify' }, 'TLS verification is OFF for Microsoft Entra ID and Defender');
  }
}

export async function startService(config: Config, log: Logger): Promise<RunningService> {
  registerSecret(config.opencti.token);
  registerSecret(config.microsoft_defender_intel.client_secret);
  const flow = activeFlows(config)[0]!;
  if (flow.missing.length > 0) requireKeys(config, flow.missing);
  warnInsecureTls(config, log);

  const metrics = new Metrics(true);
  let store: Store;
  try {
    store = openStore(config);
  } catch (err) {
    throw new ConfigError([`store.dir [env STORE_DIR]: cannot open the state store in ${config.store.dir} (${(err as Error).message}); make the directory writable`]);
  }
  const defender = createDefenderSink(config, store, log, metrics);
  const workers: DeliveryWorker[] = [defender.worker];
  const pipeline = new Pipeline(store, new Router([defender.route]), log, metrics);

  let source: OpenCtiSource | null = null;
  const ingest = new IngestLoop(OPENCTI, pipeline, {
    batchSize: config.pipeline.batch_size, batchMs: config.pipeline.batch_ms, queueSize: config.pipeline.queue_size,
  }, log, {
    onCommitted: (r) => { if (r.ops.length > 0) for (const w of workers) w.wake(); },
    onFull: () => source?.pause(),
    onDrained: () => source?.resume(),
  });
  source = new OpenCtiSource(config, store, ingest, log, metrics);

  const health = new HealthServer(metrics, [
    { name: 'opencti', check: async () => (source!.connected ? null : `stream not connected${source!.lastError ? `: ${source!.lastError}` : ''}`) },
    { name: 'store', check: async () => { await store.ping(); return ingest.lastError ? `cannot commit: ${ingest.lastError}` : null; } },
  ], config.connector.expose_metrics, async () => {
    // An empty outbox has no row per sink: zero every known sink first.
    for (const sink of [defender.route.sink]) {
      metrics.outboxPending.set({ sink }, 0);
      metrics.outboxOldestSeconds.set({ sink }, 0);
    }
    for (const s of await store.outboxStats(Date.now())) {
      metrics.outboxPending.set({ sink: s.sink }, s.pending);
      metrics.outboxOldestSeconds.set({ sink: s.sink }, s.oldestEnqueuedAt ? (Date.now() - s.oldestEnqueuedAt) / 1000 : 0);
    }
  });
  let healthPort: number | null = null;
  try {
    healthPort = await health.start(config.connector.metrics_port, config.connector.metrics_host);
    log.info({ port: healthPort, metrics: config.connector.expose_metrics }, 'health endpoints listening');
  } catch (err) {
    await store.close();
    throw new ConfigError([`connector.metrics_port [env CONNECTOR_METRICS_PORT]: cannot listen on ${config.connector.metrics_host}:${config.connector.metrics_port} (${(err as Error).message}); choose a free port`]);
  }

  for (const w of workers) w.start();
  await source.start();
  log.info({ flows: [flow.name] }, 'ThreatBridge started');

  let stopping: Promise<void> | null = null;
  return {
    healthPort,
    stop: () => (stopping ??= (async () => {
      const bound = config.connector.shutdown_timeout * 1000;
      log.info({ boundMs: bound }, 'stopping: no more reading, flushing in-flight work');
      source!.stop();
      const drained = await ingest.drain(Math.floor(bound / 2));
      ingest.stop();
      if (!drained) log.warn({ queued: ingest.size }, 'some events were not stored before shutdown; they will be read again on restart');
      await Promise.all(workers.map((w) => w.stop(Math.floor(bound / 2))));
      await health.stop().catch((err) => log.warn(errorFields(err), 'health server close failed'));
      await store.close();
      log.info('stopped');
    })()),
  };
}
