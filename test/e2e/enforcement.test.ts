// End to end: enforcement safety with the built service against the simulators. One guard for
// Defender and Sentinel, TLP:RED from each source reaching no sink, other people's indicators left
// as they were, and a MISP filter change that would withdraw 90% held until `threatbridge resume`.
import { expect } from 'chai';
import { Lab, LAB_CLIENT, LAB_TENANT, LAB_WORKSPACE } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { runCli } from '../support/cli.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';

type Indicator = { id: string; indicatorValue: string; action: string; generateAlert: boolean; createdBy: string; sourceType: string;
  lastUpdatedBy: string | null; title: string };
type Stix = { pattern: string; labels: string[] };
type Decision = { sink: string; key: string; outcome: string; action: string; wanted: string; source: string; reason: string };

describe('Enforcement safety end to end', function () {
  this.timeout(180_000);
  let lab: Lab;
  let service: ServiceProcess | undefined;

  afterEach(async () => {
    await service?.stop().catch(() => undefined);
    service = undefined;
    await lab?.stop();
  });

  const held = () => lab.defender.indicators() as unknown as Indicator[];
  const byValue = () => new Map(held().map((i) => [i.indicatorValue, i]));
  const start = (env: Record<string, string> = {}) => {
    service = new ServiceProcess(lab.env(env));
    service.start();
    return service;
  };
  const decisions = async (env: Record<string, string> = {}) =>
    JSON.parse(await runCli(lab, ['decisions', '--json', '--limit', '1000'], env)) as { breakers: { source: string; reason: string }[]; decisions: Decision[] };
  const create = (pattern: string, score: number, markings: string[] = []) => {
    const ind = makeIndicator({ pattern, score, validUntil: null, markings });
    lab.opencti.create(ind);
    return ind;
  };
  const foreign = (value: string, action: string) => ({ indicatorValue: value, indicatorType: 'IpAddress', action, generateAlert: action === 'Audit',
    title: `theirs ${value}`, description: 'not ours', severity: 'Low', expirationTime: '2099-01-01T00:00:00Z' });

  it('guards Defender and Sentinel alike, keeps TLP:RED home, and leaves what others hold in Defender as it was', async () => {
    lab = await new Lab({ heartbeatMs: 500, sentinel: true }).start();
    // A business partner's exception made by another application, and an analyst's own indicator.
    const [partner] = lab.defender.seed(LAB_TENANT, 'partner-app-id', [{ ...foreign('203.0.113.20', 'Allowed'), application: 'PartnerTool' }], { displayName: 'PartnerTool' });
    const [analyst] = lab.defender.seed(LAB_TENANT, 'alice@contoso.onmicrosoft.com', [foreign('203.0.113.21', 'Audit')], { displayName: 'Alice', user: true });
    start({ OPENCTI_TARGETS: 'defender,sentinel', GUARD_MAX_TLP: '' }); // the shipped default: TLP:RED stays home
    const red = create("[ipv4-addr:value = '203.0.113.30']", 95, ['TLP:RED']);
    for (const p of ["[ipv4-addr:value = '8.8.8.8']", "[ipv4-addr:value = '10.1.2.3']", "[domain-name:value = 'login.microsoftonline.com']",
      "[ipv4-addr:value = '203.0.113.20']", "[ipv4-addr:value = '203.0.113.21']", "[ipv4-addr:value = '203.0.113.10']"]) create(p, 95);

    const stix = () => new Map((lab.sentinel!.indicators(LAB_WORKSPACE) as unknown as Stix[]).map((o) => [o.pattern, o]));
    await waitFor(() => byValue().has('203.0.113.10') && stix().has("[ipv4-addr:value = '203.0.113.10']") && stix().size === 6, 'delivered to both sinks');
    const rows = (await decisions()).decisions;
    await waitFor(async () => (await decisions()).decisions.filter((d) => d.outcome === 'foreign').length === 2, 'ownership decided');

    // Defender: protected values as Audit, an ordinary one as Block.
    const v = byValue();
    for (const value of ['8.8.8.8', '10.1.2.3', 'login.microsoftonline.com']) expect(v.get(value)!.action, value).to.equal('Audit');
    expect(v.get('203.0.113.10')!.action).to.equal('Block');
    // Sentinel: the same verdicts in its own words (alert instead of block).
    const s = stix();
    for (const value of ["ipv4-addr:value = '8.8.8.8'", "ipv4-addr:value = '10.1.2.3'", "domain-name:value = 'login.microsoftonline.com'"]) {
      expect(s.get(`[${value}]`)!.labels, value).to.include('action:alert').and.not.include('action:block');
    }
    expect(s.get("[ipv4-addr:value = '203.0.113.10']")!.labels).to.include('action:block');

    // TLP:RED reached no sink.
    expect(v.has('203.0.113.30')).to.equal(false);
    expect(s.has("[ipv4-addr:value = '203.0.113.30']")).to.equal(false);

    // Others' indicators are exactly as they were: never overwritten by our Block.
    expect(v.get('203.0.113.20')).to.deep.equal(partner);
    expect(v.get('203.0.113.21')).to.deep.equal(analyst);

    const all = (await decisions()).decisions;
    expect(all.find((d) => d.key === 'ipv4:203.0.113.30')).to.include({ outcome: 'tlp', source: 'opencti', action: 'withhold' });
    expect(all.find((d) => d.key === 'ipv4:203.0.113.30')!.reason).to.include('TLP:RED');
    expect(all.find((d) => d.sink === 'sentinel' && d.key === 'ipv4:8.8.8.8')).to.include({ outcome: 'downgrade', wanted: 'block', action: 'alert' });
    expect(all.find((d) => d.sink === 'defender' && d.key === 'ipv4:8.8.8.8')).to.include({ outcome: 'downgrade', wanted: 'Block', action: 'Audit' });
    const partnerRow = all.find((d) => d.outcome === 'foreign' && d.key === 'ipv4:203.0.113.20')!;
    expect(partnerRow.reason).to.include('PartnerTool').and.include('never overwritten');
    expect(all.find((d) => d.outcome === 'foreign' && d.key === 'ipv4:203.0.113.21')!.reason).to.include('a person (Alice');
    expect(rows.length).to.be.greaterThan(0);
    expect(red.id).to.be.a('string');
  });

  it('with adopt_foreign, takes over a person\'s indicator but still never an Allowed one', async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    const [partner] = lab.defender.seed(LAB_TENANT, 'partner-app-id', [{ ...foreign('203.0.113.20', 'Allowed'), application: 'PartnerTool' }], { displayName: 'PartnerTool' });
    lab.defender.seed(LAB_TENANT, 'alice@contoso.onmicrosoft.com', [foreign('203.0.113.21', 'Audit')], { displayName: 'Alice', user: true });
    start({ GUARD_ADOPT_FOREIGN: 'true' });
    create("[ipv4-addr:value = '203.0.113.20']", 95);
    create("[ipv4-addr:value = '203.0.113.21']", 95);
    await waitFor(() => byValue().get('203.0.113.21')?.action === 'Block', "the analyst's indicator adopted");
    await waitFor(async () => (await decisions()).decisions.some((d) => d.outcome === 'foreign'), 'the Allowed one decided');
    expect(byValue().get('203.0.113.20')).to.deep.equal(partner);
    expect((await decisions()).decisions.find((d) => d.outcome === 'adopt')!.reason).to.include('Alice');
  });

  it('reconciliation that would delete most of ours waits for `threatbridge resume reconciliation`', async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    const env = { GUARD_WITHDRAWAL_BREAKER_MIN: '5' };
    // Ten of ours that nothing claims (a store lost or reset): deleting them all is 100% of ours.
    lab.defender.seed(LAB_TENANT, LAB_CLIENT, Array.from({ length: 10 }, (_, n) => ({ ...foreign(`198.51.100.${n + 1}`, 'Block'), application: 'ThreatBridge' })));
    const first = JSON.parse(await runCli(lab, ['reconcile'], env)) as Record<string, number>;
    expect(first).to.include({ unclaimedDeleted: 0, unclaimedHeld: 10 });
    expect(held()).to.have.length(10);
    const open = await decisions(env);
    expect(open.breakers.map((b) => b.source)).to.deep.equal(['reconciliation']);
    expect(open.decisions.filter((d) => d.outcome === 'breaker' && d.source === 'reconciliation')).to.have.length(10);
    // Still held on the next pass while the breaker is open.
    expect(JSON.parse(await runCli(lab, ['reconcile'], env))).to.include({ unclaimedHeld: 10 });

    expect(await runCli(lab, ['resume', 'reconciliation'], env)).to.include('resumed: reconciliation');
    expect(JSON.parse(await runCli(lab, ['reconcile'], env))).to.include({ unclaimedDeleted: 10, unclaimedHeld: 0 });
    expect(held()).to.have.length(0);
  });

  it('MISP: TLP:RED reaches no sink, and a filter change that would withdraw 90% waits for `threatbridge resume`', async () => {
    lab = await new Lab({ misp: true, mispHeartbeatMs: 500 }).start();
    const misp = lab.misp!;
    const env = { OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', GUARD_WITHDRAWAL_BREAKER_MIN: '5', GUARD_BREAKER_POLL_SECONDS: '1' };
    const ev = misp.createEvent({ info: 'Campaign', tags: ['tlp:green'] });
    for (let n = 1; n <= 20; n++) misp.addAttribute(ev, { type: 'ip-dst', value: `198.51.100.${n}` });
    const red = misp.createEvent({ info: 'Sensitive', tags: ['tlp:red'] });
    misp.addAttribute(red, { type: 'domain', value: 'secret.example.org' });
    // A user rule of its own does not replace the TLP default any more.
    misp.addAttribute(red, { type: 'url', value: 'http://secret.example.org/x', tags: ['apt:x'] });
    misp.publish(ev);
    misp.publish(red);
    start({ ...env, MISP_RULES: '[{"tag": "apt:x", "action": "Block"}]' });
    await waitFor(() => held().length === 20, 'twenty indicators delivered');
    const tlpKeys = async () => [...new Set((await decisions(env)).decisions.filter((d) => d.outcome === 'tlp' && d.source === 'misp').map((d) => d.key))].sort();
    await waitFor(async () => (await tlpKeys()).length === 2, 'TLP:RED decisions');
    expect(await tlpKeys()).to.deep.equal(['domain:secret.example.org', 'url:http://secret.example.org/x']);
    expect(held().some((i) => i.indicatorValue.includes('secret'))).to.equal(false);
    await service!.stop();

    // The filter now names two values: the full pass would withdraw 18 of 20.
    const filters = JSON.stringify([{ values: ['198.51.100.1', '198.51.100.2'] }]);
    start({ ...env, MISP_EVENT_FILTERS: filters, MISP_FULL_SYNC_INTERVAL: '1' });
    await service!.waitForLog((l) => String(l.msg).startsWith('breaker tripped') && String(l.msg).includes('removals'), 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    expect(held()).to.have.length(20);
    const open = await decisions(env);
    expect(open.breakers.map((b) => b.source)).to.deep.equal(['misp']);
    expect(open.breakers[0]!.reason).to.include('90%');

    expect(await runCli(lab, ['resume', 'misp'], env)).to.include('resumed: misp');
    await waitFor(() => held().length === 2, 'the operator released the 18 removals', 60_000);
    expect(held().map((i) => i.indicatorValue).sort()).to.deep.equal(['198.51.100.1', '198.51.100.2']);
  });
});
