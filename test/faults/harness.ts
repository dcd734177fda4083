// Fault-suite harness: a flow emits a deterministic stream of source events and knows the state its
// sink must end in; a scenario injects faults while the built service runs as a child process; the
// run ends by comparing the sink's state with the expected one and reporting the counts.
// Other flows (MISP, IRIS, CAR) add a `FaultFlow` and reuse `runScenario`.
import { expect } from 'chai';
import type { Interruption } from '../../sim/send-log.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { rng } from '../support/random.js';

export { rng } from '../support/random.js';

export interface FaultFlow {
  readonly name: string;
  /** Start the simulators. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Environment of `threatbridge run` against the simulators. */
  env(overrides?: Record<string, string>): NodeJS.ProcessEnv;
  /** Publish event `i` of the run at the source, updating the expected sink state. */
  emit(i: number): void;
  /** key → the state the sink must hold; a deleted key is absent. */
  expected(): Map<string, string>;
  /** key → the states the sink holds for it (more than one entry: a duplicate). */
  sinkState(): Map<string, string[]>;
  /** Calls that wrote to the sink, for the report (e.g. items sent). */
  sinkWrites(): number;
  /**
   * Items sent again unchanged after their answer reached the service (see sim/send-log.ts), for a
   * sink whose store would hide them (an upsert by key). `interruptions`: when the service could not
   * record answers (killed, or its disk full).
   */
  repeatedSends?(interruptions: readonly Interruption[]): number;
  /** What the state store knows about keys that did not converge (printed when a run fails). */
  diagnose?(keys: string[], env: NodeJS.ProcessEnv): string;
  /**
   * Milliseconds to wait after event `i` is emitted. A polled source needs its events spread over
   * several polls; without this hook a run pauses 20 ms every 250 events (a streamed source).
   */
  pauseAfter?(i: number): number;
}

export interface FaultReport {
  scenario: string;
  events: number;
  expected: number;
  held: number;
  lost: number;
  duplicated: number;
  stale: number;
  extra: number;
  sinkWrites: number;
  seconds: number;
}

export function compareState(expected: Map<string, string>, held: Map<string, string[]>): Omit<FaultReport, 'scenario' | 'events' | 'sinkWrites' | 'seconds'> {
  let lost = 0; let duplicated = 0; let stale = 0; let extra = 0; let count = 0;
  for (const [key, want] of expected) {
    const got = held.get(key) ?? [];
    if (got.length === 0) lost++;
    else if (!got.includes(want)) stale++;
  }
  for (const [key, got] of held) {
    count += got.length;
    if (got.length > 1) duplicated += got.length - 1;
    if (!expected.has(key)) extra++;
  }
  return { expected: expected.size, held: count, lost, duplicated, stale, extra };
}

export interface ScenarioContext {
  flow: FaultFlow;
  service: ServiceProcess;
  /** When the service could not record answers: each kill -9 (added by crashAndRestart), or a period a scenario adds. */
  interruptions: Interruption[];
  /** kill -9 the service and start it again with the same environment. */
  crashAndRestart(): Promise<void>;
  random: () => number;
}

export interface Scenario {
  name: string;
  events: number;
  seed: number;
  env?: Record<string, string>;
  /** Called before event `i` is emitted; inject faults here. */
  before?(i: number, ctx: ScenarioContext): Promise<void> | void;
  /** Called once every event is emitted (e.g. to end an outage). */
  afterEmit?(ctx: ScenarioContext): Promise<void> | void;
  /** How long the sink may take to converge. */
  convergeMs?: number;
  /** Let a scenario accept a service that exits (e.g. on purpose); default: it must keep running. */
  allowExit?: boolean;
  /** Fail on any unchanged re-send instead of tolerating 0.25 % of writes (a scenario whose cause is fixed). */
  noRepeats?: boolean;
}

export const reports: FaultReport[] = [];

/** How long a converged run is watched before it is judged, so a service that exits right after counts. */
const SETTLE_MS = 2_000;

/** Runs one scenario against a started flow and asserts 0 lost, 0 duplicated, 0 stale, 0 extra. */
export async function runScenario(flow: FaultFlow, scenario: Scenario): Promise<FaultReport> {
  const started = Date.now();
  const env = flow.env(scenario.env ?? {});
  const ctx: ScenarioContext = {
    flow,
    service: new ServiceProcess(env),
    interruptions: [],
    random: rng(scenario.seed),
    async crashAndRestart() {
      // From the signal until the process is gone: an answer the sink writes then never reaches the
      // service, even though the socket still took it (the simulators run in this process and see the
      // close only later), so its re-send after the restart is the at-least-once window, not a repeat.
      const from = Date.now();
      await ctx.service.kill9();
      ctx.interruptions.push({ from, to: Date.now() });
      ctx.service = new ServiceProcess(env);
      ctx.service.start();
    },
  };
  ctx.service.start();
  try {
    await ctx.service.waitForLog((l) => String(l.msg).startsWith('ThreatBridge started'), 60_000);
    for (let i = 0; i < scenario.events; i++) {
      await scenario.before?.(i, ctx);
      flow.emit(i);
      // A live stream, not one burst: let the simulators and the service move between chunks.
      const pause = flow.pauseAfter ? flow.pauseAfter(i) : i % 250 === 249 ? 20 : 0;
      if (pause > 0) await new Promise((r) => setTimeout(r, pause));
    }
    await scenario.afterEmit?.(ctx);
    const converged = () => {
      const c = compareState(flow.expected(), flow.sinkState());
      return c.lost + c.duplicated + c.stale + c.extra === 0;
    };
    const exited = () => !scenario.allowExit && ctx.service.exitCode !== null;
    // A run that does not converge in time is reported below with its counts; a service that exits is not
    // waited for (waitFor would retry until the deadline) and fails the run, converged or not.
    await waitFor(() => exited() || converged(), `${scenario.name}: the sink converges`, scenario.convergeMs ?? 240_000, 250)
      .catch(() => undefined);
    if (!exited()) await new Promise((r) => setTimeout(r, SETTLE_MS)); // a crash just after convergence counts too
    if (exited()) throw new Error(`service exited (${ctx.service.exitCode}): ${ctx.service.stderr.join('').slice(-1500)}`);
    const state = compareState(flow.expected(), flow.sinkState());
    const repeated = flow.repeatedSends?.(ctx.interruptions) ?? 0;
    // Unchanged re-sends, traced key by key against the flow's own event history (doc/testing.md):
    // - coalesced round trips: after a restart the stream replays a key's history (85 → 45 → 85 → 45),
    //   the middle state is replaced in the outbox before it is sent, and the final state goes out
    //   again. The source asserted it again: the OpenCTI flow now excuses any return to an earlier
    //   state, not only a direct re-emit;
    // - the repeats once blamed on the stream around a reconnect ("SSE disconnects", 0-13 per run)
    //   were a Defender row in flight whose body was made from its claim's newer state, then that
    //   newer row sent again; fixed (issue 12), and that scenario now allows none (`noRepeats`).
    // A tolerance stays for the others until each is shown clean: 0.25 % of items written, always
    // printed; every mutation of doc/testing.md sends hundreds to thousands again (~50 %).
    const tolerated = scenario.noRepeats ? 0 : Math.floor(flow.sinkWrites() / 400);
    if (repeated > 0) console.log(`      items sent again unchanged: ${repeated} (tolerated up to ${tolerated})`);
    const report: FaultReport = {
      scenario: `${flow.name}: ${scenario.name}`, events: scenario.events,
      ...state, duplicated: state.duplicated + (repeated > tolerated ? repeated : 0), sinkWrites: flow.sinkWrites(),
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    reports.push(report);
    console.log(`      ${report.scenario}: events ${report.events}, expected ${report.expected}, held ${report.held}, lost ${report.lost}, ` +
      `duplicated ${report.duplicated}, stale ${report.stale}, extra ${report.extra}, sink writes ${report.sinkWrites}, ${report.seconds} s`);
    if (report.lost + report.duplicated + report.stale + report.extra > 0) {
      const notable = ctx.service.lines.filter((l) => l.level === 'warn' || l.level === 'error' || l.level === 'fatal');
      console.log(`      service warnings and errors (last 15 of ${notable.length}):`);
      for (const l of notable.slice(-15)) console.log(`        ${JSON.stringify(l).slice(0, 400)}`);
      const held = flow.sinkState();
      const wrong = [...flow.expected()].filter(([k, v]) => !(held.get(k) ?? []).includes(v)).map(([k]) => k)
        .concat([...held.keys()].filter((k) => !flow.expected().has(k))).slice(0, 10);
      console.log(`      keys that did not converge: ${wrong.join(', ')}${repeated > 0 ? `; items sent again unchanged: ${repeated}` : ''}`);
      try {
        if (flow.diagnose) console.log(flow.diagnose(wrong, env));
      } catch (err) {
        console.log(`      (no diagnosis: ${(err as Error).message})`);
      }
    }
    expect({ lost: report.lost, duplicated: report.duplicated, stale: report.stale, extra: report.extra })
      .to.deep.equal({ lost: 0, duplicated: 0, stale: 0, extra: 0 });
    if (!scenario.allowExit) expect(await ctx.service.stop(), 'a clean exit on SIGTERM').to.equal(0);
    return report;
  } finally {
    await ctx.service.stop().catch(() => undefined);
  }
}

/** Print the reports gathered since the last call as one table (an `after` hook of each suite). */
export function printReports(): void {
  if (reports.length === 0) return;
  const printed = reports.splice(0);
  console.log('\n  fault suite summary');
  console.log('  scenario | events | expected | held | lost | duplicated | stale | extra | sink writes | seconds');
  for (const r of printed) {
    console.log(`  ${r.scenario} | ${r.events} | ${r.expected} | ${r.held} | ${r.lost} | ${r.duplicated} | ${r.stale} | ${r.extra} | ${r.sinkWrites} | ${r.seconds}`);
  }
}

/** `count` distinct event indexes over the middle 90 % of a run, the same for the same seed. */
export function faultPoints(seed: number, events: number, count: number): Set<number> {
  const random = rng(seed);
  const out = new Set<number>();
  while (out.size < Math.min(count, events)) out.add(Math.floor(events * (0.05 + 0.9 * random())));
  return out;
}

/** A `before` hook that kills -9 and restarts the service at each point, counting the kills. */
export function killAt(points: Set<number>, maxDelayMs = 400): { before: NonNullable<Scenario['before']>; kills: () => number } {
  let kills = 0;
  return {
    before: async (i, ctx) => {
      if (!points.has(i)) return;
      // A random moment while the service works on what is already out at the source.
      await new Promise((r) => setTimeout(r, Math.floor(ctx.random() * maxDelayMs)));
      await ctx.crashAndRestart();
      kills++;
    },
    kills: () => kills,
  };
}
