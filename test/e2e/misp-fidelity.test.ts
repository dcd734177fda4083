// End-to-end: what MISP2Defender and MISP itself do that the MISP flow must match (issue 15),
// the built service against the MISP simulator (REST + ZeroMQ) and Defender. The simulator
// follows MISP's order of events: an attribute added to a published event is published on
// ZeroMQ before the event is unpublished; a restarted publisher flushes its Redis backlog ~1 s
// after it binds again. Oracles: Defender's send log (everything ever sent, not only what it
// keeps) and its final state.
import { expect } from 'chai';
import { Lab } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import type { MispSimulator } from '../../sim/misp/server.js';

type Indicator = { indicatorValue: string; action: string; severity: string; expirationTime: string };

const DAY = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('MISP source fidelity end to end (issue 15)', function () {
  this.timeout(180_000);
  let lab: Lab;
  let misp: MispSimulator;
  let service: ServiceProcess | undefined;

  const open = async (options: { rateLimits?: boolean; sentinel?: boolean; mispSendRate?: number } = {}) => {
    lab = await new Lab({ misp: true, mispHeartbeatMs: 500, ...options }).start();
    misp = lab.misp!;
  };
  afterEach(async function () {
    if (process.env['TB_DUMP'] && this.currentTest?.state === 'failed') console.error(service?.lines.map((l) => JSON.stringify(l)).join('\n'));
    await service?.stop().catch(() => undefined);
    service = undefined;
    await lab.stop();
  });

  const held = () => lab.defender.indicators() as Indicator[];
  const byValue = () => new Map(held().map((i) => [i.indicatorValue, i]));
  /** Every value Defender was ever sent (an upsert that was later deleted included). */
  const everSent = (value: string) => lab.defender.sends.sends.some((s) => JSON.stringify(s).includes(value));
  const start = (env: Record<string, string> = {}) => {
    service = new ServiceProcess(lab.env({ OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', MISP_CATCHUP_INTERVAL: '30',
      CONNECTOR_LOG_LEVEL: process.env['TB_DEBUG'] ? 'debug' : 'info', ...env }));
    service.start();
    return service;
  };
  const connected = () => service!.waitForLog((l) => l.msg === 'ZeroMQ feed connected', 30_000);
  const synced = () => service!.waitForLog((l) => typeof l.msg === 'string' && /^MISP (full|catch-up) done$/.test(l.msg), 30_000);

  it('warninglisted values reach no sink on any path: full sync, ZeroMQ, catch-up; while MISP cannot say, items wait', async () => {
    await open();
    misp.data.warninglist.add('8.8.4.4');
    misp.data.warninglist.add('1.1.1.1');
    misp.data.warninglist.add('9.9.9.9');
    // Full sync (first start).
    const before = misp.createEvent({ info: 'Before start' });
    misp.addAttribute(before, { type: 'ip-dst', value: '8.8.4.4' });
    misp.addAttribute(before, { type: 'ip-dst', value: '198.51.100.1' });
    misp.publish(before);
    start();
    await connected();
    await waitFor(() => byValue().has('198.51.100.1'), 'the full sync pushed the plain value');

    // ZeroMQ: the publish carries a warninglisted value beside a plain one.
    const live = misp.createEvent({ info: 'Live' });
    misp.addAttribute(live, { type: 'ip-dst', value: '1.1.1.1' });
    const edited = misp.addAttribute(live, { type: 'ip-dst', value: '198.51.100.2' });
    misp.addAttribute(live, { type: 'domain|ip', value: 'mixed.example|9.9.9.9' });
    misp.publish(live);
    await waitFor(() => byValue().has('198.51.100.2'), 'the plain value of the live publish');

    // Catch-up: edited onto a warninglist while the feed is away; REST is the only path that sees it.
    await misp.stopZmq();
    misp.editAttribute(edited.uuid, { value: '8.8.4.4' });
    misp.publish(live);
    misp.dropBacklog(); // Redis lost the backlog: only REST can tell
    await misp.startZmq();
    await waitFor(() => !byValue().has('198.51.100.2'), 'the catch-up withdrew the attribute edited onto the warninglist', 60_000);

    // MISP cannot answer warninglist checks: the live items wait, none passes unchecked.
    misp.warninglistDown = true;
    misp.data.warninglist.add('8.8.8.8');
    const held1 = misp.createEvent({ info: 'While unknown' });
    misp.addAttribute(held1, { type: 'ip-dst', value: '8.8.8.8' });
    misp.addAttribute(held1, { type: 'ip-dst', value: '198.51.100.3' });
    misp.publish(held1);
    await service!.waitForLog((l) => l.msg === 'cannot check MISP warninglists; holding MISP items until MISP answers', 30_000);
    await sleep(2000);
    expect(byValue().has('198.51.100.3'), 'held while the warninglist is unknown').to.equal(false);
    misp.warninglistDown = false;
    await waitFor(() => byValue().has('198.51.100.3'), 'the held item goes on once MISP answers', 60_000);

    // A domain|ip with a warninglisted part stays home whole, as MISP's enforceWarninglist has it.
    for (const v of ['8.8.4.4', '1.1.1.1', '9.9.9.9', '8.8.8.8', 'mixed.example']) expect(everSent(v), `${v} was sent to Defender`).to.equal(false);
    expect([...byValue().keys()].sort()).to.deep.equal(['198.51.100.1', '198.51.100.3']);
  });

  it('an attribute added to a published event waits for the next publish under published_only', async () => {
    await open();
    start();
    await connected();
    await synced();
    const ev = misp.createEvent({ info: 'Published campaign', tags: ['tlp:green'] });
    misp.addAttribute(ev, { type: 'domain', value: 'first.example' });
    misp.publish(ev);
    await waitFor(() => byValue().has('first.example'), 'the first publish');
    // MISP publishes the addition while the event still says published, then unpublishes it.
    misp.addAttribute(ev, { type: 'domain', value: 'added-later.example' });
    const announced = misp.published.filter((m) => m.topic === 'misp_json_attribute' && m.payload.includes('added-later.example'));
    expect(JSON.parse(announced[0]!.payload).Event.published, 'the simulator announces it as MISP does').to.equal(true);
    // Heartbeats (500 ms) after it trigger the idle catch-up too: neither path may push it.
    const addedAt = Date.now();
    await service!.waitForLog((l) => l.msg === 'MISP catch-up done' && Date.parse(String(l['time'])) > addedAt, 30_000).catch(() => undefined);
    await sleep(3000);
    expect(everSent('added-later.example'), 'pushed before the event was published again').to.equal(false);
    misp.publish(ev);
    await waitFor(() => byValue().has('added-later.example'), 'the next publish brings it');
  });

  it('a restarted publisher\'s backlog is not lost: the feed is back within a second, and hard deletes missed on ZeroMQ do not wait for the full sync', async () => {
    await open();
    const ev = misp.createEvent({ info: 'Restarts' });
    const doomed = misp.addAttribute(ev, { type: 'domain', value: 'doomed.example' });
    const missed = misp.addAttribute(ev, { type: 'domain', value: 'missed-delete.example' });
    misp.addAttribute(ev, { type: 'domain', value: 'kept.example' });
    misp.publish(ev);
    start();
    await connected();
    await waitFor(() => byValue().size === 3, 'three indicators');

    // mispzmq.py restarts: MISP queues in Redis meanwhile and flushes ~1 s after binding again.
    await misp.stopZmq();
    await sleep(8000); // long enough for a doubling reconnect backoff to be seconds apart
    misp.hardDeleteAttribute(doomed.uuid);
    const ev2 = misp.createEvent({ info: 'During restart' });
    misp.addAttribute(ev2, { type: 'domain', value: 'during-restart.example' });
    misp.publish(ev2);
    const reconnects = service!.lines.filter((l) => l.msg === 'ZeroMQ feed connected').length;
    const boundAt = Date.now();
    await misp.startZmq();
    await waitFor(() => service!.lines.filter((l) => l.msg === 'ZeroMQ feed connected').length > reconnects, 'reconnected', 10_000);
    const back = Date.parse(String(service!.lines.filter((l) => l.msg === 'ZeroMQ feed connected').at(-1)!['time'])) - boundAt;
    expect(back, 'ms from the publisher binding to the feed being connected').to.be.below(1000);
    await waitFor(() => misp.backlog === 0, 'the simulator flushed its backlog');
    // The flushed hard delete arrives over ZeroMQ (the sweep would also find it).
    await waitFor(() => !byValue().has('doomed.example') && byValue().has('during-restart.example'), 'the backlog applied', 20_000);

    // The service itself was away for a hard delete: ZeroMQ cannot replay it, the reconnect sweep finds it
    // (the full sync is a day away: MISP_FULL_SYNC_INTERVAL default).
    await service!.stop();
    misp.hardDeleteAttribute(missed.uuid);
    start();
    await connected();
    await waitFor(() => !byValue().has('missed-delete.example'), 'the sweep withdrew the hard delete', 30_000);
    expect(service!.lines.some((l) => l.msg === 'MISP full done'), 'no full sync ran').to.equal(false);
    expect([...byValue().keys()].sort()).to.deep.equal(['during-restart.example', 'kept.example']);
  });

  it('a ZeroMQ burst through a small ingest queue loses nothing, with MISP REST down so that no catch-up can repair', async () => {
    // Paced as one mispzmq.py loop on MISP's own host could send; unpaced, the simulator's sends
    // compete for this machine's CPU with the service and overflow the publisher's HWM (1,000) on
    // the publisher's side, which no subscriber can prevent (see bench/misp.ts for the unpaced burst).
    await open({ rateLimits: false, mispSendRate: 1500 });
    // A 50-item ingest queue fills at once: the feed must wait for it, not drop.
    start({ PIPELINE_QUEUE_SIZE: '50', MISP_ENFORCE_WARNINGLIST: 'false' });
    await connected();
    await synced();
    misp.setRestDown(true);
    const values: string[] = [];
    for (let e = 0; e < 100; e++) {
      const ev = misp.createEvent({ info: `Burst ${e}` });
      for (let i = 0; i < 20; i++) {
        const value = `b${e}-${i}.burst.example`;
        values.push(value);
        misp.addAttribute(ev, { type: 'domain', value });
      }
      misp.publish(ev);
    }
    // 2,200 messages (event add, 20 attribute adds, publish) queued to the publisher at once.
    await waitFor(() => held().length === values.length, `all ${values.length} attributes in Defender`, 120_000).catch((e: Error) => { throw new Error(`${e.message}: ${held().length} held`); });
    expect([...byValue().keys()].sort()).to.deep.equal(values.sort());
  });

  it('seed 001 options: a single filter mapping, expiry from the attribute\'s timestamp, 99999 days cut with a warning, severity_override, flatten_attributes off', async () => {
    await open();
    const realClock = misp.data.clock;
    misp.data.clock = () => realClock() - 10 * 86_400; // attributes changed ten days ago
    const ev = misp.createEvent({ info: 'Seed 001', tags: ['workflow:state="complete"'], threat_level_id: '1' });
    misp.addAttribute(ev, { type: 'ip-dst', value: '198.51.100.40' });
    misp.addAttribute(ev, { type: 'sha256', value: 'ab'.repeat(32) });
    misp.addObject(ev, 'file', [{ type: 'md5', value: 'cd'.repeat(16) }]);
    const other = misp.createEvent({ info: 'Not complete' });
    misp.addAttribute(other, { type: 'ip-dst', value: '198.51.100.41' });
    misp.data.clock = realClock; // published now (the filter's publish_timestamp 2d)
    misp.publish(ev);
    misp.publish(other);
    start({
      // MISP2Defender's misp_event_filters as it is written in config.py (one mapping).
      MISP_EVENT_FILTERS: '{"published": true, "tags": ["workflow:state=\\"complete\\""], "enforceWarninglist": true, "publish_timestamp": "2d", "limit": 100}',
      MISP_EXPIRE_DAYS_BY_TYPE: '{"ipv4": 90, "sha256": 99999, "md5": 99999}',
      MISP_SEVERITY_OVERRIDE: 'Low',
      MISP_FLATTEN_ATTRIBUTES: 'false',
      MISP_LOG_EVENTS: 'true',
    });
    await waitFor(() => byValue().size === 2, 'two indicators');
    const v = byValue();
    expect([...v.keys()].sort()).to.deep.equal(['198.51.100.40', 'ab'.repeat(32)]);
    // valid_from: 90 days from the attribute's timestamp ten days ago → 80 from now.
    const inDays = (i: Indicator) => (Date.parse(i.expirationTime) - Date.now()) / DAY;
    expect(inDays(v.get('198.51.100.40')!)).to.be.within(79.9, 80.1);
    expect(inDays(v.get('ab'.repeat(32))!)).to.be.within(36489.9, 36490.1);
    expect(v.get('198.51.100.40')!.severity, 'severity_override beats threat level 1').to.equal('Low');
    expect(service!.lines.some((l) => l.level === 'warn' && String(l.msg).includes('misp.expire_days_by_type.sha256 = 99999 days is cut to 36500'))).to.equal(true);
    expect(service!.lines.some((l) => l.msg === 'MISP event read' && l['eventId'] === ev && l['info'] === 'Seed 001')).to.equal(true);
  });

  it('MISP → Sentinel: rules and course-of-action tags decide the action, and MISP\'s expiry is the valid_until', async () => {
    await open({ sentinel: true });
    const ev = misp.createEvent({ info: 'To Sentinel', tags: ['tlp:green'] });
    misp.addAttribute(ev, { type: 'domain', value: 'blocked.sentinel.example', tags: ['course-of-action:active="deny"'] });
    misp.addAttribute(ev, { type: 'domain', value: 'audited.sentinel.example', tags: ['course-of-action:passive="detect"'] });
    misp.addAttribute(ev, { type: 'url', value: 'http://ruled.sentinel.example/x', tags: ['apt:x'] });
    misp.publish(ev);
    start({ MISP_TARGETS: 'sentinel', MISP_RULES: '[{"tag": "apt:x", "action": "Block"}]', MISP_EXPIRE_DAYS_BY_TYPE: '{"domain": 200, "url": 400}',
      SENTINEL_DAYS_TO_EXPIRE: '30', GUARD_MAX_TLP: 'misp=amber' });
    type Stix = { pattern: string; labels: string[]; valid_until: string };
    const stix = () => lab.sentinel!.indicators() as Stix[];
    await waitFor(() => stix().length === 3, 'three STIX indicators');
    const of = (v: string) => stix().find((i) => i.pattern.includes(v))!;
    expect(of('blocked.sentinel.example').labels).to.include('action:block');
    expect(of('audited.sentinel.example').labels).to.include('action:alert');
    expect(of('ruled.sentinel.example').labels).to.include('action:block');
    // MISP's expiry (domain 200, url 400 days), not the sink's 30.
    const inDays = (i: Stix) => (Date.parse(i.valid_until) - Date.now()) / DAY;
    expect(inDays(of('blocked.sentinel.example'))).to.be.within(199.9, 200.1);
    expect(inDays(of('ruled.sentinel.example'))).to.be.within(399.9, 400.1);
  });
});
