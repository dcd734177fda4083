// Dry run and review: what a sink would be sent, written as JSON lines, instead of (dry run) or
// beside (review) the real calls. Operators run it before pointing a new filter set at production.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SinkHandler } from '../core/delivery.js';
import { all, type Settled } from '../core/outcome.js';
import type { Logger } from '../observability/logger.js';
import type { OutboxItem } from '../core/types.js';

export class RecordingHandler implements SinkHandler {
  readonly sink: string;
  readonly batchSize: number;
  readonly waitForCapacity?: SinkHandler['waitForCapacity'];

  /** `inner` null = dry run: nothing is sent, every operation is acknowledged after being recorded. */
  constructor(
    private readonly inner: SinkHandler | null,
    private readonly o: { sink: string; batchSize: number; file: string | null; log: Logger },
  ) {
    this.sink = o.sink;
    this.batchSize = inner?.batchSize ?? o.batchSize;
    if (inner?.waitForCapacity) this.waitForCapacity = (signal) => inner.waitForCapacity!(signal);
    if (o.file) mkdirSync(dirname(o.file), { recursive: true });
  }

  /** Records each leased operation once (before the gate, as the sink would be asked). */
  async prepare(items: OutboxItem[], signal: AbortSignal): Promise<{ send: OutboxItem[]; settled: Settled[] }> {
    if (this.o.file) {
      const at = new Date().toISOString();
      const lines = items.map((i) => JSON.stringify({ at, sink: i.sink, op: i.op, key: i.key, dryRun: this.inner === null, payload: i.payload, source: i.sourceRef }));
      appendFileSync(this.o.file, `${lines.join('\n')}\n`);
    }
    if (this.inner) return this.inner.prepare ? this.inner.prepare(items, signal) : { send: items, settled: [] };
    this.o.log.info({ sink: this.sink, operations: items.length, file: this.o.file }, 'dry run: operations recorded, nothing sent');
    return { send: [], settled: all(items, { kind: 'ack', externalId: null }) };
  }

  async deliver(items: OutboxItem[], signal: AbortSignal): Promise<Settled[]> {
    return this.inner ? this.inner.deliver(items, signal) : all(items, { kind: 'ack', externalId: null });
  }
}
