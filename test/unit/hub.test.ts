// The hub wires every active flow the same way: a source's ingest loop stores through the one
// pipeline and wakes the sinks that source feeds, whatever name its checkpoint is stored under.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import { RECORD_TYPES } from '../../src/core/records.js';
import { Hub } from '../../src/flows/hub.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { SqliteStore } from '../../src/store/sqlite.js';

describe('hub', () => {
  let store: SqliteStore;
  beforeEach(() => { store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-hub-'))); });
  afterEach(async () => { await store.close(); });

  it('a tenant\'s alerts loop stores under the tenant\'s name and wakes the alert sink at once', async () => {
    const config = configSchema.parse({
      microsoft_defender_intel: { tenant_id: 't1', client_id: 'app', client_secret: 'secret' },
      defender_alerts: { tenant_ids: ['t1', 't2'] },
      iris: { url: 'http://127.0.0.1:9', api_key: 'key', customer_id: 1 },
    });
    const hub = new Hub({ config, store, log: createLogger('silent'), metrics: new Metrics() });
    const [iris] = hub.sinksOf('defender_alerts');
    expect(iris?.route.sink).to.equal('iris');
    let woken = 0;
    iris!.worker.wake = () => { woken++; };
    const loop = hub.ingestLoop('defender_alerts', { storedAs: 'defender_alerts:t2' });
    await loop.store([{
      normalised: { kind: 'record', type: RECORD_TYPES.alert, id: 'da1', op: 'upsert', record: { id: 'da1' } }, raw: null, event: 'alert',
      position: 'da1', checkpoint: { position: '2026-01-01T00:00:00Z', state: {} },
    }]);
    loop.stop();
    expect(woken).to.equal(1);
    expect((await store.claimDue('iris', 10, Date.now(), 1000)).map((i) => i.key)).to.deep.equal(['da1']);
    expect((await store.getCheckpoint('defender_alerts:t2'))?.position).to.equal('2026-01-01T00:00:00Z');
  });
});
