// Two replicas of the built service on one PostgreSQL store against the lab simulators: only one
// reads the OpenCTI stream; kill -9 of that one mid-stream and the standby takes over from the
// stored checkpoint. Defender ends with exactly the expected indicators: 0 lost, 0 doubled.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';
import pg from 'pg';
import { lockKey } from '../../src/store/postgres.js';
import { dropSchema, freshSchemaName, requirePostgres, TEST_PG_URL } from '../support/postgres.js';

/** Ends the database session holding the source lock of `schema` (the reader's), as a network cut or a DBA would. */
async function terminateReaderSession(schema: string): Promise<number> {
  const key = BigInt.asUintN(64, BigInt(lockKey(`threatbridge:source:${schema}:opencti`)));
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    const r = await client.query(`SELECT pg_terminate_backend(pid) FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid = $1::bigint::oid AND objid = $2::bigint::oid`,
    [String(key >> 32n), String(key & 0xffffffffn)]);
    return r.rowCount ?? 0;
  } finally {
    await client.end();
  }
}

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
    let killedAt = 0;
    for (let i = 0; i < 600; i++) {
      const ip = `10.${20 + Math.floor(i / 250)}.${i % 250}.9`;
      lab.opencti.create(makeIndicator({ pattern: `[ipv4-addr:value = '${ip}']`, score: 70 }));
      expected.add(ip);
      if (i === 300) {
        await waitFor(() => held().length > 0, 'some delivered before the crash', 60_000);
        killedAt = Date.now();
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
    // Per key: Defender's upsert hides a second send, so count what was SENT. Only the answers the
    // kill may have cut off can be sent again.
    expect(lab.defender.sends.repeats({ interruptions: [killedAt] }).map((s) => s.key), 'indicators sent again unchanged').to.deep.equal([]);
    await waitFor(() => lab.opencti.connections === 1, 'one stream open: the new reader\'s');
    expect(b.lines.filter(isActive)).to.have.length(1);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${b.healthPort}/readyz`)).ok, 'the new reader is ready');
    expect(await activeGauge(b)).to.equal('1');
  });

  it('a reader whose database session breaks stops reading, and one replica reads on without loss', async () => {
    const a = replica();
    await a.waitForLog(isActive, 60_000);
    const b = replica();
    await b.waitForLog(isStandby, 60_000);
    const expected = new Set<string>();
    const publish = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const ip = `10.40.${Math.floor(i / 250)}.${i % 250}`;
        lab.opencti.create(makeIndicator({ pattern: `[ipv4-addr:value = '${ip}']`, score: 70 }));
        expected.add(ip);
      }
    };
    publish(0, 200);
    await waitFor(() => held().length > 0, 'some delivered', 60_000);
    const brokenAt = Date.now();
    expect(await terminateReaderSession(schema)).to.equal(1);
    await a.waitForLog((l) => l.msg === 'lost the source lock; stop reading until it is ours again', 30_000);
    publish(200, 400);
    // Whichever replica gets the lock first reads on; never both at once.
    await waitFor(() => b.lines.some(isActive) || a.lines.filter(isActive).length > 1, 'a reader again', 60_000);
    await waitFor(() => held().length === expected.size, `all ${expected.size} indicators`, 120_000);
    const values = held().map((i) => i.indicatorValue);
    expect(new Set(values).size).to.equal(values.length);
    expect([...expected].every((ip) => values.includes(ip))).to.equal(true);
    expect(lab.defender.sends.repeats({ interruptions: [brokenAt] }).map((s) => s.key), 'indicators sent again unchanged').to.deep.equal([]);
    await waitFor(() => lab.opencti.connections === 1, 'one reader left');
    expect(a.running && b.running).to.equal(true);
  });
});
