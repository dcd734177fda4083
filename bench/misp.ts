// MISP ZeroMQ fast path: a MispSimulator publishes N events × M attributes (event add, attribute
// adds, publish = misp_json), a MispSource subscribes, and the real ingest loop + pipeline commit
// to a SQLite outbox (no sink worker runs). Measures messages/s from the first publish to the last
// outbox row, per-event latency from publish to commit, and ZeroMQ messages lost between the two.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../src/config/schema.js';
import { IngestLoop } from '../src/core/ingest-loop.js';
import { Pipeline } from '../src/core/pipeline.js';
import { Router } from '../src/core/router.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { DefenderRoute } from '../src/sinks/defender/route.js';
import { MispSimulator } from '../sim/misp/server.js';
import { MISP_SOURCE, MispSource } from '../src/sources/misp/source.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { benchMapping } from './mapping.js';

const KEY = 'b'.repeat(40);

function attributeFor(event: number, i: number): { type: string; value: string } {
  const n = event * 1000 + i;
  const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  switch (i % 5) {
    case 0: return { type: 'ip-dst', value: ip };
    case 1: return { type: 'domain', value: `host${n}.bench.example` };
    case 2: return { type: 'sha256', value: n.toString(16).padStart(64, 'c') };
    case 3: return { type: 'url', value: `http://bad${n}.bench.example/p?q=${n}` };
    default: return { type: 'ip-dst|port', value: `${ip}|443` };
  }
}

const percentile = (sorted: number[], p: number) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface MispBenchRun {
  events: number;
  attributesPerEvent: number;
  /** events published per second by the driver; 0 = as fast as possible */
  paceEventsPerSecond: number;
  zmqMessagesPublished: number;
  /** every topic except the idle heartbeat */
  zmqMessagesReceived: number;
  zmqMessagesDropped: number;
  /** misp_json messages that went through the pipeline, and those that did not */
  zmqPublishMessagesProcessed: number;
  zmqPublishMessagesLost: number;
  outboxRows: number;
  /** attributes of the run that reached the outbox (all of them unless ZeroMQ lost a publish) */
  attributesCommitted: number;
  seconds: number;
  messagesPerSecond: number;
  attributesPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** REST calls during the run: warninglist checks, and catch-ups if any */
  restSearchesDuringRun: number;
  /** ZeroMQ messages the source dropped because its ingest queue was full (REST catches them up) */
  droppedOnOverflow: number;
}

/**
 * One run: `events` events of `attributesPerEvent` attributes, each event announced, filled and
 * published (MISP emits misp_json_event, misp_json_attribute × M, misp_json). Latency is per event:
 * from its publish to the commit of the last of its attributes' outbox rows.
 */
export async function mispZmqRun(events: number, attributesPerEvent: number, paceEventsPerSecond = 0, enforceWarninglist = true): Promise<MispBenchRun> {
  const log = createLogger('error');
  const sim = await new MispSimulator({ key: KEY, heartbeatMs: 10_000 }).start();
  const store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-bench-misp-')));
  const config = configSchema.parse({
    // enforce_warninglist (the default) asks MISP's /warninglists/checkValue once per batch of messages.
    misp: { url: sim.url, key: KEY, zmq_url: sim.zmqUrl, catchup_interval: 3600, full_sync_interval: 0, enforce_warninglist: enforceWarninglist },
  });
  // Resume from "now": the run measures ZeroMQ, not a first full REST sync.
  const nowS = Math.floor(Date.now() / 1000);
  await store.setCheckpoint(MISP_SOURCE, { position: String(nowS), state: { watermark: nowS, lastFullSync: Date.now() } });
  const metrics = new Metrics();
  const pipeline = new Pipeline(store, new Router([new DefenderRoute('defender', benchMapping)]), log, metrics);

  const committedAt = new Map<string, number>(); // attribute source id → commit time
  let rows = 0;
  let source: MispSource | null = null;
  const p = config.pipeline;
  const ingest = new IngestLoop(MISP_SOURCE, pipeline, { batchSize: p.batch_size, batchMs: p.batch_ms, queueSize: p.queue_size }, log, {
    onCommitted: (r) => {
      const at = performance.now();
      rows += r.ops.length;
      for (const op of r.ops) if (op.sourceRef) committedAt.set(op.sourceRef.id, at);
    },
    onFull: () => source?.pause(),
    onDrained: () => source?.resume(),
  });
  source = new MispSource(config, store, ingest, log, metrics);
  // Count what the SUB socket hands over, per topic, before the source sees it.
  const received = new Map<string, number>();
  const hooked = source as unknown as { onBatch(messages: { topic: string; payload: string }[]): Promise<void> };
  const onBatch = hooked.onBatch.bind(source);
  hooked.onBatch = (messages) => {
    for (const { topic } of messages) received.set(topic, (received.get(topic) ?? 0) + 1);
    return onBatch(messages);
  };
  await source.start();

  // Warm up: the subscription is in place once a published event reaches the outbox.
  await waitUntil(() => source!.health() === null, 'the ZeroMQ feed to connect');
  const warm = sim.createEvent({ info: 'warm-up', tags: ['tlp:green'] });
  const warmAttr = sim.addAttribute(warm, { type: 'ip-dst', value: '192.0.2.1' });
  for (;;) {
    sim.publish(warm);
    const deadline = Date.now() + 1000;
    while (Date.now() < deadline && !committedAt.has(`misp:${warm}:${warmAttr.uuid}`)) await new Promise((r) => setTimeout(r, 10));
    if (committedAt.has(`misp:${warm}:${warmAttr.uuid}`)) break;
  }
  // Let the catch-ups the connection asked for finish, so that REST does not share the run.
  await new Promise((r) => setTimeout(r, 2500));
  await waitUntil(() => ingest.size === 0, 'the warm-up to commit');

  const restBefore = sim.requests.length;
  const publishedBefore = sim.published.length;
  const receivedBefore = await publishCount(metrics);
  received.clear();
  rows = 0;
  const publishedAt = new Map<string, number>(); // event id → publish time
  const attrsOf = new Map<string, string[]>(); // event id → attribute source ids
  const started = performance.now();
  for (let e = 0; e < events; e++) {
    const id = sim.createEvent({ info: `bench event ${e}`, tags: ['tlp:green'], threat_level_id: '2' });
    const ids: string[] = [];
    for (let i = 0; i < attributesPerEvent; i++) ids.push(`misp:${id}:${sim.addAttribute(id, attributeFor(e, i)).uuid}`);
    attrsOf.set(id, ids);
    publishedAt.set(id, performance.now());
    sim.publish(id);
    // Yield so the publisher and the subscriber share the process as two processes would share the machine.
    if (paceEventsPerSecond > 0) {
      const due = started + ((e + 1) * 1000) / paceEventsPerSecond;
      const wait = due - performance.now();
      await new Promise((r) => (wait > 0 ? setTimeout(r, wait) : setImmediate(r)));
    } else {
      await new Promise((r) => setImmediate(r));
    }
  }
  const expected = events * attributesPerEvent;
  const published = sim.published.slice(publishedBefore);
  const publishMessages = published.filter((m) => m.topic === 'misp_json' && m.delivered).length;
  // Done when every attribute is in the outbox, or when nothing has moved for 5 s (messages lost).
  let last = -1;
  let stillSince = performance.now();
  await waitUntil(async () => {
    const done = [...attrsOf.values()].reduce((n, ids) => n + ids.filter((x) => committedAt.has(x)).length, 0);
    if (done !== last) { last = done; stillSince = performance.now(); }
    return done >= expected || performance.now() - stillSince > 5000;
  }, 'the outbox to fill', 120_000);
  let end = 0;
  let committed = 0;
  const latencies: number[] = [];
  for (const [id, ids] of attrsOf) {
    const times = ids.map((x) => committedAt.get(x));
    committed += times.filter((t) => t !== undefined).length;
    if (times.some((t) => t === undefined)) continue;
    const at = Math.max(...(times as number[]));
    end = Math.max(end, at);
    latencies.push(at - publishedAt.get(id)!);
  }
  const seconds = (end - started) / 1000;
  const processed = (await publishCount(metrics)) - receivedBefore;
  const receivedMessages = [...received].filter(([t]) => t !== 'misp_json_self').reduce((n, [, c]) => n + c, 0);
  const deliveredMessages = published.filter((m) => m.delivered && m.topic !== 'misp_json_self').length;
  const droppedOverflow = (await metrics.events.get()).values.filter((v) => v.labels['outcome'] === 'dropped_overflow').reduce((n, v) => n + v.value, 0);
  if (process.env['BENCH_DEBUG']) console.error({ droppedOverflow, received: [...received], requests: sim.requests.slice(restBefore), missing: [...attrsOf].filter(([, ids]) => ids.some((x) => !committedAt.has(x))).map(([id]) => id) });
  const restSearches = sim.requests.length - restBefore;
  latencies.sort((a, b) => a - b);
  const outboxRows = (await store.outboxStats(Date.now())).reduce((n, s) => n + s.pending, 0);

  await source.stop();
  await ingest.drain(5000);
  ingest.stop();
  await store.close();
  await sim.stop();
  return {
    events, attributesPerEvent, paceEventsPerSecond,
    zmqMessagesPublished: deliveredMessages,
    zmqMessagesReceived: receivedMessages,
    zmqMessagesDropped: deliveredMessages - receivedMessages,
    zmqPublishMessagesProcessed: processed,
    zmqPublishMessagesLost: publishMessages - processed,
    outboxRows,
    seconds,
    messagesPerSecond: Math.round(receivedMessages / seconds),
    attributesCommitted: committed,
    attributesPerSecond: Math.round(committed / seconds),
    latencyMs: { p50: Math.round(percentile(latencies, 50)), p95: Math.round(percentile(latencies, 95)), p99: Math.round(percentile(latencies, 99)), max: Math.round(latencies.at(-1) ?? NaN) },
    restSearchesDuringRun: restSearches,
    droppedOnOverflow: droppedOverflow,
  };
}

/** misp_json messages the pipeline has processed (each ends with one group-retraction item). */
async function publishCount(metrics: Metrics): Promise<number> {
  const { values } = await metrics.events.get();
  return values.filter((v) => v.labels['source'] === MISP_SOURCE && v.labels['event'] === 'publish.removed-attributes').reduce((n, v) => n + v.value, 0);
}

/** The burst (throughput) and a paced run (latency without a backlog). */
export async function benchMisp(events: number, attributesPerEvent: number, pacedEvents: number, pace: number) {
  const burst = await mispZmqRun(events, attributesPerEvent, 0);
  const paced = await mispZmqRun(pacedEvents, attributesPerEvent, pace);
  return { burst, paced };
}
