// Indicator sources (OpenCTI, MISP) share one claim store, one router and the indicator sinks
// (Defender, Sentinel): the strongest claim from the sources a sink listens to decides what it holds.
import { INDICATOR_SINKS, type IndicatorSinkName } from '../config/fields.js';
import { activeFlows } from '../config/flows.js';
import type { Config } from '../config/schema.js';
import type { DeliveryWorker, SinkHandler } from '../core/delivery.js';
import { RecordingHandler } from '../sinks/dry-run.js';
import { IngestLoop } from '../core/ingest-loop.js';
import { Pipeline } from '../core/pipeline.js';
import { fromSources, Router, type SinkRoute } from '../core/router.js';
import type { SourceRef } from '../core/types.js';
import { createDefenderSink, defenderRoute } from '../sinks/defender/index.js';
import { createSentinelSink, sentinelRoute } from '../sinks/sentinel/index.js';
import { TlpPolicy } from '../guard/tlp.js';
import { createGuard, type Guard } from '../guard/index.js';
import { workerPart, type ServiceContext, type ServicePart } from './parts.js';

export interface IndicatorSink {
  route: SinkRoute;
  worker: DeliveryWorker;
  /** Companion parts of the sink (guard, reconciliation). */
  parts?: ServicePart[];
}

/** Wraps a sink's handler (dry run, review file) before its worker is built. */
export type HandlerWrap = (handler: SinkHandler) => SinkHandler;

/** How each indicator sink is built from configuration. */
const SINK_FACTORIES: Record<IndicatorSinkName, { create(ctx: ServiceContext, guard: Guard, wrap: HandlerWrap): IndicatorSink; route(config: Config): SinkRoute }> = {
  defender: {
    create: ({ config, store, log, metrics }, guard, wrap) => createDefenderSink(config, store, log, metrics, guard, wrap),
    route: defenderRoute,
  },
  sentinel: {
    create: ({ config, store, log, metrics }, guard, wrap) => createSentinelSink(config, store, log, metrics, guard, wrap),
    route: sentinelRoute,
  },
};

/** Dry run and the review file, from `connector.*`; identity otherwise. */
function reviewWrap(ctx: ServiceContext, sink: string): HandlerWrap {
  const c = ctx.config.connector;
  if (!c.dry_run && !c.write_parsed_indicators) return (h) => h;
  if (c.dry_run) ctx.log.warn({ sink, file: c.write_parsed_indicators ?? null }, 'dry run: nothing will be sent to this sink');
  return (h) => new RecordingHandler(c.dry_run ? null : h, {
    sink, batchSize: h.batchSize, file: c.write_parsed_indicators ?? null, log: ctx.log,
  });
}

/** Which source systems feed each indicator sink, from the active flows. */
function sourcesBySink(config: Config): Map<string, SourceRef['system'][]> {
  const out = new Map<string, SourceRef['system'][]>();
  for (const f of activeFlows(config)) {
    if (!(INDICATOR_SINKS as readonly string[]).includes(f.sink)) continue;
    out.set(f.sink, [...(out.get(f.sink) ?? []), f.source as SourceRef['system']]);
  }
  return out;
}

/** The router of the active indicator flows, without clients (replay and tests). */
export function indicatorRouter(config: Config): Router {
  return new Router([...sourcesBySink(config)].map(([sink, systems]) =>
    fromSources(SINK_FACTORIES[sink as IndicatorSinkName].route(config), systems)));
}

export class IndicatorHub {
  readonly sinks: IndicatorSink[];
  readonly pipeline: Pipeline;
  /** One guard for every indicator sink: the same verdicts, breaker and decision log. */
  private readonly guard: Guard;

  constructor(private readonly ctx: ServiceContext) {
    this.guard = createGuard(ctx.config, ctx.store, ctx.log, ctx.metrics);
    this.sinks = [...sourcesBySink(ctx.config)].map(([sink, systems]) => {
      const built = SINK_FACTORIES[sink as IndicatorSinkName].create(ctx, this.guard, reviewWrap(ctx, sink));
      return { route: fromSources(built.route, systems), worker: built.worker, parts: built.parts };
    });
    this.pipeline = new Pipeline(ctx.store, new Router(this.sinks.map((s) => s.route)), ctx.log, ctx.metrics, new TlpPolicy(ctx.config.guard.max_tlp));
  }

  /** A bounded ingest loop for one source; committed operations wake the sink workers. */
  ingestLoop(source: string, hooks: { pause(): void; resume(): void }): IngestLoop {
    const p = this.ctx.config.pipeline;
    return new IngestLoop(source, this.pipeline, { batchSize: p.batch_size, batchMs: p.batch_ms, queueSize: p.queue_size }, this.ctx.log, {
      onCommitted: (r) => { if (r.ops.length > 0) for (const s of this.sinks) s.worker.wake(); },
      onFull: () => hooks.pause(),
      onDrained: () => hooks.resume(),
    });
  }

  parts(): ServicePart[] {
    if (this.sinks.length === 0) return [];
    return [this.guard.part, ...this.sinks.flatMap((s) => [workerPart(s.route.sink, s.route.sink, s.worker), ...(s.parts ?? [])])];
  }
}
