// Gathers the status page's model from what the service already keeps: reachability and activity
// (metrics.reach / metrics.activity), the gauges, and the store (outbox, breakers, dead letters).
import type { DeadLetterStore, DecisionLog, OutboxStore, SinkIdStore } from '../core/store.js';
import type { Metrics } from './metrics.js';
import type { StatusModel } from './status-page.js';

export interface StatusDeps {
  metrics: Metrics;
  store: Pick<OutboxStore, 'outboxStats'> & Pick<DeadLetterStore, 'deadLetterSummary'> & Pick<DecisionLog, 'listBreakers'> & Pick<SinkIdStore, 'countSinkIds'>;
  flows: string[];
  storeName: string;
  sources: string[];
  sinks: string[];
  caps: { sink: string; max: number; budget: number }[];
}

async function gaugeValues(g: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> }, label: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const v of (await g.get()).values) out.set(String(v.labels[label]), (out.get(String(v.labels[label])) ?? 0) + v.value);
  return out;
}

export async function statusModel(d: StatusDeps, now = Date.now()): Promise<StatusModel> {
  const m = d.metrics;
  const reach = m.reach.snapshot();
  const activity = new Map(m.activity.snapshot().map((a) => [a.source, a]));
  const active = await gaugeValues(m.sourceActive, 'source');
  const throttled = await gaugeValues(m.sinkThrottled, 'sink');
  const held = await gaugeValues(m.heldObjects, 'sink');
  const stats = new Map((await d.store.outboxStats(now)).map((s) => [s.sink, s]));

  // A source reading several streams (one per tenant) shows each: `defender_alerts:<tenant>`.
  const sourceNames = [...new Set([...d.sources, ...reach.filter((r) => r.kind === 'source').map((r) => r.name)])]
    .filter((n) => d.sources.some((s) => n === s || n.startsWith(`${s}:`)));
  const sources = sourceNames.sort().map((name) => {
    const r = reach.find((x) => x.kind === 'source' && x.name === name);
    const a = activity.get(name);
    const role = active.has(name.split(':')[0]!) ? (active.get(name.split(':')[0]!)! > 0 ? 'reader' as const : 'standby' as const) : null;
    return {
      name, role,
      connected: r ? r.downSince === null : null,
      problem: r?.problem ?? null, downSince: r?.downSince ?? null,
      lastEventAt: a?.lastEventAt ?? null, lagSeconds: a?.lagSeconds ?? null,
    };
  });
  const sinks = d.sinks.map((name) => {
    const r = reach.find((x) => x.kind === 'sink' && x.name === name);
    const s = stats.get(name);
    return {
      name,
      pending: s?.pending ?? 0,
      oldestSeconds: s?.oldestEnqueuedAt ? (now - s.oldestEnqueuedAt) / 1000 : 0,
      throttled: throttled.get(name) ?? 0,
      reachable: r ? r.downSince === null : null,
      problem: r?.problem ?? null,
      downSince: r?.downSince ?? null,
    };
  });
  const breakers = (await d.store.listBreakers()).filter((b) => b.resumedAt === null).map((b) => ({ source: b.source, trippedAt: b.trippedAt, reason: b.reason }));
  const dead = await d.store.deadLetterSummary(20);
  return {
    generatedAt: now, flows: d.flows, store: d.storeName, sources, sinks, breakers,
    deadLetters: { bySink: dead.bySink, recent: dead.recent.map((x) => ({ id: x.id, sink: x.sink, op: x.op, key: x.key, reason: x.reason, createdAt: x.createdAt })) },
    // The cap's own count (active, unexpired) once it ran; until then every id we recorded.
    caps: await Promise.all(d.caps.map(async (c) => ({ ...c, held: held.get(c.sink) ?? await d.store.countSinkIds(c.sink) }))),
  };
}
