// OpenCTI live stream → indicator hub. Reads only while this replica holds the source lock.
import type { IngestLoop } from '../core/ingest-loop.js';
import { OpenCtiSource, SOURCE } from '../sources/opencti/source.js';
import type { IndicatorHub } from './indicator-hub.js';
import type { ServiceContext, ServicePart } from './parts.js';
import { SourceLeadership } from './source-leadership.js';

export function openctiPart(ctx: ServiceContext, hub: IndicatorHub): ServicePart {
  let source: OpenCtiSource | null = null;
  const ingest: IngestLoop = hub.ingestLoop(SOURCE, { pause: () => source?.pause(), resume: () => source?.resume() });
  source = new OpenCtiSource(ctx.config, ctx.store, ingest, ctx.log, ctx.metrics);
  const s = source;
  const storeQueued = async (boundMs: number) => {
    const drained = await ingest.drain(boundMs);
    if (!drained) ctx.log.warn({ source: SOURCE, queued: ingest.size }, 'some events were not stored before shutdown; they will be read again on restart');
  };
  const leadership = new SourceLeadership(ctx.store, SOURCE, ctx.config.store.source_lock_retry * 1000, ctx.log, {
    start: () => s.start(),
    stepDown: async () => { s.stop(); await storeQueued(ctx.config.connector.shutdown_timeout * 1000); },
  }, ctx.metrics);
  return {
    name: SOURCE,
    kind: 'source',
    start: () => leadership.start(),
    stop: async (boundMs) => {
      const wasActive = leadership.active;
      s.stop();
      if (wasActive) await storeQueued(boundMs);
      ingest.stop();
      await leadership.stop();
    },
    health: async () => {
      if (ingest.lastError) return `cannot commit: ${ingest.lastError}`;
      if (!leadership.active) return null; // standby: ready to take over
      return s.connected ? null : `stream not connected${s.lastError ? `: ${s.lastError}` : ''}`;
    },
  };
}
