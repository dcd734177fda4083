// OpenCTI live stream → the hub. Reads only while this replica holds the source lock.
import { OpenCtiSource, SOURCE } from '../sources/opencti/source.js';
import type { Hub } from './hub.js';
import type { ServicePart } from '../core/parts.js';
import type { ServiceContext } from './parts.js';
import { leadingSourcePart } from './source-leadership.js';

export function openctiPart(ctx: ServiceContext, hub: Hub): ServicePart {
  let source: OpenCtiSource | null = null;
  const ingest = hub.ingestLoop(SOURCE, { pause: () => source?.pause(), resume: () => source?.resume() });
  const s = (source = new OpenCtiSource(ctx.config, ctx.store, ingest, ctx.log, ctx.metrics));
  return leadingSourcePart(ctx, SOURCE, {
    start: () => s.start(),
    stop: () => s.stop(),
    health: () => (s.connected ? null : `stream not connected${s.lastError ? `: ${s.lastError}` : ''}`),
  }, ingest, 'some events were not stored before shutdown; they will be read again on restart');
}
