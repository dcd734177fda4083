// The MISP → Defender flow for the fault suite: analysts add attributes to events and publish them,
// then edit, soft-delete and hard-delete some; Defender (simulator) must end holding each live
// attribute's value once, titled after its event, and none of the removed ones.
import type { Interruption } from '../../sim/send-log.js';
import { Lab } from '../../sim/lab.js';
import type { MispSimulator } from '../../sim/misp/server.js';
import { defenderHeld, defenderRepeats, defenderWrites, diagnoseStore } from './defender-sink.js';
import { rng, type FaultFlow } from './harness.js';

const ATTRIBUTES_PER_EVENT = 50;
/** Edited events are published in rounds, as analysts do, not after every change. */
const PUBLISH_EVERY = 25;

interface LiveAttribute { uuid: string; eventId: string; value: string }

export class MispDefenderFlow implements FaultFlow {
  readonly name = 'misp -> defender';
  readonly lab: Lab;
  private readonly live: LiveAttribute[] = [];
  private readonly published = new Set<string>();
  /** Values a publish re-emitted after an earlier one (see publish). */
  private readonly reemitted = new Set<string>();
  private readonly want = new Map<string, string>();
  private readonly titles = new Map<string, string>();
  private readonly unpublished = new Set<string>();
  private readonly random: () => number;
  private currentEvent: string | null = null;
  private inCurrent = 0;
  private valueCounter = 0;

  constructor(seed: number, private readonly total: number) {
    this.lab = new Lab({ misp: true, mispHeartbeatMs: 500, timeScale: 60 });
    this.random = rng(seed);
  }

  get misp(): MispSimulator { return this.lab.misp!; }

  async start(): Promise<void> { await this.lab.start(); }
  async stop(): Promise<void> { await this.lab.stop(); }

  env(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
    return this.lab.env({
      OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', CONNECTOR_LOG_LEVEL: 'info',
      MISP_CATCHUP_INTERVAL: '10',
      // A hard delete published while the service or the feed is away is invisible to incremental
      // REST; only the full pass withdraws it. Production default: daily; here within the run.
      MISP_FULL_SYNC_INTERVAL: '20',
      // The withdrawal breaker stays on. The run withdraws up to ~44% of what it sent within minutes
      // (after 60% of events, 45% are edits — old value out, new in — and 45% deletes), above the 20%
      // default, which rightly holds that (doc/guard.md); 60% still holds a mistaken mass withdrawal
      // and shows that a Defender down from the start and retries add no removals of their own.
      GUARD_WITHDRAWAL_BREAKER_PERCENT: '60',
      ...overrides,
    });
  }

  /** The first 60 % of a run mostly adds; then edits, soft and hard deletes of random live attributes. */
  emit(i: number): void {
    const phase = i / this.total;
    const r = this.random();
    if (this.live.length < 10 || phase < 0.6 || r < 0.1) this.add();
    else {
      const at = Math.floor(this.random() * this.live.length);
      const entry = this.live[at]!;
      const what = this.random();
      if (what < 0.5) {
        const value = this.nextValue();
        this.misp.editAttribute(entry.uuid, { value });
        this.want.delete(entry.value);
        entry.value = value;
        this.want.set(value, this.titles.get(entry.eventId)!);
        this.unpublished.add(entry.eventId);
      } else {
        if (what < 0.75) {
          this.misp.softDeleteAttribute(entry.uuid);
          this.unpublished.add(entry.eventId);
        } else {
          this.misp.hardDeleteAttribute(entry.uuid);
        }
        this.live.splice(at, 1);
        this.want.delete(entry.value);
      }
    }
    // The last event publishes whatever is still unpublished, so the expected end state is MISP's.
    if (i % PUBLISH_EVERY === PUBLISH_EVERY - 1 || i === this.total - 1) this.publishPending();
  }

  private add(): void {
    if (!this.currentEvent || this.inCurrent >= ATTRIBUTES_PER_EVENT) {
      if (this.currentEvent) this.publish(this.currentEvent);
      const title = `Fault campaign ${this.titles.size + 1}`;
      this.currentEvent = this.misp.createEvent({ info: title, tags: ['tlp:green'] });
      this.titles.set(this.currentEvent, title);
      this.inCurrent = 0;
    }
    const value = this.nextValue();
    const a = this.misp.addAttribute(this.currentEvent, { type: 'domain', value });
    this.inCurrent++;
    this.live.push({ uuid: a.uuid, eventId: this.currentEvent, value });
    this.want.set(value, this.titles.get(this.currentEvent)!);
    this.unpublished.add(this.currentEvent);
  }

  private publishPending(): void {
    for (const eventId of [...this.unpublished]) this.publish(eventId);
  }

  private publish(eventId: string): void {
    // A publish re-emits every attribute of the event: one published before may be sent again unchanged (not a duplicate).
    for (const a of this.live) {
      if (a.eventId !== eventId) continue;
      const value = a.value.toLowerCase();
      if (this.published.has(value)) this.reemitted.add(value);
      this.published.add(value);
    }
    this.misp.publish(eventId);
    this.unpublished.delete(eventId);
  }

  private nextValue(): string {
    return `f${(this.valueCounter++).toString(36)}.misp-fault.example`;
  }

  expected(): Map<string, string> { return new Map(this.want); }

  sinkState(): Map<string, string[]> { return defenderHeld(this.lab.defender, 'title'); }

  sinkWrites(): number { return defenderWrites(this.lab.defender); }

  repeatedSends(interruptions: readonly Interruption[]): number { return defenderRepeats(this.lab.defender, interruptions, this.reemitted); }

  diagnose(keys: string[], env: NodeJS.ProcessEnv): string {
    return diagnoseStore(keys, env, (value) => `want ${this.want.get(value) ?? 'absent'}; defender ${JSON.stringify(this.sinkState().get(value) ?? [])}`);
  }
}
