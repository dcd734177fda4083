// End-to-end: the built service as a child process reads Defender alerts from the Defender
// simulator and keeps DFIR-IRIS (simulator) in step. Assertions are on IRIS's final state.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defenderAlerts } from '../../sim/defender/alert-routes.js';
import { evidence, type AlertStore } from '../../sim/defender/alerts.js';
import { IrisSimulator } from '../../sim/iris/server.js';
import { Lab, LAB_CLIENT, LAB_SECRET, LAB_STREAM, LAB_TENANT } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { SqliteStore } from '../../src/store/sqlite.js';

const SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SHA1 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';

describe('Defender alerts → IRIS end to end', function () {
  this.timeout(180_000);
  let lab: Lab;
  let iris: IrisSimulator;
  let alerts: AlertStore;
  let apiKey: string;
  let service: ServiceProcess | undefined;

  const start = async (opts: { layout?: 'fresh' | 'upgraded' } = {}) => {
    lab = await new Lab().start();
    // The Lab's app has Ti.ReadWrite.All only; reading alerts needs Alert.Read.All as well.
    lab.entra.registerApp({ tenantId: LAB_TENANT, clientId: LAB_CLIENT, clientSecret: LAB_SECRET, roles: ['Ti.ReadWrite.All', 'Alert.Read.All'] });
    alerts = defenderAlerts(lab.defender);
    iris = await new IrisSimulator({ severityLayout: opts.layout ?? 'fresh' }).start();
    apiKey = iris.addUser('threatbridge', ['alerts_read', 'alerts_write', 'customers_read'], [1]).apiKey;
  };
  const env = (overrides: Record<string, string> = {}) => lab.env({
    OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', CONNECTOR_ID: '',
    IRIS_URL: iris.url, IRIS_API_KEY: apiKey, IRIS_CUSTOMER_ID: '1',
    DEFENDER_ALERTS_INTERVAL: '1', DEFENDER_ALERTS_OVERLAP_SECONDS: '60',
    ...overrides,
  });
  const run = (overrides: Record<string, string> = {}) => {
    service = new ServiceProcess(env(overrides));
    service.start();
    return service;
  };
  const polls = () => service!.lines.filter((l) => l.msg === 'Defender alerts polled').length;
  const waitPolls = async (n: number) => { const target = polls() + n; await waitFor(() => polls() >= target, `${n} more polls`); };
  const irisAlerts = () => iris.alertList();
  const byRef = (ref: string) => irisAlerts().filter((a) => a.alert_source_ref === ref);

  afterEach(async () => {
    await service?.stop().catch(() => undefined);
    service = undefined;
    await iris?.stop();
    await lab?.stop();
  });

  const richAlert = () => alerts.add(LAB_TENANT, {
    title: 'Suspicious PowerShell command line', description: 'A suspicious PowerShell activity was observed.',
    severity: 'High', category: 'Execution', detectionSource: 'WindowsDefenderAtp', mitreTechniques: ['T1059.001', 'T1105'],
    computerDnsName: 'ws-01.contoso.local', relatedUser: { userName: 'alice', domainName: 'CONTOSO' },
    threatName: 'Trojan:PowerShell/Fake', incidentId: 42,
    evidence: [
      evidence({ entityType: 'File', fileName: 'payload.ps1', filePath: 'C:\\Users\\alice\\Downloads', sha1: SHA1, sha256: SHA256 }),
      evidence({ entityType: 'Process', fileName: 'powershell.exe', processId: 4242, processCommandLine: 'powershell -enc AAAA', parentProcessFileName: 'winword.exe', processCreationTime: new Date().toISOString() }),
      evidence({ entityType: 'Ip', ipAddress: '198.51.100.23' }),
      evidence({ entityType: 'Url', url: 'https://bad.example.net/stage2' }),
      evidence({ entityType: 'User', accountName: 'alice', domainName: 'CONTOSO', userPrincipalName: 'alice@contoso.com' }),
    ],
  });

  it('creates each new alert once with every field mapped, follows changes, and never duplicates across re-polls, restarts and a fresh store', async () => {
    await start();
    const rich = richAlert();
    const low = alerts.add(LAB_TENANT, { severity: 'Low', title: 'Low one' });
    const inProgress = alerts.add(LAB_TENANT, { status: 'InProgress', title: 'Not new' });
    run();
    await waitFor(() => byRef(rich.id).length === 1 && byRef(low.id).length === 1, 'two alerts in IRIS');

    const a = byRef(rich.id)[0]!;
    expect(a).to.include({
      alert_title: 'Suspicious PowerShell command line', alert_source: 'Microsoft Defender', alert_customer_id: 1,
      alert_source_link: `https://security.microsoft.com/alerts/${rich.id}`,
      alert_severity_id: iris.severityId('High'), alert_status_id: iris.statusId('New'), alert_owner_id: null,
    });
    expect(a.alert_tags!.split(',')).to.include.members(['Execution', 'WindowsDefenderAtp', 'T1059.001', 'T1105']);
    expect(a.alert_source_event_time).to.equal(rich.firstEventTime.replace(/Z$/, ''));
    expect((a.alert_source_content as { id: string }).id).to.equal(rich.id);
    expect(a.alert_description).to.include('Recommended actions').and.include('powershell -enc AAAA').and.include('T1059.001')
      .and.include('ws-01.contoso.local').and.include('CONTOSO\\alice');
    const iocs = new Map(a.iocs.map((i) => [i.ioc_value, iris.iocTypeName(i.ioc_type_id)]));
    expect(Object.fromEntries(iocs)).to.deep.include({
      '198.51.100.23': 'ip-any', 'https://bad.example.net/stage2': 'url', 'bad.example.net': 'domain', [SHA256]: 'sha256', [SHA1]: 'sha1',
      'payload.ps1': 'filename', 'ws-01.contoso.local': 'hostname', [rich.machineId!]: 'other', [rich.id]: 'other', 'alice@contoso.com': 'account',
    });
    expect(a.iocs.every((i) => i.ioc_tlp_id === 2)).to.equal(true); // amber
    expect(a.assets).to.have.length(1);
    expect(a.assets[0]).to.include({ asset_name: 'ws-01.contoso.local', asset_domain: 'contoso.local', asset_type_id: 9 });
    expect(byRef(inProgress.id)).to.have.length(0);

    // Re-polls re-read the overlap window: nothing new in IRIS, no update calls for unchanged alerts.
    await waitPolls(3);
    expect(irisAlerts()).to.have.length(2);
    expect(iris.counts()['POST /alerts/update/<id>'] ?? 0).to.equal(0);

    // Changes flow: severity, status (resolved → Closed), new evidence.
    alerts.update(LAB_TENANT, low.id, { severity: 'Medium', evidence: [evidence({ entityType: 'Ip', ipAddress: '203.0.113.5' })] });
    await waitFor(() => byRef(low.id)[0]?.alert_severity_id === iris.severityId('Medium'), 'severity updated');
    expect(byRef(low.id)[0]!.alert_description).to.include('203.0.113.5');
    expect(byRef(low.id)[0]!.alert_owner_id).to.equal(null);
    alerts.update(LAB_TENANT, rich.id, { status: 'Resolved', classification: 'TruePositive', determination: 'Malware' });
    await waitFor(() => byRef(rich.id)[0]?.alert_status_id === iris.statusId('Closed'), 'resolution reflected');
    expect(byRef(rich.id)[0]!.alert_resolution_status_id).to.equal(2); // True Positive With Impact
    // An alert outside the status filter that was never sent stays out, even when it changes.
    alerts.update(LAB_TENANT, inProgress.id, { severity: 'High' });
    await waitPolls(2);
    expect(byRef(inProgress.id)).to.have.length(0);

    // kill -9 and restart: the checkpoint and id map hold; nothing is created again.
    await service!.kill9();
    run();
    await waitPolls(2);
    expect(irisAlerts()).to.have.length(2);

    // A fresh store (lost state): IRIS's filter by source reference finds the alerts, no duplicates.
    await service!.stop();
    alerts.update(LAB_TENANT, low.id, { title: 'Low one, renamed' });
    run({ STORE_DIR: mkdtempSync(join(tmpdir(), 'threatbridge-fresh-')) });
    await waitFor(() => byRef(low.id)[0]?.alert_title === 'Low one, renamed', 'update through the filter lookup');
    await waitPolls(2);
    expect(irisAlerts()).to.have.length(2);
    expect(byRef(rich.id)).to.have.length(1);
  });

  it('brings in every New alert on the first run however old, and alerts Defender ingests late with the default overlap', async () => {
    await start();
    const days = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString();
    const ancient = alerts.add(LAB_TENANT, { title: 'Opened 40 days ago', alertCreationTime: days(40), lastUpdateTime: days(40), firstEventTime: days(40) });
    const weekOld = alerts.add(LAB_TENANT, { title: 'Opened a week ago', alertCreationTime: days(7), lastUpdateTime: days(7) });
    const oldResolved = alerts.add(LAB_TENANT, { title: 'Resolved long ago', status: 'Resolved', lastUpdateTime: days(30) });
    const oldInProgress = alerts.add(LAB_TENANT, { title: 'In progress', status: 'InProgress', lastUpdateTime: days(3) });
    // Defender's ingestion delay: from now on an alert reaches the API 3 s after its lastUpdateTime,
    // longer than the poll interval, so it shows up behind the position the poller already passed.
    alerts.ingestionDelayMs = 3000;
    run({ DEFENDER_ALERTS_OVERLAP_SECONDS: '' }); // the default overlap
    await waitFor(() => byRef(ancient.id).length === 1 && byRef(weekOld.id).length === 1, 'old New alerts in IRIS');
    await waitPolls(2);
    const late = alerts.add(LAB_TENANT, { title: 'Ingested late' });
    await waitFor(() => byRef(late.id).length === 1, 'the late-ingested alert in IRIS', 30_000);
    expect(byRef(oldResolved.id)).to.have.length(0);
    expect(byRef(oldInProgress.id)).to.have.length(0);
    expect(irisAlerts()).to.have.length(3);
    const firstList = decodeURIComponent(lab.defender.requestLog.find((e) => e.endpoint === 'alerts.list')!.query);
    expect(firstList).to.include("$filter=status eq 'New'").and.not.include('lastUpdateTime');
  });

  it('delays through an IRIS outage and a lost create answer without losing or doubling, and dead-letters a rejected alert with IRIS\'s message', async () => {
    await start();
    iris.setDown(true);
    run();
    const first = alerts.add(LAB_TENANT, { title: 'During outage' });
    await service!.waitForLog((l) => l.msg === 'IRIS not ready; alerts wait' || (l['sink'] === 'iris' && /will retry$/.test(String(l.msg))));
    iris.setDown(false);
    await waitFor(() => byRef(first.id).length === 1, 'alert delivered after the outage', 60_000);

    // The create is applied but its answer lost: the retry finds it by source reference.
    iris.dropNextResponse(1, /^\/alerts\/add$/);
    const lost = alerts.add(LAB_TENANT, { title: 'Lost answer' });
    await waitFor(() => service!.lines.some((l) => l.msg === 'IRIS alert updated' && l['alert'] === lost.id), 'retry updated the alert created before', 60_000);
    expect(byRef(lost.id)).to.have.length(1);

    iris.failNext(1, 400, /^\/alerts\/add$/, "{'alert_title': ['Field may not be null.']}");
    const bad = alerts.add(LAB_TENANT, { title: 'Rejected one' });
    await service!.waitForLog((l) => l['sink'] === 'iris' && l.msg === 'operation rejected, kept as dead letter', 30_000);
    const out = await cli(env(), ['dead-letters', '--json']);
    const letters = JSON.parse(out) as { sink: string; key: string; reason: string }[];
    expect(letters).to.have.length(1);
    expect(letters[0]).to.include({ sink: 'iris', key: bad.id });
    expect(letters[0]!.reason).to.include("{'alert_title': ['Field may not be null.']}");
    expect(byRef(bad.id)).to.have.length(0);
    expect(irisAlerts()).to.have.length(2);
  });

  it('run --once prints the summary and exits 0, then non-zero when IRIS rejects an alert; severity ids follow IRIS by name', async () => {
    await start({ layout: 'upgraded' });
    const a1 = alerts.add(LAB_TENANT, { severity: 'Medium' });
    alerts.add(LAB_TENANT, { severity: 'High' });
    // OpenCTI configured too: --once reads its (empty) stream until caught up as well, without registering.
    const once = new ServiceProcess(env({ OPENCTI_URL: lab.opencti.url, CONNECTOR_LIVE_STREAM_ID: LAB_STREAM, CONNECTOR_ID: lab.connectorId }));
    once.start(['run', '--once']);
    expect(await once.waitForExit(60_000)).to.equal(0);
    expect(once.lines.map((l) => l.msg ?? '')).to.include('opencti -> defender: processed 0, created 0, updated 0, failed 0');
    expect(lab.opencti.connectors.size).to.equal(0);
    const summary = once.lines.map((l) => l.msg ?? '').find((m) => m.startsWith('defender_alerts -> iris:'));
    expect(summary).to.equal('defender_alerts -> iris: processed 2, created 2, updated 0, failed 0');
    expect(byRef(a1.id)[0]!.alert_severity_id).to.equal(4); // Medium on an upgraded install

    alerts.update(LAB_TENANT, a1.id, { status: 'Resolved' });
    const rejected = alerts.add(LAB_TENANT, {});
    iris.failNext(1, 400, /^\/alerts\/add$/, 'Invalid data');
    const again = new ServiceProcess(env());
    again.start(['run', '--once']);
    expect(await again.waitForExit(60_000)).to.equal(1);
    expect(again.lines.map((l) => l.msg ?? '')).to.include('defender_alerts -> iris: processed 2, created 0, updated 1, failed 1');
    expect(byRef(rejected.id)).to.have.length(0);
    expect(irisAlerts()).to.have.length(2);
  });

  it('routes each Defender tenant (own credentials) to its own IRIS customer, with a checkpoint per tenant, and never logs a secret', async () => {
    await start();
    const second = '99999999-8888-4777-8666-555555555555';
    // The second tenant has its own application (per-tenant credentials).
    const secondClient = '12345678-aaaa-4bbb-8ccc-1234567890ab';
    const secondSecret = 'second-tenant-secret-value';
    lab.entra.registerApp({ tenantId: second, clientId: secondClient, clientSecret: secondSecret, roles: ['Alert.Read.All'] });
    const contoso = iris.addCustomer('Contoso');
    const admin = iris.addUser('admin', ['alerts_read', 'alerts_write', 'customers_read'], 'all').apiKey;
    const inFirst = alerts.add(LAB_TENANT, {});
    const inSecond = alerts.add(second, {});
    run({
      IRIS_API_KEY: admin, DEFENDER_ALERTS_TENANT_IDS: `${LAB_TENANT},${second}`, IRIS_TENANT_CUSTOMERS: `${second}=Contoso`, CONNECTOR_LOG_LEVEL: 'debug',
      DEFENDER_ALERTS_TENANT_CLIENT_IDS: `${second}=${secondClient}`, DEFENDER_ALERTS_TENANT_CLIENT_SECRETS: `${second}=${secondSecret}`,
    });
    await waitFor(() => byRef(inFirst.id).length === 1 && byRef(inSecond.id).length === 1, 'both tenants in IRIS');
    expect(byRef(inFirst.id)[0]!.alert_customer_id).to.equal(1);
    expect(byRef(inSecond.id)[0]!.alert_customer_id).to.equal(contoso.customer_id);
    await service!.stop();
    const status = JSON.parse(await cli(env({ DEFENDER_ALERTS_TENANT_IDS: `${LAB_TENANT},${second}` }), ['status', '--json'])) as { outbox: unknown[] };
    expect(status.outbox).to.deep.equal([]);
    const state = new SqliteStore(lab.stateDir);
    try {
      for (const t of [LAB_TENANT, second]) expect(await state.getCheckpoint(`defender_alerts:${t}`), t).to.have.property('position');
    } finally {
      await state.close();
    }
    const text = JSON.stringify(service!.lines) + service!.stderr.join('');
    for (const secret of [admin, LAB_SECRET, secondSecret]) expect(text).not.to.include(secret);
  });

  it('names the customer and the permission when the key may not use it, and picks a usable customer only when told to', async () => {
    await start();
    const other = iris.addCustomer('Contoso');
    const limited = iris.addUser('limited', ['alerts_read', 'alerts_write', 'customers_read'], [other.customer_id]).apiKey;
    const a = alerts.add(LAB_TENANT, {});
    run({ IRIS_API_KEY: limited });
    const err = await service!.waitForLog((l) => l.msg === 'IRIS set-up problem; alerts wait until it is fixed');
    expect(String(err['err'] ?? err['error'] ?? JSON.stringify(err))).to.include('iris.customer_id=1').and.include('Access control').and.include('find_customer');
    expect(irisAlerts()).to.have.length(0);
    await service!.stop();

    run({ IRIS_API_KEY: limited, IRIS_FIND_CUSTOMER: 'true' });
    await waitFor(() => byRef(a.id).length === 1, 'created for the usable customer');
    expect(byRef(a.id)[0]!.alert_customer_id).to.equal(other.customer_id);
  });
});

function cli(env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['dist/src/cli.js', ...args], { env }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}
