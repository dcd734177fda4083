// Pure parts of the assets flow: Defender entities → snapshots → CAR import plan.
import { expect } from 'chai';
import { alertSnapshot, isExpiredInactive, machineAddresses, machineSnapshot, normaliseMac, huntedAddresses } from '../../src/sources/defender-assets/snapshot.js';
import { pages, planImport, type DeliveredState } from '../../src/sinks/car/plan.js';
import type { Machine } from '../../src/microsoft/defender/types.js';

const REPORT = { source: 'src', reportKey: '1700000000000', timestamp: 1700000000000 };
const machine = (over: Partial<Machine> = {}): Machine => ({
  id: 'a'.repeat(40), computerDnsName: 'Host1.corp.example', osPlatform: 'Windows11', version: '23H2', healthStatus: 'Active',
  lastSeen: '2026-11-01T00:00:00Z', lastExternalIpAddress: '203.0.113.5',
  ipAddresses: [{ ipAddress: '10.0.0.5', macAddress: '000C29897942', operationalStatus: 'Up' }, { ipAddress: '127.0.0.1', macAddress: null }],
  ...over,
});
const snap = (m: Machine, users = [{ id: 'corp\\alice', accountName: 'alice', accountDomain: 'corp' }]) =>
  machineSnapshot(m, { users, vulnerabilities: [{ cveId: 'CVE-2024-1', machineId: m.id }], vulnerabilityDetails: new Map([['CVE-2024-1', { id: 'CVE-2024-1', name: 'CVE-2024-1', cvssV3: 7.5, description: 'bad' }]]) });

describe('assets snapshot builder', () => {
  it('normalises MACs and drops loopback; the external address is public and has no MAC', () => {
    expect(normaliseMac('000C29897942')).to.equal('00:0c:29:89:79:42');
    expect(normaliseMac('00-0C-29-89-79-42')).to.equal('00:0c:29:89:79:42');
    expect(normaliseMac('000000000000')).to.equal(null);
    expect(normaliseMac('xyz')).to.equal(null);
    expect(machineAddresses(machine())).to.deep.equal([
      { ip: '10.0.0.5', mac: '00:0c:29:89:79:42', publicIp: false },
      { ip: '203.0.113.5', mac: null, publicIp: true },
    ]);
  });

  it('reads DeviceNetworkInfo rows whose IPAddresses is a JSON string', () => {
    const m = huntedAddresses([{ DeviceId: 'd1', MacAddress: '00-11-22-33-44-55', IPAddresses: '[{"IPAddress":"192.168.1.9","SubnetPrefix":24}]' }, { DeviceId: 'd2', IPAddresses: 'not json' }]);
    expect(m.get('d1')).to.deep.equal([{ ip: '192.168.1.9', mac: '00:11:22:33:44:55', publicIp: false }]);
    expect(m.get('d2')).to.deep.equal([]);
  });

  it('applies the inactive rule only to Inactive machines past the threshold', () => {
    const now = Date.parse('2026-11-20T00:00:00Z');
    expect(isExpiredInactive(machine({ healthStatus: 'Inactive', lastSeen: '2026-11-05T00:00:00Z' }), now, 15)).to.equal(true);
    expect(isExpiredInactive(machine({ healthStatus: 'Inactive', lastSeen: '2026-11-06T00:00:00Z' }), now, 15)).to.equal(false);
    expect(isExpiredInactive(machine({ healthStatus: 'Active', lastSeen: '2026-01-01T00:00:00Z' }), now, 15)).to.equal(false);
  });

  it('models alerts as vulnerabilities, disabled once resolved', () => {
    const a = alertSnapshot({ id: 'da1', machineId: 'm1', title: 'Bad thing', severity: 'High', status: 'Resolved' })!;
    expect(a).to.deep.include({ alertId: 'da1', machineId: 'm1', active: false });
    expect(a.node).to.include({ external_id: 'da1', name: 'Bad thing', base_score: 8 });
    expect(alertSnapshot({ id: 'x' })).to.equal(null);
  });
});

describe('CAR import plan', () => {
  it('builds the graph: asset, hostname, OS, addresses, accounts, CVEs, and no MAC edge to a public IP', () => {
    const plan = planImport([{ snapshot: snap(machine()), delivered: null }], [], REPORT);
    const id = 'a'.repeat(40);
    expect(plan.nodes['asset']).to.deep.equal([{ external_id: id, name: 'Host1.corp.example', description: 'Windows11 23H2' }]);
    expect(plan.nodes['hostname']).to.deep.equal([{ _key: 'host1.corp.example', host_name: 'host1.corp.example' }]);
    expect(plan.nodes['ipaddress']!.map((n) => n['_key'])).to.deep.equal(['10.0.0.5', '203.0.113.5']);
    expect(plan.edges['asset_ipaddress']!.map((e) => e['_to'])).to.deep.equal(['ipaddress/10.0.0.5', 'ipaddress/203.0.113.5']);
    expect(plan.edges['ipaddress_macaddress']).to.deep.equal([{ _from: 'ipaddress/10.0.0.5', _to: 'macaddress/00:0c:29:89:79:42', report: REPORT.reportKey, source: 'src', active: true, timestamp: REPORT.timestamp }]);
    expect(plan.edges['asset_account']![0]).to.include({ _from_external_id: id, _to_external_id: 'corp\\alice' });
    expect(plan.edges['asset_vulnerability']![0]).to.include({ _from_external_id: id, _to_external_id: 'CVE-2024-1' });
    expect(plan.patches).to.deep.equal([]);
    expect(plan.delivered.get(id)).to.deep.equal({ h: 'host1.corp.example', os: 'Windows11', ip: ['10.0.0.5', '203.0.113.5'], mac: ['00:0c:29:89:79:42'], ipmac: ['10.0.0.5|00:0c:29:89:79:42'], acc: ['corp\\alice'], vul: ['CVE-2024-1'], app: [], acch: ['corp\\alice'] });
  });

  it('disables exactly the edges CAR holds that the new snapshot no longer has', () => {
    const id = 'a'.repeat(40);
    const before: DeliveredState = { h: 'host1.corp.example', os: 'Windows11', ip: ['10.0.0.4', '203.0.113.5'], mac: ['00:0c:29:89:79:42'], ipmac: ['10.0.0.4|00:0c:29:89:79:42'], acc: ['corp\\bob'], vul: ['CVE-2020-9'] };
    const plan = planImport([{ snapshot: snap(machine()), delivered: before }], [], REPORT);
    expect(plan.patches).to.deep.equal([
      { edge: 'asset_ipaddress', from: id, to: '10.0.0.4', body: { active: false } },
      { edge: 'ipaddress_macaddress', from: '10.0.0.4', to: '00:0c:29:89:79:42', body: { active: false } },
      { edge: 'asset_account', from: id, to: 'corp\\bob', body: { active: false } },
      { edge: 'asset_vulnerability', from: id, to: 'CVE-2020-9', body: { active: false } },
    ]);
  });

  it('makes a new asset when the same machine id reports a new hostname, and retires the old one\'s edges', () => {
    const id = 'a'.repeat(40);
    const before: DeliveredState = { h: 'old.corp.example', os: 'Windows11', ip: ['10.0.0.5', '203.0.113.5'], mac: ['00:0c:29:89:79:42'], ipmac: ['10.0.0.5|00:0c:29:89:79:42'], acc: ['corp\\alice'], vul: ['CVE-2024-1'] };
    const alert = alertSnapshot({ id: 'al9', machineId: id, status: 'New' })!;
    const plan = planImport([{ snapshot: snap(machine()), delivered: before }], [alert], REPORT);
    const fresh = `${id}:host1.corp.example`;
    expect(plan.nodes['asset']!.map((a) => a['external_id'])).to.deep.equal([fresh]);
    expect(plan.edges['asset_ipaddress']!.map((e) => e['_from_external_id'])).to.deep.equal([fresh, fresh]);
    expect(plan.edges['asset_vulnerability']!.map((e) => [e['_from_external_id'], e['_to_external_id']])).to.deep.equal([[fresh, 'CVE-2024-1'], [fresh, 'al9']]);
    expect(plan.patches.map((p) => `${p.edge} ${p.from} ${p.to}`)).to.deep.equal([
      `asset_hostname ${id} old.corp.example`, `asset_application ${id} Windows11`, `asset_ipaddress ${id} 10.0.0.5`, `asset_ipaddress ${id} 203.0.113.5`,
      `asset_macaddress ${id} 00:0c:29:89:79:42`, `asset_account ${id} corp\\alice`, `asset_vulnerability ${id} CVE-2024-1`,
    ]);
    expect(plan.delivered.get(id)).to.deep.include({ a: fresh, old: [id], h: 'host1.corp.example' });
    // The next snapshot with the same name stays on the new asset.
    const next = planImport([{ snapshot: snap(machine()), delivered: plan.delivered.get(id)! }], [], REPORT);
    expect(next.nodes['asset']!.map((a) => a['external_id'])).to.deep.equal([fresh]);
    expect(next.patches).to.deep.equal([]);
  });

  it('keeps accounts and CVEs it did not read this run', () => {
    const id = 'a'.repeat(40);
    const before: DeliveredState = { h: 'host1.corp.example', os: 'Windows11', ip: [], mac: [], ipmac: [], acc: ['corp\\bob'], vul: ['CVE-2020-9'] };
    const s = machineSnapshot(machine(), { users: null, vulnerabilities: null, vulnerabilityDetails: new Map() });
    const plan = planImport([{ snapshot: s, delivered: before }], [], REPORT);
    // Neither kind of edge is disabled (`not.include.members` would pass with one of them disabled).
    expect(plan.patches.filter((p) => p.edge === 'asset_account' || p.edge === 'asset_vulnerability')).to.deep.equal([]);
    expect(plan.delivered.get(id)).to.deep.include({ acc: ['corp\\bob'], vul: ['CVE-2020-9'] });
  });

  it('turns a resolved alert into an edge PATCH and an open one into an active edge', () => {
    const open = alertSnapshot({ id: 'al1', machineId: 'm1', status: 'New' })!;
    const done = alertSnapshot({ id: 'al2', machineId: 'm1', status: 'Resolved' })!;
    const plan = planImport([], [open, done], REPORT);
    expect(plan.nodes['vulnerability']!.map((n) => n['external_id'])).to.deep.equal(['al1', 'al2']);
    expect(plan.edges['asset_vulnerability']!.map((e) => e['_to_external_id'])).to.deep.equal(['al1']);
    expect(plan.patches).to.deep.equal([{ edge: 'asset_vulnerability', from: 'm1', to: 'al2', body: { active: false } }]);
  });

  it('pages collections without losing or reordering items', () => {
    const out = pages({ a: [{ n: 1 }, { n: 2 }, { n: 3 }], b: [{ n: 4 }] }, 2);
    expect(out).to.deep.equal([{ a: [{ n: 1 }, { n: 2 }] }, { a: [{ n: 3 }], b: [{ n: 4 }] }]);
  });
});
