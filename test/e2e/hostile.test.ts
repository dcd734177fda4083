// Issue 13 end to end: the built service, one process for the whole file, fed hostile input next
// to good input through the real OpenCTI stream (SSE), MISP ZeroMQ and MISP REST. It must stay the
// same process, deliver the good events, keep one dead letter per bad event with its reason, stay
// under 300 MB of RSS while a 400 MiB stream line and a 256 MiB ZeroMQ frame go by, answer
// /healthz within a second while hostile patterns are parsed, and keep /metrics under 100 KB.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { Lab, LAB_WORKSPACE } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';

type Letter = { sink: string; key: string; reason: string };
const MiB = 1024 * 1024;

/** Peak and current resident set of a process, in MB (Linux /proc). */
function rssMb(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peak: kb('VmHWM') / 1024, now: kb('VmRSS') / 1024 };
}

/** An OpenCTI live-stream body as the platform sends it. */
const body = (data: Record<string, unknown>) => JSON.stringify({ data, message: 'hostile', origin: {}, version: '4' });

describe('hostile input end to end (issue 13)', function () {
  this.timeout(180_000);
  let lab: Lab;
  let service: ServiceProcess;
  let pid: number;

  before(async () => {
    lab = await new Lab({ heartbeatMs: 500, misp: true, mispHeartbeatMs: 500, sentinel: true }).start();
    service = new ServiceProcess(lab.env({ OPENCTI_TARGETS: 'defender,sentinel', MISP_CATCHUP_INTERVAL: '30', MISP_PUBLISHED_ONLY: 'false' }));
    service.start();
    await service.waitForLog((l) => l.msg === 'ZeroMQ feed connected', 30_000);
    pid = service.pid!;
  });
  after(async () => {
    await service?.stop().catch(() => undefined);
    await lab.stop();
  });

  const defender = () => new Set((lab.defender.indicators() as { indicatorValue: string }[]).map((i) => i.indicatorValue));
  const sentinel = () => lab.sentinel!.indicators(LAB_WORKSPACE) as { pattern: string; object_marking_refs?: string[] }[];
  const letters = async () => JSON.parse(await runCli(lab, ['dead-letters', '--json'])) as Letter[];
  const health = async () => {
    const started = Date.now();
    const res = await fetch(`http://127.0.0.1:${service.healthPort}/healthz`);
    expect(res.status).to.equal(200);
    return Date.now() - started;
  };

  it('OpenCTI: each hostile case next to 100 good indicators: good ones in the sinks, one dead letter per bad one', async () => {
    const good = Array.from({ length: 100 }, (_, i) => makeIndicator({ pattern: `[ipv4-addr:value = '198.51.${100 + (i >> 8)}.${i & 255}']`, score: 80 }));
    for (const g of good.slice(0, 50)) lab.opencti.create(g);
    lab.opencti.publishRaw('create', body({ id: 'indicator--\ud800', type: 'indicator', pattern: "[ipv4-addr:value = '203.0.113.250']" }));
    lab.opencti.publishRaw('create', body({ id: 'x-object-type--1', type: { toString: 1 }, value: '203.0.113.251' }));
    // Not bad once the lookups are total: an indicator without a TLP, for both sinks.
    const proto = makeIndicator({ pattern: "[ipv4-addr:value = '203.0.113.252']", score: 80 });
    lab.opencti.publishRaw('create', body({ ...proto, object_marking_refs: ['__proto__', 'constructor'] }));
    for (const g of good.slice(50)) lab.opencti.create(g);

    await waitFor(() => good.every((_, i) => defender().has(`198.51.${100 + (i >> 8)}.${i & 255}`)) && defender().has('203.0.113.252'),
      '100 good indicators and the __proto__-marked one in Defender', 60_000);
    await waitFor(() => sentinel().some((s) => s.pattern.includes('203.0.113.252')), 'the __proto__-marked one in Sentinel', 60_000);
    const mine = (await letters()).filter((l) => l.sink === 'source:opencti');
    expect(mine.map((l) => l.reason).sort()).to.deep.equal([
      'malformed_event: id is not well-formed Unicode (lone surrogate)',
      'malformed_event: type is an object, not a STIX type name',
    ]);
    expect(service.pid).to.equal(pid);
  });

  it('MISP: attribute types constructor, __proto__ and toString leave their neighbours alone (ZeroMQ and REST)', async () => {
    const ev = lab.misp!.createEvent({ info: 'Hostile types', tags: ['tlp:green'] });
    for (const [i, type] of ['constructor', '__proto__', 'toString'].entries()) lab.misp!.addAttribute(ev, { type, value: `hostile-${i}` } as never);
    const goods = Array.from({ length: 100 }, (_, i) => `good-${i}.hostile-neighbours.example`);
    for (const value of goods) lab.misp!.addAttribute(ev, { type: 'domain', value });
    lab.misp!.publish(ev);
    await waitFor(() => goods.every((g) => defender().has(g)), '100 good MISP attributes in Defender', 90_000);
    expect(service.pid).to.equal(pid);
  });

  it('refuses a 400 MiB stream line and a 256 MiB ZeroMQ frame under 300 MB of RSS, and carries on', async () => {
    const before = rssMb(pid);
    const huge = `{"data":{"id":"indicator--huge","type":"indicator","description":"${'x'.repeat(400 * MiB)}"}}`;
    const hugeId = lab.opencti.publishRaw('create', huge);
    lab.misp!.send('misp_json', `{"Event":{"info":"${'y'.repeat(256 * MiB)}"}}`);
    const after = makeIndicator({ pattern: "[domain-name:value = 'after-huge.example']", score: 80 });
    lab.opencti.create(after);
    await waitFor(async () => (await letters()).some((l) => l.key === hugeId && l.reason.startsWith('event_too_large')), 'the huge event dead-lettered', 90_000);
    await waitFor(() => defender().has('after-huge.example'), 'the event after the huge one delivered', 60_000);
    const ev = lab.misp!.createEvent({ info: 'After the frame' });
    lab.misp!.addAttribute(ev, { type: 'domain', value: 'after-frame.example' });
    lab.misp!.publish(ev);
    await waitFor(() => defender().has('after-frame.example'), 'the MISP event after the huge frame delivered', 90_000);
    const rss = rssMb(pid);
    expect(rss.peak, `peak RSS (was ${before.peak.toFixed(0)} MB before)`).to.be.lessThan(300);
    expect(service.pid).to.equal(pid);
  });

  it('answers /healthz within a second while hostile patterns are parsed; oversized and invalid ones are dead letters', async () => {
    // Costly to parse, worth one observable: the same comparison OR-ed up to the length limit.
    const ors = (n: number) => Array.from({ length: n }, () => "ipv4-addr:value = '10.66.0.1'").join(' OR ');
    let n = 1;
    while (`[${ors(n + 1)}]`.length <= 16 * 1024) n++;
    const atLimit = `[${ors(n)}]`;
    const brokenAtLimit = `[${ors(n - 1)} OR`; // fails at its last character
    const oversized = Array.from({ length: 5 }, () => makeIndicator({ pattern: `[${ors(2_000)}]` }));
    const slowest: number[] = [];
    let stop = false;
    const probe = (async () => { while (!stop) { slowest.push(await health()); await new Promise((r) => setTimeout(r, 50)); } })();
    for (const o of oversized) lab.opencti.create(o);
    for (let i = 0; i < 20; i++) {
      lab.opencti.create(makeIndicator({ pattern: atLimit, score: 80 }));
      lab.opencti.create(makeIndicator({ pattern: brokenAtLimit, score: 80 }));
    }
    await waitFor(async () => {
      const reasons = (await letters()).map((l) => l.reason.split(':')[0]);
      return reasons.filter((r) => r === 'pattern_too_large').length === 5 && reasons.filter((r) => r === 'invalid_pattern').length === 20;
    }, 'five oversized and twenty invalid patterns dead-lettered', 60_000);
    await waitFor(() => defender().has('10.66.0.1'), 'the at-limit patterns delivered', 60_000);
    stop = true;
    await probe;
    expect(Math.max(...slowest)).to.be.lessThan(1000);
    expect(slowest.length).to.be.greaterThan(3);
    expect(service.pid).to.equal(pid);
  });

  it('keeps /metrics under 100 KB after 20,000 MISP messages with random action strings', async () => {
    for (let i = 0; i < 20_000; i++) {
      lab.misp!.send('misp_json_attribute', JSON.stringify({ Attribute: { uuid: `r-${i}`, event_id: '999', type: 'domain', value: 'r.example' }, action: `act-${i}-${Math.random().toString(36).slice(2)}` }));
    }
    await waitFor(async () => {
      const text = await (await fetch(`http://127.0.0.1:${service.healthPort}/metrics`)).text();
      return /threatbridge_source_events_total\{source="misp",event="attribute\.other"/.test(text) ? text : null;
    }, 'the random actions counted as other', 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const text = await (await fetch(`http://127.0.0.1:${service.healthPort}/metrics`)).text();
    expect(Buffer.byteLength(text)).to.be.lessThan(100 * 1024);
    expect(text).not.to.match(/act-\d+/);
    expect(service.pid).to.equal(pid);
    expect(service.exitCode).to.equal(null);
  });
});

async function runCli(lab: Lab, args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [cli, ...args], { env: lab.env(), maxBuffer: 64 * MiB }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))));
}
