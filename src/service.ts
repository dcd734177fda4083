// Runs the configured flows: every source feeds the hub (changes → router → outbox → sink
// workers), see flows/. Start-up refuses a configuration that cannot work.
import { activeFlows, assertStartable, PLACEHOLDERS } from './config/flows.js';
import { ConfigError } from './config/errors.js';
import { targetSecrets } from './config/targets.js';
import { SECRET_KEYS, type Config } from './config/schema.js';
import type { OnceSummary } from './core/parts.js';
import type { ServiceContext } from './flows/parts.js';
import { serviceParts } from './flows/sources.js';
import { HealthServer, isLoopback } from './observability/health.js';
import { statusModel } from './observability/status-model.js';
import { errorFields, registerSecret, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { openStore } from './store/index.js';
import type { Store } from './core/store.js';

export interface RunningService {
  healthPort: number | null;
  stop(): Promise<void>;
}

/** Every secret value is scrubbed from logs and output, whichever flow uses it. */
export function registerConfigSecrets(config: Config): void {
  for (const key of SECRET_KEYS) {
    const [section, name] = key.split('.') as [string, string];
    const value = (config as unknown as Record<string, Record<string, unknown>>)[section]?.[name];
    // The sample's placeholders are no secrets (and scrubbing "ChangeMe" would hide the hint to replace it).
    if (typeof value === 'string') { if (!PLACEHOLDERS.includes(value)) registerSecret(value); }
    // Maps of secrets (per-tenant credentials): every value is one.
    else if (value && typeof value === 'object') for (const v of Object.values(value)) if (typeof v === 'string') registerSecret(v);
  }
  for (const secret of targetSecrets(config.microsoft_defender_intel, config.sentinel)) registerSecret(secret);
}

/** A warning per system whose TLS verification the user turned off. */
export function warnInsecureTls(config: Config, log: Logger): void {
  for (const [section, values] of Object.entries(config as unknown as Record<string, Record<string, unknown>>)) {
    for (const key of ['ssl_verify', 'verify_cert']) {
      if (values?.[key] === false) log.warn({ key: `${section}.${key}` }, `TLS verification is OFF for ${section}`);
    }
  }
}

/** Settings of the official OpenCTI connector that ThreatBridge accepts but does not use, each with why. */
export function ignoredSettings(config: Config): { key: string; note: string }[] {
  const out: { key: string; note: string }[] = [];
  if (config.connector.scope !== undefined) out.push({ key: 'connector.scope', note: 'ignored: ThreatBridge reads the indicators of the live stream whatever the scope' });
  if (config.connector.type !== undefined) out.push({ key: 'connector.type', note: 'ignored: ThreatBridge is a stream connector' });
  return out;
}

/** What `run` and `run --once` do before anything opens: secrets known to the logger, config checked, warnings said. */
function prepareStart(config: Config, log: Logger): void {
  registerConfigSecrets(config);
  assertStartable(config);
  warnInsecureTls(config, log);
  for (const n of ignoredSettings(config)) log.warn({ key: n.key }, `${n.key} is accepted for compatibility with the official connector and ${n.note}`);
}

export async function startService(config: Config, log: Logger): Promise<RunningService> {
  prepareStart(config, log);

  const metrics = new Metrics(true);
  let store: Store;
  try {
    store = await openStore(config, { owner: true, log });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([`store.dir [env STORE_DIR]: cannot open the state store in ${config.store.dir} (${(err as Error).message}); make the directory writable`]);
  }
  const ctx: ServiceContext = { config, store, log, metrics };
  const parts = serviceParts(ctx);
  const sources = parts.filter((p) => p.kind === 'source');
  const sinks = parts.filter((p) => p.kind === 'sink');

  const sinkNames = sinks.flatMap((p) => p.sinks ?? []);
  const flows = activeFlows(config).map((f) => f.name);
  const storeName = config.store.engine === 'postgres' ? `postgres (schema ${config.store.schema})` : `sqlite (${config.store.dir})`;
  const c = config.connector;
  // Every part shows on /metrics and /status from the start, before it has anything to report.
  for (const p of sources) metrics.activity.known(p.name);
  const health = new HealthServer(metrics, [
    ...parts.filter((p) => p.health).map((p) => ({ name: p.name, check: () => p.health!() })),
    { name: 'store', check: async () => { await store.ping(); return null; } },
  ], c.expose_metrics, async () => {
    // An empty outbox has no row per sink: zero every known sink first.
    for (const sink of sinkNames) {
      metrics.outboxPending.set({ sink }, 0);
      metrics.outboxOldestSeconds.set({ sink }, 0);
    }
    for (const s of await store.outboxStats(Date.now())) {
      metrics.outboxPending.set({ sink: s.sink }, s.pending);
      metrics.outboxOldestSeconds.set({ sink: s.sink }, s.oldestEnqueuedAt ? (Date.now() - s.oldestEnqueuedAt) / 1000 : 0);
    }
  }, {
    token: c.status_token,
    model: () => statusModel({
      metrics, store, flows, storeName, sources: sources.map((p) => p.name), sinks: sinkNames,
      caps: sinkNames.includes('defender')
        ? [{ sink: 'defender', max: config.microsoft_defender_intel.max_indicators, budget: Math.max(1, config.microsoft_defender_intel.max_indicators - config.microsoft_defender_intel.headroom) }]
        : [],
    }),
  });
  let healthPort: number | null = null;
  try {
    healthPort = await health.start(c.metrics_port, c.metrics_host);
    if (!isLoopback(c.metrics_host) && !c.status_token) {
      log.warn({ host: c.metrics_host }, 'health port bound beyond loopback without connector.status_token (CONNECTOR_STATUS_TOKEN): /status answers only on this host');
    }
    log.info({ host: c.metrics_host, port: healthPort, metrics: c.expose_metrics }, 'health endpoints listening');
  } catch (err) {
    await store.close();
    throw new ConfigError([`connector.metrics_port [env CONNECTOR_METRICS_PORT]: cannot listen on ${config.connector.metrics_host}:${config.connector.metrics_port} (${(err as Error).message}); choose a free port`]);
  }

  // Sinks first, so the first committed operations find a worker.
  for (const p of sinks) await p.start();
  for (const p of sources) await p.start();
  metrics.reach.attach(log, c.unreachable_after * 1000);
  // The one line a healthy start prints at the default level: what runs, where state is, where to look.
  log.info({ flows, sources: sources.map((p) => p.name), sinks: sinkNames, store: storeName,
    health: `http://${c.metrics_host.includes(':') ? `[${c.metrics_host}]` : c.metrics_host}:${healthPort}`, dryRun: c.dry_run },
  `ThreatBridge started: ${flows.join(', ')}; store ${storeName}; status page on port ${healthPort}`);

  let stopping: Promise<void> | null = null;
  return {
    healthPort,
    stop: () => (stopping ??= (async () => {
      const bound = config.connector.shutdown_timeout * 1000;
      log.info({ boundMs: bound }, 'stopping: no more reading, flushing in-flight work');
      const half = Math.floor(bound / 2);
      await Promise.all(sources.map((p) => p.stop(half).catch((err) => log.warn({ part: p.name, ...errorFields(err) }, 'source stop failed'))));
      await Promise.all(sinks.map((p) => p.stop(half).catch((err) => log.warn({ part: p.name, ...errorFields(err) }, 'sink stop failed'))));
      metrics.reach.detach();
      await health.stop().catch((err) => log.warn(errorFields(err), 'health server close failed'));
      await store.close();
      log.info('stopped');
    })()),
  };
}

export interface OnceReport {
  summaries: OnceSummary[];
  /** Parts that have no one-shot mode (streaming sources), left untouched. */
  skipped: string[];
}

/**
 * `run --once`: the configured flows' parts are built but not started (only the guard, so that
 * every enforcing action still passes it); each source reads once (a poll, a MISP catch-up, the
 * OpenCTI stream up to where it stood), in turn, and its sinks deliver what is due.
 */
export async function runOnce(config: Config, log: Logger): Promise<OnceReport> {
  prepareStart(config, log);
  const store = await openStore(config);
  try {
    const ctx: ServiceContext = { config, store, log, metrics: new Metrics(), once: true };
    const parts = serviceParts(ctx);
    const guard = parts.find((p) => p.name === 'guard');
    await guard?.start();
    const summaries: OnceSummary[] = [];
    const skipped: string[] = [];
    try {
      for (const p of parts.filter((x) => x.kind === 'source')) {
        if (p.runOnce) summaries.push(await p.runOnce());
        else skipped.push(p.name);
      }
    } finally {
      await guard?.stop(1000);
    }
    return { summaries, skipped };
  } finally {
    await store.close();
  }
}
