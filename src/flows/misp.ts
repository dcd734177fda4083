// MISP (ZeroMQ + REST) → the hub. Reads only while this replica holds the source lock.
import { MISP_SOURCE, MispSource } from '../sources/misp/source.js';
import type { Hub } from './hub.js';
import type { ServicePart } from '../core/parts.js';
import type { ServiceContext } from './parts.js';
import { leadingSourcePart } from './source-leadership.js';

export function mispPart(ctx: ServiceContext, hub: Hub): ServicePart {
  let source: MispSource | null = null;
  const ingest = hub.ingestLoop(MISP_SOURCE, { pause: () => source?.pause(), resume: () => source?.resume() });
  const s = (source = new MispSource(ctx.config, ctx.store, ingest, ctx.log, ctx.metrics));
  return leadingSourcePart(ctx, MISP_SOURCE, s, ingest, 'some MISP items were not stored before shutdown; the next catch-up reads them again');
}
