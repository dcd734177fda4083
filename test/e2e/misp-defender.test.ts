// End-to-end: the built service against the MISP simulator (REST + ZeroMQ), Entra ID and Defender.
// Assertions are on Defender's final state and on the service's dead letters.
import { expect } from 'chai';
import { Lab } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import type { MispSimulator } from '../../sim/misp/server.js';

type Indicator = { indicatorValue: string; indicatorType: string; action: string; severity: string; expirationTime: string;
  title: string; description: string; externalId?: string; generateAlert: boolean };

const DAY = 86_400_000;

describe('MISP → Defender end to end', function () {
  this.timeout(120_000);
  let lab: Lab;
  let misp: MispSimulator;
  let service: ServiceProcess | undefined;

  beforeEach(async () => {
    lab = await new Lab({ misp: true, mispHeartbeatMs: 500 }).start();
    misp = lab.misp!;
  });
  afterEach(async () => {
    await service?.stop().catch(() => undefined);
    service = undefined;
    await lab.stop();
  });

  const held = () => lab.defender.indicators() as Indicator[];
  const byValue = () => new Map(held().map((i) => [i.indicatorValue, i]));
  const start = (env: Record<string, string> = {}) => {
    service = new ServiceProcess(lab.env({ OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', MISP_CATCHUP_INTERVAL: '30', CONNECTOR_LOG_LEVEL: process.env['TB_DEBUG'] ? 'debug' : 'info', ...env }));
    service.start();
    return service;
  };
  const connected = () => service!.waitForLog((l) => l.msg === 'ZeroMQ feed connected', 30_000);
  const synced = () => service!.waitForLog((l) => typeof l.msg === 'string' && /^MISP (full|catch-up) done$/.test(l.msg), 30_000);

  it('pushes published attributes with their mapping, and follows edits, soft and hard deletes', async () => {
    start();
    await connected();
    await synced();
    const ev = misp.createEvent({ info: 'Phishing wave', tags: ['tlp:green'], threat_level_id: '1' });
    const dom = misp.addAttribute(ev, { type: 'domain', value: 'Evil-Example.COM', tags: ['course-of-action:active="deny"'] });
    const ipPort = misp.addAttribute(ev, { type: 'ip-dst|port', value: '203.0.113.7|443' });
    misp.addAttribute(ev, { type: 'domain|ip', value: 'c2.example.net|198.51.100.9' });
    const hash = misp.addAttribute(ev, { type: 'filename|sha256', value: `drop.exe|${'ab'.repeat(32)}`, comment: 'dropper' });
    misp.addAttribute(ev, { type: 'ip-src', value: '192.0.2.1', to_ids: false });
    misp.addAttribute(ev, { type: 'email-src', value: 'a@b.example' });
    misp.addAttribute(ev, { type: 'text', value: 'free text' });
    misp.addObject(ev, 'file', [{ type: 'md5', value: 'cd'.repeat(16), category: 'Payload delivery' }]);
    const red = misp.createEvent({ info: 'Sensitive', tags: ['tlp:red'] });
    misp.addAttribute(red, { type: 'domain', value: 'secret.example.org' });
    // Nothing leaves before the publish (published_only).
    misp.publish(ev);
    misp.publish(red);

    await waitFor(() => held().length === 6, 'six indicators in Defender');
    const v = byValue();
    expect([...v.keys()].sort()).to.deep.equal(['198.51.100.9', '203.0.113.7', 'ab'.repeat(32), 'c2.example.net', 'cd'.repeat(16), 'evil-example.com']);
    expect(v.get('evil-example.com')).to.include({ indicatorType: 'DomainName', action: 'Block', severity: 'High' });
    expect(v.get('203.0.113.7')).to.include({ indicatorType: 'IpAddress', severity: 'High' });
    expect(v.get('ab'.repeat(32))).to.include({ indicatorType: 'FileSha256', title: 'Phishing wave' });
    expect(v.get('ab'.repeat(32))!.description).to.include('dropper').and.include(`${misp.url}/events/view/${ev}`);
    expect(v.get('cd'.repeat(16))!.description).to.include('was part of file object');
    // Per-type expiry: IPs 90 days, domains 300 (from today), not Defender's 30.
    const inDays = (i: Indicator) => Math.round((Date.parse(i.expirationTime) - Date.now()) / DAY);
    expect(inDays(v.get('203.0.113.7')!)).to.be.within(88, 90);
    expect(inDays(v.get('evil-example.com')!)).to.be.within(298, 300);

    // Soft delete removes at once (it unpublishes the event); the edit waits for the next publish.
    misp.softDeleteAttribute(ipPort.uuid, true);
    await waitFor(() => !byValue().has('203.0.113.7'), 'soft-deleted attribute removed');
    misp.editAttribute(dom.uuid, { value: 'evil-example.org' });
    misp.publish(ev);
    await waitFor(() => byValue().has('evil-example.org') && !byValue().has('evil-example.com'), 'edited value replaced');
    misp.hardDeleteAttribute(hash.uuid);
    await waitFor(() => !byValue().has('ab'.repeat(32)), 'hard-deleted attribute removed');
    expect(held().filter((i) => i.indicatorValue === 'evil-example.org')).to.have.length(1);

    // Issue 16: MISP has a connected gauge, its REST calls are counted, its activity is exported.
    const metrics = await (await fetch(`http://127.0.0.1:${service!.healthPort}/metrics`)).text();
    expect(metrics).to.match(/threatbridge_source_connected\{source="misp"\} 1\n/);
    expect(metrics).to.match(/threatbridge_sink_requests_total\{sink="misp",endpoint="search",status="200"\} [1-9]/);
    expect(metrics).to.match(/threatbridge_source_lag_seconds\{source="misp"\} \d/);
    expect(metrics).to.match(/threatbridge_source_last_event_age_seconds\{source="misp"\} \d/);
  });

  it('recovers what ZeroMQ lost while the service was down or the feed was away', async () => {
    const ev = misp.createEvent({ info: 'Before start', tags: ['tlp:amber'] });
    misp.addAttribute(ev, { type: 'url', value: 'http://before.example/x' });
    misp.publish(ev);
    start();
    await waitFor(() => byValue().has('http://before.example/x'), 'first start reads MISP through REST');
    await connected();
    await service!.stop();

    // Published while the service is down: ZeroMQ has no replay.
    const ev2 = misp.createEvent({ info: 'While down' });
    const gone = misp.addAttribute(ev2, { type: 'sha1', value: 'ef'.repeat(20) });
    misp.addAttribute(ev2, { type: 'hostname', value: 'down.example' });
    misp.publish(ev2);
    // A soft delete unpublishes the event in MISP: it is republished afterwards.
    misp.softDeleteAttribute(gone.uuid);
    misp.publish(ev2);
    start();
    await waitFor(() => byValue().has('down.example'), 'catch-up after restart');
    expect(byValue().has('ef'.repeat(20))).to.equal(false);
    await connected();

    // The publisher goes away and comes back: what it published meanwhile is recovered by REST.
    await misp.stopZmq();
    const gauge = async () => /threatbridge_source_connected\{source="misp"\} (\d)/.exec(await (await fetch(`http://127.0.0.1:${service!.healthPort}/metrics`)).text())?.[1];
    await waitFor(async () => (await gauge()) === '0', 'the connected gauge of MISP drops with the feed', 30_000);
    const ev3 = misp.createEvent({ info: 'During outage' });
    misp.addAttribute(ev3, { type: 'ip-dst', value: '198.51.100.77' });
    misp.publish(ev3);
    await misp.startZmq();
    await waitFor(() => byValue().has('198.51.100.77'), 'catch-up after the feed came back', 60_000);
    await waitFor(async () => (await gauge()) === '1', 'the connected gauge of MISP back to 1', 30_000);
    expect(held()).to.have.length(3);
  });

  it('neither loses nor duplicates across kill -9 and restart in the middle of a burst', async () => {
    start();
    await connected();
    await synced();
    const ev = misp.createEvent({ info: 'Burst' });
    const values: string[] = [];
    for (let i = 0; i < 400; i++) {
      const value = `burst-${i}.example.com`;
      values.push(value);
      misp.addAttribute(ev, { type: 'domain', value });
    }
    misp.publish(ev);
    await waitFor(() => held().length > 0, 'some indicators arrived');
    const killedAt = Date.now();
    await service!.kill9();
    start();
    await waitFor(() => held().length === 400, 'all 400 after restart', 60_000);
    const counts = new Map<string, number>();
    for (const i of held()) counts.set(i.indicatorValue, (counts.get(i.indicatorValue) ?? 0) + 1);
    expect([...counts.values()].every((n) => n === 1)).to.equal(true);
    expect([...counts.keys()].sort()).to.deep.equal(values.sort());
    // What was SENT, not what Defender kept (its import upserts by value, hiding a second send):
    // only the answers the kill may have cut off can be sent again.
    expect(lab.defender.sends.repeats({ interruptions: [killedAt] }).map((s) => s.key), 'indicators sent again unchanged').to.deep.equal([]);
  });

  it('maps everything but sends nothing in a dry run, writing what it would send for review', async () => {
    const file = `${lab.stateDir}/parsed.jsonl`;
    const ev = misp.createEvent({ info: 'Dry run', tags: ['tlp:green'] });
    misp.addAttribute(ev, { type: 'url', value: 'http://dry.example/run' });
    misp.addAttribute(ev, { type: 'md5', value: '12'.repeat(16) });
    misp.publish(ev);
    start({ CONNECTOR_DRY_RUN: 'true', CONNECTOR_WRITE_PARSED_INDICATORS: file });
    await service!.waitForLog((l) => l.msg === 'dry run: operations recorded, nothing sent', 30_000);
    const { readFileSync } = await import('node:fs');
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { sink: string; op: string; dryRun: boolean; payload: Indicator });
    expect(lines.map((l) => l.payload.indicatorValue).sort()).to.deep.equal(['12'.repeat(16), 'http://dry.example/run']);
    expect(lines.every((l) => l.dryRun && l.op === 'upsert' && l.sink === 'defender')).to.equal(true);
    expect(lab.defender.requestLog.filter((r) => r.endpoint?.startsWith('indicators.'))).to.have.length(0);
    expect(held()).to.have.length(0);
  });

  it('sends MISP attributes to Sentinel as valid STIX 2.1 indicators when targeted, beside Defender', async () => {
    await lab.stop();
    lab = await new Lab({ misp: true, mispHeartbeatMs: 500, sentinel: true }).start();
    misp = lab.misp!;
    const ev = misp.createEvent({ info: 'Both targets', tags: ['tlp:amber'] });
    misp.addAttribute(ev, { type: 'url', value: "http://quote.example/it's" });
    misp.addAttribute(ev, { type: 'email-src', value: 'phisher@bad.example' });
    const gone = misp.addAttribute(ev, { type: 'ip-src', value: '198.51.100.33' });
    misp.publish(ev);
    start({ MISP_TARGETS: 'defender,sentinel' });
    const stix = () => lab.sentinel!.indicators() as { pattern: string; revoked?: boolean; pattern_type: string }[];
    await waitFor(() => stix().length === 3 && held().length === 2, 'three STIX indicators and two Defender indicators (email has no Defender type)');
    const patterns = stix().map((i) => i.pattern).sort();
    expect(patterns).to.deep.equal([
      "[email-addr:value = 'phisher@bad.example']",
      "[ipv4-addr:value = '198.51.100.33']",
      "[url:value = 'http://quote.example/it\\'s']",
    ]);
    misp.softDeleteAttribute(gone.uuid);
    await waitFor(() => stix().some((i) => i.pattern.includes('198.51.100.33') && i.revoked === true) && !byValue().has('198.51.100.33'),
      'the soft delete revokes in Sentinel and deletes in Defender');
  });

  it('a periodic full sync keeps what MISP still holds, however old, and withdraws only what it lost', async () => {
    // An attribute from ten minutes ago, then a fresh one: the catch-up watermark moves past the old one.
    const realClock = misp.data.clock;
    misp.data.clock = () => realClock() - 600;
    const old = misp.createEvent({ info: 'Old campaign' });
    misp.addAttribute(old, { type: 'domain', value: 'old.full-sync.example' });
    const gone = misp.addAttribute(old, { type: 'domain', value: 'hard-deleted.full-sync.example' });
    misp.publish(old);
    misp.data.clock = realClock;
    start({ MISP_FULL_SYNC_INTERVAL: '1' });
    await connected();
    const fresh = misp.createEvent({ info: 'Fresh campaign' });
    misp.addAttribute(fresh, { type: 'domain', value: 'fresh.full-sync.example' });
    misp.publish(fresh);
    await waitFor(() => byValue().has('fresh.full-sync.example') && byValue().has('old.full-sync.example'), 'both in Defender');
    // Two full passes: the second starts from a watermark past the old attribute's timestamp.
    const fullPasses = () => service!.lines.filter((l) => l.msg === 'MISP full done').length;
    await waitFor(() => fullPasses() >= 3, 'three full passes', 60_000);
    // Hard deleted while the feed is away: only a full pass can see it, and the pass that withdraws
    // it would withdraw, in the same commit, anything else it wrongly missed.
    await misp.stopZmq();
    misp.hardDeleteAttribute(gone.uuid);
    await misp.startZmq();
    await waitFor(() => !byValue().has('hard-deleted.full-sync.example'), 'the hard delete withdrawn', 30_000);
    expect([...byValue().keys()].filter((v) => v.endsWith('.full-sync.example')).sort()).to.deep.equal(['fresh.full-sync.example', 'old.full-sync.example']);
  });

  it('finds, without ZeroMQ, attributes whose event was published after they were added, with the event\'s threat level', async () => {
    const realClock = misp.data.clock;
    misp.data.clock = () => realClock() - 300;
    const ev = misp.createEvent({ info: 'Drafted earlier', threat_level_id: '1' });
    misp.addAttribute(ev, { type: 'domain', value: 'drafted.example' });
    misp.data.clock = realClock;
    start({ MISP_ZMQ_URL: '' });
    await synced();
    expect(byValue().has('drafted.example'), 'not published yet').to.equal(false);
    misp.publish(ev);
    await waitFor(() => byValue().has('drafted.example'), 'the catch-up finds it by the publish time', 40_000);
    // Attribute rows carry no threat level: the event's header is read, so severity is the event's.
    expect(byValue().get('drafted.example')).to.include({ severity: 'High', title: 'Drafted earlier' });
  });

  it('dead-letters malformed messages with the reason and carries on', async () => {
    start();
    await connected();
    misp.send('misp_json_attribute', '{"Attribute": {"uuid": ');
    misp.send('misp_json', '{"Event": "not an object"}');
    const ev = misp.createEvent({ info: 'After garbage' });
    misp.addAttribute(ev, { type: 'domain', value: 'after-garbage.example' });
    misp.publish(ev);
    await waitFor(() => byValue().has('after-garbage.example'), 'valid message after malformed ones');
    const letters = JSON.parse(await runCli(lab, ['dead-letters', '--json'])) as { sink: string; reason: string; op: string }[];
    const mine = letters.filter((l) => l.sink === 'source:misp');
    expect(mine.map((l) => l.reason.split(':')[0]).sort()).to.deep.equal(['malformed_event', 'malformed_json']);
  });
});

async function runCli(lab: Lab, args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [cli, ...args], { env: lab.env({ OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '' }) }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))));
}
