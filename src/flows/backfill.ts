// A Defender tenant added to a running installation starts empty: the sources only send changes.
// Once, when its sink has never held anything, it gets what its route selects from the claims the
// store already has, before the sources start reading (the service starts every sink part, this one
// included, before any source), so no newer operation can be overwritten by an older one; nor does
// enqueue ever replace an operation already waiting for a key. A tenant that already holds
// indicators (the single-tenant sink `defender` after an upgrade) is never filled again: nothing is
// re-sent.
// The claims are read and queued a page of keys at a time, so memory holds one page, not the claims
// table. The marker records how far the fill got after each page and becomes final after the last:
// a start after a crash mid-fill carries on after the last page recorded, even though the tenant
// may hold some of it by then (its worker delivers while the fill runs). A page queued but not yet
// recorded is queued again, which queues nothing twice: one outbox row per (sink, key).
import { effectiveClaim } from '../core/claims.js';
import type { ServicePart } from '../core/parts.js';
import type { SinkRoute } from '../core/router.js';
import type { Store } from '../core/store.js';
import type { Claim, SinkOp } from '../core/types.js';
import type { Logger } from '../observability/logger.js';

/** The checkpoint row that records a sink instance was filled (or needed no filling). */
export const backfillMarker = (sink: string) => `backfill:${sink}`;

/** Keys read per page: a few MiB of claims at most. */
export const FILL_PAGE_KEYS = 2_000;

/** A fill under way: the last key whose page was queued (null before the first), and the count so far. */
interface FillProgress { filledThrough: string | null; enqueued: number }

/** Enqueues, once, the upserts `route` wants for every stored claim; returns how many this call queued. */
export async function backfill(store: Store, route: SinkRoute, now = Date.now(), pageKeys = FILL_PAGE_KEYS): Promise<number> {
  const marker = backfillMarker(route.sink);
  const found = await store.getCheckpoint(marker);
  let progress: FillProgress;
  if (found) {
    if (!('filledThrough' in found.state)) return 0;
    progress = found.state as unknown as FillProgress;
  } else if ((await store.countSinkIds(route.sink)) === 0) {
    progress = { filledThrough: null, enqueued: 0 };
  } else {
    await store.setCheckpoint(marker, { position: String(now), state: { enqueued: 0 } });
    return 0;
  }
  const before = progress.enqueued;
  for (let page = await store.claimsAfter(progress.filledThrough, pageKeys); page.length > 0;
    page = await store.claimsAfter(progress.filledThrough, pageKeys)) {
    const ops = upsertsOf(page, route, now);
    const enqueued = progress.enqueued + (ops.length ? await store.enqueue(ops) : 0);
    progress = { filledThrough: page[page.length - 1]!.key, enqueued };
    await store.setCheckpoint(marker, { position: String(now), state: { ...progress } });
  }
  await store.setCheckpoint(marker, { position: String(now), state: { enqueued: progress.enqueued } });
  return progress.enqueued - before;
}

/** The upserts `route` wants for one page of claims (in key order, every claim of a key together). */
function upsertsOf(page: Claim[], route: SinkRoute, now: number): SinkOp[] {
  const ops: SinkOp[] = [];
  let i = 0;
  while (i < page.length) {
    const key = page[i]!.key;
    const claims: Claim[] = [];
    for (; i < page.length && page[i]!.key === key; i++) {
      if (!route.accepts || route.accepts(page[i]!)) claims.push(page[i]!);
    }
    if (claims.length === 0) continue;
    const op = route.route(key, effectiveClaim(claims), now).op;
    if (op?.op === 'upsert') ops.push(op);
  }
  return ops;
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
