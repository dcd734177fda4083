#!/usr/bin/env node
// The threatbridge command line: run the service, check its configuration, and look after its state
// (status, dead letters, replay, checkpoints, indicators, decisions, breakers, reconciliation).
// Command output goes to stdout, logs and warnings to stderr; text from the store is escaped.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { age, safe, safeBlock, safeJson, table } from './cli-format.js';
import { flowStatuses, startupProblems } from './config/flows.js';
import { SECRET_KEYS, type Config } from './config/schema.js';
import { ConfigError } from './config/errors.js';
import { loadConfigReport } from './config/load.js';
import { withoutUserinfo } from './observability/public-text.js';
import { OBSERVABLE_TYPES, type SinkOp } from './core/types.js';
import { TlpPolicy } from './guard/tlp.js';
import { Pipeline } from './core/pipeline.js';
import { replayAlertLetters } from './flows/defender-alerts.js';
import { listHits } from './sinks/sightings.js';
import { activeRouter, routeWarnings } from './flows/hub.js';
import { createLogger, errorFields, scrubSecrets } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { ignoredSettings, registerConfigSecrets, runOnce, startService } from './service.js';
import { sentinelTargets } from './sinks/sentinel/index.js';
import { DEFENDER_SINK, defenderClient, defenderReconciler, defenderTarget, defenderTargets } from './sinks/defender/index.js';
import { createContext, normaliseEvent } from './sources/opencti/normalise.js';
import { openStore, type Store } from './store/index.js';
import { replayMispInput } from './sources/misp/replay.js';

function fail(err: unknown): never {
  const text = err instanceof ConfigError ? err.message : `error: ${(err as Error).message ?? String(err)}`;
  process.stderr.write(`${scrubSecrets(text)}\n`);
  process.exit(err instanceof ConfigError ? 78 : 1);
}

/** A bad argument or option value: exit 2, nothing done. */
function usage(message: string): never {
  process.stderr.write(`error: ${safe(message)}\n`);
  process.exit(2);
}

/** The config every command uses; unknown variables are warned about on stderr. */
function config(): Config {
  try {
    const { config: c, warnings } = loadConfigReport();
    registerConfigSecrets(c);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    return c;
  } catch (err) {
    fail(err);
  }
}

const print = (value: unknown) => process.stdout.write(`${scrubSecrets(typeof value === 'string' ? value : safeJson(value))}\n`);

/** The config with secrets replaced, for check-config. */
function redacted(c: Config): Config {
  const copy = structuredClone(c) as unknown as Record<string, Record<string, unknown>>;
  for (const key of SECRET_KEYS) {
    const [section, name] = key.split('.') as [string, string];
    if (copy[section]?.[name] !== undefined) copy[section]![name] = '[REDACTED]';
  }
  for (const section of ['microsoft_defender_intel', 'sentinel']) {
    for (const t of (copy[section]?.['targets'] ?? []) as Record<string, unknown>[]) if (t['client_secret'] !== undefined) t['client_secret'] = '[REDACTED]';
  }
  return copy as unknown as Config;
}

/** `--since`: an ISO time, or a duration back from now (90s, 30m, 2h, 7d). */
function parseSince(text: string): number {
  const m = /^(\d+)\s*([smhd])$/i.exec(text.trim());
  if (m) return Date.now() - Number(m[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2]!.toLowerCase() as 's' | 'm' | 'h' | 'd'];
  return Date.parse(text);
}

/** Commander parser of a count option (`--limit`): a whole number of at least 1. */
function count(value: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a whole number of at least 1');
  return Number(value);
}

/** Sources that keep a checkpoint (Defender alerts: one per tenant as `defender_alerts:<tenant>`). */
const CHECKPOINT_SOURCE = /^(opencti|misp|defender_assets|defender_alerts(:[A-Za-z0-9-]{1,64})?)$/;
/** Names a breaker can have: the indicator sources and the reconciliation. */
const BREAKER_SOURCES = ['opencti', 'misp', 'reconciliation'];
/** Decision sources: the indicator sources, the cap's evictions and the reconciliation. */
const DECISION_SOURCES = ['opencti', 'misp', 'cap', 'reconciliation'];
const SINK_NAME = /^(defender|sentinel|iris|car|opencti-sightings|misp-sightings|source:(opencti|misp|defender_assets|defender_alerts(:[A-Za-z0-9-]{1,64})?))$/;

function sinkOption(value: string): string {
  if (!SINK_NAME.test(value)) throw new InvalidArgumentError('must be defender, sentinel, iris, car, opencti-sightings, misp-sightings or source:<opencti|misp|defender_alerts|defender_assets>');
  return value;
}

/**
 * The state store for a maintenance command: it must already exist (a typo'd STORE_DIR must not
 * quietly create an empty store and report "nothing there").
 */
async function existingStore(c: Config): Promise<Store> {
  if (c.store.engine === 'sqlite' && !existsSync(join(c.store.dir, 'threatbridge.db'))) {
    fail(new ConfigError([`store.dir [env STORE_DIR]: no state store in ${c.store.dir} (threatbridge.db not found); point STORE_DIR at the directory the service uses`]));
  }
  try {
    return await openStore(c);
  } catch (err) {
    fail(err);
  }
}

/** Opens the store, runs the command, closes the store; any error exits non-zero. */
async function withStore(c: Config, body: (store: Store) => Promise<void>): Promise<void> {
  const store = await existingStore(c);
  try {
    await body(store);
  } catch (err) {
    await store.close().catch(() => undefined);
    fail(err);
  }
  await store.close();
}

const program = new Command();
program.name('threatbridge')
  .description('Threat-intel connector. Flows: OpenCTI and MISP → Microsoft Defender indicators and Microsoft Sentinel threat intelligence; '
    + 'Microsoft Defender alerts → DFIR-IRIS alerts; Microsoft Defender hits → OpenCTI and MISP sightings; Microsoft Defender assets → IBM CAR. '
    + 'Configuration: config.yml and environment (doc/configuration.md).')
  .version('0.1.0');

program.command('run').description('run the service (long-running)')
  .option('--once', 'read every flow once (polls, a MISP catch-up, the OpenCTI stream until caught up), deliver what is due, print a summary and exit: 0 ok, 1 something failed, 3 a sink refused our set-up')
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
    for (const p of s.setupProblems ?? []) lines.push(`  set-up refused by ${p}`);
  }
  for (const name of report.skipped) lines.push(`${name}: skipped (no one-shot mode)`);
  if (report.summaries.length === 0) lines.push('no flow is configured: nothing to run once');
  print(lines.join('\n'));
  // 3 (2 is a bad argument): fix the set-up first (credentials, roles, paths); 1: something was dead-lettered, waits for a retry, or a read failed.
  if (report.summaries.some((s) => (s.setupProblems?.length ?? 0) > 0)) return 3;
  return report.summaries.some((s) => s.failed > 0) ? 1 : 0;
}

program.command('check-config').description('validate the configuration as `run` does, and summarise the flows (exit 78 when `run` would stop)')
  .option('--json', 'JSON output (flows, warnings, problems, the configuration with secrets redacted)')
  .action((opts: { json?: boolean }) => {
    let loaded: ReturnType<typeof loadConfigReport>;
    try {
      loaded = loadConfigReport();
    } catch (err) {
      if (!(err instanceof ConfigError) || !opts.json) fail(err);
      print({ ok: false, problems: err.problems.map(scrubSecrets), warnings: [], flows: [] });
      process.exit(78);
    }
    const { config: c, file } = loaded;
    // Settings of the official OpenCTI connector accepted and ignored: noted with the warnings.
    const warnings = [...loaded.warnings, ...ignoredSettings(c).map((n) => `${n.key}: ${n.note}`)];
    registerConfigSecrets(c);
    const problems = startupProblems(c);
    const flows = flowStatuses(c).map((f) => ({ flow: f.name, wanted: f.wanted, active: f.wanted && f.missing.length === 0, missing: f.missing }));
    if (opts.json) {
      print({ ok: problems.length === 0, problems, warnings, flows, defenderTargets: defenderTargets(c).map((t) => ({ name: t.name, sink: t.sink, tenantId: t.tenantId })),
        sentinelTargets: sentinelTargets(c).map((t) => ({ name: t.name, sink: t.sink, workspaceId: t.workspaceId })),
        routeWarnings: routeWarnings(c), config: redacted(c) });
    } else {
      const lines = [`configuration: ${file ?? '(no file)'} and the environment`, 'flows:'];
      for (const f of flows) lines.push(`  ${f.active ? 'runs   ' : f.wanted ? 'BLOCKED' : 'off    '}  ${f.flow}`);
      lines.push(`store: ${c.store.engine}${c.store.engine === 'sqlite' ? ` in ${c.store.dir}` : ` (${withoutUserinfo(c.store.url ?? '')}, schema ${c.store.schema})`}`);
      const targets = defenderTargets(c);
      if (targets.length > 1) lines.push(`defender tenants: ${targets.map((t) => `${t.name} (${t.sink})`).join(', ')}`);
      const workspaces = sentinelTargets(c);
      if (workspaces.length > 1) lines.push(`sentinel workspaces: ${workspaces.map((t) => `${t.name} (${t.sink})`).join(', ')}`);
      const routes = routeWarnings(c).map((w) => `${w.sink}: this route can match nothing: ${w.warning}`);
      if (warnings.length || routes.length) lines.push('warnings:', ...[...warnings, ...routes].map((w) => `  - ${w}`));
      if (problems.length) lines.push('problems (run would stop):', ...problems.map((p) => `  - ${p.replace(/\n/g, '\n    ')}`));
      lines.push(problems.length ? `NOT OK: ${problems.length} problem(s)` : `OK: ${flows.filter((f) => f.active).length} flow(s) will run`);
      print(lines.join('\n'));
    }
    if (problems.length) process.exit(78);
  });

program.command('status').description('flows, checkpoints, outbox, held indicators, open breakers and dead letters from the state store')
  .option('--json', 'JSON output')
  .action(async (opts: { json?: boolean }) => {
    const c = config();
    await withStore(c, async (store) => {
      const now = Date.now();
      const sources = [...new Set(flowStatuses(c).map((f) => f.source))];
      const checkpoints = Object.fromEntries(await Promise.all(sources.map(async (source) => [source, await store.getCheckpoint(source)] as const)));
      const status = {
        flows: flowStatuses(c).filter((f) => f.wanted).map((f) => ({ flow: f.name, active: f.missing.length === 0 })),
        checkpoints,
        outbox: await store.outboxStats(now),
        defenderIndicatorsHeld: await store.countSinkIds(DEFENDER_SINK),
        defenderIndicatorsCap: c.microsoft_defender_intel.max_indicators,
        defenderTargets: await Promise.all(defenderTargets(c).map(async (t) => ({ name: t.name, sink: t.sink, tenantId: t.tenantId, indicatorsHeld: await store.countSinkIds(t.sink) }))),
        sentinelTargets: await Promise.all(sentinelTargets(c).map(async (t) => ({ name: t.name, sink: t.sink, workspaceId: t.workspaceId, indicatorsHeld: await store.countSinkIds(t.sink) }))),
        routeWarnings: routeWarnings(c),
        breakersOpen: (await store.listBreakers()).filter((b) => b.resumedAt === null),
        sentinelIndicatorsHeld: await store.countSinkIds('sentinel'),
        irisAlertsKnown: await store.countSinkIds('iris'),
        deadLetters: (await store.listDeadLetters({ limit: 1_000_000 })).length,
      };
      if (opts.json) { print(status); return; }
      const out: string[] = [];
      out.push(table(['FLOW', 'STATE'], status.flows.map((f) => [f.flow, f.active ? 'configured' : 'incomplete'])), '');
      out.push(table(['SOURCE', 'CHECKPOINT'], Object.entries(checkpoints).map(([s, cp]) => [s, cp ? cp.position : 'none (next start is a first start)'])), '');
      out.push(status.outbox.length === 0 ? 'outbox: empty'
        : table(['SINK', 'PENDING', 'DUE', 'OLDEST'], status.outbox.map((o) => [o.sink, o.pending, o.due, o.oldestEnqueuedAt ? age(now - o.oldestEnqueuedAt) : '-'])));
      out.push('', table(['HELD', 'COUNT'], [
        ...(status.defenderTargets.length > 1 ? status.defenderTargets.map((t) => [`defender indicators (${t.name})`, t.indicatorsHeld])
          : [['defender indicators', `${status.defenderIndicatorsHeld} of ${status.defenderIndicatorsCap}`]]),
        ...(status.sentinelTargets.length > 1 ? status.sentinelTargets.map((t) => [`sentinel indicators (${t.name})`, t.indicatorsHeld])
          : [['sentinel indicators', status.sentinelIndicatorsHeld]]),
        ['iris alerts', status.irisAlertsKnown],
        ['dead letters', `${status.deadLetters}${status.deadLetters ? ' (threatbridge dead-letters)' : ''}`],
      ]));
      for (const b of status.breakersOpen) out.push(`BREAKER OPEN for ${safe(b.source)} since ${new Date(b.trippedAt).toISOString()}: ${safe(b.reason)} (threatbridge resume ${safe(b.source)})`);
      print(out.join('\n'));
    });
  });

program.command('dead-letters').description('list dead letters (events or operations that were rejected)')
  .addOption(new Option('--sink <sink>', 'only this sink (defender, sentinel, iris, car, source:opencti, ...)').argParser(sinkOption))
  .option('--all', 'include replayed ones')
  .option('--limit <n>', 'at most n', count, 100)
  .option('--json', 'JSON output')
  .action(async (opts: { sink?: string; all?: boolean; limit: number; json?: boolean }) => {
    await withStore(config(), async (store) => {
      const rows = await store.listDeadLetters({ sink: opts.sink, includeReplayed: !!opts.all, limit: opts.limit });
      if (opts.json) { print(rows); return; }
      if (rows.length === 0) { print('no dead letters'); return; }
      for (const r of rows) {
        print(`#${r.id} ${new Date(r.createdAt).toISOString()} ${safe(r.sink)} ${safe(r.op)} ${safe(r.key)}${r.replayedAt ? ' (replayed)' : ''}\n    ${safe(r.reason)}`);
      }
    });
  });

program.command('replay').alias('replay-dead-letters').description('re-queue dead letters (after fixing their cause)')
  .argument('[ids...]', 'dead-letter ids (numbers from `threatbridge dead-letters`); none = all')
  .addOption(new Option('--sink <sink>', 'only this sink').argParser(sinkOption))
  .option('--json', 'JSON output')
  .action(async (ids: string[], opts: { sink?: string; json?: boolean }) => {
    const bad = ids.filter((id) => !/^\d{1,15}$/.test(id));
    if (bad.length) usage(`replay: not a dead-letter id: ${bad.join(', ')} (ids are the numbers \`threatbridge dead-letters\` prints)`);
    const c = config();
    // Logs go to stderr: stdout carries the report.
    const log = createLogger(c.connector.log_level, pino.destination({ dest: 2, sync: true }));
    await withStore(c, async (store) => {
      if (ids.length) {
        const open = new Set((await store.listDeadLetters({ sink: opts.sink, limit: 1_000_000 })).map((d) => d.id));
        const unknown = ids.filter((id) => !open.has(Number(id)));
        if (unknown.length) throw new Error(`no dead letter waiting for replay with id ${unknown.join(', ')}${opts.sink ? ` for ${opts.sink}` : ''}; see \`threatbridge dead-letters\``);
      }
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
      const report = { taken: taken.length, requeuedOperations: requeued, reprocessedEvents: events.length + mispInput.length + alertLetters.length, supersededByNewer: ops.length - requeued };
      log.flush();
      if (opts.json) { print(report); return; }
      print(report.taken === 0 ? 'no dead letters to replay'
        : `replayed ${report.taken} dead letter(s): ${report.requeuedOperations} operation(s) queued again, ${report.reprocessedEvents} source event(s) processed again`
          + `${report.supersededByNewer ? `, ${report.supersededByNewer} skipped (a newer operation for the same indicator is already queued)` : ''}`);
    });
  });

program.command('reset-checkpoint').description('forget where a source stopped (its next start replays as a first start); stop the service first')
  .argument('<source>', 'opencti, misp, defender_alerts (or defender_alerts:<tenant id>) or defender_assets')
  .option('--force', 'reset even though the service seems to be running')
  .action(async (source: string, opts: { force?: boolean }) => {
    if (!CHECKPOINT_SOURCE.test(source)) usage(`reset-checkpoint: unknown source "${source}"; one of opencti, misp, defender_alerts, defender_alerts:<tenant id>, defender_assets`);
    const c = config();
    // The running service holds its position in memory and writes it back at its next commit,
    // which would undo the reset: say so before touching anything.
    const shm = c.store.engine === 'sqlite' && existsSync(join(c.store.dir, 'threatbridge.db-shm'));
    await withStore(c, async (store) => {
      const lock = await store.acquireSourceLock(source.split(':')[0]!);
      await lock?.release();
      const running = lock === null || shm;
      if (running) {
        const why = lock === null ? `the source lock of ${source.split(':')[0]} is held` : 'the state store is open in another process';
        process.stderr.write(`warning: the service seems to be running (${why}); it would write its position back at its next commit. Stop it first${opts.force ? '' : ', or repeat with --force if it is not running'}.\n`);
        if (!opts.force) { process.exitCode = 1; return; }
      }
      print((await store.resetCheckpoint(source)) ? `checkpoint of ${source} removed` : `no checkpoint for ${source}`);
    });
  });

program.command('indicators').description('indicators ThreatBridge pushed to a sink')
  .command('list').description('list what is pushed (Defender: read from its API; Sentinel: from the state store)')
  .addOption(new Option('--target <sink>', 'the indicator sink').choices(['sentinel', 'defender']).makeOptionMandatory())
  .addOption(new Option('--type <type>', 'observable type').choices(OBSERVABLE_TYPES as string[]))
  .option('--value <text>', 'only values containing this text')
  .option('--tenant <name>', 'Defender: this target (default the first)')
  .option('--json', 'JSON output')
  .action(async (opts: { target: 'sentinel' | 'defender'; type?: string; value?: string; tenant?: string; json?: boolean }) => {
    const c = config();
    await withStore(c, async (store) => {
      const { formatListing, listDefender, listSentinel } = await import('./flows/indicators-list.js');
      const filter = { type: opts.type, value: opts.value };
      const listing = opts.target === 'sentinel' ? await listSentinel(store, filter)
        : await listDefender(c, createLogger(c.connector.log_level, pino.destination({ dest: 2, sync: true })), filter, opts.tenant);
      print(opts.json ? listing : safeBlock(formatListing(listing)));
    });
  });

program.command('decisions').description('audit trail of enforcement decisions (guard, breaker, cap): what, why, from which event')
  .addOption(new Option('--source <source>', 'only this source').choices(DECISION_SOURCES))
  .option('--since <time>', 'ISO time or a duration like 2h, 30m, 7d')
  .option('--limit <n>', 'at most n (newest first)', count, 100)
  .option('--json', 'JSON output')
  .action(async (opts: { source?: string; since?: string; limit: number; json?: boolean }) => {
    const since = opts.since === undefined ? undefined : parseSince(opts.since);
    if (since !== undefined && Number.isNaN(since)) usage(`--since: "${opts.since}" is neither an ISO time nor a duration like 2h`);
    await withStore(config(), async (store) => {
      const rows = await store.listDecisions({ source: opts.source, since, limit: opts.limit });
      const breakers = (await store.listBreakers()).filter((b) => b.resumedAt === null);
      if (opts.json) { print({ breakers, decisions: rows }); return; }
      for (const b of breakers) print(`BREAKER OPEN for ${safe(b.source)} since ${new Date(b.trippedAt).toISOString()}: ${safe(b.reason)} (threatbridge resume ${safe(b.source)})`);
      if (rows.length === 0) { print('no decisions'); return; }
      for (const d of rows) {
        print(`${new Date(d.at).toISOString()} ${safe(d.outcome)} ${safe(d.sink)} ${safe(d.key)} ${safe(d.wanted)}→${safe(d.action)} source=${safe(d.source)}${d.sourceRef ? ` ref=${safe(d.sourceRef)}` : ''}\n    ${safe(d.reason)}`);
      }
    });
  });

program.command('hits').description('recent Defender custom-indicator alerts matched to pushed indicators, as sighted in OpenCTI and MISP')
  .option('--since <time>', 'ISO time or a duration like 2h, 30m, 7d')
  .option('--limit <n>', 'at most n (newest first)', count, 100)
  .option('--json', 'JSON output')
  .action(async (opts: { since?: string; limit: number; json?: boolean }) => {
    const since = opts.since === undefined ? undefined : parseSince(opts.since);
    if (since !== undefined && Number.isNaN(since)) usage(`--since: "${opts.since}" is neither an ISO time nor a duration like 2h`);
    await withStore(config(), async (store) => {
      const rows = await listHits(store, { since, limit: opts.limit });
      if (opts.json) { print({ hits: rows }); return; }
      if (rows.length === 0) { print('no hits'); return; }
      for (const d of rows) print(`${new Date(d.at).toISOString()} ${safe(d.sink)} ${safe(d.key)} ${safe(d.action)} ref=${safe(d.sourceRef ?? '')}\n    ${safe(d.reason)}`);
    });
  });

program.command('resume').description('release the breaker of a source (all when none is named); the service notices within guard.breaker_poll_seconds')
  .argument('[source]', `${BREAKER_SOURCES.join(', ')}`)
  .action(async (source: string | undefined) => {
    await withStore(config(), async (store) => {
      const known = new Set([...BREAKER_SOURCES, ...(await store.listBreakers()).map((b) => b.source)]);
      if (source !== undefined && !known.has(source)) {
        throw new Error(`resume: unknown source "${safe(source)}"; breakers exist for ${[...known].map(safe).join(', ')}`);
      }
      const released = await store.resumeBreakers(source ?? null);
      print(released.length ? `resumed: ${released.map(safe).join(', ')}` : `no breaker open${source ? ` for ${source}` : ''}`);
    });
  });

program.command('reconcile').description('compare what Defender holds with the store once and repair the drift (every tenant, or one)')
  .option('--tenant <name>', 'only this Defender target')
  .action(async (opts: { tenant?: string }) => {
    const c = config();
    // Logs go to stderr: stdout carries the report.
    const log = createLogger(c.connector.log_level, pino.destination({ dest: 2, sync: true }));
    // Unlike the other maintenance commands, reconcile may start from an empty store (a store lost
    // or reset): what Defender holds of ours then looks unclaimed, and the withdrawal breaker holds it.
    const store = await openStore(c).catch((err: unknown) => fail(err));
    try {
      const metrics = new Metrics();
      const targets = opts.tenant !== undefined ? [defenderTarget(c, opts.tenant)] : defenderTargets(c);
      const reports: Record<string, unknown> = {};
      for (const t of targets) reports[t.name] = await defenderReconciler(c, defenderClient(c, log, metrics, t), store, log, metrics, t).run();
      // One tenant: its report as before; several: by target name.
      print(targets.length === 1 ? reports[targets[0]!.name] : reports);
    } catch (err) {
      fail(err);
    } finally {
      log.flush();
      await store.close();
    }
  });

program.parseAsync(process.argv).catch(fail);
