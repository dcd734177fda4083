// A Defender tenant added to a running installation starts empty: the sources only send changes.
// Once, when its sink has never held anything, it gets what its route selects from the claims the
// store already has (one enqueue, one transaction, before the sources start reading, so no newer
// operation can be overwritten by an older one). A tenant that already holds indicators (the
// single-tenant sink `defender` after an upgrade) is never filled again: nothing is re-sent.
import { effectiveClaim } from '../core/claims.js';
import type { ServicePart } from '../core/parts.js';
import type { SinkRoute } from '../core/router.js';
import type { Store } from '../core/store.js';
import type { Claim, SinkOp } from '../core/types.js';
import type { Logger } from '../observability/logger.js';

/** The checkpoint row that records a sink instance was filled (or needed no filling). */
export const backfillMarker = (sink: string) => `backfill:${sink}`;

/** Enqueues, once, the upserts `route` wants for every stored claim; returns how many. */
export async function backfill(store: Store, route: SinkRoute, now = Date.now()): Promise<number> {
  const marker = backfillMarker(route.sink);
  if (await store.getCheckpoint(marker)) return 0;
  let enqueued = 0;
  if ((await store.countSinkIds(route.sink)) === 0) {
    // Every claim (the empty prefix matches every source id); bounded by what the store holds.
    const byKey = new Map<string, Claim[]>();
    for (const c of await store.loadClaims([], [], [''])) {
      if (route.accepts && !route.accepts(c)) continue;
      byKey.set(c.key, [...(byKey.get(c.key) ?? []), c]);
    }
    const ops: SinkOp[] = [];
    for (const [key, claims] of byKey) {
      const op = route.route(key, effectiveClaim(claims), now).op;
      if (op?.op === 'upsert') ops.push(op);
    }
    if (ops.length) enqueued = await store.enqueue(ops);
  }
  await store.setCheckpoint(marker, { position: String(now), state: { enqueued } });
  return enqueued;
}

export function backfillPart(store: Store, route: SinkRoute, wake: () => void, log: Logger): ServicePart {
  return {
    name: `${route.sink}-backfill`,
    kind: 'sink',
    start: async () => {
      const n = await backfill(store, route);
      if (n > 0) {
        log.info({ sink: route.sink, enqueued: n }, 'new sink instance: what its route selects from the stored claims is queued for it');
        wake();
      }
    },
    stop: async () => undefined,
  };
}
