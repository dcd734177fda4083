// OpenCTI live stream → indicator hub. Reads only while this replica holds the source lock.
import { OpenCtiSource, SOURCE } from '../sources/opencti/source.js';
import type { IndicatorHub } from './indicator-hub.js';
import type { ServiceContext, ServicePart } from './parts.js';
import { leadingSourcePart } from './source-leadership.js';

export function openctiPart(ctx: ServiceContext, hub: IndicatorHub): ServicePart {
  let source: OpenCtiSource | null = null;
  const ingest = hub.ingestLoop(SOURCE, { pause: () => source?.pause(), resume: () => source?.resume() });
  const s = (source = new OpenCtiSource(ctx.config, ctx.store, ingest, ctx.log, ctx.metrics));
  return leadingSourcePart(ctx, SOURCE, {
    start: () => s.start(),
    stop: () => s.stop(),
    health: () => (s.connected ? null : `stream not connected${s.lastError ? `: ${s.lastError}` : ''}`),
  }, ingest, 'some events were not stored before shutdown; they will be read again on restart');
}
