// Issue 13's smaller findings: private store files, the CAR Basic header scrubbed, bounded metric
// labels, cut raw copies.
import { expect } from 'chai';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { cutJson, cutText } from '../../src/core/raw-copy.js';
import { scrubSecrets } from '../../src/observability/logger.js';
import { MAX_LABEL_VALUES, Metrics } from '../../src/observability/metrics.js';
import { CarClient } from '../../src/sinks/car/client.js';
import { SqliteStore } from '../../src/store/sqlite.js';

describe('hostile input: small findings', () => {
  it('creates the SQLite state directory 0700 and the database file 0600', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'tb-modes-')), 'state');
    const store = new SqliteStore(dir);
    try {
      expect((statSync(dir).mode & 0o777).toString(8)).to.equal('700');
      expect((statSync(join(dir, 'threatbridge.db')).mode & 0o777).toString(8)).to.equal('600');
    } finally {
      await store.close();
    }
  });

  it("registers the CAR Basic header's base64 form with the scrubber", () => {
    const apiKey = 'car-api-key-hostile';
    const password = 'car-password-hostile';
    new CarClient({ url: 'http://127.0.0.1:1', apiKey, password, timeoutMs: 1000, verifyTls: true, sink: 'car', log: pino({ level: 'silent' }), metrics: new Metrics() });
    const header = Buffer.from(`${apiKey}:${password}`).toString('base64');
    expect(scrubSecrets(`request failed with header Basic ${header} sent`)).to.equal('request failed with header Basic [REDACTED] sent');
  });

  it(`keeps at most ${MAX_LABEL_VALUES} values per label and counts the rest as other`, async () => {
    const metrics = new Metrics();
    for (let i = 0; i < 5000; i++) metrics.events.inc({ source: 'misp', event: `attribute.${i}-random`, outcome: 'ignored' });
    const values = (await metrics.events.get()).values;
    expect(values).to.have.length(MAX_LABEL_VALUES + 1);
    const other = values.find((v) => v.labels['event'] === 'other');
    expect(other?.value).to.equal(5000 - MAX_LABEL_VALUES);
    // A value seen before the cap keeps its own series.
    metrics.events.inc({ source: 'misp', event: 'attribute.0-random', outcome: 'ignored' });
    expect((await metrics.events.get()).values.find((v) => v.labels['event'] === 'attribute.0-random')?.value).to.equal(2);
  });

  it('cuts raw copies to the stated size and says how big the input was', () => {
    expect(cutText('short', 1024)).to.equal('short');
    const big = 'é'.repeat(10_000); // 20,000 bytes
    const cut = cutText(big, 1024);
    expect(Buffer.byteLength(cut)).to.be.at.most(1024 + 40);
    expect(cut).to.match(/… \[cut: 20000 bytes\]$/);
    expect(cut.startsWith('é'.repeat(512))).to.equal(true);
    expect(cutJson({ a: 1 }, 1024)).to.deep.equal({ a: 1 });
    const json = cutJson({ data: 'x'.repeat(5000) }, 1024) as { cut: boolean; bytes: number; head: string };
    expect(json.cut).to.equal(true);
    expect(json.bytes).to.equal(5000 + 11);
    expect(json.head.length).to.be.lessThan(1100);
  });
});
