// Two replicas of the built service on one PostgreSQL store against the lab simulators: only one
// reads the OpenCTI stream; kill -9 of that one mid-stream and the standby takes over from the
// stored checkpoint. Defender ends with exactly the expected indicators: 0 lost, 0 doubled.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../src/sim/lab.js';
import { ServiceProcess, waitFor } from '../../src/sim/service-process.js';
import { makeIndicator } from '../../src/sim/opencti/fixtures.js';
import { dropSchema, freshSchemaName, requirePostgres, TEST_PG_URL } from '../support/postgres.js';

describe('two replicas on PostgreSQL', function () {
  this.timeout(180_000);
  let lab: Lab;
  let schema: string;
  const replicas: ServiceProcess[] = [];

  before(async function () { await requirePostgres(this); });
  beforeEach(async () => {
    schema = freshSchemaName();
    lab = await new Lab({ heartbeatMs: 500 }).start();
  });
  afterEach(async () => {
    await Promise.all(replicas.splice(0).map((r) => r.stop().catch(() => undefined)));
    await lab?.stop();
    if (schema) await dropSchema(schema).catch(() => undefined);
  });

  const replica = () => {
    const r = new ServiceProcess(lab.env({
      STORE_ENGINE: 'postgres', STORE_URL: TEST_PG_URL, STORE_SCHEMA: schema, STORE_SOURCE_LOCK_RETRY: '1',
      STORE_DIR: mkdtempSync(join(tmpdir(), 'tb-replica-')), PIPELINE_BATCH_SIZE: '50', MICROSOFT_DEFENDER_INTEL_BATCH_SIZE: '50',
    }));
    replicas.push(r);
    r.start();
    return r;
  };
  const isActive = (l: { msg?: string }) => l.msg === 'active: this replica reads the source';
  const isStandby = (l: { msg?: string }) => l.msg === 'standby: another replica reads this source';
  const held = () => lab.defender.indicators() as { indicatorValue: string }[];

  it('reads with one replica, and the other takes over after kill -9 with nothing lost or doubled', async () => {
    const a = replica();
    await a.waitForLog(isActive, 60_000);
    const b = replica();
    await b.waitForLog(isStandby, 60_000);
    await waitFor(() => lab.opencti.connections > 0, 'stream connected');
    expect(lab.opencti.connections).to.equal(1, 'the standby does not read');
    const activeGauge = async (r: ServiceProcess) =>
      /threatbridge_source_active\{source="opencti"\} (\d)/.exec(await (await fetch(`http://127.0.0.1:${r.healthPort}/metrics`)).text())?.[1];
    expect([await activeGauge(a), await activeGauge(b)]).to.deep.equal(['1', '0']);
    expect((await fetch(`http://127.0.0.1:${b.healthPort}/readyz`)).status).to.equal(200, 'a standby is ready');

    const expected = new Set<string>();
    for (let i = 0; i < 600; i++) {
      const ip = `10.${20 + Math.floor(i / 250)}.${i % 250}.9`;
      lab.opencti.create(makeIndicator({ pattern: `[ipv4-addr:value = '${ip}']`, score: 70 }));
      expected.add(ip);
      if (i === 300) {
        await waitFor(() => held().length > 0, 'some delivered before the crash', 60_000);
        await a.kill9();
      }
    }
    await b.waitForLog(isActive, 60_000);
    await waitFor(() => held().length === expected.size, `all ${expected.size} indicators after the takeover`, 120_000);

    const values = held().map((i) => i.indicatorValue);
    const doubled = values.length - new Set(values).size;
    const lost = [...expected].filter((ip) => !values.includes(ip)).length;
    const sent = lab.defender.requestLog.filter((e) => e.endpoint === 'indicators.import' && e.status === 200)
      .reduce((n, e) => n + (e.items ?? 0), 0);
    console.log(`      replicas: expected ${expected.size}, held ${values.length}, lost ${lost}, doubled ${doubled}, items sent ${sent}`);
    expect(lost).to.equal(0);
    expect(doubled).to.equal(0);
    // At most the batches in flight at the kill are sent again (Defender's import is an upsert by value).
    expect(sent).to.be.within(expected.size, expected.size + 2 * 50);
    await waitFor(() => lab.opencti.connections === 1, 'one stream open: the new reader\'s');
    expect(b.lines.filter(isActive)).to.have.length(1);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${b.healthPort}/readyz`)).ok, 'the new reader is ready');
    expect(await activeGauge(b)).to.equal('1');
  });
});
