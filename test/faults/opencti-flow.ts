// The OpenCTI → Defender (or → Sentinel) flow for the fault suite: indicators are created, rescored
// and deleted in OpenCTI (simulator); the sink must end holding each live one once, with what its
// last score maps to (Defender: severity; Sentinel: confidence), and none of the deleted ones.
import type { Interruption } from '../../sim/send-log.js';
import { Lab, type LabOptions } from '../../sim/lab.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';
import type { StixObject } from '../../sim/opencti/stix.js';
import { defenderHeld, defenderRepeats, defenderWrites, diagnoseStore } from './defender-sink.js';
import { rng, type FaultFlow } from './harness.js';
import { sentinelHeld, sentinelRepeats, sentinelWrites } from './sentinel-sink.js';

// One score per severity band of the seed connector (1–29 Low, 30–59 Medium, ≥60 High), and the
// Defender severity each must end as: the oracle is this table, not the service's mapper.
const SEVERITY_OF_SCORE: Record<number, string> = { 15: 'Low', 45: 'Medium', 85: 'High' };
const SCORES = Object.keys(SEVERITY_OF_SCORE).map(Number);

function withScore(ind: StixObject, score: number): StixObject {
  const ext = structuredClone((ind as unknown as { extensions: Record<string, Record<string, unknown>> }).extensions);
  for (const e of Object.values(ext)) if ('score' in e) e['score'] = score;
  return { ...ind, extensions: ext } as StixObject;
}

export class OpenCtiFlow implements FaultFlow {
  readonly name: string;
  readonly lab: Lab;
  private readonly live: { ind: StixObject; value: string }[] = [];
  private readonly want = new Map<string, number>();
  private readonly random: () => number;
  private ipCounter = 0;
  /**
   * Values rescored to a score they had before (right before, or earlier: 85 → 45 → 85): the source
   * asserts that state again, and the service may rightly send it again unchanged (the middle state
   * can be replaced in the outbox before it is sent). Not a duplicate.
   */
  private readonly reemitted = new Set<string>();
  /** Every score each value has had. */
  private readonly scoresOf = new Map<string, Set<number>>();

  constructor(seed: number, private readonly total: number, labOptions: LabOptions = {}, private readonly shares = { create: 0.6, update: 0.25 },
    private readonly sink: 'defender' | 'sentinel' = 'defender') {
    this.name = `opencti -> ${sink}`;
    this.lab = new Lab({ heartbeatMs: 500, timeScale: 60, sentinel: sink === 'sentinel', ...labOptions });
    this.random = rng(seed);
  }

  async start(): Promise<void> { await this.lab.start(); }
  async stop(): Promise<void> { await this.lab.stop(); }

  env(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
    // The withdrawal breaker stays on. The run itself deletes ~22% of what it sent within minutes
    // (the last 15% of events are 90% deletes), above the 20% default, which rightly holds that
    // (doc/guard.md); 35% still holds a mistaken mass withdrawal and shows that outages, restarts
    // and retries add no removals of their own (before, each retried removal counted again).
    return this.lab.env({ CONNECTOR_HEARTBEAT_TIMEOUT: '10', CONNECTOR_LOG_LEVEL: 'info', GUARD_WITHDRAWAL_BREAKER_PERCENT: '35', ...overrides });
  }

  /** The first 60 % of a run mostly creates; then updates and deletes of random live indicators. */
  emit(i: number): void {
    const r = this.random();
    const phase = i / this.total;
    const create = this.live.length < 10 || phase < this.shares.create || r < 0.1;
    if (create) {
      const n = this.ipCounter++;
      const value = `10.${100 + Math.floor(n / 62500)}.${Math.floor(n / 250) % 250}.${n % 250 + 1}`;
      const score = SCORES[Math.floor(this.random() * SCORES.length)]!;
      // Valid for a year: the Defender simulator's clock runs ×60, and an indicator that expires
      // during a run is rightly gone from Defender (the fixtures' random validity would make that happen).
      const ind = makeIndicator({ pattern: `[ipv4-addr:value = '${value}']`, score, validFrom: new Date().toISOString(),
        validUntil: new Date(Date.now() + 365 * 86_400_000).toISOString() });
      this.lab.opencti.create(ind);
      this.live.push({ ind, value });
      this.want.set(value, score);
      this.scoresOf.set(value, new Set([score]));
      return;
    }
    const at = Math.floor(this.random() * this.live.length);
    const entry = this.live[at]!;
    if (phase < this.shares.create + this.shares.update) {
      const score = SCORES[Math.floor(this.random() * SCORES.length)]!;
      const had = this.scoresOf.get(entry.value)!;
      if (had.has(score)) this.reemitted.add(entry.value);
      had.add(score);
      entry.ind = withScore(entry.ind, score);
      this.lab.opencti.update(entry.ind);
      this.want.set(entry.value, score);
    } else {
      this.lab.opencti.delete(entry.ind.id);
      this.live.splice(at, 1);
      this.want.delete(entry.value);
    }
  }

  expected(): Map<string, string> {
    const state = (score: number) => this.sink === 'defender' ? SEVERITY_OF_SCORE[score]! : String(score);
    return new Map([...this.want].map(([value, score]) => [value, state(score)]));
  }

  sinkState(): Map<string, string[]> {
    return this.sink === 'defender' ? defenderHeld(this.lab.defender, 'severity') : sentinelHeld(this.lab.sentinel!);
  }

  sinkWrites(): number {
    return this.sink === 'defender' ? defenderWrites(this.lab.defender) : sentinelWrites(this.lab.sentinel!);
  }

  repeatedSends(interruptions: readonly Interruption[]): number {
    return this.sink === 'defender' ? defenderRepeats(this.lab.defender, interruptions, this.reemitted)
      : sentinelRepeats(this.lab.sentinel!, interruptions, this.reemitted);
  }

  diagnose(keys: string[], env: NodeJS.ProcessEnv): string {
    return diagnoseStore(keys, env, (value) => `want ${this.expected().get(value) ?? 'absent'}; ${this.sink} ${JSON.stringify(this.sinkState().get(value) ?? [])}`);
  }
}
