import { expect } from 'chai';
import { IngestLoop } from '../../src/core/ingest-loop.js';
import type { BatchResult, IngestItem, Pipeline } from '../../src/core/pipeline.js';
import { createLogger } from '../../src/observability/logger.js';

const item = (i: number): IngestItem => ({
  normalised: { sourceRef: null, changes: [], retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: 'test' },
  raw: null, event: 'heartbeat', position: `${i}-0`, checkpoint: { position: `${i}-0`, state: {} },
});

/** A pipeline whose commits fail while `failing` is set, as a full disk would. */
class FlakyPipeline {
  failing = true;
  committed: string[] = [];
  async ingest(_source: string, items: IngestItem[]): Promise<BatchResult> {
    if (this.failing) throw new Error('SQLITE_FULL: database or disk is full');
    this.committed.push(...items.map((i) => i.position));
    return { events: items.length, ops: [], deadLetters: 0 };
  }
}

describe('ingest loop', () => {
  it('keeps a batch queued while the store cannot commit, then commits it in order', async () => {
    const pipeline = new FlakyPipeline();
    const events = { full: 0, drained: 0 };
    const loop = new IngestLoop('test', pipeline as unknown as Pipeline, { batchSize: 4, batchMs: 5, queueSize: 8 }, createLogger('silent'), {
      onFull: () => events.full++, onDrained: () => events.drained++,
    });
    for (let i = 1; i <= 10; i++) loop.push(item(i));
    await new Promise((r) => setTimeout(r, 100));
    expect(pipeline.committed).to.deep.equal([]);
    expect(loop.size).to.equal(10);
    expect(loop.lastError).to.include('disk is full');
    expect(events.full).to.be.greaterThan(0);
    pipeline.failing = false;
    expect(await loop.drain(5000)).to.equal(true);
    expect(pipeline.committed).to.deep.equal(Array.from({ length: 10 }, (_, i) => `${i + 1}-0`));
    expect(events.drained).to.be.greaterThan(0);
    loop.stop();
  });

  it('reports what it could not store within the shutdown bound', async () => {
    const pipeline = new FlakyPipeline();
    const loop = new IngestLoop('test', pipeline as unknown as Pipeline, { batchSize: 4, batchMs: 5, queueSize: 100 }, createLogger('silent'));
    loop.push(item(1));
    expect(await loop.drain(200)).to.equal(false);
    expect(loop.size).to.equal(1);
    loop.stop();
  });
});

describe('ingest loop: pollers waiting for their items to be stored', () => {
  it('resolves once the items are stored, and a shutdown signal ends the wait while the store is down, keeping them queued', async () => {
    const pipeline = new FlakyPipeline();
    pipeline.failing = false;
    const loop = new IngestLoop('test', pipeline as unknown as Pipeline, { batchSize: 2, batchMs: 5, queueSize: 100 }, createLogger('silent'));
    await loop.store([item(1), item(2), item(3)]);
    expect(pipeline.committed).to.deep.equal(['1-0', '2-0', '3-0']);

    pipeline.failing = true;
    const abort = new AbortController();
    const waiting = loop.store([item(4)], abort.signal);
    setTimeout(() => abort.abort(), 50);
    expect(await waiting.then(() => 'stored', (e: Error) => e.message)).to.match(/stopped before/);
    expect(loop.size).to.equal(1);
    pipeline.failing = false;
    expect(await loop.drain(5000)).to.equal(true);
    expect(pipeline.committed.at(-1)).to.equal('4-0');
    loop.stop();
  });
});
