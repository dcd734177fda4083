// OpenCTI live stream → the hub. Reads only while this replica holds the source lock.
import { OpenCtiSource, SOURCE } from '../sources/opencti/source.js';
import type { Hub } from './hub.js';
import type { ServicePart } from '../core/parts.js';
import type { ServiceContext } from './parts.js';
import { runFlowOnce } from './once.js';
import { leadingSourcePart } from './source-leadership.js';

export function openctiPart(ctx: ServiceContext, hub: Hub): ServicePart {
  let source: OpenCtiSource | null = null;
  const ingest = hub.ingestLoop(SOURCE, { pause: () => source?.pause(), resume: () => source?.resume() });
  const s = (source = new OpenCtiSource(ctx.config, ctx.store, ingest, ctx.log, ctx.metrics));
  const part = leadingSourcePart(ctx, SOURCE, {
    start: () => s.start(),
    stop: () => s.stop(),
    health: () => (s.connected ? null : `stream not connected${s.lastError ? `: ${s.lastError}` : ''}`),
  }, ingest, 'some events were not stored before shutdown; they will be read again on restart');
  return {
    ...part,
    // The stream from the stored position up to where it stood when we connected, then stop.
    runOnce: () => runFlowOnce({
      source: SOURCE, store: ctx.store, log: ctx.log, sinks: hub.sinksOf(SOURCE), counts: (x) => hub.countsOf(x),
      loops: [ingest], sourceLetters: [`source:${SOURCE}`],
      read: async () => {
        const r = await s.readUntilCaughtUp();
        return { details: { events: r.events }, failures: r.caughtUp ? 0 : 1 };
      },
    }),
  };
}
