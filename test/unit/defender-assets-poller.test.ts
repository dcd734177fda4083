// The assets poller in-process against the Entra and Defender simulators: call planning under the
// quotas (list calls per run whatever the fleet size, a bounded number of per-machine calls),
// users deferred to the next run, and ops + checkpoint committed together.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { assetData } from '../../sim/defender/asset-routes.js';
import { Lab, LAB_CLIENT, LAB_SECRET, LAB_TENANT } from '../../sim/lab.js';
import { DEFENDER_SCOPE, TokenProvider } from '../../src/microsoft/token.js';
import { DefenderApi } from '../../src/microsoft/defender/client.js';
import { DefenderAssetsPoller } from '../../src/sources/defender-assets/poller.js';
import { heldMachines } from '../../src/sinks/car/index.js';
import { carRoute, type CarOpPayload } from '../../src/sinks/car/route.js';
import { recordIngest } from '../support/ingest.js';
import { SqliteStore } from '../../src/store/sqlite.js';

const log = createLogger('silent');

describe('Defender assets poller (against the Defender simulator)', function () {
  this.timeout(60_000);
  let lab: Lab;
  let store: SqliteStore;

  before(async () => { lab = await new Lab().start(); });
  after(async () => { await lab.stop(); });
  beforeEach(() => { store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-assets-'))); });
  afterEach(async () => { await store.close(); });

  function poller(overrides: Record<string, unknown> = {}, clientId = LAB_CLIENT, clientSecret = LAB_SECRET) {
    const config = configSchema.parse({ defender_assets: { users_calls_per_run: 100, overlap: 0, ...overrides } });
    const tokens = new TokenProvider({ loginUrl: lab.entra.url, tenantId: LAB_TENANT, clientId, clientSecret,
      scope: DEFENDER_SCOPE, verifyTls: false, timeoutMs: 10_000, log });
    const client = new DefenderApi({ baseUrl: lab.defender.url, timeoutMs: 10_000, verifyTls: false, callsPerMinute: 90, callsPerHour: 1400, timeScale: 60, tokens, log, waitOut: 4 });
    const deps = { checkpoints: store, ingest: recordIngest(store, 'defender_assets', [carRoute('car')]), held: heldMachines(store), savePointLost: async () => null };
    return { client, poller: new DefenderAssetsPoller(config, client, deps, log) };
  }

  it('reads a 300-machine fleet with a handful of list calls and defers per-machine calls beyond the run budget', async () => {
    const data = assetData(lab.defender);
    // A simulated minute lasts a second on both sides; the quotas keep their per-minute counts.
    data.timeScale = 60;
    for (let i = 0; i < 300; i++) {
      const m = data.addMachine({ computerDnsName: `pc${i}.corp.example`, lastSeen: new Date(Date.now() - 60_000).toISOString(), ipAddresses: [{ ipAddress: `10.2.${i >> 8}.${i & 255}`, macAddress: null, operationalStatus: 'Up' }] });
      data.logonUsers.set(m.id, [{ id: `corp\\user${i}`, accountName: `user${i}`, accountDomain: 'corp' }]);
    }
    const { client, poller: p } = poller();
    const first = await p.runOnce();
    expect(first).to.deep.include({ initial: true, machines: 300, usersDeferred: 200 });
    expect(client.calls).to.deep.equal({ machines: 2, logonusers: 100, machineVulnerabilities: 1, vulnerabilities: 1, alerts: 1 });

    const due = await store.claimDue('car', 1000, Date.now(), 60_000);
    const machineOps = due.filter((i) => (i.payload as CarOpPayload).kind === 'machine');
    expect(machineOps).to.have.length(300);
    const withAccounts = machineOps.filter((i) => (i.payload as { snapshot: { accounts: unknown[] | null } }).snapshot.accounts !== null);
    expect(withAccounts).to.have.length(100);
    expect(due.at(-1)!.key).to.equal('model-state');
    expect((await store.getCheckpoint('defender_assets'))!.state['usersPending']).to.have.length(200);

    const second = await p.runOnce();
    expect(second).to.deep.include({ initial: false, usersDeferred: 100 });
    // Nothing was seen since: only the deferred machines are re-read, by id, 50 per call.
    expect(second.machines).to.equal(200);
    expect(client.calls.logonusers).to.equal(200);
    expect(client.calls.machines).to.equal(2 + 2 + 4);
    await p.runOnce();
    expect((await store.getCheckpoint('defender_assets'))!.state['usersPending']).to.deep.equal([]);
    expect(lab.defender.requestLog.filter((r) => r.status === 429)).to.deep.equal([]);
  });

  it('carries on without the parts a missing permission hides, and reads alerts once permitted', async () => {
    const limited = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';
    lab.entra.registerApp({ tenantId: LAB_TENANT, clientId: limited, clientSecret: 'limited-secret', roles: ['Machine.Read.All'] });
    const data = assetData(lab.defender);
    const m = data.addMachine({ computerDnsName: 'perm.corp.example', ipAddresses: [{ ipAddress: '10.9.0.1', macAddress: null, operationalStatus: 'Up' }] });
    data.setAlert({ id: 'da-perm-1', machineId: m.id, status: 'New' });
    const { poller: p } = poller({}, limited, 'limited-secret');
    const run = await p.runOnce();
    expect(run.alerts).to.equal(0);
    const ops = await store.claimDue('car', 1000, Date.now(), 60_000);
    const mine = ops.find((o) => o.key === `machine:${m.id}`)!;
    expect((mine.payload as { snapshot: { accounts: unknown; vulnerabilities: unknown } }).snapshot).to.deep.include({ accounts: null, vulnerabilities: null });
    expect((await store.getCheckpoint('defender_assets'))!.state).to.not.have.property('alertsSince');

    // Permission granted later: the first alert read is a full one (open alerts), not a window.
    lab.entra.registerApp({ tenantId: LAB_TENANT, clientId: limited, clientSecret: 'limited-secret', roles: ['Machine.Read.All', 'Alert.Read.All'] });
    const { poller: again } = poller({}, limited, 'limited-secret');
    expect((await again.runOnce()).alerts).to.be.at.least(1);
  });

  it('falls back to per-machine vulnerability calls within a run budget where the bulk listing is missing', async () => {
    const data = assetData(lab.defender);
    data.timeScale = 60;
    try {
      // A first (bulk) run covers the fleet so far (seen an hour ago); then the bulk listing disappears.
      for (const m of data.machines.values()) m.lastSeen = new Date(Date.now() - 3_600_000).toISOString();
      const { poller: p } = poller({ include_users: false, vulnerabilities_calls_per_run: 2 });
      await p.runOnce();
      await store.claimDue('car', 10_000, Date.now(), 60_000).then((items) => store.ack(items.map((item) => ({ item, externalId: null }))));
      data.bulkTvm = false;
      const fleet = [0, 1, 2].map((i) => data.addMachine({ computerDnsName: `tvm${i}.corp.example` }));
      data.vulnerabilities.set('CVE-2025-0001', { id: 'CVE-2025-0001', name: 'CVE-2025-0001', cvssV3: 5.5 });
      for (const m of fleet) data.machineVulnerabilities.push({ cveId: 'CVE-2025-0001', machineId: m.id });
      const cves = async () => {
        const items = await store.claimDue('car', 10_000, Date.now(), 60_000);
        await store.ack(items.map((item) => ({ item, externalId: null })));
        return new Map(items.filter((i) => (i.payload as CarOpPayload).kind === 'machine')
          .map((i) => [(i.payload as { snapshot: { machineId: string; vulnerabilities: { node: { external_id: string } }[] | null } }).snapshot.machineId,
            (i.payload as { snapshot: { vulnerabilities: { node: { external_id: string } }[] | null } }).snapshot.vulnerabilities?.map((v) => v.node.external_id) ?? null]));
      };
      await p.runOnce();
      const first = await cves();
      expect(fleet.map((m) => first.get(m.id))).to.deep.equal([['CVE-2025-0001'], ['CVE-2025-0001'], null]);
      expect((await store.getCheckpoint('defender_assets'))!.state['vulnsPending']).to.deep.equal([fleet[2]!.id]);
      await p.runOnce();
      expect((await cves()).get(fleet[2]!.id)).to.deep.equal(['CVE-2025-0001']);
      expect(lab.defender.requestLog.filter((r) => r.endpoint === 'machines.vulnerabilities' && r.status === 200).length).to.be.at.least(3);
    } finally {
      data.bulkTvm = true;
    }
  });
});
