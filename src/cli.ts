#!/usr/bin/env node
// The threatbridge command line: run the service, check its configuration, and look after its state (status, dead letters, replay, checkpoints, indicators, decisions, breakers, reconciliation).
import { setFlagsFromString } from 'node:v8';
import { Command } from 'commander';
import pino from 'pino';
import { flowStatuses } from './config/flows.js';
import { SECRET_KEYS, type Config } from './config/schema.js';
import { ConfigError, loadConfig } from './config/load.js';
import { TlpPolicy } from './guard/tlp.js';
import { Pipeline } from './core/pipeline.js';
import { replayAlertLetters } from './flows/defender-alerts.js';
import { listHits } from './sinks/sightings.js';
import { activeRouter } from './flows/hub.js';
import { createLogger, errorFields, scrubSecrets } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { registerConfigSecrets, runOnce, startService } from './service.js';
import { DEFENDER_SINK, defenderClient, defenderReconciler } from './sinks/defender/index.js';
import { createContext, normaliseEvent } from './sources/opencti/normalise.js';
import { openStore } from './store/index.js';
import { replayMispInput } from './sources/misp/replay.js';
import type { SinkOp } from './core/types.js';

function fail(err: unknown): never {
  const text = err instanceof ConfigError ? err.message : `error: ${(err as Error).message ?? String(err)}`;
  process.stderr.write(`${scrubSecrets(text)}\n`);
  process.exit(err instanceof ConfigError ? 78 : 1);
}

function config(): Config {
  try {
    const c = loadConfig();
    registerConfigSecrets(c);
    return c;
  } catch (err) {
    fail(err);
  }
}

const print = (value: unknown) => process.stdout.write(`${scrubSecrets(typeof value === 'string' ? value : JSON.stringify(value, null, 2))}\n`);

/** The config with secrets replaced, for check-config. */
function redacted(c: Config): Config {
  const copy = structuredClone(c) as unknown as Record<string, Record<string, unknown>>;
  for (const key of SECRET_KEYS) {
    const [section, name] = key.split('.') as [string, string];
    if (copy[section]?.[name] !== undefined) copy[section]![name] = '[REDACTED]';
  }
  return copy as unknown as Config;
}

/** `--since`: an ISO time, or a duration back from now (90s, 30m, 2h, 7d). */
function parseSince(text: string): number {
  const m = /^(\d+)\s*([smhd])$/i.exec(text.trim());
  if (m) return Date.now() - Number(m[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2]!.toLowerCase() as 's' | 'm' | 'h' | 'd'];
  return Date.parse(text);
}

const program = new Command();
program.name('threatbridge').description('Threat-intel connector: OpenCTI and MISP → Microsoft Defender indicators').version('0.1.0');

program.command('run').description('run the service (long-running)')
  .option('--once', 'poll the polling flows once, deliver what is due, print a summary and exit (non-zero when something failed)')
  .action(async (opts: { once?: boolean }) => {
  const c = config();
  const log = createLogger(c.connector.log_level);
  if (opts.once) {
    try {
      const report = await runOnce(c, log);
      const code = printOnceReport(report);
      log.flush();
      // Keep-alive sockets and timers of the clients must not hold the one-shot run open.
      setTimeout(() => process.exit(code), 50);
    } catch (err) {
      fail(err);
    }
    return;
  }
  // The service churns through short-lived event objects while its live heap stays small (~25 MB);
  // by default V8 lets the heap grow to about 4x that before a full collection, which alone took
  // peak RSS over 200 MiB on a fast stream. Collecting at 1.5x keeps it well below, for a few
  // more (cheap, mostly concurrent) collections.
  setFlagsFromString('--heap-growing-percent=50');
  try {
    const service = await startService(c, log);
    let signals = 0;
    const shutdown = (signal: string) => {
      if (signals++ > 0) { log.warn({ signal }, 'second signal: exiting now'); process.exit(130); }
      log.info({ signal }, 'shutdown requested');
      void service.stop().then(() => { log.flush(); setTimeout(() => process.exit(0), 50); });
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  } catch (err) {
    if (err instanceof ConfigError) fail(err);
    log.fatal(errorFields(err), 'start-up failed');
    log.flush();
    fail(err);
  }
});

/** The terminal summary of `run --once`; returns the exit code. */
function printOnceReport(report: Awaited<ReturnType<typeof runOnce>>): number {
  const lines: string[] = [];
  for (const s of report.summaries) {
    lines.push(`${s.flow}: processed ${s.processed}, created ${s.created}, updated ${s.updated}, failed ${s.failed}`);
    if (s.details) lines.push(`  ${Object.entries(s.details).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  for (const name of report.skipped) lines.push(`${name}: skipped (a streaming flow; --once runs only polling flows)`);
  if (report.summaries.length === 0) lines.push('no polling flow is configured: nothing to run once');
  print(lines.join('\n'));
  return report.summaries.some((s) => s.failed > 0) ? 1 : 0;
}

program.command('check-config').description('validate the configuration and print the active flows').action(() => {
  const c = config();
  const flows = flowStatuses(c);
  print({
    flows: flows.map((f) => ({ flow: f.name, wanted: f.wanted, active: f.wanted && f.missing.length === 0, missing: f.missing })),
    config: redacted(c),
  });
  const wanted = flows.filter((f) => f.wanted);
  if (wanted.length === 0 || wanted.some((f) => f.missing.length > 0)) {
    const list = wanted.length === 0 ? flows : wanted;
    process.stderr.write(`no flow is fully configured; missing: ${[...new Set(list.flatMap((f) => f.missing))].join(', ')}\n`);
    process.exit(78);
  }
});

program.command('status').description('checkpoints, outbox and dead letters from the state store').action(async () => {
  const c = config();
  const store = await openStore(c);
  try {
    print({
      checkpoints: Object.fromEntries(await Promise.all([...new Set(flowStatuses(c).map((f) => f.source))]
        .map(async (source) => [source, await store.getCheckpoint(source)]))),
      outbox: await store.outboxStats(Date.now()),
      defenderIndicatorsHeld: await store.countSinkIds(DEFENDER_SINK),
      breakersOpen: (await store.listBreakers()).filter((b) => b.resumedAt === null),
      sentinelIndicatorsHeld: await store.countSinkIds('sentinel'),
      irisAlertsKnown: await store.countSinkIds('iris'),
      deadLetters: (await store.listDeadLetters({ limit: 100000 })).length,
    });
  } finally {
    await store.close();
  }
});

program.command('dead-letters').description('list dead letters (events or operations that were rejected)')
  .option('--sink <sink>', 'only this sink (e.g. defender, source:opencti)')
  .option('--all', 'include replayed ones')
  .option('--limit <n>', 'at most n', '100')
  .option('--json', 'JSON output')
  .action(async (opts: { sink?: string; all?: boolean; limit: string; json?: boolean }) => {
    const store = await openStore(config());
    try {
      const rows = await store.listDeadLetters({ sink: opts.sink, includeReplayed: !!opts.all, limit: Number(opts.limit) });
      if (opts.json) { print(rows); return; }
      if (rows.length === 0) { print('no dead letters'); return; }
      for (const r of rows) {
        print(`#${r.id} ${new Date(r.createdAt).toISOString()} ${r.sink} ${r.op} ${r.key}${r.replayedAt ? ' (replayed)' : ''}\n    ${r.reason}`);
      }
    } finally {
      await store.close();
    }
  });

program.command('replay').alias('replay-dead-letters').description('re-queue dead letters (after fixing their cause)')
  .argument('[ids...]', 'dead-letter ids; none = all')
  .option('--sink <sink>', 'only this sink')
  .action(async (ids: string[], opts: { sink?: string }) => {
    const c = config();
    const log = createLogger(c.connector.log_level);
    const store = await openStore(c);
    try {
      const taken = await store.takeDeadLetters(ids.length ? ids.map(Number) : 'all', opts.sink);
      const ops: SinkOp[] = taken.filter((d) => !d.sink.startsWith('source:'))
        .map((d) => ({ sink: d.sink, key: d.key, op: d.op as SinkOp['op'], payload: d.payload, sourceRef: d.sourceRef }));
      const requeued = await store.enqueue(ops);
      // Source events are normalised again: a fixed parser or mapping now gets its chance.
      const pipeline = new Pipeline(store, activeRouter(c), log, new Metrics(), { rawCopyBytes: c.limits.raw_copy_bytes, screen: new TlpPolicy(c.guard.max_tlp), decisions: store });
      const events = taken.filter((d) => d.sink === 'source:opencti');
      if (events.length && c.opencti.url) {
        const ctx = createContext(c.opencti.url, { maxChars: c.limits.pattern_chars, maxDepth: c.limits.pattern_depth });
        await pipeline.ingest('opencti', events.map((d) => {
          const raw = d.payload as { event: string; id: string; data: string };
          return { normalised: normaliseEvent(raw.event, raw.data, ctx), raw, event: raw.event, checkpoint: null, position: raw.id };
        }));
      }
      const mispInput = taken.filter((d) => d.sink === 'source:misp');
      if (mispInput.length) await pipeline.ingest('misp', replayMispInput(c, mispInput.map((d) => d.payload)));
      const alertLetters = taken.filter((d) => d.sink.startsWith('source:defender_alerts'));
      if (alertLetters.length) await replayAlertLetters(c, pipeline, alertLetters, store);
      print({ taken: taken.length, requeuedOperations: requeued, reprocessedEvents: events.length + mispInput.length + alertLetters.length, supersededByNewer: ops.length - requeued });
    } finally {
      log.flush();
      await store.close();
    }
  });

program.command('reset-checkpoint').description('forget where a source stopped (its next start replays as a first start)')
  .argument('<source>', 'opencti, misp, defender_alerts or defender_assets')
  .action(async (source: string) => {
    const store = await openStore(config());
    try {
      print((await store.resetCheckpoint(source)) ? `checkpoint of ${source} removed` : `no checkpoint for ${source}`);
    } finally {
      await store.close();
    }
  });

program.command('indicators').description('indicators ThreatBridge pushed to a sink')
  .command('list').description('list what is pushed (Defender: read from its API; Sentinel: from the state store)')
  .requiredOption('--target <sink>', 'sentinel or defender')
  .option('--type <type>', 'observable type: ipv4, ipv6, domain, url, md5, sha1, sha256, email, cert-sha1')
  .option('--value <text>', 'only values containing this text')
  .option('--json', 'JSON output')
  .action(async (opts: { target: string; type?: string; value?: string; json?: boolean }) => {
    if (opts.target !== 'sentinel' && opts.target !== 'defender') fail(new Error(`--target must be sentinel or defender, not "${opts.target}"`));
    const c = config();
    const store = await openStore(c);
    try {
      const { formatListing, listDefender, listSentinel } = await import('./flows/indicators-list.js');
      const filter = { type: opts.type, value: opts.value };
      const listing = opts.target === 'sentinel' ? await listSentinel(store, filter)
        : await listDefender(c, createLogger(c.connector.log_level, process.stderr), filter);
      print(opts.json ? listing : formatListing(listing));
    } catch (err) {
      fail(err);
    } finally {
      await store.close();
    }
  });

program.command('decisions').description('audit trail of enforcement decisions (guard, breaker, cap): what, why, from which event')
  .option('--source <source>', 'only this source (opencti, misp, cap)')
  .option('--since <time>', 'ISO time or a duration like 2h, 30m, 7d')
  .option('--limit <n>', 'at most n (newest first)', '100')
  .option('--json', 'JSON output')
  .action(async (opts: { source?: string; since?: string; limit: string; json?: boolean }) => {
    const since = opts.since === undefined ? undefined : parseSince(opts.since);
    if (since !== undefined && Number.isNaN(since)) fail(new Error(`--since: "${opts.since}" is neither an ISO time nor a duration like 2h`));
    const store = await openStore(config());
    try {
      const rows = await store.listDecisions({ source: opts.source, since, limit: Number(opts.limit) });
      const breakers = (await store.listBreakers()).filter((b) => b.resumedAt === null);
      if (opts.json) { print({ breakers, decisions: rows }); return; }
      for (const b of breakers) print(`BREAKER OPEN for ${b.source} since ${new Date(b.trippedAt).toISOString()}: ${b.reason} (threatbridge resume ${b.source})`);
      if (rows.length === 0) { print('no decisions'); return; }
      for (const d of rows) {
        print(`${new Date(d.at).toISOString()} ${d.outcome} ${d.sink} ${d.key} ${d.wanted}→${d.action} source=${d.source}${d.sourceRef ? ` ref=${d.sourceRef}` : ''}\n    ${d.reason}`);
      }
    } finally {
      await store.close();
    }
  });

program.command('hits').description('recent Defender custom-indicator alerts matched to pushed indicators, as sighted in OpenCTI and MISP')
  .option('--since <time>', 'ISO time or a duration like 2h, 30m, 7d')
  .option('--limit <n>', 'at most n (newest first)', '100')
  .option('--json', 'JSON output')
  .action(async (opts: { since?: string; limit: string; json?: boolean }) => {
    const since = opts.since === undefined ? undefined : parseSince(opts.since);
    if (since !== undefined && Number.isNaN(since)) fail(new Error(`--since: "${opts.since}" is neither an ISO time nor a duration like 2h`));
    const store = await openStore(config());
    try {
      const rows = await listHits(store, { since, limit: Number(opts.limit) });
      if (opts.json) { print({ hits: rows }); return; }
      if (rows.length === 0) { print('no hits'); return; }
      for (const d of rows) print(`${new Date(d.at).toISOString()} ${d.sink} ${d.key} ${d.action} ref=${d.sourceRef ?? ''}\n    ${d.reason}`);
    } finally {
      await store.close();
    }
  });

program.command('resume').description('release the breaker of a source (all when none is named); the service notices within guard.breaker_poll_seconds')
  .argument('[source]', 'opencti, misp, …')
  .action(async (source: string | undefined) => {
    const store = await openStore(config());
    try {
      const released = await store.resumeBreakers(source ?? null);
      print(released.length ? `resumed: ${released.join(', ')}` : `no breaker open${source ? ` for ${source}` : ''}`);
    } finally {
      await store.close();
    }
  });

program.command('reconcile').description('compare what Defender holds with the store once and repair the drift')
  .action(async () => {
    const c = config();
    // Logs go to stderr: stdout carries the report.
    const log = createLogger(c.connector.log_level, pino.destination({ dest: 2, sync: true }));
    const store = await openStore(c);
    try {
      const metrics = new Metrics();
      const client = defenderClient(c, log, metrics);
      print(await defenderReconciler(c, client, store, log, metrics).run());
    } catch (err) {
      fail(err);
    } finally {
      log.flush();
      await store.close();
    }
  });

program.parseAsync(process.argv).catch(fail);
