// End-to-end: the built service as a child process against the OpenCTI, Entra ID and Defender
// simulators over loopback. Assertions are on Defender's final state.
import { expect } from 'chai';
import { Lab, LAB_SECRET, LAB_TOKEN } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { makeIndicator, makeObservable } from '../../sim/opencti/fixtures.js';

type Indicator = { indicatorValue: string; indicatorType: string; action: string; severity: string; generateAlert: boolean;
  expirationTime: string; title: string; description: string; externalId?: string; id: string };

describe('OpenCTI → Defender end to end', function () {
  this.timeout(120_000);
  let lab: Lab;
  let service: ServiceProcess;

  beforeEach(async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
  });
  afterEach(async () => {
    await service?.stop().catch(() => undefined);
    await lab.stop();
  });

  const held = () => lab.defender.indicators() as Indicator[];
  const byValue = () => new Map(held().map((i) => [i.indicatorValue, i]));
  const start = (env: Record<string, string> = {}) => {
    service = new ServiceProcess(lab.env(env));
    service.start();
    return service;
  };

  it('creates, updates and deletes indicators with the mapped fields, and dead-letters bad patterns', async () => {
    start();
    const block = makeIndicator({ pattern: "[ipv4-addr:value = '198.51.100.7']", score: 85, labels: ['c2'] });
    const audit = makeIndicator({ pattern: "[domain-name:value = 'Evil-Example.COM']", score: 45 });
    const hashes = makeIndicator({ pattern: `[file:hashes.'SHA-256' = '${'ab'.repeat(32)}' OR file:hashes.MD5 = '${'cd'.repeat(16)}']`, score: 10 });
    const bad = makeIndicator({ pattern: "[ipv4-addr:value = '1.2.3.4'" });
    for (const i of [block, audit, hashes, bad]) lab.opencti.create(i);

    await waitFor(() => held().length === 4, 'four indicators in Defender');
    const v = byValue();
    expect(v.get('198.51.100.7')).to.include({ indicatorType: 'IpAddress', action: 'Block', severity: 'High' });
    expect(v.get('evil-example.com')).to.include({ indicatorType: 'DomainName', action: 'Audit', severity: 'Medium', generateAlert: true });
    expect(v.get('ab'.repeat(32))).to.include({ indicatorType: 'FileSha256', action: 'Warn', severity: 'Low' });
    expect(v.get('cd'.repeat(16))).to.include({ indicatorType: 'FileMd5' });
    expect(v.get('198.51.100.7')!.externalId).to.equal(block.id);
    expect(v.get('198.51.100.7')!.description).to.include('c2').and.include(`${lab.opencti.url}/dashboard/id/`);

    // Update: score drops → action follows; delete: removed by its recorded id.
    lab.opencti.update({ ...block, extensions: withScore(block, 20) });
    lab.opencti.delete(audit.id);
    await waitFor(() => byValue().get('198.51.100.7')?.action === 'Warn' && !byValue().has('evil-example.com'), 'update and delete applied');
    expect(held().filter((i) => i.indicatorValue === '198.51.100.7')).to.have.length(1);

    const out = await runCli(lab, ['dead-letters', '--json']);
    const letters = JSON.parse(out) as { sink: string; reason: string }[];
    expect(letters.map((l) => l.sink)).to.deep.equal(['source:opencti']);
    expect(letters[0]!.reason).to.include('invalid_pattern');
  });

  it('shows up in OpenCTI as a registered stream connector', async () => {
    start();
    await waitFor(() => lab.opencti.connectors.get(lab.connectorId), 'connector registered');
    expect(lab.opencti.connectors.get(lab.connectorId)).to.deep.include({ type: 'STREAM' });
  });

  it('keeps an observable while another object still claims it', async () => {
    start();
    const ind = makeIndicator({ pattern: "[ipv4-addr:value = '203.0.113.9']", score: 90 });
    const obs = makeObservable('ipv4-addr', '203.0.113.9', 40);
    lab.opencti.create(ind);
    lab.opencti.create(obs);
    await waitFor(() => byValue().get('203.0.113.9')?.action === 'Block', 'indicator pushed');
    lab.opencti.delete(ind.id);
    await waitFor(() => byValue().get('203.0.113.9')?.action === 'Audit', 'weaker claim takes over');
    lab.opencti.delete(obs.id);
    await waitFor(() => !byValue().has('203.0.113.9'), 'removed when nobody claims it');
  });

  it('loses and duplicates nothing across kill -9 and restart mid-stream', async () => {
    let killedAt = 0;
    start({ PIPELINE_BATCH_SIZE: '50' });
    await waitFor(() => lab.opencti.connections > 0, 'stream connected');
    const expected = new Set<string>();
    for (let i = 0; i < 600; i++) {
      const ip = `10.${Math.floor(i / 250)}.${i % 250}.1`;
      lab.opencti.create(makeIndicator({ pattern: `[ipv4-addr:value = '${ip}']`, score: 70 }));
      expected.add(ip);
      if (i === 300) {
        await waitFor(() => held().length > 0, 'some delivered before the crash');
        killedAt = Date.now();
        await service.kill9();
      }
    }
    start({ PIPELINE_BATCH_SIZE: '50' });
    await waitFor(() => held().length === expected.size, `all ${expected.size} indicators after restart`, 60_000);
    const values = held().map((i) => i.indicatorValue);
    expect(new Set(values).size).to.equal(values.length);
    expect([...expected].every((ip) => values.includes(ip))).to.equal(true);
    // What was SENT, not what Defender kept (its import upserts by value, hiding a second send):
    // only the answers the kill may have cut off can be sent again.
    expect(lab.defender.sends.repeats({ interruptions: [killedAt] }).map((s) => s.key), 'indicators sent again unchanged').to.deep.equal([]);
    const imports = lab.defender.requestLog.filter((e) => e.endpoint === 'indicators.import' && e.status === 200);
    expect(imports.every((e) => e.items! <= 500)).to.equal(true);
  });

  it('pauses the stream when its queue is full and resumes without loss', async () => {
    start({ PIPELINE_QUEUE_SIZE: '20', PIPELINE_BATCH_SIZE: '10' });
    await waitFor(() => lab.opencti.connections > 0, 'stream connected');
    for (let i = 0; i < 400; i++) lab.opencti.create(makeIndicator({ pattern: `[domain-name:value = 'queue${i}.example.net']`, score: 70 }));
    await waitFor(() => held().length === 400, 'all 400 indicators', 60_000);
    expect(service.lines.some((l) => l.msg === 'ingest queue full; pausing the stream')).to.equal(true);
    expect(new Set(held().map((i) => i.indicatorValue)).size).to.equal(400);
    expect(lab.defender.sends.repeats().map((s) => s.key), 'indicators sent again unchanged').to.deep.equal([]);
  });

  it('rides out 429 and 5xx bursts and token revocation without losing work, and never logs a secret', async () => {
    start({ CONNECTOR_LOG_LEVEL: 'debug' });
    lab.defender.failNext(3, 503);
    lab.defender.failNext(2, 429, { retryAfter: 1 });
    for (let i = 0; i < 20; i++) lab.opencti.create(makeIndicator({ pattern: `[domain-name:value = 'burst${i}.example.org']`, score: 65 }));
    await waitFor(() => held().length === 20, '20 indicators despite the faults', 60_000);
    lab.entra.revokeAll();
    lab.opencti.create(makeIndicator({ pattern: "[url:value = 'http://after-revoke.example.org/x?a=b&c=d']", score: 65 }));
    await waitFor(() => byValue().has('http://after-revoke.example.org/x?a=b&c=d'), 'delivered with a fresh token', 30_000);
    expect(await runCli(lab, ['dead-letters', '--json'])).to.equal('[]\n');
    const metrics = await (await fetch(`http://127.0.0.1:${service.healthPort}/metrics`)).text();
    const everything = JSON.stringify(service.lines) + service.stderr.join('') + metrics;
    for (const secret of [LAB_SECRET, LAB_TOKEN]) expect(everything).to.not.include(secret);
    expect(everything).to.not.match(/Bearer [A-Za-z0-9._-]{20,}/);
    expect(service.lines.some((l) => l.msg === 'routing decision')).to.equal(true);
  });

  it('reconnects with backoff through a platform outage and after heartbeat silence', async () => {
    start({ CONNECTOR_HEARTBEAT_TIMEOUT: '10' });
    await waitFor(() => lab.opencti.connections > 0, 'stream connected');
    lab.opencti.setDown(503);
    lab.opencti.dropConnections();
    lab.opencti.create(makeIndicator({ pattern: "[ipv4-addr:value = '192.0.2.50']", score: 70 }));
    await service.waitForLog((l) => l.msg === 'stream unavailable; reconnecting', 20_000);
    lab.opencti.setDown(null);
    await waitFor(() => byValue().has('192.0.2.50'), 'event published during the outage delivered', 30_000);

    const before = lab.opencti.connectionLog.length;
    lab.opencti.pause(14_000);
    await service.waitForLog((l) => l.msg === 'no heartbeat from the stream; reconnecting', 30_000);
    lab.opencti.resume();
    lab.opencti.create(makeIndicator({ pattern: "[ipv4-addr:value = '192.0.2.51']", score: 70 }));
    await waitFor(() => byValue().has('192.0.2.51'), 'delivered after the watchdog reconnect', 30_000);
    expect(lab.opencti.connectionLog.length).to.be.greaterThan(before);
  });

  it('warns and carries on when OpenCTI refuses the registration', async () => {
    lab.opencti.refuseRegistration = true;
    start();
    lab.opencti.create(makeIndicator({ pattern: "[ipv4-addr:value = '192.0.2.60']", score: 70 }));
    await waitFor(() => byValue().has('192.0.2.60'), 'delivered without registration');
    const warning = await service.waitForLog((l) => String(l.msg).includes('did not accept the connector registration'));
    expect(warning.level).to.equal('warn');
  });

  it('stops cleanly on SIGTERM and resumes after the last stored event', async () => {
    start();
    lab.opencti.create(makeIndicator({ pattern: "[ipv4-addr:value = '192.0.2.10']", score: 70 }));
    await waitFor(() => byValue().has('192.0.2.10'), 'first delivered');
    expect(await service.stop()).to.equal(0);
    lab.opencti.create(makeIndicator({ pattern: "[ipv4-addr:value = '192.0.2.11']", score: 70 }));
    start();
    await waitFor(() => byValue().has('192.0.2.11'), 'event published while down is delivered');
    // The second run resumed from its stored position, not from the start of the stream.
    const resumedFrom = lab.opencti.connectionLog.at(-1)!;
    expect(resumedFrom.lastEventId).to.match(/^\d{13}-\d+$/);
    expect(resumedFrom.lastEventId).to.not.equal(lab.opencti.connectionLog[0]!.lastEventId);
    expect(held()).to.have.length(2);
  });
});

function withScore(ind: ReturnType<typeof makeIndicator>, score: number) {
  const ext = structuredClone((ind as unknown as { extensions: Record<string, Record<string, unknown>> }).extensions);
  for (const e of Object.values(ext)) if ('score' in e) e['score'] = score;
  return ext;
}

async function runCli(lab: Lab, args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [cli, ...args], { env: lab.env() }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))));
}
