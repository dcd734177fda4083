// Fault suite, MISP → Defender: runs of attribute adds, publishes, edits and deletes under one kind
// of fault each; every run ends with Defender compared to the expected state (0 lost,
// 0 duplicated, 0 stale, 0 extra). Seeds are fixed so a failure repeats; FAULT_SEED changes them.
import { expect } from 'chai';
import { faultPoints, killAt, printReports, runScenario } from './harness.js';
import { MispDefenderFlow } from './misp-defender-flow.js';

const EVENTS = Number(process.env['FAULT_MISP_EVENTS'] ?? 10_000);
const SEED = Number(process.env['FAULT_SEED'] ?? 20261203);

describe('fault suite: MISP → Defender', function () {
  this.timeout(600_000);
  let flow: MispDefenderFlow;
  after(() => printReports());
  afterEach(async () => { await flow?.stop(); });

  const startFlow = async (seed: number) => {
    flow = new MispDefenderFlow(seed, EVENTS);
    await flow.start();
    return flow;
  };

  it('kill -9 at random points of the run', async () => {
    await startFlow(SEED + 1);
    const kill = killAt(faultPoints(SEED + 1, EVENTS, 4));
    await runScenario(flow, { name: 'kill -9 ×4', events: EVENTS, seed: SEED + 1, before: kill.before });
    expect(kill.kills()).to.equal(4);
  });

  it('ZeroMQ publisher restarts', async () => {
    await startFlow(SEED + 2);
    const at = [...faultPoints(SEED + 2, EVENTS, 3)].sort((a, b) => a - b);
    let awayUntil = -1;
    await runScenario(flow, {
      // mispzmq restarted and Redis lost its backlog too (the harshest case; a plain restart
      // flushes the backlog, see test/e2e/misp-fidelity): what MISP published meanwhile never
      // reaches any subscriber, and only REST repairs it.
      name: 'ZeroMQ publisher away ×3', events: EVENTS, seed: SEED + 2,
      before: async (i) => {
        if (at.includes(i)) {
          await flow.misp.stopZmq();
          awayUntil = i + Math.floor(EVENTS / 20);
        } else if (i === awayUntil) {
          flow.misp.dropBacklog();
          await flow.misp.startZmq();
          awayUntil = -1;
        }
      },
      afterEmit: async () => { if (awayUntil !== -1) { flow.misp.dropBacklog(); await flow.misp.startZmq(); } },
    });
    const lostWhileAway = flow.misp.published.filter((m) => !m.delivered).length;
    expect(lostWhileAway, 'messages published while the feed was away').to.be.greaterThan(0);
  });

  it('MISP REST failing while Defender is down', async () => {
    await startFlow(SEED + 3);
    let defenderDownAt = 0;
    await runScenario(flow, {
      // Catch-ups fail for a while (MISP behind a failing proxy), then Defender goes down for
      // 10 simulated minutes (time scale 60): the work waits, then converges.
      name: 'MISP REST 500s, then Defender down 10 simulated minutes', events: EVENTS, seed: SEED + 3,
      before: (i) => {
        if (i === Math.floor(EVENTS * 0.2)) {
          flow.misp.setRestDown(true);
          setTimeout(() => flow.misp.setRestDown(false), 8_000).unref();
        }
        if (i === Math.floor(EVENTS * 0.5)) { flow.lab.defender.setDown(true); defenderDownAt = Date.now(); }
      },
      afterEmit: async () => {
        await new Promise((r) => setTimeout(r, Math.max(0, defenderDownAt + 10_000 - Date.now())));
        flow.lab.defender.setDown(false);
        flow.misp.setRestDown(false);
      },
    });
    expect(flow.misp.requests.filter((r) => r.status === 500).length, 'catch-ups hit the failing REST').to.be.greaterThan(0);
    expect(flow.lab.defender.requestLog.filter((e) => e.fault === 'down').length, 'deliveries hit the Defender outage').to.be.greaterThan(0);
  });
});
