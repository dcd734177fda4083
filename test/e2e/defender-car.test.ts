// End-to-end: the built service as a child process polls the Defender simulator's machines,
// users, vulnerabilities and alerts and keeps the CAR simulator's graph current.
import { expect } from 'chai';
import { Lab } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { CarSimulator } from '../../sim/car/server.js';
import { assetData, type DefenderAssetData } from '../../sim/defender/asset-routes.js';

const SOURCE = 'Microsoft-Windows-Defender-ATP';
const daysAgo = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();

describe('Defender assets → CAR end to end', function () {
  this.timeout(120_000);
  let lab: Lab;
  let car: CarSimulator;
  let data: DefenderAssetData;
  let service: ServiceProcess | undefined;

  beforeEach(async () => {
    lab = await new Lab().start();
    car = new CarSimulator({ apiKey: 'car-key', password: 'car-password-value', pollsBeforeComplete: 2 });
    await car.start();
    data = assetData(lab.defender);
  });
  afterEach(async () => {
    await service?.stop().catch(() => undefined);
    service = undefined;
    await car.stop();
    await lab.stop();
  });

  const start = () => {
    service = new ServiceProcess(lab.env({
      OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '',
      CAR_URL: car.url, CAR_API_KEY: 'car-key', CAR_PASSWORD: 'car-password-value',
      DEFENDER_ASSETS_INTERVAL: '1', DEFENDER_ASSETS_OVERLAP: '0',
    }));
    service.start();
    return service;
  };
  const activeTargets = (edge: string, from: string) => car.edgesOf(edge, { from, active: true }).map((e) => e.to).sort();

  function seedFleet() {
    const m1 = data.addMachine({ computerDnsName: 'ws1.corp.example', lastExternalIpAddress: '198.51.100.20',
      ipAddresses: [{ ipAddress: '10.1.0.11', macAddress: '005056AA0001', operationalStatus: 'Up' }] });
    const m2 = data.addMachine({ computerDnsName: 'srv2.corp.example', osPlatform: 'WindowsServer2022',
      ipAddresses: [{ ipAddress: '10.1.0.12', macAddress: '005056AA0002', operationalStatus: 'Up' }] });
    const gone = data.addMachine({ computerDnsName: 'old.corp.example', healthStatus: 'Inactive', lastSeen: daysAgo(40),
      ipAddresses: [{ ipAddress: '10.1.0.99', macAddress: '005056AA0099', operationalStatus: 'Up' }] });
    // A machine whose entity has no ipAddresses: its addresses come from advanced hunting.
    const m3 = data.addMachine({ computerDnsName: 'lx3.corp.example', osPlatform: 'Linux', ipAddresses: null });
    data.networkInfo.push({ DeviceId: m3.id, MacAddress: '00-50-56-AA-00-03', IPAddresses: '[{"IPAddress":"10.1.0.13","SubnetPrefix":24,"AddressType":"Private"}]', Timestamp: new Date().toISOString() });
    data.logonUsers.set(m1.id, [{ id: 'corp\\alice', accountName: 'alice', accountDomain: 'corp', logonTypes: 'Interactive' }]);
    data.vulnerabilities.set('CVE-2024-21413', { id: 'CVE-2024-21413', name: 'CVE-2024-21413', description: 'Outlook RCE', severity: 'Critical', cvssV3: 9.8, publishedOn: '2024-02-13T00:00:00Z' });
    data.machineVulnerabilities.push({ cveId: 'CVE-2024-21413', machineId: m1.id, productName: 'outlook', productVendor: 'microsoft', productVersion: '16.0' });
    data.setAlert({ id: 'da638000000000000001_1', machineId: m2.id, title: 'Suspicious PowerShell', severity: 'High', status: 'New' });
    return { m1, m2, m3, gone };
  }

  it('initial import builds the expected graph and writes the save point', async () => {
    const { m1, m2, m3, gone } = seedFleet();
    start();
    await waitFor(() => car.modelState(SOURCE), 'save point written in CAR', 60_000);
    expect(car.list('asset').map((a) => a['name']).sort()).to.deep.equal(['lx3.corp.example', 'srv2.corp.example', 'ws1.corp.example']);
    expect(car.node('asset', gone.id)).to.equal(undefined);
    expect(activeTargets('asset_ipaddress', m1.id)).to.deep.equal(['10.1.0.11', '198.51.100.20']);
    expect(activeTargets('asset_macaddress', m1.id)).to.deep.equal(['00:50:56:aa:00:01']);
    expect(activeTargets('asset_hostname', m1.id)).to.deep.equal(['ws1.corp.example']);
    // A MAC is tied to the private address only, never to the public one.
    expect(activeTargets('ipaddress_macaddress', '10.1.0.11')).to.deep.equal(['00:50:56:aa:00:01']);
    expect(car.edgesOf('ipaddress_macaddress', { from: '198.51.100.20' })).to.deep.equal([]);
    expect(activeTargets('asset_ipaddress', m3.id)).to.deep.equal(['10.1.0.13']);
    expect(activeTargets('asset_account', m1.id)).to.deep.equal(['corp\\alice']);
    expect(car.edgesOf('user_account', { from: 'corp\\alice', to: 'corp\\alice', active: true })).to.have.length(1);
    expect(activeTargets('asset_vulnerability', m1.id)).to.deep.equal(['CVE-2024-21413']);
    expect(car.node('vulnerability', 'CVE-2024-21413')).to.include({ base_score: 10, description: 'Outlook RCE' });
    expect(activeTargets('asset_vulnerability', m2.id)).to.deep.equal(['da638000000000000001_1']);
    expect(activeTargets('asset_application', m2.id)).to.deep.equal(['WindowsServer2022']);
    expect(car.sources.get(SOURCE)).to.include({ _key: SOURCE });
    // Issue 16: the assets poller has a connected gauge, its Defender calls are counted under it, its lag is exported.
    const metrics = await waitFor(async () => {
      const text = await (await fetch(`http://127.0.0.1:${service!.healthPort}/metrics`)).text();
      return /threatbridge_source_connected\{source="defender_assets"\} 1\n/.test(text) ? text : null;
    }, 'the assets poller connected', 30_000);
    expect(metrics).to.match(/threatbridge_sink_requests_total\{sink="defender_assets",endpoint="machines",status="200"\} [1-9]/);
    expect(metrics).to.match(/threatbridge_source_lag_seconds\{source="defender_assets"\} \d/);
    expect(metrics).to.match(/threatbridge_outbox_pending\{sink="car"\} 0\n/);
  });

  it('follows changes: new IP disables the old edge, rename makes a new asset, inactive machines are deleted, resolved alerts disabled', async () => {
    const { m1, m2 } = seedFleet();
    start();
    await waitFor(() => car.modelState(SOURCE), 'initial import done', 60_000);

    data.updateMachine(m1.id, { ipAddresses: [{ ipAddress: '10.1.0.21', macAddress: '005056AA0001', operationalStatus: 'Up' }] });
    await waitFor(() => activeTargets('asset_ipaddress', m1.id).includes('10.1.0.21'), 'new IP edge', 30_000);
    // The IP-MAC edge is PATCHed after the asset's: wait for both, not the first one only (a race under load).
    await waitFor(() => !activeTargets('asset_ipaddress', m1.id).includes('10.1.0.11') && activeTargets('ipaddress_macaddress', '10.1.0.11').length === 0,
      'old IP edges disabled', 30_000);
    expect(car.edgesOf('asset_ipaddress', { from: m1.id, to: '10.1.0.11' })[0]!.active).to.equal(false);
    expect(activeTargets('ipaddress_macaddress', '10.1.0.11')).to.deep.equal([]);
    expect(activeTargets('asset_ipaddress', m1.id)).to.deep.equal(['10.1.0.21', '198.51.100.20']);

    // Renamed under the same machine id: still a new asset; the old one keeps its node, its edges go.
    data.updateMachine(m1.id, { computerDnsName: 'ws1-renamed.corp.example' });
    const fresh = `${m1.id}:ws1-renamed.corp.example`;
    await waitFor(() => car.node('asset', fresh), 'same-id rename imported as a new asset', 30_000);
    await waitFor(() => activeTargets('asset_ipaddress', m1.id).length === 0, 'old asset edges disabled', 30_000);
    expect(car.node('asset', fresh)).to.include({ name: 'ws1-renamed.corp.example' });
    expect(activeTargets('asset_ipaddress', fresh)).to.deep.equal(['10.1.0.21', '198.51.100.20']);
    expect(activeTargets('asset_hostname', fresh)).to.deep.equal(['ws1-renamed.corp.example']);
    expect(car.node('asset', m1.id)).to.include({ name: 'ws1.corp.example' });

    const renamed = data.renameMachine(m2.id, 'srv2-new.corp.example');
    await waitFor(() => car.node('asset', renamed.id), 'renamed machine imported as a new asset', 30_000);
    expect(car.node('asset', renamed.id)).to.include({ name: 'srv2-new.corp.example' });
    expect(car.node('asset', m2.id)).to.include({ name: 'srv2.corp.example' });

    // The old entry stays Inactive past the threshold: deleted from CAR.
    data.machines.get(m2.id)!.lastSeen = daysAgo(16);
    await waitFor(() => car.node('asset', m2.id) === undefined, 'inactive machine deleted', 30_000);
    expect(car.count('DELETE', `/source/${SOURCE}/asset`)).to.be.at.least(1);

    data.setAlert({ id: 'da638000000000000001_1', machineId: m2.id, status: 'Resolved' });
    await waitFor(() => car.edgesOf('asset_vulnerability', { from: m2.id, to: 'da638000000000000001_1' })[0]?.active === false, 'resolved alert disabled', 30_000);
  });

  it('refreshes the CVEs of every machine that is not inactive on each run, also when its lastSeen did not move', async () => {
    const { m1, m2 } = seedFleet();
    const idle = data.addMachine({ computerDnsName: 'idle.corp.example', healthStatus: 'Inactive', lastSeen: daysAgo(3),
      ipAddresses: [{ ipAddress: '10.1.0.50', macAddress: null, operationalStatus: 'Up' }] });
    start();
    await waitFor(() => car.modelState(SOURCE), 'initial import done', 60_000);
    // The IBM connector's other edges: the vulnerable software (TVM rows) and who logged on where.
    expect(activeTargets('asset_application', m1.id)).to.include('microsoft:outlook:16.0');
    expect(car.node('application', 'microsoft:outlook:16.0')).to.include({ name: 'microsoft:outlook:16.0' });
    expect(activeTargets('application_vulnerability', 'microsoft:outlook:16.0')).to.deep.equal(['CVE-2024-21413']);
    expect(activeTargets('account_hostname', 'corp\\alice')).to.deep.equal(['ws1.corp.example']);
    const lastSeen = [m1.id, m2.id].map((id) => data.machines.get(id)!.lastSeen);
    // TVM finds new CVEs on m2 and fixes m1's; neither machine checks in (lastSeen unchanged).
    data.vulnerabilities.set('CVE-2025-0001', { id: 'CVE-2025-0001', name: 'CVE-2025-0001', description: 'New one', severity: 'High', cvssV3: 8.1, publishedOn: '2025-01-07T00:00:00Z' });
    data.machineVulnerabilities.push({ cveId: 'CVE-2025-0001', machineId: m2.id, productName: 'edge', productVendor: 'microsoft', productVersion: '1' });
    data.machineVulnerabilities.push({ cveId: 'CVE-2025-0001', machineId: idle.id, productName: 'edge', productVendor: 'microsoft', productVersion: '1' });
    data.machineVulnerabilities.splice(data.machineVulnerabilities.findIndex((v) => v.machineId === m1.id), 1);
    await waitFor(() => activeTargets('asset_vulnerability', m2.id).includes('CVE-2025-0001'), 'new CVE edge on an unchanged machine', 30_000);
    await waitFor(() => !activeTargets('asset_vulnerability', m1.id).includes('CVE-2024-21413'), 'fixed CVE edge disabled', 30_000);
    await waitFor(() => !activeTargets('asset_application', m1.id).includes('microsoft:outlook:16.0'), 'fixed software edge disabled', 30_000);
    expect(activeTargets('asset_application', m2.id)).to.include('microsoft:edge:1');
    expect(car.node('vulnerability', 'CVE-2025-0001')).to.include({ description: 'New one' });
    expect([m1.id, m2.id].map((id) => data.machines.get(id)!.lastSeen)).to.deep.equal(lastSeen);
    // An inactive machine (imported while it was recent) is not refreshed.
    expect(car.node('asset', idle.id)).to.include({ name: 'idle.corp.example' });
    expect(car.edgesOf('asset_vulnerability', { from: idle.id })).to.deep.equal([]);
  });

  it('loses nothing across a CAR outage and a kill -9, and does not fall back to a full import', async () => {
    const { m1 } = seedFleet();
    car.setDown(true);
    start();
    await service!.waitForLog((l) => l.msg === 'initial Defender assets import stored', 30_000);
    await service!.waitForLog((l) => l['sink'] === 'car' && /will retry$/.test(String(l.msg)), 30_000);
    await service!.kill9();
    data.updateMachine(m1.id, { ipAddresses: [{ ipAddress: '10.1.0.31', macAddress: '005056AA0001', operationalStatus: 'Up' }] });
    car.setDown(false);
    start();
    await waitFor(() => activeTargets('asset_ipaddress', m1.id).includes('10.1.0.31') && car.list('asset').length === 3, 'everything delivered after the restart', 60_000);
    await waitFor(() => car.modelState(SOURCE), 'save point', 30_000);
    // The restart resumed incrementally from the stored run.
    expect(service!.lines.some((l) => l.msg === 'incremental Defender assets run stored')).to.equal(true);
    expect(service!.lines.some((l) => l.msg === 'initial Defender assets import stored')).to.equal(false);
    expect(car.edgesOf('asset_ipaddress', { from: m1.id, to: '10.1.0.11' }).every((e) => !e.active)).to.equal(true);
    const metrics = await (await fetch(`http://127.0.0.1:${service!.healthPort}/metrics`)).text();
    const everything = JSON.stringify(service!.lines) + service!.stderr.join('') + metrics;
    expect(everything).to.not.include('car-password-value');
  });

  it('imports everything again, once, when CAR has lost the save point it confirmed (CAR rebuilt)', async () => {
    const { m1 } = seedFleet();
    start();
    await waitFor(() => car.modelState(SOURCE), 'save point written in CAR', 60_000);
    await service!.waitForLog((l) => l.msg === 'incremental Defender assets run stored', 30_000);
    // CAR is rebuilt: its graph and the source's save point are gone.
    car.nodes.clear();
    car.edges.clear();
    car.sources.clear();
    await waitFor(() => car.list('asset').length === 3 && car.modelState(SOURCE) !== undefined, 'everything imported again', 60_000);
    expect(activeTargets('asset_ipaddress', m1.id)).to.deep.equal(['10.1.0.11', '198.51.100.20']);
    const resyncs = () => service!.lines.filter((l) => l.msg === 'CAR no longer holds our save point (reset or rebuilt): importing everything again').length;
    const runs = () => service!.lines.filter((l) => l.msg === 'incremental Defender assets run stored').length;
    const after = runs();
    await waitFor(() => runs() >= after + 2, 'two more runs');
    expect(resyncs(), 'once, not at every run').to.equal(1);
  });

  it('rides out Defender throttling and CAR errors (5xx, a failed import job) without dead letters', async () => {
    const { m1 } = seedFleet();
    lab.defender.failNext(2, 429, { endpoint: 'machines.list', retryAfter: 1 });
    car.failNext(2, 503, 'POST /api/car/v2/imports');
    car.failNextJobs(1);
    start();
    await waitFor(() => car.modelState(SOURCE), 'save point after the faults', 60_000);
    expect(car.list('asset')).to.have.length(3);
    expect(activeTargets('asset_ipaddress', m1.id)).to.deep.equal(['10.1.0.11', '198.51.100.20']);
    expect(lab.defender.requestLog.filter((r) => r.endpoint === 'machines.list' && r.status === 429)).to.have.length(2);
    expect(await runCli(lab, car, ['dead-letters', '--json'])).to.equal('[]\n');
  });

  it('stops on SIGTERM within the bound during a long run, and reads that run again on restart', async () => {
    for (let i = 0; i < 60; i++) data.addMachine({ computerDnsName: `slow${i}.corp.example`, ipAddresses: [{ ipAddress: `10.3.0.${i + 1}`, macAddress: null, operationalStatus: 'Up' }] });
    start();
    // 60 logonusers calls at 90/min take 40 s: stop in the middle.
    await waitFor(() => lab.defender.requestLog.filter((r) => r.endpoint === 'machines.logonusers').length >= 3, 'run in progress', 30_000);
    const t = Date.now();
    expect(await service!.stop()).to.equal(0);
    expect(Date.now() - t).to.be.below(15_000);
    expect(car.list('asset')).to.have.length(0);
    service = new ServiceProcess(lab.env({
      OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', CAR_URL: car.url, CAR_API_KEY: 'car-key', CAR_PASSWORD: 'car-password-value',
      DEFENDER_ASSETS_INTERVAL: '1', DEFENDER_ASSETS_OVERLAP: '0', DEFENDER_ASSETS_USERS_CALLS_PER_RUN: '0',
    }));
    service.start();
    await service.waitForLog((l) => l.msg === 'initial Defender assets import stored', 30_000);
    await waitFor(() => car.list('asset').length === 60, 'all 60 machines after the restart', 60_000);
  });
});

async function runCli(lab: Lab, car: CarSimulator, args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  const env = lab.env({ OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', CAR_URL: car.url, CAR_API_KEY: 'car-key', CAR_PASSWORD: 'car-password-value' });
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [cli, ...args], { env }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))));
}