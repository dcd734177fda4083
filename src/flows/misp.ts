// MISP (ZeroMQ + REST) → indicator hub. Reads only while this replica holds the source lock.
import { MISP_SOURCE, MispSource } from '../sources/misp/source.js';
import type { IndicatorHub } from './indicator-hub.js';
import type { ServiceContext, ServicePart } from './parts.js';
import { SourceLeadership } from './source-leadership.js';

export function mispPart(ctx: ServiceContext, hub: IndicatorHub): ServicePart {
  let source: MispSource | null = null;
  const ingest = hub.ingestLoop(MISP_SOURCE, { pause: () => source?.pause(), resume: () => source?.resume() });
  source = new MispSource(ctx.config, ctx.store, ingest, ctx.log, ctx.metrics);
  const s = source;
  const storeQueued = async (boundMs: number) => {
    const drained = await ingest.drain(boundMs);
    if (!drained) ctx.log.warn({ source: MISP_SOURCE, queued: ingest.size }, 'some MISP items were not stored before shutdown; the next catch-up reads them again');
  };
  const leadership = new SourceLeadership(ctx.store, MISP_SOURCE, ctx.config.store.source_lock_retry * 1000, ctx.log, {
    start: () => s.start(),
    stepDown: async () => { await s.stop(); await storeQueued(ctx.config.connector.shutdown_timeout * 1000); },
  }, ctx.metrics);
  return {
    name: MISP_SOURCE,
    kind: 'source',
    start: () => leadership.start(),
    stop: async (boundMs) => {
      const wasActive = leadership.active;
      await s.stop();
      if (wasActive) await storeQueued(boundMs);
      ingest.stop();
      await leadership.stop();
    },
    health: async () => {
      if (ingest.lastError) return `cannot commit: ${ingest.lastError}`;
      if (!leadership.active) return null; // standby: ready to take over
      return s.health();
    },
  };
}
