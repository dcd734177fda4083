// The hub every flow goes through: the sinks some active flow feeds, one router over their routes,
// one pipeline, and one ingest loop per source. A source part hands its changes to its loop; the
// core stores them with their operations; a commit wakes the sink workers.
import { INDICATOR_SINKS } from '../config/fields.js';
import { activeFlows } from '../config/flows.js';
import type { Config } from '../config/schema.js';
import type { SinkHandler } from '../core/delivery.js';
import { IngestLoop } from '../core/ingest-loop.js';
import { workerPart, type ServicePart } from '../core/parts.js';
import { Pipeline } from '../core/pipeline.js';
import { fromSources, Router, type RecordRoute, type SinkRoute } from '../core/router.js';
import type { SourceRef } from '../core/types.js';
import { createGuard, type Guard } from '../guard/index.js';
import { TlpPolicy } from '../guard/tlp.js';
import { RecordingHandler } from '../sinks/dry-run.js';
import type { ServiceContext } from './parts.js';
import { CountingHandler, type DeliveryCounts } from './once.js';
import { SINKS, sinkInstances, type BuiltSink } from './sinks.js';
import { backfillPart } from './backfill.js';

const isIndicatorSink = (sink: string) => (INDICATOR_SINKS as readonly string[]).includes(sink);
const isRecordRoute = (r: SinkRoute | RecordRoute): r is RecordRoute => 'types' in r;

/** Dry run and the review file, from `connector.*`, for indicator sinks; identity otherwise. */
function reviewWrap(ctx: ServiceContext, sink: string, instance: string): (handler: SinkHandler) => SinkHandler {
  const c = ctx.config.connector;
  if (!isIndicatorSink(sink) || (!c.dry_run && !c.write_parsed_indicators)) return (h) => h;
  if (c.dry_run) ctx.log.warn({ sink: instance, file: c.write_parsed_indicators ?? null }, 'dry run: nothing will be sent to this sink');
  return (h) => new RecordingHandler(c.dry_run ? null : h, {
    sink: instance, batchSize: h.batchSize, file: c.write_parsed_indicators ?? null, log: ctx.log,
  });
}

/** Which sources feed each sink, from the active flows. */
function sourcesBySink(config: Config): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of activeFlows(config)) out.set(f.sink, [...(out.get(f.sink) ?? []), f.source]);
  return out;
}

/** Every sink instance (a Defender tenant is one) with its sink module's name and the sources feeding it. */
function instancesOf(config: Config): Map<string, { sink: string; sources: string[] }> {
  const out = new Map<string, { sink: string; sources: string[] }>();
  for (const [sink, sources] of sourcesBySink(config)) for (const name of sinkInstances(config, sink)) out.set(name, { sink, sources });
  return out;
}

/** Start-up report of instance routes that can match nothing (a tenant's route naming no feeding source...). */
export function routeWarnings(config: Config): { sink: string; warning: string }[] {
  return [...instancesOf(config)].flatMap(([name, { sink, sources }]) =>
    (SINKS[sink]!.routeWarnings?.(config, name, sources) ?? []).map((warning) => ({ sink: name, warning })));
}

/** The router of the active flows: an indicator sink follows only the claims of the sources that target it. */
function routerOf(routes: [string[], SinkRoute | RecordRoute][]): Router {
  const indicator: SinkRoute[] = [];
  const record: RecordRoute[] = [];
  for (const [sources, route] of routes) {
    if (isRecordRoute(route)) record.push(route);
    else indicator.push(fromSources(route, sources as SourceRef['system'][]));
  }
  return new Router(indicator, record);
}

/** The router of the active flows, without clients (replay). */
export function activeRouter(config: Config): Router {
  return routerOf([...instancesOf(config)].map(([name, { sink, sources }]) => [sources, SINKS[sink]!.route(config, name)]));
}

export class Hub {
  private readonly sinks = new Map<string, BuiltSink>();
  private readonly sources: Map<string, string[]>;
  /** Instance name → its sink module's name. */
  private readonly moduleOf: Map<string, string>;
  readonly pipeline: Pipeline;
  /** One guard for every indicator sink: the same verdicts, breaker and decision log. */
  private readonly guard: Guard;
  /** `run --once`: each sink's handler, counting what its deliveries did. */
  private readonly counting = new Map<string, CountingHandler>();

  constructor(private readonly ctx: ServiceContext) {
    const instances = instancesOf(ctx.config);
    this.sources = new Map([...instances].map(([name, i]) => [name, i.sources]));
    this.moduleOf = new Map([...instances].map(([name, i]) => [name, i.sink]));
    this.guard = createGuard(ctx.config, ctx.store, ctx.log, ctx.metrics);
    for (const [name, { sink }] of instances) {
      const review = reviewWrap(ctx, sink, name);
      const wrap = ctx.once ? (h: SinkHandler) => this.countOn(name, review(h)) : review;
      this.sinks.set(name, SINKS[sink]!.create(ctx, wrap, this.guard, name));
    }
    for (const w of routeWarnings(ctx.config)) ctx.log.warn(w, 'this route can match nothing: nothing will reach this sink');
    this.pipeline = new Pipeline(ctx.store,
      routerOf([...this.sinks].map(([sink, built]) => [this.sources.get(sink)!, built.route])), ctx.log, ctx.metrics,
      { rawCopyBytes: ctx.config.limits.raw_copy_bytes, screen: new TlpPolicy(ctx.config.guard.max_tlp), decisions: ctx.store });
  }

  private countOn(sink: string, handler: SinkHandler): SinkHandler {
    const counting = new CountingHandler(handler, this.ctx.store);
    this.counting.set(sink, counting);
    return counting;
  }

  /** What a sink's deliveries did so far (`run --once`; zeros otherwise). */
  countsOf(sink: string): DeliveryCounts {
    return this.counting.get(sink)?.counts ?? { created: 0, updated: 0, deleted: 0 };
  }

  /** The guard's part, started by `run --once` before any indicator sink delivers (protected values, breakers). */
  get guardPart(): ServicePart | null {
    return [...this.sinks.keys()].some((s) => isIndicatorSink(s.split(':')[0]!)) ? this.guard.part : null;
  }

  /** A sink with instances (Defender tenants): the part that fills a new one from the stored claims. */
  private fill(name: string, built: BuiltSink): ServicePart[] {
    const module = SINKS[this.moduleOf.get(name)!]!;
    if (!module.instances || isRecordRoute(built.route)) return [];
    const route = fromSources(built.route, this.sources.get(name)! as SourceRef['system'][]);
    return [backfillPart(this.ctx.store, route, () => built.worker.wake(), this.ctx.log)];
  }

  /** The sinks a source feeds. */
  sinksOf(source: string): BuiltSink[] {
    return [...this.sinks].filter(([sink]) => this.sources.get(sink)!.includes(source)).map(([, built]) => built);
  }

  /** Of these record ids, those some sink the source feeds holds (the source keeps following them). */
  heldBy(source: string): (ids: string[]) => Promise<Set<string>> {
    const sinks = this.sinksOf(source);
    return async (ids) => new Set((await Promise.all(sinks.map((s) => s.held?.(ids) ?? new Set<string>()))).flatMap((set) => [...set]));
  }

  /**
   * A bounded ingest loop for one source; committed operations wake the sinks it feeds. `storedAs`
   * names its checkpoint and dead letters when a source reads several streams (one per tenant).
   */
  ingestLoop(source: string, options: { storedAs?: string; pause?(): void; resume?(): void } = {}): IngestLoop {
    const p = this.ctx.config.pipeline;
    const fed = this.sinksOf(source);
    return new IngestLoop(options.storedAs ?? source, this.pipeline, { batchSize: p.batch_size, batchMs: p.batch_ms, queueSize: p.queue_size }, this.ctx.log, {
      onCommitted: (r) => { if (r.ops.length > 0) for (const s of fed) s.worker.wake(); },
      onFull: () => options.pause?.(),
      onDrained: () => options.resume?.(),
    });
  }

  /** Every sink's worker part and the companion parts it brings (guard, reconciliation, a new tenant's fill). */
  parts(): ServicePart[] {
    const parts = [...this.sinks].flatMap(([sink, s]) => [s.part ?? workerPart(sink, sink, s.worker), ...(s.parts ?? []), ...this.fill(sink, s)]);
    return [...this.sinks.keys()].some((s) => isIndicatorSink(s.split(':')[0]!)) ? [this.guard.part, ...parts] : parts;
  }
}
