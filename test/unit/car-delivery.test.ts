// CAR delivery policy against the CAR simulator over loopback, with a real SQLite store:
// ordering (nodes → edges → PATCH → ack), edge disabling by diff, bisecting rejections,
// retries through outages, job errors and time-outs, deletes and the save point.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliveryWorker } from '../../src/core/delivery.js';
import type { SinkOp } from '../../src/core/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { CarSimulator } from '../../sim/car/server.js';
import { CarClient } from '../../src/sinks/car/client.js';
import { CarDelivery } from '../../src/sinks/car/delivery.js';
import { alertKey, machineKey, MODEL_STATE_KEY, type CarOpPayload } from '../../src/sinks/car/route.js';
import { alertSnapshot, machineSnapshot } from '../../src/sources/defender-assets/snapshot.js';
import type { Machine } from '../../src/microsoft/defender/types.js';
import { SqliteStore } from '../../src/store/sqlite.js';

const log = createLogger('silent');
const SOURCE = 'Microsoft-Windows-Defender-ATP';

const machine = (id: string, ip: string, over: Partial<Machine> = {}): Machine => ({
  id, computerDnsName: `${id}.corp.example`, osPlatform: 'Windows11', healthStatus: 'Active',
  ipAddresses: [{ ipAddress: ip, macAddress: '0050569A0B0C', operationalStatus: 'Up' }], ...over,
});
const machineOp = (m: Machine): SinkOp<CarOpPayload> => ({
  sink: 'car', key: machineKey(m.id), op: 'upsert', sourceRef: null,
  payload: { kind: 'machine', snapshot: machineSnapshot(m, { users: [], vulnerabilities: [], vulnerabilityDetails: new Map() }) },
});

describe('CAR delivery (against the CAR simulator)', function () {
  this.timeout(30_000);
  let car: CarSimulator;
  let store: SqliteStore;
  let worker: DeliveryWorker;
  let handler: CarDelivery;

  const commit = (ops: SinkOp[]) => store.commit({ source: 'defender_assets', checkpoint: null, claimUpserts: [], claimDeletes: [], ops, deadLetters: [] });

  beforeEach(async () => {
    car = new CarSimulator({ apiKey: 'key', password: 'pw', pollsBeforeComplete: 2 });
    await car.start();
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-car-')));
    const metrics = new Metrics();
    const client = new CarClient({ url: car.url, apiKey: 'key', password: 'pw', timeoutMs: 5000, verifyTls: true, sink: 'car', log, metrics });
    handler = new CarDelivery('car', 50, client, store, log, { source: { _key: SOURCE, name: 'tenant' }, pageSize: 3, importTimeoutMs: 2000, pollBaseMs: 5 });
    worker = new DeliveryWorker(store, handler, log, metrics);
  });
  afterEach(async () => {
    await store.close();
    await car.stop();
  });

  it('imports nodes before edges (paged), then records what CAR holds', async () => {
    await commit([machineOp(machine('m1', '10.0.0.1')), machineOp(machine('m2', '10.0.0.2'))]);
    expect(await worker.drainOnce()).to.equal(2);
    const imports = car.requestLog.filter((r) => r.method === 'POST' && r.path.endsWith('/imports'));
    // page_size 3: several node pages, then edge pages; no edge before the last node page.
    const firstEdge = imports.findIndex((r) => Object.keys(r.body as object).some((k) => k.includes('_')));
    const lastNode = imports.map((r) => Object.keys(r.body as object).some((k) => ['asset', 'ipaddress', 'macaddress', 'hostname', 'application'].includes(k))).lastIndexOf(true);
    expect(lastNode).to.be.lessThan(firstEdge);
    for (const r of imports) expect(Object.entries(r.body as Record<string, unknown[]>).filter(([k]) => k !== 'source' && k !== 'report').reduce((n, [, v]) => n + v.length, 0)).to.be.at.most(3);
    expect(car.list('asset').map((a) => a['external_id']).sort()).to.deep.equal(['m1', 'm2']);
    expect(car.edgesOf('asset_ipaddress', { from: 'm1', active: true }).map((e) => e.to)).to.deep.equal(['10.0.0.1']);
    expect(car.edgesOf('ipaddress_macaddress', { from: '10.0.0.1' })).to.have.length(1);
    const ids = await store.getSinkIds('car', [machineKey('m1')]);
    expect(JSON.parse(ids.get(machineKey('m1'))!)).to.include({ h: 'm1.corp.example' });
  });

  it('a machine changing IP disables the old edges and adds the new ones, even when snapshots coalesce', async () => {
    await commit([machineOp(machine('m1', '10.0.0.1'))]);
    await worker.drainOnce();
    // Two snapshots before the worker runs: the second supersedes the first.
    await commit([machineOp(machine('m1', '10.0.0.7'))]);
    await commit([machineOp(machine('m1', '10.0.0.9'))]);
    expect(await worker.drainOnce()).to.equal(1);
    expect(car.edgesOf('asset_ipaddress', { from: 'm1', active: true }).map((e) => e.to)).to.deep.equal(['10.0.0.9']);
    expect(car.edgesOf('asset_ipaddress', { from: 'm1', to: '10.0.0.1' })[0]!.active).to.equal(false);
    expect(car.edgesOf('ipaddress_macaddress', { from: '10.0.0.1' })[0]!.active).to.equal(false);
    // The PATCH came after the import that added the new edge.
    const log = car.requestLog.map((r) => `${r.method} ${r.path.split('/').pop()}`);
    expect(log.lastIndexOf('POST imports')).to.be.lessThan(log.indexOf('PATCH asset_ipaddress'));
  });

  it('an edge imported by a delivery that failed before its ack is disabled by the snapshot that replaces it', async () => {
    await commit([machineOp(machine('m1', '10.0.0.1'))]);
    await worker.drainOnce();
    // The edges of .7 reach CAR, then the PATCH of .1 fails: no ack.
    car.failNext(1, 503, 'PATCH');
    await commit([machineOp(machine('m1', '10.0.0.7'))]);
    await worker.drainOnce();
    expect(car.edgesOf('asset_ipaddress', { from: 'm1', to: '10.0.0.7', active: true })).to.have.length(1);
    await commit([machineOp(machine('m1', '10.0.0.9'))]);
    const items = await store.claimDue('car', 50, Date.now() + 3_600_000, 60_000);
    await worker.deliver(items);
    expect(car.edgesOf('asset_ipaddress', { from: 'm1', active: true }).map((e) => e.to)).to.deep.equal(['10.0.0.9']);
    expect(car.edgesOf('ipaddress_macaddress', { active: true }).map((e) => e.from)).to.deep.equal(['10.0.0.9']);
    expect(JSON.parse((await store.getSinkIds('car', [machineKey('m1')])).get(machineKey('m1'))!).ip).to.deep.equal(['10.0.0.9']);
  });

  it('bisects a rejected batch and dead-letters only the bad snapshot, with CAR\'s message', async () => {
    const bad = machineOp(machine('m3', '10.0.0.3'));
    (bad.payload as { snapshot: { asset: Record<string, unknown> } }).snapshot.asset['name'] = '';
    await commit([machineOp(machine('m1', '10.0.0.1')), bad, machineOp(machine('m2', '10.0.0.2'))]);
    await worker.drainOnce();
    expect(car.list('asset').map((a) => a['external_id']).sort()).to.deep.equal(['m1', 'm2']);
    const letters = await store.listDeadLetters({ sink: 'car' });
    expect(letters.map((l) => l.key)).to.deep.equal([machineKey('m3')]);
    expect(letters[0]!.reason).to.include('data_mal_formed').and.include("required property 'name'");
  });

  it('retries through an outage and 429 without dead letters or a reset save point', async () => {
    car.setDown(true);
    await commit([machineOp(machine('m1', '10.0.0.1'))]);
    await worker.drainOnce();
    expect(car.list('asset')).to.have.length(0);
    const [stats] = await store.outboxStats(Date.now());
    expect(stats!.pending).to.equal(1);
    car.setDown(false);
    car.failNext(1, 429, 'imports');
    // Drain again as if the backoff had passed.
    for (let i = 0; i < 3 && car.list('asset').length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      const items = await store.claimDue('car', 50, Date.now() + 3_600_000, 60_000);
      if (items.length) await worker.deliver(items);
    }
    expect(car.list('asset')).to.have.length(1);
    expect(await store.listDeadLetters({ sink: 'car' })).to.deep.equal([]);
  });

  it('an import job that keeps ending in error is dead-lettered, one that fails once is retried, one that never completes is retried', async () => {
    const again = async () => {
      const items = await store.claimDue('car', 50, Date.now() + 3_600_000, 60_000);
      if (items.length) await worker.deliver(items);
    };
    car.failNextJobs(1);
    await commit([machineOp(machine('m0', '10.0.0.10'))]);
    await worker.drainOnce();
    await again();
    expect(car.list('asset').map((a) => a['external_id']), 'a job that failed once').to.deep.equal(['m0']);
    expect(await store.listDeadLetters({ sink: 'car' })).to.deep.equal([]);

    // A job fails at each of three attempts.
    car.failNextJobs(1);
    await commit([machineOp(machine('m1', '10.0.0.1'))]);
    await worker.drainOnce();
    car.failNextJobs(1);
    await again();
    expect(await store.listDeadLetters({ sink: 'car' }), 'still retried after two failed jobs').to.deep.equal([]);
    car.failNextJobs(1);
    await again();
    expect((await store.listDeadLetters({ sink: 'car' }))[0]!.reason).to.include('import job failed');

    car.stickNextJobs(1);
    await commit([machineOp(machine('m2', '10.0.0.2'))]);
    await worker.drainOnce();
    expect(car.list('asset').map((a) => a['external_id'])).to.deep.equal(['m0']);
    const items = await store.claimDue('car', 50, Date.now() + 3_600_000, 60_000);
    expect(items.map((i) => i.key)).to.deep.equal([machineKey('m2')]);
    await worker.deliver(items);
    expect(car.list('asset').map((a) => a['external_id']).sort()).to.deep.equal(['m0', 'm2']);
  });

  it('deletes inactive machines, disables resolved alerts, and writes the save point last', async () => {
    await commit([machineOp(machine('m1', '10.0.0.1')), machineOp(machine('m2', '10.0.0.2'))]);
    await worker.drainOnce();
    const alert = (status: string): SinkOp<CarOpPayload> => ({ sink: 'car', key: alertKey('da1'), op: 'upsert', sourceRef: null,
      payload: { kind: 'alert', snapshot: alertSnapshot({ id: 'da1', machineId: 'm2', title: 'Suspicious', status, severity: 'High' })! } });
    await commit([alert('New')]);
    await worker.drainOnce();
    expect(car.edgesOf('asset_vulnerability', { from: 'm2', to: 'da1' })[0]!.active).to.equal(true);

    car.setDown(true);
    await commit([
      alert('Resolved'),
      { sink: 'car', key: machineKey('m1'), op: 'delete', sourceRef: null, payload: { kind: 'delete-machine', machineId: 'm1', reason: 'inactive' } },
      { sink: 'car', key: MODEL_STATE_KEY, op: 'upsert', sourceRef: null, payload: { kind: 'model-state', modelStateId: '1700000000000' } },
    ]);
    await worker.drainOnce();
    expect(car.modelState(SOURCE)).to.equal(undefined);
    car.setDown(false);
    // The save point waits while other CAR work is pending.
    const claimed = await store.claimDue('car', 50, Date.now() + 3_600_000, 60_000);
    await store.retry(claimed.filter((i) => i.key !== MODEL_STATE_KEY), Date.now(), 'held back by the test');
    await worker.deliver(claimed.filter((i) => i.key === MODEL_STATE_KEY));
    expect(car.modelState(SOURCE)).to.equal(undefined);
    for (let i = 0; i < 3; i++) {
      const items = await store.claimDue('car', 50, Date.now() + 3_600_000, 60_000);
      if (items.length) await worker.deliver(items);
    }
    expect(car.node('asset', 'm1')).to.equal(undefined);
    expect(car.edgesOf('asset_ipaddress', { from: 'm1' })[0]!.active).to.equal(false);
    expect(car.edgesOf('asset_vulnerability', { from: 'm2', to: 'da1' })[0]!.active).to.equal(false);
    expect(car.modelState(SOURCE)).to.equal('1700000000000');
    expect(await store.getSinkIds('car', [machineKey('m1')])).to.have.property('size', 0);
  });

  it('authenticates with a car-token, and waits (no dead letter) on refused credentials', async () => {
    const tokenCar = new CarSimulator({ apiKey: 'key', password: 'pw', token: 'the-token' });
    await tokenCar.start();
    try {
      const metrics = new Metrics();
      const ok = new CarDelivery('car', 50, new CarClient({ url: tokenCar.url, token: 'the-token', timeoutMs: 5000, verifyTls: true, sink: 'car', log, metrics }),
        store, log, { source: { _key: SOURCE }, pageSize: 100, importTimeoutMs: 2000, pollBaseMs: 5 });
      const bad = new CarDelivery('car', 50, new CarClient({ url: tokenCar.url, token: 'wrong', timeoutMs: 5000, verifyTls: true, sink: 'car', log, metrics }),
        store, log, { source: { _key: SOURCE }, pageSize: 100, importTimeoutMs: 2000, pollBaseMs: 5 });
      await commit([machineOp(machine('m1', '10.0.0.1'))]);
      await new DeliveryWorker(store, bad, log, metrics).deliver(await store.claimDue('car', 50, Date.now(), 60_000));
      expect(await store.listDeadLetters({ sink: 'car' })).to.deep.equal([]);
      expect(tokenCar.list('asset')).to.have.length(0);
      await new DeliveryWorker(store, ok, log, metrics).deliver(await store.claimDue('car', 50, Date.now() + 3_600_000, 60_000));
      expect(tokenCar.list('asset')).to.have.length(1);
      expect(tokenCar.requestLog.filter((r) => r.status === 401).length).to.be.at.least(1);
    } finally {
      await tokenCar.stop();
    }
  });

  it('removes every asset a renamed machine had when it is deleted', async () => {
    await commit([machineOp(machine('m5', '10.0.0.5'))]);
    await worker.drainOnce();
    await commit([machineOp(machine('m5', '10.0.0.5', { computerDnsName: 'm5-new.corp.example' }))]);
    await worker.drainOnce();
    expect(car.list('asset').map((a) => a['external_id']).sort()).to.deep.equal(['m5', 'm5:m5-new.corp.example']);
    await commit([{ sink: 'car', key: machineKey('m5'), op: 'delete', sourceRef: null, payload: { kind: 'delete-machine', machineId: 'm5', reason: 'inactive' } }]);
    await worker.drainOnce();
    expect(car.list('asset')).to.deep.equal([]);
  });
});
