// The Defender outbox keeps, for an upsert, a reference to the claim it comes from instead of the
// indicator body (route.ts: DefenderClaimRef), so ingest writes half the bytes per observable. This
// first stage of the delivery makes the bodies again, before anything reads them (the review file,
// the guard, ownership, the cap, the import, dead letters): the route applied to the same claim at
// the same time gives the same body. A claim that changed since was routed again, and its newer
// operation replaced this one in the outbox: a row already in flight then sends nothing (the reference
// holds the claim's version), as does a row whose claim is gone. Rows written before this change carry
// the whole body and pass through unchanged.
import type { SinkHandler } from '../../core/delivery.js';
import { all, type Settled } from '../../core/outcome.js';
import type { ClaimStore } from '../../core/store.js';
import type { Claim, OutboxItem } from '../../core/types.js';
import type { Logger } from '../../observability/logger.js';
import { isClaimRef, type DefenderClaimRef, type DefenderRoute } from './route.js';

export class BodiesAtDelivery implements SinkHandler {
  readonly sink: string;
  readonly batchSize: number;
  readonly waitForCapacity?: SinkHandler['waitForCapacity'];

  constructor(
    private readonly inner: SinkHandler,
    private readonly store: Pick<ClaimStore, 'loadClaims'>,
    private readonly route: DefenderRoute,
    private readonly log: Logger,
  ) {
    this.sink = inner.sink;
    this.batchSize = inner.batchSize;
    if (inner.waitForCapacity) this.waitForCapacity = (signal) => inner.waitForCapacity!(signal);
  }

  async prepare(items: OutboxItem[], signal: AbortSignal): Promise<{ send: OutboxItem[]; settled: Settled[] }> {
    const { ready, nothing } = await this.bodies(items);
    const next = this.inner.prepare ? await this.inner.prepare(ready, signal) : { send: ready, settled: [] };
    return { send: next.send, settled: [...all(nothing, { kind: 'ack', externalId: null }), ...next.settled] };
  }

  deliver(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]> {
    return this.inner.deliver(items, signal);
  }

  /** Items whose stored payload names a claim get the operation the route makes of it (in place: the core settles these objects). */
  private async bodies(items: OutboxItem[]): Promise<{ ready: OutboxItem[]; nothing: OutboxItem[] }> {
    const refs = items.filter((i) => i.op === 'upsert' && isClaimRef(i.payload));
    if (refs.length === 0) return { ready: items, nothing: [] };
    const claims = new Map<string, Claim>();
    for (const c of await this.store.loadClaims([...new Set(refs.map((i) => i.key))], [])) claims.set(`${c.key}\u0000${c.sourceId}`, c);
    const nothing = new Set<OutboxItem>();
    for (const item of refs) {
      const ref = item.payload as DefenderClaimRef;
      const claim = claims.get(`${item.key}\u0000${ref.claim}`);
      // A row already leased when its claim changed is still delivered, while the newer row waits for
      // the lease: making its body from today's claim would send the newer state twice (issue 12).
      if (claim && typeof ref.v === 'number' && Number(claim.updatedAt) !== ref.v) {
        this.log.debug({ sink: this.sink, key: item.key, claim: ref.claim }, 'outbox row superseded by a newer change of its claim: the newer row goes');
        nothing.add(item);
        continue;
      }
      const op = claim ? this.route.route(item.key, claim, ref.at).op : null;
      if (!op) {
        // The claim is gone (its removal was routed and queued after this row) or maps to nothing.
        this.log.debug({ sink: this.sink, key: item.key, claim: ref.claim }, 'outbox row names a claim that no longer makes an indicator: nothing to send');
        nothing.add(item);
        continue;
      }
      item.op = op.op;
      item.payload = op.payload;
      item.sourceRef = op.sourceRef;
    }
    return { ready: items.filter((i) => !nothing.has(i)), nothing: [...nothing] };
  }
}
