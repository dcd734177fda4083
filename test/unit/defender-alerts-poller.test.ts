// The Defender alerts poller against the Defender simulator in process (plain HTTP, a stand-in
// token check): paging, $expand=evidence, the status filter and severity floor, the overlap
// window, following alerts already sent, throttling, and the simulator's alert routes.
import { expect } from 'chai';
import nock from 'nock';
import { assetKind } from '../../src/sinks/iris/mapper.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { DefenderSimulator, MDE_AUDIENCES } from '../../sim/defender/server.js';
import { defenderAlerts } from '../../sim/defender/alert-routes.js';
import { evidence, type AlertStore } from '../../sim/defender/alerts.js';
import type { TokenProvider } from '../../src/microsoft/token.js';
import { DefenderApi } from '../../src/microsoft/defender/client.js';
import { defenderAlertsSection, tenantCredentials } from '../../src/sources/defender-alerts/config.js';
import type { DefenderAlertChange } from '../../src/core/records.js';
import { DefenderAlertsPoller } from '../../src/sources/defender-alerts/poller.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { configSchema } from '../../src/config/schema.js';
import { replayAlertLetters } from '../../src/flows/defender-alerts.js';
import { Pipeline } from '../../src/core/pipeline.js';
import { Router } from '../../src/core/router.js';
import { heldAlerts } from '../../src/sinks/iris/index.js';
import { irisRoute } from '../../src/sinks/iris/route.js';
import { recordIngest } from '../support/ingest.js';

const TENANT = 'tenant-a';
const log = createLogger('silent');

describe('Defender alerts poller', () => {
  let sim: DefenderSimulator;
  let alerts: AlertStore;
  let store: SqliteStore;
  let roles: string[];

  beforeEach(async () => {
    roles = ['Alert.Read.All'];
    sim = new DefenderSimulator({
      entra: { tokenInfo: () => ({ tenantId: TENANT, clientId: 'app', roles, audience: MDE_AUDIENCES[0]!, displayName: 'app' }) },
      pageSize: 3,
    });
    await sim.start();
    alerts = defenderAlerts(sim);
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-poller-')));
  });
  afterEach(async () => {
    await store.close();
    await sim.stop();
  });

  const tokens = { getToken: async () => 'token' } as unknown as TokenProvider;
  const poller = (cfg: Record<string, unknown> = {}) => {
    const client = new DefenderApi({ baseUrl: sim.url, timeoutMs: 5000, verifyTls: true, callsPerMinute: 100, callsPerHour: 1500, tokens, log, metrics: { metrics: new Metrics(), label: 'defender_alerts' }, tenantId: TENANT, waitOut: 4 });
    return new DefenderAlertsPoller('defender_alerts', TENANT, defenderAlertsSection.parse({ page_size: 2, ...cfg }), client, deps(), log, new Metrics());
  };
  const deps = () => ({ checkpoints: store, ingest: recordIngest(store, 'defender_alerts', [irisRoute('iris')]), held: heldAlerts(store) });
  const queued = async () => {
    const items = await store.claimDue('iris', 1000, Date.now(), 1);
    return items.map((i) => i.payload as DefenderAlertChange);
  };

  it('reads every page with evidence and queues new alerts that pass the status filter and severity floor', async () => {
    const wanted = [1, 2, 3, 4].map((n) => alerts.add(TENANT, { severity: 'High', title: `A${n}`, evidence: [evidence({ entityType: 'Ip', ipAddress: `192.0.2.${n}` })] }));
    alerts.add(TENANT, { status: 'InProgress' });
    alerts.add(TENANT, { severity: 'Informational' });
    const p = poller({ min_severity: 'Low' });
    const r = await p.pollOnce();
    // The first run asks for the chosen statuses (New), whatever the time.
    expect(r).to.include({ read: 5, queued: 4 });
    const got = await queued();
    expect(got.map((c) => c.id).sort()).to.deep.equal(wanted.map((a) => a.id).sort());
    expect(got[0]!.evidence.ips).to.have.length(1);
    const lists = sim.requestLog.filter((e) => e.endpoint === 'alerts.list');
    expect(lists).to.have.length(3); // pages of 2
    expect(decodeURIComponent(lists[0]!.query)).to.match(/\$filter=status eq 'New'&\$expand=evidence&\$top=2/);
    expect(await store.getCheckpoint('defender_alerts')).to.have.property('position');
    // Later polls follow every change since the checkpoint.
    expect(await p.pollOnce()).to.include({ read: 6, queued: 0 });
    const next = sim.requestLog.filter((e) => e.endpoint === 'alerts.list').slice(3);
    expect(next).to.have.length(3);
    expect(decodeURIComponent(next[0]!.query)).to.match(/\$filter=lastUpdateTime ge \d{4}-\d\d-\d\dT[\d:.]+Z&\$expand=evidence&\$top=2/);
  });

  it('brings in every alert of the chosen statuses on the first run however old, one status filter each', async () => {
    const old = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();
    const ancient = alerts.add(TENANT, { lastUpdateTime: old(90), alertCreationTime: old(90) });
    const working = alerts.add(TENANT, { status: 'InProgress', lastUpdateTime: old(10) });
    alerts.add(TENANT, { status: 'Resolved', lastUpdateTime: old(10) });
    const r = await poller({ statuses: ['New', 'InProgress'] }).pollOnce();
    expect(r).to.include({ read: 2, queued: 2 });
    expect((await queued()).map((c) => c.id).sort()).to.deep.equal([ancient.id, working.id].sort());
    const filters = sim.requestLog.filter((e) => e.endpoint === 'alerts.list').map((e) => new URLSearchParams(e.query).get('$filter'));
    expect(filters).to.deep.equal(["status eq 'New'", "status eq 'InProgress'"]);
  });

  it('finds an alert Defender ingested late (lastUpdateTime already behind the checkpoint) within the overlap', async () => {
    alerts.ingestionDelayMs = 1500; // more than a poll takes here (calls paced 600 ms apart)
    const p = poller({ overlap_seconds: 5 });
    await p.pollOnce();
    const late = alerts.add(TENANT, {});
    const addedAt = Date.now();
    expect((await p.pollOnce()).read).to.equal(0); // not in the API yet
    await new Promise((r) => setTimeout(r, Math.max(0, addedAt + 1600 - Date.now())));
    expect((await p.pollOnce()).queued).to.equal(1);
    expect((await queued()).map((c) => c.id)).to.deep.equal([late.id]);
  });

  it('skips re-read alerts that did not change, and queues them again when they do', async () => {
    const a = alerts.add(TENANT, {});
    const p = poller();
    expect((await p.pollOnce()).queued).to.equal(1);
    expect((await p.pollOnce())).to.include({ read: 1, queued: 0, skipped: 1 });
    alerts.update(TENANT, a.id, { severity: 'High' });
    expect((await p.pollOnce()).queued).to.equal(1);
    expect((await queued()).map((c) => c.severity)).to.deep.equal(['High']);
  });

  it('follows an alert already sent to IRIS whatever its status, and one still waiting in the outbox', async () => {
    const sent = alerts.add(TENANT, {});
    const waiting = alerts.add(TENANT, {});
    const p = poller();
    await p.pollOnce();
    const items = await store.claimDue('iris', 10, Date.now(), 1);
    await store.ack(items.filter((i) => i.key === sent.id).map((item) => ({ item, externalId: '17' })));
    alerts.update(TENANT, sent.id, { status: 'Resolved' });
    alerts.update(TENANT, waiting.id, { status: 'Resolved' });
    const other = alerts.add(TENANT, { status: 'Resolved' });
    await new Promise((r) => setTimeout(r, 5)); // the unacknowledged lease lapses, as after a crash
    const r = await p.pollOnce();
    expect(r.queued).to.equal(2);
    const got = await queued();
    expect(got.map((c) => `${c.id}:${c.status}`).sort()).to.deep.equal([`${sent.id}:Resolved`, `${waiting.id}:Resolved`].sort());
    expect(got.map((c) => c.id)).not.to.include(other.id);
  });

  it('starts from the look-back on the first run and from the checkpoint minus the overlap afterwards', async () => {
    const old = new Date(Date.now() - 5 * 3600_000).toISOString();
    alerts.add(TENANT, { lastUpdateTime: old, alertCreationTime: old });
    const recent = alerts.add(TENANT, {});
    const p = poller({ lookback_hours: 2, overlap_seconds: 120 });
    const before = Date.now();
    expect((await p.pollOnce()).read).to.equal(1);
    expect((await queued()).map((c) => c.id)).to.deep.equal([recent.id]);
    await p.pollOnce();
    const lastQuery = decodeURIComponent(sim.requestLog.filter((e) => e.endpoint === 'alerts.list').at(-1)!.query);
    const from = Date.parse(/ge (\S+?)&/.exec(lastQuery)![1]!);
    expect(from).to.be.within(before - 120_000 - 1000, before - 120_000 + 5000);
  });

  it('waits as told on 429, and names the missing permission on 403', async () => {
    alerts.add(TENANT, {});
    sim.failNext(1, 429, { endpoint: 'alerts.list', retryAfter: 1 });
    const t0 = Date.now();
    expect((await poller().pollOnce()).queued).to.equal(1);
    expect(Date.now() - t0).to.be.at.least(900);
    roles = ['Ti.ReadWrite.All'];
    const err = await poller().pollOnce().catch((e: Error) => e);
    expect((err as Error).message).to.include('403').and.include('Alert.Read.All');
  });

  it('dead-letters an alert it cannot read with the raw payload, and a replay keeps it until it can be read', async () => {
    alerts.add(TENANT, { id: '' });
    const good = alerts.add(TENANT, {});
    expect(await poller().pollOnce()).to.include({ read: 2, queued: 1, rejected: 1 });
    const taken = await store.takeDeadLetters('all');
    expect(taken.map((d) => [d.sink, d.key, d.reason.split(':')[0]])).to.deep.equal([['source:defender_alerts', 'unknown', 'missing_id']]);
    const config = configSchema.parse({ microsoft_defender_intel: { tenant_id: TENANT } });
    const pipeline = new Pipeline(store, new Router([], [irisRoute('iris')]), log, new Metrics());
    expect(await replayAlertLetters(config, pipeline, taken)).to.equal(0);
    expect((await store.listDeadLetters()).map((d) => d.key)).to.deep.equal(['unknown']);
    const fixed = { ...taken[0]!, payload: { ...(taken[0]!.payload as object), id: 'da-fixed' } };
    expect(await replayAlertLetters(config, pipeline, [fixed])).to.equal(1);
    expect((await queued()).map((c) => c.id).sort()).to.deep.equal(['da-fixed', good.id].sort());
  });

  it('polls again after a stop and a start (the source lock lost and regained)', async () => {
    const p = poller();
    p.start();
    await p.stop();
    const a = alerts.add(TENANT, {});
    p.start();
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await store.outboxStats(Date.now())).find((x) => x.sink === 'iris')?.pending !== 1) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await p.stop();
    expect((await queued()).map((c) => c.id)).to.deep.equal([a.id]);
  });

  it('uses a tenant\'s own application when both its client id and secret are given, and names the missing half', () => {
    const fallback = { clientId: 'shared', clientSecret: 'shared-secret' };
    const cfg = defenderAlertsSection.parse({ tenant_client_ids: { t2: 'own', t3: 'half' }, tenant_client_secrets: { t2: 'own-secret' } });
    expect(tenantCredentials(cfg, 't1', fallback)).to.deep.equal(fallback);
    expect(tenantCredentials(cfg, 't2', fallback)).to.deep.equal({ clientId: 'own', clientSecret: 'own-secret' });
    expect(() => tenantCredentials(cfg, 't3', fallback)).to.throw(/tenant_client_secrets.*t3=<secret>/);
  });

  it('adds machine details once per machine (contract with nock), and carries on without them when forbidden', async () => {
    const host = 'https://mde.example.test';
    const machineId = 'b'.repeat(40);
    const alert = (id: string) => ({ id, lastUpdateTime: new Date().toISOString(), status: 'New', severity: 'High', machineId, computerDnsName: 'srv1.corp.example', evidence: [] });
    nock(host).get('/api/alerts').query(true).reply(200, { value: [alert('m1'), alert('m2')] });
    const machine = nock(host).get(`/api/machines/${machineId}`).once()
      .reply(200, { id: machineId, osPlatform: 'WindowsServer2022', lastIpAddress: '10.1.2.3', lastExternalIpAddress: '203.0.113.10', riskScore: 'High', machineTags: ['tier0'] });
    const client = new DefenderApi({ baseUrl: host, timeoutMs: 5000, verifyTls: true, callsPerMinute: 100, callsPerHour: 1500, tokens, log, metrics: { metrics: new Metrics(), label: 'defender_alerts' }, tenantId: TENANT, waitOut: 4 });
    const p = new DefenderAlertsPoller('defender_alerts', TENANT, defenderAlertsSection.parse({}), client, deps(), log, new Metrics());
    try {
      expect((await p.pollOnce()).queued).to.equal(2);
      expect(machine.isDone()).to.equal(true);
      const got = await queued();
      expect(got.map((c) => c.machine)).to.deep.equal([0, 1].map(() => ({
        id: machineId, dnsName: 'srv1.corp.example', rbacGroupName: null, osPlatform: 'WindowsServer2022', osVersion: null,
        lastIpAddress: '10.1.2.3', lastExternalIpAddress: '203.0.113.10', healthStatus: null, riskScore: 'High', exposureLevel: null, machineTags: ['tier0'],
      })));
      expect(assetKind(got[0]!.machine!.osPlatform!)).to.equal('windows-server');

      // Without Machine.Read.All: one 403, then no more machine calls.
      const other = 'c'.repeat(40);
      nock(host).get('/api/alerts').query(true).reply(200, { value: [{ ...alert('m3'), machineId: other }, { ...alert('m4'), machineId: 'd'.repeat(40) }] });
      nock(host).get(`/api/machines/${other}`).reply(403, { error: { code: 'Forbidden', message: 'no role' } });
      expect((await p.pollOnce()).queued).to.equal(2);
      expect(nock.pendingMocks()).to.deep.equal([]);
    } finally {
      nock.cleanAll();
    }
  });

  it('simulator: evidence only with $expand, OData filters, PATCH with comments, 404 for unknown ids', async () => {
    const a = alerts.add(TENANT, { severity: 'High', evidence: [evidence({ entityType: 'File', fileName: 'x' })] });
    alerts.add(TENANT, { severity: 'Low' });
    const get = async (path: string, init: RequestInit = {}) => {
      const res = await fetch(`${sim.url}${path}`, { ...init, headers: { Authorization: 'Bearer t', 'Content-Type': 'application/json' } });
      return { status: res.status, body: (await res.json().catch(() => null)) as { value?: { id: string; evidence: unknown[] }[]; status?: string; comments?: unknown[] } };
    };
    expect((await get('/api/alerts')).body.value!.every((x) => x.evidence.length === 0)).to.equal(true);
    expect((await get(`/api/alerts?$expand=evidence&$filter=${encodeURIComponent("severity eq 'High'")}`)).body.value!.map((x) => [x.id, x.evidence.length])).to.deep.equal([[a.id, 1]]);
    expect((await get('/api/alerts?$filter=bogus eq 1')).status).to.equal(400);
    expect((await get('/api/alerts/nope')).status).to.equal(404);
    roles = ['Alert.ReadWrite.All'];
    const patched = await get(`/api/alerts/${a.id}`, { method: 'PATCH', body: JSON.stringify({ status: 'Resolved', comment: 'done' }) });
    expect(patched.body).to.include({ status: 'Resolved' });
    expect(patched.body.comments).to.have.length(1);
    expect(alerts.get(TENANT, a.id)!.resolvedTime).to.be.a('string');
  });
});
