// Fault suite, Defender assets → CAR: a polled estate changing under one kind of fault per run;
// every run ends with CAR compared to what Defender shows (0 lost, 0 duplicated, 0 stale, 0 extra).
// Seeds are fixed so a failure repeats; FAULT_SEED changes them all, FAULT_CAR_EVENTS the run size.
import { expect } from 'chai';
import { faultPoints, killAt, printReports, runScenario } from './harness.js';
import { DefenderCarFlow } from './defender-car-flow.js';

const EVENTS = Number(process.env['FAULT_CAR_EVENTS'] ?? 1_200);
const SEED = Number(process.env['FAULT_SEED'] ?? 20261203);

describe('fault suite: Defender assets → CAR', function () {
  this.timeout(600_000);
  let flow: DefenderCarFlow;
  after(() => printReports());
  afterEach(async () => { await flow?.stop(); });

  // Deletes and disabled address, account and alert edges all happened, so the comparison covered them.
  const expectExercised = () => {
    const x = flow.exercised();
    console.log(`      exercised: ${JSON.stringify(x)}`);
    expect(x.assetDeletes, 'inactive machines deleted').to.be.greaterThan(0);
    for (const [type, n] of Object.entries(x.disabled)) expect(n, `${type} edges disabled`).to.be.greaterThan(0);
  };

  const startFlow = async (seed: number) => {
    flow = new DefenderCarFlow(seed, EVENTS);
    await flow.start();
    return flow;
  };

  it('kill -9 at random points of the run', async () => {
    await startFlow(SEED + 1);
    // A random moment inside a poll or a delivery.
    const kill = killAt(faultPoints(SEED + 1, EVENTS, 4), 1_000);
    await runScenario(flow, { name: 'kill -9 ×4', events: EVENTS, seed: SEED + 1, convergeMs: 60_000, before: kill.before });
    expect(kill.kills()).to.equal(4);
    expectExercised();
  });

  for (const mode of [503, 'reset'] as const) {
    it(`a CAR outage of minutes (${mode === 503 ? '503 answers' : 'connections reset'})`, async () => {
      const seed = SEED + (mode === 503 ? 2 : 3);
      await startFlow(seed);
      let downAt = 0;
      await runScenario(flow, {
        name: `CAR down 8 simulated minutes (${mode})`, events: EVENTS, seed, convergeMs: 90_000,
        before: (i) => {
          if (i === Math.floor(EVENTS * 0.3)) { flow.car.setDown(true, mode); downAt = Date.now(); }
          // 8 minutes at time scale 60 = 8 s real, while the estate keeps changing.
          if (downAt && Date.now() - downAt >= 8_000) flow.car.setDown(false);
        },
        afterEmit: async () => {
          await new Promise((r) => setTimeout(r, Math.max(0, downAt + 8_000 - Date.now())));
          flow.car.setDown(false);
        },
      });
      // The outage was seen: the service's calls failed while it lasted.
      const failed = mode === 503 ? flow.car.requestLog.filter((r) => r.status === 503).length
        : flow.car.requestLog.filter((r) => r.status === 0).length;
      expect(failed).to.be.greaterThan(0);
      expectExercised();
    });
  }

  it('CAR 5xx bursts and failed import jobs', async () => {
    await startFlow(SEED + 4);
    await runScenario(flow, {
      name: '5xx bursts ×4, failed import jobs ×4', events: EVENTS, seed: SEED + 4, convergeMs: 90_000,
      before: (i) => {
        const quarter = Math.floor(EVENTS / 4);
        if (i % quarter === 50) {
          flow.car.failNext(3, 503, 'POST /api/car/v2/imports');
          flow.car.failNext(2, 500, 'GET /api/car/v2/importstatus');
        }
        if (i % quarter === 150) flow.car.failNextJobs(1);
      },
    });
    expect(flow.car.requestLog.filter((r) => r.status === 503 || r.status === 500).length).to.equal(20);
    expect([...flow.car.jobs.values()].filter((j) => j.error).length).to.equal(4);
    console.log(`      dead letters: ${JSON.stringify(flow.deadLetters())}`);
    expectExercised();
  });
});
