// Peak memory of the service as an operator sees it: the built service runs as its own process
// (`threatbridge run`, dry run, SQLite store) and reads a live stream from the OpenCTI simulator;
// its resident set is read from /proc while it works, and the kernel's high-water mark at the end.
import { readFileSync } from 'node:fs';
import { makeIndicator, type StixObject } from '../sim/opencti/index.js';
import { Lab } from '../sim/lab.js';
import { ServiceProcess, waitFor } from '../sim/service-process.js';
import { SqliteStore } from '../src/store/sqlite.js';

/** VmRSS or VmHWM of a process in MiB (Linux /proc). */
function procMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
  return line ? Math.round(Number(line.split(/\s+/)[1]) / 1024) : 0;
}

function patternOf(i: number): string {
  const a = (i >> 16) & 255, b = (i >> 8) & 255, c = i & 255;
  switch (i % 4) {
    case 0: return `[ipv4-addr:value = '10.${a}.${b}.${c}']`;
    case 1: return `[domain-name:value = 'host${i}.example.org']`;
    case 2: return `[url:value = 'http://bad${i}.example.net/path?q=${i}']`;
    default: return `[file:hashes.'SHA-256' = '${i.toString(16).padStart(64, '0')}']`;
  }
}

/**
 * `events` stream events over `distinct` indicators: each indicator is created once, then updated
 * round-robin (a new description each time, so every update changes what the sinks hold).
 */
export async function serviceRss(events: number, distinct: number) {
  const lab = await new Lab().start();
  const service = new ServiceProcess(lab.env({ CONNECTOR_DRY_RUN: 'true' }));
  const store = new SqliteStore(lab.stateDir);
  try {
    service.start();
    await waitFor(() => lab.opencti.connections > 0, 'stream connected', 30_000);
    const pid = service.pid!;
    const baseline = procMiB(pid, 'VmRSS');
    let sampled = baseline;
    const sampler = setInterval(() => { sampled = Math.max(sampled, procMiB(pid, 'VmRSS')); }, 100);
    const started = Date.now();
    const indicators: StixObject[] = [];
    let last = '';
    for (let i = 0; i < events; i++) {
      if (i < distinct) {
        const ind = makeIndicator({ pattern: patternOf(i), score: 50 + (i % 50), validUntil: null });
        indicators.push(ind);
        last = lab.opencti.create(ind);
      } else {
        const at = i % distinct;
        indicators[at] = { ...indicators[at]!, description: `revision ${Math.floor(i / distinct)}` };
        last = lab.opencti.update(indicators[at]!);
      }
      // Emitting is synchronous: yield now and then so the simulator serves the stream meanwhile.
      if (i % 2000 === 1999) await new Promise((r) => setImmediate(r));
    }
    await waitFor(async () => (await store.getCheckpoint('opencti'))?.position === last, 'service read the whole stream', 600_000, 200);
    const seconds = (Date.now() - started) / 1000;
    clearInterval(sampler);
    const peakMiB = procMiB(pid, 'VmHWM');
    return { events, distinct, seconds, eventsPerSecond: Math.round(events / seconds), baselineMiB: baseline, sampledPeakMiB: sampled, peakMiB };
  } finally {
    await service.stop();
    await store.close();
    await lab.stop();
  }
}
