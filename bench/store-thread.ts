// The core path fed as the OpenCTI source feeds it (normalise on arrival, chunks of 100 events per
// socket read, pause on onFull / resume on onDrained), stored by SqliteStore in the main thread or
// on its own thread (sqlite-thread.ts). `node dist/bench/store-thread.js` runs each 5 times, each
// run in its own process (peak RSS per process); `... main|thread` runs one and prints its figures.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { IngestLoop } from '../src/core/ingest-loop.js';
import { Pipeline } from '../src/core/pipeline.js';
import { Router } from '../src/core/router.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { DefenderRoute } from '../src/sinks/defender/route.js';
import { createContext, normaliseEvent } from '../src/sources/opencti/normalise.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { openSqliteThread } from '../src/store/sqlite-thread.js';
import { syntheticEvent } from './core.js';
import { benchMapping } from './mapping.js';

type Kind = 'main' | 'thread';
const CHUNK = 100;

async function once(kind: Kind, events: number) {
  const dir = mkdtempSync(join(tmpdir(), 'tb-bench-thread-'));
  const log = createLogger('error');
  const store = kind === 'thread' ? await openSqliteThread(dir, { owner: true }) : new SqliteStore(dir, undefined, { owner: true });
  const pipeline = new Pipeline(store, new Router([new DefenderRoute('defender', benchMapping)]), log, new Metrics());
  const ctx = createContext('http://opencti:8080');
  const input = Array.from({ length: events }, (_, i) => syntheticEvent(i));
  let stored = 0;
  let paused = false;
  let next = 0;
  let allStored!: () => void;
  const finished = new Promise<void>((resolve) => { allStored = resolve; });
  const produce = () => {
    for (const end = Math.min(events, next + CHUNK); next < end; next++) {
      const e = input[next]!;
      const id = `${1_700_000_000_000 + next}-0`;
      loop.push({ normalised: normaliseEvent(e.name, e.data, ctx), raw: e, event: e.name, position: id,
        checkpoint: { position: id, state: { start_from: id, recover_until: false } } });
    }
    if (next < events && !paused) setImmediate(produce);
  };
  const loop = new IngestLoop('opencti', pipeline, { batchSize: 500, batchMs: 200, queueSize: 5000 }, log, {
    onCommitted: (r) => { stored += r.events; if (stored === events) allStored(); },
    onFull: () => { paused = true; },
    onDrained: () => { if (paused) { paused = false; setImmediate(produce); } },
  });
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  produce();
  await finished;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  delay.disable();
  const used = process.cpuUsage(cpu);
  loop.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    kind, eventsPerSecond: Math.round(events / seconds), cpuSeconds: (used.user + used.system) / 1e6,
    maxLoopBlockMs: Math.round(delay.max / 1e6), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[s.length >> 1], max: s[s.length - 1] };
};

const [kind] = process.argv.slice(2);
const events = Number(process.env['BENCH_EVENTS'] ?? 50_000);
if (kind === 'main' || kind === 'thread') {
  console.log(JSON.stringify(await once(kind, events)));
} else {
  const runs: Record<Kind, ReturnType<typeof JSON.parse>[]> = { main: [], thread: [] };
  for (let i = 0; i < Number(process.env['BENCH_RUNS'] ?? 5); i++) {
    for (const k of ['main', 'thread'] as const) {
      const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), k], { encoding: 'utf8', env: process.env });
      if (child.status !== 0) throw new Error(child.stderr);
      runs[k].push(JSON.parse(child.stdout));
    }
  }
  for (const k of ['main', 'thread'] as const) {
    const r = runs[k];
    console.log(k, JSON.stringify({
      eventsPerSecond: stats(r.map((x) => x.eventsPerSecond)), cpuSeconds: stats(r.map((x) => x.cpuSeconds)),
      maxLoopBlockMs: stats(r.map((x) => x.maxLoopBlockMs)), peakRssMiB: stats(r.map((x) => x.peakRssMiB)),
    }));
  }
}
