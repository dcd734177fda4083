// The core path alone: OpenCTI stream events → normalise → claims → route → Defender outbox,
// SQLite FULL sync, through the ingest loop in batches of 500 as the service commits them.
// `node dist/bench/core.js [loop|thread]` runs it once (for farm-bench and CPU profiles); `npm run
// bench` runs it first, 5 times with the store on the event loop and 5 on its own thread.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { IngestLoop } from '../src/core/ingest-loop.js';
import { Pipeline } from '../src/core/pipeline.js';
import type { Store } from '../src/core/store.js';
import { Router } from '../src/core/router.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { DefenderRoute } from '../src/sinks/defender/route.js';
import { createContext, normaliseEvent } from '../src/sources/opencti/normalise.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { openSqliteThread } from '../src/store/sqlite-thread.js';
import { benchMapping } from './mapping.js';

const log = createLogger('error');

/** A realistic stream event: an indicator create with one of several pattern shapes. */
export function syntheticEvent(i: number): { name: string; data: string } {
  const a = (i >> 16) & 255, b = (i >> 8) & 255, c = i & 255;
  const patterns = [
    `[ipv4-addr:value = '10.${a}.${b}.${c}']`,
    `[domain-name:value = 'host${i}.example.org']`,
    `[url:value = 'http://bad${i}.example.net/path?q=${i}&x=1']`,
    `[file:hashes.'SHA-256' = '${i.toString(16).padStart(64, 'a')}' OR file:hashes.MD5 = '${i.toString(16).padStart(32, 'b')}']`,
  ];
  const data = {
    id: `indicator--${i.toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`, type: 'indicator', spec_version: '2.1',
    name: `bench ${i}`, description: 'benchmark indicator', pattern: patterns[i % patterns.length], pattern_type: 'stix',
    valid_from: '2026-01-01T00:00:00Z', labels: ['bench'],
    object_marking_refs: ['marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da'],
    extensions: { 'extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba': { id: `x${i}`, score: i % 100 } },
  };
  return { name: 'create', data: JSON.stringify({ version: '4', type: 'create', scope: 'external', message: 'm', origin: {}, data }) };
}

/** Events per socket read: a 64 KiB read of the live stream holds about a hundred such events. */
const EVENTS_PER_READ = 100;

/** Where the store's work runs: on the event loop (the default) or on its own thread (`store.sqlite_thread`). */
export type StoreKind = 'loop' | 'thread';

/**
 * The core path as the service runs it: events arrive a read at a time, each is normalised on
 * arrival and queued (as the OpenCTI source does), and the ingest loop commits them in batches of
 * `batch` while the next reads wait (or, with the store on its own thread, are normalised).
 */
export async function coreThroughput(events: number, batch: number, kind: StoreKind = 'loop') {
  const dir = mkdtempSync(join(tmpdir(), 'tb-bench-'));
  const store: Store = kind === 'thread' ? await openSqliteThread(dir, { owner: true }) : new SqliteStore(dir, undefined, { owner: true });
  const pipeline = new Pipeline(store, new Router([new DefenderRoute('defender', benchMapping)]), log, new Metrics());
  let resumeReading: (() => void) | null = null;
  let paused = false;
  const ingest = new IngestLoop('opencti', pipeline, { batchSize: batch, batchMs: 200, queueSize: 5000 }, log, {
    onFull: () => { paused = true; },
    onDrained: () => { paused = false; resumeReading?.(); resumeReading = null; },
  });
  const ctx = createContext('http://opencti:8080');
  // Input is generated up front: the figure is the service's work, not the generator's.
  const input = Array.from({ length: events }, (_, i) => syntheticEvent(i));
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < events;) {
    if (paused) await new Promise<void>((resolve) => { resumeReading = resolve; });
    for (const end = Math.min(events, i + EVENTS_PER_READ); i < end; i++) {
      const e = input[i]!;
      const id = `${1_700_000_000_000 + i}-0`;
      ingest.push({ normalised: normaliseEvent(e.name, e.data, ctx), raw: e, event: e.name, position: id,
        checkpoint: { position: id, state: { start_from: id, recover_until: false } } });
    }
    await new Promise((resolve) => setImmediate(resolve)); // the next read
  }
  await ingest.store([]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  // Process-wide: the store thread's CPU counts too.
  const used = process.cpuUsage(cpu);
  loopDelay.disable();
  const cpuSeconds = (used.user + used.system) / 1e6;
  ingest.stop();
  const pending = (await store.outboxStats(Date.now())).reduce((n, s) => n + s.pending, 0);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    kind, events, seconds, eventsPerSecond: Math.round(events / seconds), cpuSeconds, outboxRows: pending,
    // How long stream reading, /healthz and delivery could be held up by one stretch of work.
    maxLoopBlockMs: Math.round(loopDelay.max / 1e6),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

type Run = Awaited<ReturnType<typeof coreThroughput>>;
const spread = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[s.length >> 1]!, max: s[s.length - 1]! };
};

/**
 * `runs` runs of each store kind, in turn, each in a fresh process (a cold JIT, as after a
 * restart, and a peak RSS of its own); min, median and max of each figure.
 */
export function coreRuns(events: number, runs: number) {
  const byKind: Record<StoreKind, Run[]> = { loop: [], thread: [] };
  for (let i = 0; i < runs; i++) {
    for (const kind of ['loop', 'thread'] as const) {
      const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), kind], {
        encoding: 'utf8', env: { ...process.env, BENCH_EVENTS: String(events) },
      });
      if (child.status !== 0) throw new Error(`core bench (${kind}) failed: ${child.stderr}`);
      byKind[kind].push(JSON.parse(child.stdout) as Run);
    }
  }
  const summary = (r: Run[]) => ({
    events, outboxRows: r[0]!.outboxRows, eventsPerSecond: spread(r.map((x) => x.eventsPerSecond)),
    cpuSeconds: spread(r.map((x) => Math.round(x.cpuSeconds * 100) / 100)), maxLoopBlockMs: spread(r.map((x) => x.maxLoopBlockMs)),
    peakRssMiB: spread(r.map((x) => x.peakRssMiB)),
  });
  return { loop: summary(byKind.loop), thread: summary(byKind.thread) };
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const kind = process.argv[2] === 'thread' ? 'thread' : 'loop';
  coreThroughput(Number(process.env['BENCH_EVENTS'] ?? 50_000), 500, kind).then((r) => console.log(JSON.stringify(r)), (err) => {
    console.error(err);
    process.exit(1);
  });
}
