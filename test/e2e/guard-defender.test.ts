// End to end: the guard, the breaker, the 15,000-indicator cap and reconciliation, with the built
// service as a child process against the Defender simulator (its cap lowered via Lab.maxIndicators).
import { expect } from 'chai';
import { Lab, LAB_CLIENT, LAB_TENANT } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { runCli } from '../support/cli.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';

type Indicator = { indicatorValue: string; indicatorType: string; action: string; id: string };
type Decision = { key: string; outcome: string; action: string; wanted: string; source: string; sourceRef: string | null; reason: string };

describe('Guard, breaker, cap and reconciliation end to end', function () {
  this.timeout(180_000);
  let lab: Lab;
  let service: ServiceProcess;

  afterEach(async () => {
    await service?.stop().catch(() => undefined);
    await lab?.stop();
  });

  const held = () => lab.defender.indicators() as Indicator[];
  const byValue = () => new Map(held().map((i) => [i.indicatorValue, i]));
  const start = (env: Record<string, string> = {}) => {
    service = new ServiceProcess(lab.env(env));
    service.start();
    return service;
  };
  const ip = (n: number) => `203.0.113.${n}`;
  const create = (value: string, score: number) => {
    const ind = makeIndicator({ pattern: `[ipv4-addr:value = '${value}']`, score, validUntil: null });
    lab.opencti.create(ind);
    return ind;
  };
  const decisions = async (args: string[] = []) =>
    JSON.parse(await runCli(lab, ['decisions', '--json', '--limit', '1000', ...args])) as { breakers: { source: string }[]; decisions: Decision[] };

  it('never blocks protected values: downgrades them to Audit and records why, from which event', async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    start({ GUARD_DOMAINS: 'Contoso.com', GUARD_SPECIAL_ADDRESSES: 'skip' });
    const resolver = create('8.8.8.8', 90);
    lab.opencti.create(makeIndicator({ pattern: "[domain-name:value = 'MAIL.contoso.COM']", score: 95, validUntil: null }));
    create('10.20.30.40', 95);
    create(ip(10), 95);
    await waitFor(() => byValue().has(ip(10)) && byValue().has('8.8.8.8') && byValue().has('mail.contoso.com'), 'indicators delivered');
    const v = byValue();
    expect(v.get(ip(10))!.action).to.equal('Block');
    expect(v.get('8.8.8.8')!.action).to.equal('Audit');
    expect(v.get('mail.contoso.com')!.action).to.equal('Audit');
    expect(v.has('10.20.30.40'), 'private address skipped').to.equal(false);

    const { decisions: rows } = await decisions(['--source', 'opencti']);
    const resolverRow = rows.find((d) => d.key === 'ipv4:8.8.8.8')!;
    expect(resolverRow).to.include({ outcome: 'downgrade', wanted: 'Block', action: 'Audit', sourceRef: resolver.id });
    expect(resolverRow.reason).to.include('Google Public DNS');
    expect(rows.find((d) => d.key === 'ipv4:10.20.30.40')).to.include({ outcome: 'skip' });
    expect(rows.find((d) => d.key === `ipv4:${ip(10)}`)).to.include({ outcome: 'allow', action: 'Block' });
    const metrics = await (await fetch(`http://127.0.0.1:${service.healthPort}/metrics`)).text();
    expect(metrics).to.match(/threatbridge_guard_decisions_total\{sink="defender",source="opencti",outcome="downgrade"\} 2/);
  });

  it('lifts a Block that is already out when its value becomes protected in the list file, without restart', async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'tb-list-')), 'protected.txt');
    writeFileSync(file, '# our own ranges\n');
    start({ GUARD_LIST_FILE: file });
    create(ip(77), 90);
    create(ip(78), 90);
    await waitFor(() => byValue().get(ip(77))?.action === 'Block' && byValue().get(ip(78))?.action === 'Block', 'Blocks delivered');
    writeFileSync(file, `# our own ranges\n${ip(77)}/32   # the office gateway\n`);
    await waitFor(() => byValue().get(ip(77))?.action === 'Audit', 'Block lifted to Audit after the reload', 30_000);
    expect(byValue().get(ip(78))!.action).to.equal('Block');
    // A bad file keeps the last good list.
    writeFileSync(file, 'not a value at all\n');
    await service.waitForLog((l) => l.msg === 'protected list file rejected; keeping the last good list');
  });

  it('with on_protected=skip, removes a Block already out once its value becomes protected', async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'tb-list-')), 'protected.txt');
    writeFileSync(file, '');
    start({ GUARD_LIST_FILE: file, GUARD_ON_PROTECTED: 'skip' });
    lab.opencti.create(makeIndicator({ pattern: "[url:value = 'https://Portal.Example.org:8443/app/login']", score: 90, validUntil: null }));
    create(ip(79), 90);
    await waitFor(() => held().length === 2, 'both delivered as Block');
    writeFileSync(file, 'https://portal.example.org:8443/app\n');
    await waitFor(() => held().length === 1, 'the protected URL removed from Defender', 30_000);
    expect(held()[0]!.indicatorValue).to.equal(ip(79));
    const { decisions: rows } = await decisions();
    expect(rows.find((d) => d.outcome === 'skip')?.reason).to.include('https://portal.example.org:8443/app');
  });

  it('trips the breaker on a flood of new Blocks and lets the rest through after `threatbridge resume`', async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    start({ GUARD_BREAKER_MAX_BLOCKS_PER_HOUR: '5', GUARD_BREAKER_POLL_SECONDS: '1' });
    for (let n = 1; n <= 8; n++) create(ip(n), 90);
    await service.waitForLog((l) => String(l.msg).startsWith('breaker tripped'), 30_000);
    await waitFor(() => held().length === 5, 'five Blocks delivered');
    // A non-enforcing indicator from the same source still flows while the breaker is open.
    create(ip(50), 40);
    await waitFor(() => byValue().get(ip(50))?.action === 'Audit', 'Audit indicator delivered while paused');
    expect(held().filter((i) => i.action === 'Block')).to.have.length(5);
    const open = await decisions();
    expect(open.breakers.map((b) => b.source)).to.deep.equal(['opencti']);
    expect(open.decisions.filter((d) => d.outcome === 'breaker')).to.have.length(3);

    expect(await runCli(lab, ['resume', 'opencti'])).to.include('resumed: opencti');
    await waitFor(() => held().filter((i) => i.action === 'Block').length === 8, 'held Blocks delivered after resume', 30_000);
    expect((await decisions()).breakers).to.deep.equal([]);
  });

  it('keeps the most valuable indicators at the cap: evicts the weakest, refuses what is worth less, never fails silently', async () => {
    lab = await new Lab({ heartbeatMs: 500, maxIndicators: 10 }).start();
    start({ MICROSOFT_DEFENDER_INTEL_MAX_INDICATORS: '10' });
    for (let n = 1; n <= 10; n++) create(ip(n), 30 + n); // scores 31..40
    await waitFor(() => held().length === 10, 'cap filled');
    // Beyond the cap: three strong newcomers evict the three weakest.
    for (let n = 101; n <= 103; n++) create(ip(n), 90);
    await waitFor(() => [101, 102, 103].every((n) => byValue().has(ip(n))), 'strong newcomers delivered');
    expect(held()).to.have.length(10);
    for (const n of [1, 2, 3]) expect(byValue().has(ip(n)), `weakest ${ip(n)} evicted`).to.equal(false);
    for (const n of [4, 10]) expect(byValue().has(ip(n))).to.equal(true);
    // Worth less than everything held: refused (waits), logged, audited.
    create(ip(200), 5);
    await service.waitForLog((l) => String(l.msg).includes('wait for a free slot'), 30_000);
    expect(byValue().has(ip(200))).to.equal(false);
    const { decisions: rows } = await decisions();
    expect(rows.filter((d) => d.outcome === 'evict').map((d) => d.key).sort()).to.deep.equal([1, 2, 3].map((n) => `ipv4:${ip(n)}`).sort());
    expect(rows.find((d) => d.outcome === 'refuse')?.key).to.equal(`ipv4:${ip(200)}`);
    const metrics = await (await fetch(`http://127.0.0.1:${service.healthPort}/metrics`)).text();
    expect(metrics).to.match(/threatbridge_sink_cap_total\{sink="defender",outcome="evicted"\} 3/);
    expect(metrics).to.match(/threatbridge_sink_held\{sink="defender"\} 10/);
  });

  it("learns the tenant's real cap from Defender's refusal when others hold part of it", async () => {
    lab = await new Lab({ heartbeatMs: 500, maxIndicators: 6 }).start();
    // Two indicators someone else created in the portal share the tenant's cap.
    lab.defender.seed(LAB_TENANT,
      'portal-user', [0, 1].map((n) => ({ indicatorValue: `198.18.0.${n + 1}`, indicatorType: 'IpAddress', action: 'Audit', generateAlert: true,
        title: 'manual', description: 'manual', severity: 'Low', expirationTime: '2099-01-01T00:00:00Z' })));
    start(); // our budget stays the default 15,000: only Defender's answer tells us
    for (let n = 1; n <= 4; n++) create(ip(n), 30 + n);
    await waitFor(() => held().length === 6, 'tenant full');
    create(ip(100), 90);
    await waitFor(() => byValue().has(ip(100)), 'strong newcomer delivered after learning the cap', 60_000);
    expect(byValue().has(ip(1)), 'weakest of ours evicted').to.equal(false);
    expect(byValue().has('198.18.0.1'), "others' indicators untouched").to.equal(true);
  });

  it('reconciliation re-creates an indicator deleted by hand, deletes a duplicate and an unclaimed one of ours, leaves others alone', async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    start();
    for (let n = 1; n <= 3; n++) create(ip(n), 90);
    await waitFor(() => held().length === 3, 'delivered');
    const gone = byValue().get(ip(1))!;
    const dupOf = byValue().get(ip(2))!;
    expect(lab.defender.deleteByHand(gone.id)).to.equal(true);
    const dup = lab.defender.duplicateIndicator(dupOf.id)!;
    expect(held().filter((i) => i.indicatorValue === ip(2))).to.have.length(2);
    // One of ours nobody claims (left over from a lost store), and one of another application.
    const body = (value: string, application: string) => ({ indicatorValue: value, indicatorType: 'IpAddress', action: 'Block', generateAlert: true,
      title: value, description: 'x', severity: 'High', expirationTime: '2099-01-01T00:00:00Z', application });
    lab.defender.seed(LAB_TENANT, LAB_CLIENT, [body(ip(90), 'ThreatBridge')]);
    lab.defender.seed(LAB_TENANT, 'other-app', [body(ip(91), 'OtherTool')]);
    // Ours too, written under the MISP source's own application name.
    lab.defender.seed(LAB_TENANT, LAB_CLIENT, [body(ip(92), 'ThreatBridge MISP')]);

    const report = JSON.parse(await runCli(lab, ['reconcile'], { MISP_APPLICATION: 'ThreatBridge MISP' })) as Record<string, number>;
    expect(report).to.include({ recreated: 1, duplicatesDeleted: 1, unclaimedDeleted: 2 });
    expect(byValue().has(ip(90)), 'ours, unclaimed: deleted').to.equal(false);
    expect(byValue().has(ip(92)), 'ours under misp.application, unclaimed: deleted').to.equal(false);
    expect(byValue().has(ip(91)), "another application's: untouched").to.equal(true);
    await waitFor(() => byValue().has(ip(1)), 'deleted indicator re-created', 30_000);
    const twos = held().filter((i) => i.indicatorValue === ip(2));
    expect(twos.map((i) => i.id)).to.deep.equal([dupOf.id], 'the duplicate goes, our recorded one stays');
    expect(dup.id).to.not.equal(dupOf.id);
    expect(held()).to.have.length(4);
    // A second pass finds nothing to repair.
    const again = JSON.parse(await runCli(lab, ['reconcile'])) as Record<string, number>;
    expect(again).to.include({ recreated: 0, duplicatesDeleted: 0, unclaimedDeleted: 0, forgotten: 0 });
  });
});
