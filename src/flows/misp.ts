// MISP (ZeroMQ + REST) → indicator hub.
import { MISP_SOURCE, MispSource } from '../sources/misp/source.js';
import type { IndicatorHub } from './indicator-hub.js';
import type { ServiceContext, ServicePart } from './parts.js';

export function mispPart(ctx: ServiceContext, hub: IndicatorHub): ServicePart {
  let source: MispSource | null = null;
  const ingest = hub.ingestLoop(MISP_SOURCE, { pause: () => source?.pause(), resume: () => source?.resume() });
  source = new MispSource(ctx.config, ctx.store, ingest, ctx.log, ctx.metrics);
  const s = source;
  return {
    name: MISP_SOURCE,
    kind: 'source',
    start: () => s.start(),
    stop: async (boundMs) => {
      await s.stop();
      const drained = await ingest.drain(boundMs);
      ingest.stop();
      if (!drained) ctx.log.warn({ source: MISP_SOURCE, queued: ingest.size }, 'some MISP items were not stored before shutdown; the next catch-up reads them again');
    },
    health: async () => (ingest.lastError ? `cannot commit: ${ingest.lastError}` : s.health()),
  };
}
