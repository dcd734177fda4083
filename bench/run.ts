// npm run bench: core-path throughput, Defender convergence (calls and time under the documented,
// time-scaled limits), the flows' own benches and memory (of this process, and of the built service
// run as its own process). Prints a table and writes bench/results.json.
// Figures on a shared 2-core machine vary by ±20 % between runs: compare ratios, not absolutes.
import { writeFileSync } from 'node:fs';
import { coreRuns } from './core.js';
import { convergeDefender } from './converge.js';
import { uploadSentinel } from './sentinel.js';
import { benchMisp } from './misp.js';
import { benchAlertsToIris } from './alerts-iris.js';
import { serviceRss } from './service-rss.js';
import { benchTenants } from './tenants.js';

/** min–median–max of a spread, as printed. */
const range = (s: { min: number; median: number; max: number }) => `${s.min.toLocaleString()}–${s.median.toLocaleString()}–${s.max.toLocaleString()}`;

async function main() {
  const results: Record<string, unknown> = { machine: { cpus: (await import('node:os')).cpus().length, node: process.version } };
  const core = coreRuns(Number(process.env['BENCH_EVENTS'] ?? 50_000), Number(process.env['BENCH_CORE_RUNS'] ?? 5));
  results['core'] = core;
  const converge = await convergeDefender(Number(process.env['BENCH_INDICATORS'] ?? 15_000), Number(process.env['BENCH_TIME_SCALE'] ?? 60));
  results['defender'] = converge;
  // Real time by default: at time scale 60 a tenant's quota allows a call every 33 ms and the run
  // measures this process's CPU instead of the tenants' independent quotas (doc/tenants.md).
  const tenants = await benchTenants(Number(process.env['BENCH_INDICATORS'] ?? 15_000), Number(process.env['BENCH_TENANTS'] ?? 10),
    Number(process.env['BENCH_TENANTS_TIME_SCALE'] ?? 1));
  results['tenants'] = tenants;
  const sentinel = await uploadSentinel(Number(process.env['BENCH_SENTINEL_OBJECTS'] ?? 10_000), Number(process.env['BENCH_TIME_SCALE'] ?? 60));
  results['sentinel'] = sentinel;
  const misp = await benchMisp(Number(process.env['BENCH_MISP_EVENTS'] ?? 1000), Number(process.env['BENCH_MISP_ATTRIBUTES'] ?? 20),
    Number(process.env['BENCH_MISP_PACED_EVENTS'] ?? 100), Number(process.env['BENCH_MISP_PACE'] ?? 20));
  results['misp'] = misp;
  const alertsIris = await benchAlertsToIris(Number(process.env['BENCH_ALERTS'] ?? 2000));
  results['alertsToIris'] = alertsIris;
  // Before the service bench: its simulator holds the whole stream in this process.
  const rssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  results['peakRssMb'] = rssMb;
  const service = await serviceRss(Number(process.env['BENCH_RSS_EVENTS'] ?? 200_000), Number(process.env['BENCH_RSS_INDICATORS'] ?? 50_000));
  results['serviceRss'] = service;

  const rows: [string, string, string][] = [
    ['core path (parse→map→route→outbox)', `${range(core.loop.eventsPerSecond)} events/s`,
      `target ≥ 20,000; ${core.loop.events} events, ${core.loop.outboxRows} outbox rows (hash patterns give 2); fresh process each run, min/median/max`],
    ['  CPU, longest event-loop hold', `${range(core.loop.cpuSeconds)} s`, `held ${range(core.loop.maxLoopBlockMs)} ms; peak RSS ${range(core.loop.peakRssMiB)} MiB`],
    ['  store on its own thread', `${range(core.thread.eventsPerSecond)} events/s`,
      `store.sqlite_thread: CPU ${range(core.thread.cpuSeconds)} s, held ${range(core.thread.maxLoopBlockMs)} ms, peak RSS ${range(core.thread.peakRssMiB)} MiB`],
    [`Defender convergence (${converge.indicators} new)`, `${converge.importCalls} import calls`, `bound ceil(n/500) = ${converge.callBound} + retries (${converge.throttled} × 429)`],
    ['  simulated time to converge', `${converge.simulatedMinutes.toFixed(1)} min`, `real ${converge.realSeconds.toFixed(1)} s at time scale ${converge.timeScale}`],
    ['  Defender holds', `${converge.held}`, 'must equal the number of indicators'],
    [`${tenants.many.tenants} Defender tenants (${tenants.many.indicators} new each)`, `${tenants.many.realSeconds.toFixed(1)} s`,
      `1 tenant ${tenants.one.realSeconds.toFixed(1)} s (×${tenants.ratio.toFixed(2)}); import calls per tenant ${tenants.many.importCallsPerTenant.min}–${tenants.many.importCallsPerTenant.max} (bound ${tenants.many.callBoundPerTenant}), ${tenants.many.throttled} × 429, held ${tenants.many.heldPerTenant.min}–${tenants.many.heldPerTenant.max}`],
    [`Sentinel upload (${sentinel.objects} new)`, `${sentinel.uploadCalls} upload calls`, `bound ceil(n/100) = ${sentinel.callBound} (${sentinel.throttled} × 429)`],
    ['  simulated time to upload', `${sentinel.simulatedMinutes.toFixed(1)} min`, `real ${sentinel.realSeconds.toFixed(1)} s; Sentinel holds ${sentinel.held}, ${sentinel.deadLetters} dead letters`],
    [`MISP ZeroMQ → outbox (${misp.burst.events} events × ${misp.burst.attributesPerEvent})`, `${misp.burst.messagesPerSecond.toLocaleString()} msgs/s`,
      `${misp.burst.attributesPerSecond.toLocaleString()} attributes/s; ${misp.burst.zmqMessagesReceived} messages in ${misp.burst.seconds.toFixed(1)} s; ${misp.burst.attributesCommitted} of ${misp.burst.events * misp.burst.attributesPerEvent} attributes committed`],
    ['  burst latency publish→commit', `p50 ${misp.burst.latencyMs.p50} ms`, `p95 ${misp.burst.latencyMs.p95}, p99 ${misp.burst.latencyMs.p99} ms (backlog included)`],
    [`  paced latency (${misp.paced.paceEventsPerSecond} events/s)`, `p50 ${misp.paced.latencyMs.p50} ms`, `p95 ${misp.paced.latencyMs.p95}, p99 ${misp.paced.latencyMs.p99} ms (batch_ms 200 is the floor)`],
    ['  ZeroMQ messages lost', `${misp.burst.zmqMessagesDropped} + ${misp.paced.zmqMessagesDropped}`,
      `burst + paced, published − received of ${misp.burst.zmqMessagesPublished} + ${misp.paced.zmqMessagesPublished}; publishes not committed ${misp.burst.zmqPublishMessagesLost} + ${misp.paced.zmqPublishMessagesLost}`],
    [`Defender alerts → IRIS (${alertsIris.alerts} new)`, `${alertsIris.first.seconds.toFixed(1)} s`, `${alertsIris.first.defenderCalls} list calls, ${alertsIris.first.irisCalls} IRIS calls (filter + add per alert, + reference lists)`],
    ['  a tenth changes', `${alertsIris.changed.seconds.toFixed(1)} s`, `${alertsIris.changed.queued} queued, ${alertsIris.changed.irisCalls} IRIS calls (get + update each)`],
    ['  nothing changes', `${alertsIris.idle.irisCalls} IRIS calls`, `${alertsIris.idle.read} re-read in the overlap, ${alertsIris.idle.queued} queued`],
    ['  IRIS holds', `${alertsIris.irisAlerts}`, 'must equal the number of alerts'],
    ['peak RSS', `${rssMb} MiB`, 'whole bench process, before the service bench'],
    [`service peak RSS (${service.events.toLocaleString()} stream events, ${service.distinct.toLocaleString()} indicators)`, `${service.peakMiB} MiB`,
      `target ≤ 200; \`threatbridge run\` as a process, dry run, SQLite; ${service.baselineMiB} MiB connected, read in ${service.seconds.toFixed(0)} s (${service.eventsPerSecond.toLocaleString()} events/s)`],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  for (const [a, b, c] of rows) console.log(`${a.padEnd(width)}  ${b.padEnd(22)}  ${c}`);
  writeFileSync(new URL('./results.json', import.meta.url).pathname.replace('/dist/bench/', '/bench/'), `${JSON.stringify(results, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
