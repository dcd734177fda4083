// The core path alone: OpenCTI stream events → normalise → claims → route → Defender outbox,
// SQLite FULL sync, through the ingest loop in batches of 500 as the service commits them. `node dist/bench/core.js`
// runs it alone (for farm-bench and CPU profiles); `npm run bench` runs it first.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IngestLoop } from '../src/core/ingest-loop.js';
import { Pipeline } from '../src/core/pipeline.js';
import type { Store } from '../src/core/store.js';
import { Router } from '../src/core/router.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { DefenderRoute } from '../src/sinks/defender/route.js';
import { createContext, normaliseEvent } from '../src/sources/opencti/normalise.js';
import { SqliteStore } from '../src/store/sqlite.js';
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

/**
 * The core path as the service runs it: events arrive a read at a time, each is normalised on
 * arrival and queued (as the OpenCTI source does), and the ingest loop commits them in batches of
 * `batch` while the next reads are normalised. `store` opens the store under test in `dir`.
 */
export async function coreThroughput(events: number, batch: number, store: (dir: string) => Store = (dir) => new SqliteStore(dir)) {
  const dir = mkdtempSync(join(tmpdir(), 'tb-bench-'));
  const opened = store(dir);
  const pipeline = new Pipeline(opened, new Router([new DefenderRoute('defender', benchMapping)]), log, new Metrics());
  let resumeReading: (() => void) | null = null;
  let paused = false;
  const ingest = new IngestLoop('opencti', pipeline, { batchSize: batch, batchMs: 200, queueSize: 5000 }, log, {
    onFull: () => { paused = true; },
    onDrained: () => { paused = false; resumeReading?.(); resumeReading = null; },
  });
  const ctx = createContext('http://opencti:8080');
  // Input is generated up front: the figure is the service's work, not the generator's.
  const input = Array.from({ length: events }, (_, i) => syntheticEvent(i));
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
  // Process-wide: a store thread's CPU counts too.
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  ingest.stop();
  const pending = (await opened.outboxStats(Date.now())).reduce((n, s) => n + s.pending, 0);
  await opened.close();
  rmSync(dir, { recursive: true, force: true });
  // CPU seconds too: on a shared machine the wall clock measures the neighbours as much as us.
  return { events, seconds, eventsPerSecond: Math.round(events / seconds), cpuSeconds, eventsPerCpuSecond: Math.round(events / cpuSeconds), outboxRows: pending };
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  coreThroughput(Number(process.env['BENCH_EVENTS'] ?? 50_000), 500).then((r) => console.log(JSON.stringify(r)), (err) => {
    console.error(err);
    process.exit(1);
  });
}
