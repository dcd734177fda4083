// Fault suite, Defender alerts → DFIR-IRIS: runs of alerts raised and changed in Defender (polled
// every second) under one kind of fault each; every run ends with IRIS compared to the expected
// state (0 lost, 0 duplicated, 0 stale, 0 extra). Seeds are fixed so a failure repeats;
// FAULT_SEED changes them all, FAULT_IRIS_EVENTS the size of the runs.
import { expect } from 'chai';
import { faultPoints, killAt, printReports, runScenario } from './harness.js';
import { DefenderIrisFlow } from './defender-iris-flow.js';

const EVENTS = Number(process.env['FAULT_IRIS_EVENTS'] ?? 1500);
const SEED = Number(process.env['FAULT_SEED'] ?? 20261203);

describe('fault suite: Defender alerts → IRIS', function () {
  this.timeout(600_000);
  let flow: DefenderIrisFlow;
  after(() => printReports());
  afterEach(async () => { await flow?.stop(); });

  const startFlow = async (seed: number) => {
    flow = new DefenderIrisFlow(seed, EVENTS);
    await flow.start();
    return flow;
  };
  const writesTo = (path: RegExp, fault: string | null) =>
    flow.iris.requestLog.filter((e) => e.method === 'POST' && path.test(e.path) && e.fault === fault).length;

  it('kill -9 at random points of the run', async () => {
    await startFlow(SEED + 1);
    const kill = killAt(faultPoints(SEED + 1, EVENTS, 4));
    await runScenario(flow, { name: 'kill -9 ×4', events: EVENTS, seed: SEED + 1, convergeMs: 90_000, before: kill.before });
    expect(kill.kills()).to.equal(4);
  });

  it('an IRIS outage in the middle of the run', async () => {
    await startFlow(SEED + 2);
    let downAt = 0;
    await runScenario(flow, {
      name: 'IRIS down 10 s', events: EVENTS, seed: SEED + 2, convergeMs: 90_000,
      before: (i) => {
        if (i === Math.floor(EVENTS * 0.3)) { flow.iris.setDown(true); downAt = Date.now(); }
      },
      afterEmit: async () => {
        // Counted from when it went down, in real seconds (IRIS has no simulated clock).
        await new Promise((r) => setTimeout(r, Math.max(0, downAt + 10_000 - Date.now())));
        flow.iris.setDown(false);
      },
    });
    // The service did call during the outage (and was refused), rather than the outage missing it.
    expect(flow.iris.requestLog.filter((e) => e.fault === 'down').length).to.be.greaterThan(0);
  });

  it('lost create answers and a 5xx burst', async () => {
    await startFlow(SEED + 3);
    const drops = [0.15, 0.3, 0.45, 0.6, 0.75].map((f) => Math.floor(EVENTS * f));
    await runScenario(flow, {
      // IRIS applies the create and the connection closes unanswered; later every call gets a 503 for a while.
      name: 'create answers lost ×5, 503 burst ×25', events: EVENTS, seed: SEED + 3, convergeMs: 90_000,
      before: (i) => {
        if (drops.includes(i)) flow.iris.dropNextResponse(1, /^\/alerts\/add$/);
        if (i === Math.floor(EVENTS * 0.5)) flow.iris.failNext(25, 503);
      },
    });
    expect(writesTo(/^\/alerts\/add$/, 'dropped')).to.equal(5);
    expect(flow.iris.requestLog.filter((e) => e.fault === 'injected' && e.status === 503).length).to.equal(25);
  });
});
