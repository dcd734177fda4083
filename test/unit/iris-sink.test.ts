// IRIS sink against the IRIS simulator in process: reference ids by name, the mapping, create vs
// update (id map, exact source reference despite IRIS's substring filter), dead letters, retries.
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { irisSection } from '../../src/sinks/iris/config.js';
import { IrisClient } from '../../src/sinks/iris/client.js';
import { IrisDelivery } from '../../src/sinks/iris/delivery.js';
import { DeliveryWorker } from '../../src/core/delivery.js';
import { irisCreateBody, irisUpdateBody, assetKind } from '../../src/sinks/iris/mapper.js';
import { IrisSetupError, loadIrisRefs } from '../../src/sinks/iris/reference.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { IrisSimulator } from '../../sim/iris/server.js';
import { evidence } from '../../sim/defender/alerts.js';
import type { DefenderAlertChange } from '../../src/core/records.js';
import { normaliseAlert } from '../../src/sources/defender-alerts/normalise.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { OutboxItem } from '../../src/core/types.js';

const log = createLogger('silent');
const TENANT = 't-1';

function change(id: string, fields: Record<string, unknown> = {}): DefenderAlertChange {
  const now = new Date().toISOString();
  const n = normaliseAlert({
    id, title: `Alert ${id}`, severity: 'Medium', status: 'New', category: 'Malware', detectionSource: 'WindowsDefenderAv',
    alertCreationTime: now, firstEventTime: now, lastUpdateTime: now, machineId: 'f'.repeat(40), computerDnsName: 'srv-9.corp.example',
    mitreTechniques: ['T1204'], evidence: [evidence({ entityType: 'File', fileName: 'x.exe', sha256: 'ab'.repeat(32) })], ...fields,
  }, TENANT, 'https://security.microsoft.com');
  if (!('change' in n)) throw new Error('bad fixture');
  return n.change;
}

describe('IRIS sink', () => {
  let iris: IrisSimulator;
  let key: string;
  const client = (apiKey = key) => new IrisClient({ url: iris.url, apiKey, verifyTls: true, timeoutMs: 5000, sink: 'iris', log, metrics: new Metrics() });
  const cfg = (over: Record<string, unknown> = {}) => irisSection.parse({ url: iris.url, api_key: key, customer_id: 1, ...over });

  beforeEach(async () => {
    iris = await new IrisSimulator().start();
    key = iris.addUser('tb', ['alerts_read', 'alerts_write', 'customers_read'], [1]).apiKey;
  });
  afterEach(() => iris.stop());

  describe('reference ids', () => {
    it('maps Defender severities to IRIS by name on fresh and upgraded installs', async () => {
      const fresh = await loadIrisRefs(client(), cfg(), log);
      expect(fresh.severityId('Medium')).to.equal(1);
      expect(fresh.severityId('High')).to.equal(5);
      expect(fresh.severityId('UnSpecified')).to.equal(2);
      const upgradedSim = await new IrisSimulator({ severityLayout: 'upgraded' }).start();
      try {
        const k = upgradedSim.addUser('tb', ['alerts_read', 'alerts_write', 'customers_read'], 'all').apiKey;
        const c = new IrisClient({ url: upgradedSim.url, apiKey: k, verifyTls: true, timeoutMs: 5000, sink: 'iris', log, metrics: new Metrics() });
        const up = await loadIrisRefs(c, irisSection.parse({ url: upgradedSim.url, api_key: k, customer_id: 1 }), log);
        expect(up.severityId('Medium')).to.equal(4);
        expect(up.severityId('Informational')).to.equal(2);
      } finally {
        await upgradedSim.stop();
      }
    });

    it('resolves statuses, TLP and customers given by name, and names the key of a wrong one', async () => {
      const contoso = iris.addCustomer('Contoso');
      const admin = iris.addUser('admin', ['alerts_read', 'alerts_write', 'customers_read'], 'all').apiKey;
      const refs = await loadIrisRefs(client(admin), cfg({ api_key: admin, customer_id: 'contoso', alert_status_id: 'Assigned', ioc_tlp: 'GREEN', tenant_customers: { 'tenant-b': 1 } }), log);
      expect(refs.newStatusId).to.equal(3);
      expect(refs.resolvedStatusId).to.equal(6);
      expect(refs.tlpId).to.equal(3);
      expect(refs.customerFor('any')).to.equal(contoso.customer_id);
      expect(refs.customerFor('tenant-b')).to.equal(1);
      const err = await loadIrisRefs(client(), cfg({ resolved_status_id: 'Done' }), log).catch((e: Error) => e);
      expect(err).to.be.instanceOf(IrisSetupError);
      expect((err as Error).message).to.include('iris.resolved_status_id=Done').and.include('closed');
    });

    it('carries on without the optional lists (IOC types, asset types, TLP, resolutions) but waits for an outage', async () => {
      for (const path of [/ioc-types/, /asset-type/, /tlp/, /alert-resolutions/]) iris.failNext(1, 404, path, 'Not found');
      const refs = await loadIrisRefs(client(), cfg(), log);
      expect([refs.iocTypeId('ip'), refs.assetTypeId('windows-computer'), refs.tlpId, refs.resolutionId('FalsePositive')]).to.deep.equal([null, null, null, null]);
      expect(refs.severityId('High')).to.equal(5);
      iris.failNext(1, 503, /tlp/);
      const err = await loadIrisRefs(client(), cfg(), log).catch((e: Error) => e);
      expect((err as Error).name).to.equal('Error');
      expect((err as { code?: string }).code).to.equal('iris_unavailable');
    });

    it('names iris.api_key when IRIS refuses the key', async () => {
      const err = await loadIrisRefs(client('wrong-key'), cfg({ api_key: 'wrong-key' }), log).catch((e: Error) => e);
      expect(err).to.be.instanceOf(IrisSetupError);
      expect((err as Error).message).to.include('401').and.include('iris.api_key');
    });

    it('needs customers_read for a customer given by name, and says so', async () => {
      const k = iris.addUser('nocust', ['alerts_read', 'alerts_write'], [1]).apiKey;
      const err = await loadIrisRefs(client(k), cfg({ api_key: k, customer_id: 'IrisInitialClient' }), log).catch((e: Error) => e);
      expect((err as Error).message).to.include('customers_read').and.include('iris.customer_id=IrisInitialClient');
      // An id works without it.
      expect((await loadIrisRefs(client(k), cfg({ api_key: k }), log)).customerFor(TENANT)).to.equal(1);
    });
  });

  describe('mapping', () => {
    it('sends IOCs with IRIS type ids by name, one asset with its domain, and keeps the owner unassigned on update', async () => {
      const refs = await loadIrisRefs(client(), cfg(), log);
      const c = change('da1', { evidence: [evidence({ entityType: 'Ip', ipAddress: '192.0.2.1' }), evidence({ entityType: 'File', fileName: 'a.dll', sha1: 'AB'.repeat(20) })] });
      const body = irisCreateBody(c, refs, { alertSource: 'Microsoft Defender' }, 1) as { alert_iocs: { ioc_value: string; ioc_type_id: number }[]; alert_assets: { asset_name: string; asset_domain: string; asset_type_id: number }[] };
      const types = Object.fromEntries(body.alert_iocs.map((i) => [i.ioc_value, i.ioc_type_id]));
      expect(types).to.deep.include({ '192.0.2.1': 76, ['ab'.repeat(20)]: 111, 'a.dll': 37, 'srv-9.corp.example': 69, da1: 96 });
      expect(body.alert_assets).to.deep.equal([{ ...body.alert_assets[0], asset_name: 'srv-9.corp.example', asset_domain: 'corp.example', asset_type_id: 9 }]);
      expect(irisUpdateBody(c, refs, { alertSource: 'x' }, { alert_owner_id: null })).to.include({ alert_owner_id: -1 });
      expect(irisUpdateBody(c, refs, { alertSource: 'x' }, { alert_owner_id: 3 })).not.to.have.property('alert_owner_id');
      expect(irisUpdateBody(c, refs, { alertSource: 'x' }, { alert_owner_id: null })).not.to.have.property('alert_status_id');
      expect(irisUpdateBody({ ...c, status: 'Resolved' }, refs, { alertSource: 'x' }, { alert_owner_id: null })).to.include({ alert_status_id: 6 });
    });

    it('picks the asset type from the machine OS', () => {
      expect(assetKind('WindowsServer2019')).to.equal('windows-server');
      expect(assetKind('Windows11')).to.equal('windows-computer');
      expect(assetKind('Linux')).to.equal('linux-computer');
      expect(assetKind('macOS')).to.equal('mac-computer');
      expect(assetKind(null)).to.equal('windows-computer');
    });

    it('normalises any JSON without throwing', () => {
      fc.assert(fc.property(fc.anything(), (raw) => {
        const n = normaliseAlert(raw, TENANT, 'https://security.microsoft.com');
        return 'change' in n || typeof n.rejected.code === 'string';
      }), { numRuns: 300 });
      fc.assert(fc.property(fc.dictionary(fc.constantFrom('id', 'lastUpdateTime', 'evidence', 'mitreTechniques', 'relatedUser', 'comments', 'severity'), fc.anything()), (raw) => {
        normaliseAlert({ id: 'x', lastUpdateTime: '2024-01-01T00:00:00Z', ...raw }, TENANT, 'https://p');
        return true;
      }), { numRuns: 300 });
      const n = normaliseAlert({ id: 'a', lastUpdateTime: '2024-01-01T00:00:00Z', mitreTechniques: 'T1059.001, t1105' }, TENANT, 'https://p');
      expect('change' in n && n.change.mitreTechniques).to.deep.equal(['T1059.001', 'T1105']);
    });
  });

  describe('delivery', () => {
    let store: SqliteStore;
    let seq = 0;
    beforeEach(() => { store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-iris-'))); });
    afterEach(() => store.close());

    const queue = async (...changes: DefenderAlertChange[]) => {
      await store.commit({ source: 'defender_alerts', checkpoint: null, claimUpserts: [], claimDeletes: [], deadLetters: [],
        ops: changes.map((c) => ({ sink: 'iris', key: c.id, op: 'upsert' as const, payload: c, sourceRef: null })) });
    };
    const drain = async (handler: IrisDelivery): Promise<OutboxItem[]> => {
      const items = await store.claimDue('iris', 100, Date.now() + 10 * 60_000, 60_000);
      seq += items.length;
      if (items.length) await new DeliveryWorker(store, handler, log, new Metrics()).deliver(items);
      return items;
    };
    const handler = (over: Record<string, unknown> = {}) => new IrisDelivery('iris', cfg(over), client(), store, log, 10);

    it('checks the source reference for equality: a longer reference containing ours is not our alert', async () => {
      // IRIS's source_reference filter is LIKE '%ref%': 'da7' matches 'da77' and 'xda7'.
      const c = client();
      for (const ref of ['da77', 'xda7']) {
        const r = await c.addAlert({ alert_title: ref, alert_severity_id: 1, alert_status_id: 2, alert_customer_id: 1, alert_source: 'Microsoft Defender', alert_source_ref: ref });
        expect(r.ok).to.equal(true);
      }
      const filtered = await c.call<{ alerts: unknown[] }>('f', 'GET', '/alerts/filter?source_reference=da7');
      expect(filtered.data!.alerts).to.have.length(2);
      const h = handler();
      await queue(change('da7'));
      await drain(h);
      expect(iris.alertList().filter((a) => a.alert_source_ref === 'da7')).to.have.length(1);
      expect(h.counts).to.include({ created: 1, updated: 0 });
      expect((await store.getSinkIds('iris', ['da7'])).get('da7')).to.equal('3');
    });

    it('checks the alert source for equality: the same reference from a source whose name contains ours is not our alert', async () => {
      // IRIS's alert_source filter is ILIKE '%v%': 'Microsoft Defender' also matches 'Microsoft Defender for Cloud'.
      const c = client();
      const theirs = await c.addAlert({ alert_title: 'theirs', alert_severity_id: 1, alert_status_id: 2, alert_customer_id: 1,
        alert_source: 'Microsoft Defender for Cloud', alert_source_ref: 'da9' });
      expect(theirs.ok).to.equal(true);
      const h = handler();
      await queue(change('da9'));
      await drain(h);
      expect(h.counts).to.include({ created: 1, updated: 0 });
      const held = iris.alertList().filter((a) => a.alert_source_ref === 'da9');
      expect(held.map((a) => [a.alert_id, a.alert_source])).to.deep.equal([[1, 'Microsoft Defender for Cloud'], [2, 'Microsoft Defender']]);
      expect(held[0]!.alert_title).to.equal('theirs', 'the other source\'s alert is left alone');
      expect((await store.getSinkIds('iris', ['da9'])).get('da9')).to.equal('2');
    });

    it('updates the alert IRIS already holds when the id map is empty (fresh store or lost answer)', async () => {
      const first = handler();
      await queue(change('da8'));
      await drain(first);
      const other = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-iris-')));
      try {
        const h = new IrisDelivery('iris', cfg(), client(), other, log);
        await other.commit({ source: 'x', checkpoint: null, claimUpserts: [], claimDeletes: [], deadLetters: [], ops: [{ sink: 'iris', key: 'da8', op: 'upsert', payload: change('da8', { title: 'Renamed' }), sourceRef: null }] });
        const items = await other.claimDue('iris', 10, Date.now(), 60_000);
        await new DeliveryWorker(other, h, log, new Metrics()).deliver(items);
        expect(h.counts).to.include({ created: 0, updated: 1 });
      } finally {
        await other.close();
      }
      expect(iris.alertList()).to.have.length(1);
      expect(iris.alertList()[0]!.alert_title).to.equal('Renamed');
    });

    it('dead-letters a 400 with IRIS\'s message and keeps 5xx and outages for a retry', async () => {
      const h = handler();
      iris.failNext(1, 400, /^\/alerts\/add$/, "{'alert_source_event_time': ['Not a valid datetime.']}");
      iris.failNext(1, 502, /^\/alerts\/add$/);
      await queue(change('da9'), change('da10'));
      await drain(h);
      const letters = await store.listDeadLetters();
      expect(letters).to.have.length(1);
      expect(letters[0]!.key).to.equal('da9');
      expect(letters[0]!.reason).to.include("{'alert_source_event_time': ['Not a valid datetime.']}");
      expect((await store.outboxStats(Date.now()))[0]).to.include({ sink: 'iris', pending: 1 });
      iris.setDown(true);
      const retried = await drain(h);
      expect(retried.map((i) => i.key)).to.deep.equal(['da10']);
      expect((await store.outboxStats(Date.now()))[0]).to.include({ pending: 1 });
      iris.setDown(false);
      await drain(h);
      expect(await store.outboxStats(Date.now())).to.deep.equal([]);
      expect(iris.alertList().map((a) => a.alert_source_ref)).to.deep.equal(['da10']);
    });

    it('stops a batch at the first failure that is IRIS-wide: one call and one warning, the rest wait with it', async () => {
      const h = handler();
      await queue(...['db1', 'db2', 'db3', 'db4', 'db5'].map((id) => change(id)));
      iris.failNext(1, 503, /^\/alerts\//);
      const alertCalls = () => iris.requestLog.filter((e) => e.path.startsWith('/alerts/')).length;
      const calls = alertCalls();
      await drain(h);
      expect(alertCalls() - calls, 'one alert call for the whole batch').to.equal(1);
      expect((await store.outboxStats(Date.now() + 10 * 60_000))[0]).to.include({ sink: 'iris', pending: 5, due: 5 });
      await drain(h);
      expect(iris.alertList().map((a) => a.alert_source_ref).sort()).to.deep.equal(['db1', 'db2', 'db3', 'db4', 'db5']);
      expect(await store.outboxStats(Date.now())).to.deep.equal([]);
    });

    it('waits, without dead-lettering, when the key may not create alerts for the customer', async () => {
      iris.addCustomer('Other');
      const h = handler({ customer_id: 2 });
      // The key's user sees only customer 1: loading the ids fails with the customer and the fix.
      const err = await h.ensureRefs().catch((e: Error) => e);
      expect((err as Error).message).to.include('iris.customer_id=2').and.include('find_customer');
      await queue(change('da11'));
      await drain(h);
      expect(await store.listDeadLetters()).to.deep.equal([]);
      expect((await store.outboxStats(Date.now()))[0]).to.include({ pending: 1 });
      expect(iris.alertList()).to.have.length(0);
    });

    it('waits with an error naming the permissions when the IRIS user may not write alerts', async () => {
      const ro = iris.addUser('ro', ['alerts_read'], [1]).apiKey;
      const h = new IrisDelivery('iris', cfg({ api_key: ro }), client(ro), store, log, 10);
      const worker = new DeliveryWorker(store, h, log, new Metrics());
      await queue(change('da13'));
      await worker.deliver(await store.claimDue('iris', 100, Date.now(), 60_000));
      expect(worker.setupProblem).to.include('Permission denied').and.include('alerts_write');
      expect(await store.listDeadLetters()).to.deep.equal([]);
      expect((await store.outboxStats(Date.now()))[0]).to.include({ pending: 1 });
    });

    it('merges a new alert into the configured case', async () => {
      iris.addCase(12);
      const h = handler({ case_id: 12 });
      await queue(change('da12'));
      await drain(h);
      expect(iris.alertList()[0]).to.include({ alert_status_id: 7 });
      expect(iris.alertList()[0]!.cases).to.deep.equal([12]);
    });
  });

  describe('simulator', () => {
    it('answers with the envelope, refuses bad keys and missing permissions, and validates like IRIS', async () => {
      const c = client();
      expect(await c.call('x', 'GET', '/api/ping')).to.include({ ok: true, message: 'pong' });
      expect(await client('nope').call('x', 'GET', '/api/ping')).to.include({ httpStatus: 401, message: 'Authentication required' });
      const ro = iris.addUser('ro', ['alerts_read'], [1]).apiKey;
      expect(await client(ro).addAlert({ alert_title: 'x' })).to.include({ httpStatus: 403, message: 'Permission denied' });
      expect(await c.call('x', 'POST', '/alerts/add', {})).to.include({ httpStatus: 400, message: 'No JSON data provided' });
      const missing = await c.addAlert({ alert_title: 't' });
      expect(missing.message).to.equal("{'alert_severity_id': ['Missing data for required field.'], 'alert_status_id': ['Missing data for required field.'], 'alert_customer_id': ['Missing data for required field.']}");
      const hash = await c.addAlert({ alert_title: 't', alert_severity_id: 1, alert_status_id: 2, alert_customer_id: 1, alert_iocs: [{ ioc_value: 'zz', ioc_type_id: 90 }] });
      expect(hash.message).to.include('ioc_ioc_value');
      const created = await c.addAlert({ alert_title: 't', alert_severity_id: 1, alert_status_id: 2, alert_customer_id: 1 });
      const id = String(created.data!.alert_id);
      await c.updateAlert(id, { alert_title: 'u' });
      expect(iris.alerts.get(Number(id))!.alert_owner_id).to.equal(iris.users[0]!.id); // IRIS's owner side effect
      expect(await c.updateAlert('999', { alert_title: 'u' })).to.include({ httpStatus: 400, message: 'Alert not found' });
    });
  });
});
