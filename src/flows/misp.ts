// MISP (ZeroMQ + REST) → the hub. Reads only while this replica holds the source lock.
import { MISP_SOURCE, MispSource } from '../sources/misp/source.js';
import type { Hub } from './hub.js';
import type { ServicePart } from '../core/parts.js';
import type { ServiceContext } from './parts.js';
import { runFlowOnce } from './once.js';
import { leadingSourcePart } from './source-leadership.js';

export function mispPart(ctx: ServiceContext, hub: Hub): ServicePart {
  let source: MispSource | null = null;
  const ingest = hub.ingestLoop(MISP_SOURCE, { pause: () => source?.pause(), resume: () => source?.resume() });
  const s = (source = new MispSource(ctx.config, ctx.store, ingest, ctx.log, ctx.metrics));
  const part = leadingSourcePart(ctx, MISP_SOURCE, s, ingest, 'some MISP items were not stored before shutdown; the next catch-up reads them again');
  return {
    ...part,
    // One REST sync as the loop would run it (a full sync on the first run or when due, else a catch-up); no ZeroMQ.
    runOnce: () => runFlowOnce({
      source: MISP_SOURCE, store: ctx.store, log: ctx.log, sinks: hub.sinksOf(MISP_SOURCE), counts: (x) => hub.countsOf(x),
      loops: [ingest], sourceLetters: [`source:${MISP_SOURCE}`],
      read: async () => {
        const kind = await s.syncOnce();
        return { details: { fullSync: kind === 'full' ? 1 : 0, catchUp: kind === 'catch-up' ? 1 : 0 }, failures: 0 };
      },
    }),
  };
}
