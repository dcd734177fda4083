// OpenCTI live stream → indicator hub.
import type { IngestLoop } from '../core/ingest-loop.js';
import { OpenCtiSource, SOURCE } from '../sources/opencti/source.js';
import type { IndicatorHub } from './indicator-hub.js';
import type { ServiceContext, ServicePart } from './parts.js';

export function openctiPart(ctx: ServiceContext, hub: IndicatorHub): ServicePart {
  let source: OpenCtiSource | null = null;
  const ingest: IngestLoop = hub.ingestLoop(SOURCE, { pause: () => source?.pause(), resume: () => source?.resume() });
  source = new OpenCtiSource(ctx.config, ctx.store, ingest, ctx.log, ctx.metrics);
  const s = source;
  return {
    name: SOURCE,
    kind: 'source',
    start: () => s.start(),
    stop: async (boundMs) => {
      s.stop();
      const drained = await ingest.drain(boundMs);
      ingest.stop();
      if (!drained) ctx.log.warn({ source: SOURCE, queued: ingest.size }, 'some events were not stored before shutdown; they will be read again on restart');
    },
    health: async () => {
      if (ingest.lastError) return `cannot commit: ${ingest.lastError}`;
      return s.connected ? null : `stream not connected${s.lastError ? `: ${s.lastError}` : ''}`;
    },
  };
}
