// The Defender assets → CAR flow for the fault suite: a live estate in the Defender simulator
// (machines join, change address or logged-on user, turn inactive; alerts are raised and resolved)
// that the service polls; the CAR simulator must end holding one asset per current machine, with
// exactly the address, account and alert edges Defender shows active, and none of the expired ones.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { CarSimulator } from '../../sim/car/server.js';
import { assetData, type DefenderAssetData } from '../../sim/defender/asset-routes.js';
import { Lab } from '../../sim/lab.js';
import type { Interruption } from '../../sim/send-log.js';
import type { Machine } from '../../src/microsoft/defender/types.js';
import { rng, type FaultFlow } from './harness.js';

export const CAR_SOURCE = 'Microsoft-Windows-Defender-ATP';
const INACTIVE_DAYS = 15;
const TIME_SCALE = 60;
const CAR_KEY = 'car-fault-key';
const CAR_PASSWORD = 'car-fault-password';

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();
/**
 * What CAR must show for one machine, kept as the run changes the estate (the oracle: written from the
 * CAR mapping in the API facts and doc/defender-car.md, not from the service's snapshot functions):
 * the asset named after the DNS name, an edge to its one private address (no public one is set),
 * to the account of its logged-on user (`domain\name`, Defender's user id), to each open alert;
 * none once it is Inactive past the 15-day rule.
 */
interface MachineModel { name: string; ip: string; account: string; alerts: Set<string>; expired: boolean }

/** One comparable string per asset: its name and the targets of its active edges. */
const describe = (name: string, ips: string[], accounts: string[], alerts: string[]) =>
  JSON.stringify({ name, ip: sorted(ips), acc: sorted(accounts), alerts: sorted(alerts) });

export class DefenderCarFlow implements FaultFlow {
  readonly name = 'defender assets -> car';
  readonly lab: Lab;
  readonly car: CarSimulator;
  data!: DefenderAssetData;
  private readonly random: () => number;
  /** Machines that can still change (not turned inactive). */
  private readonly live: Machine[] = [];
  /** Machines that ever had an alert: kept active, so no alert edge can outlive its asset's delete. */
  private readonly alerted = new Set<string>();
  private readonly openAlerts: { id: string; machineId: string; raisedAt: number }[] = [];
  private readonly model = new Map<string, MachineModel>();
  private machineCounter = 0;
  private ipCounter = 0;
  private userCounter = 0;
  private alertCounter = 0;

  constructor(seed: number, private readonly total: number, private readonly spreadMs = 15_000) {
    this.lab = new Lab({ heartbeatMs: 500, timeScale: TIME_SCALE });
    this.car = new CarSimulator({ apiKey: CAR_KEY, password: CAR_PASSWORD, pollsBeforeComplete: 2 });
    this.random = rng(seed);
  }

  async start(): Promise<void> {
    await this.lab.start();
    await this.car.start();
    this.data = assetData(this.lab.defender);
    // Defender's quotas on the same simulated clock as the service's pacing.
    this.data.timeScale = TIME_SCALE;
  }

  async stop(): Promise<void> {
    await this.car.stop();
    await this.lab.stop();
  }

  env(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
    return this.lab.env({
      OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', CONNECTOR_LOG_LEVEL: 'info',
      CAR_URL: this.car.url, CAR_API_KEY: CAR_KEY, CAR_PASSWORD: CAR_PASSWORD,
      DEFENDER_ASSETS_INTERVAL: '1', DEFENDER_ASSETS_OVERLAP: '0', DEFENDER_ASSETS_INACTIVE_DAYS: String(INACTIVE_DAYS),
      ...overrides,
    });
  }

  /** The run's changes spread over `spreadMs`, so the service polls many times while they happen. */
  pauseAfter(i: number): number {
    const every = 10;
    return i % every === every - 1 ? Math.round(this.spreadMs / (this.total / every)) : 0;
  }

  private nextIp(): string {
    const n = this.ipCounter++;
    return `10.${20 + Math.floor(n / 62_500)}.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`;
  }

  private pick<T>(xs: T[]): [T, number] {
    const at = Math.floor(this.random() * xs.length);
    return [xs[at]!, at];
  }

  emit(i: number): void {
    const r = this.random();
    if (this.live.length < 20 || r < 0.3) return this.addMachine();
    const [m, at] = this.pick(this.live);
    if (r < 0.55) {
      // A new lease: same NIC, new address.
      const mac = m.ipAddresses?.[0]?.macAddress ?? null;
      const ip = this.nextIp();
      this.data.updateMachine(m.id, { ipAddresses: [{ ipAddress: ip, macAddress: mac, operationalStatus: 'Up' }] });
      this.model.get(m.id)!.ip = ip;
    } else if (r < 0.7) {
      const user = this.user();
      this.data.logonUsers.set(m.id, [user]);
      this.model.get(m.id)!.account = user.id;
      // The machine reports again, which is what makes the poller read its users.
      this.data.updateMachine(m.id, {});
    } else if (r < 0.8 && !this.alerted.has(m.id)) {
      // Gone for longer than the rule allows: the service must delete it from CAR.
      m.healthStatus = 'Inactive';
      m.lastSeen = new Date(Date.now() - (INACTIVE_DAYS + 1) * 86_400_000).toISOString();
      this.model.get(m.id)!.expired = true;
      this.live.splice(at, 1);
    } else if (r < 0.9 || !this.openAlerts.some((a) => a.raisedAt < i - 300)) {
      const id = `da63800000000${String(this.alertCounter++).padStart(7, '0')}_1`;
      this.data.setAlert({ id, machineId: m.id, title: `fault alert ${id}`, severity: 'High', status: 'New' });
      this.model.get(m.id)!.alerts.add(id);
      this.alerted.add(m.id);
      this.openAlerts.push({ id, machineId: m.id, raisedAt: i });
    } else {
      // Resolved a while after it was raised (a few seconds of the run), so CAR mostly has the edge to disable.
      const old = this.openAlerts.filter((a) => a.raisedAt < i - 300);
      const [a] = this.pick(old);
      const k = this.openAlerts.indexOf(a);
      this.data.setAlert({ id: a.id, machineId: a.machineId, status: 'Resolved' });
      this.model.get(a.machineId)!.alerts.delete(a.id);
      this.openAlerts.splice(k, 1);
    }
  }

  private user() {
    const n = (this.userCounter++).toString(36);
    return { id: `corp\\u${n}`, accountName: `u${n}`, accountDomain: 'corp', logonTypes: 'Interactive' };
  }

  private addMachine(): void {
    const n = this.machineCounter++;
    const name = `ws${n.toString(36)}.corp.example`;
    const ip = this.nextIp();
    const m = this.data.addMachine({
      computerDnsName: name,
      ipAddresses: [{ ipAddress: ip, macAddress: `0050${n.toString(16).padStart(8, '0')}`, operationalStatus: 'Up' }],
    });
    const user = this.user();
    this.data.logonUsers.set(m.id, [user]);
    this.model.set(m.id, { name, ip, account: user.id, alerts: new Set(), expired: false });
    this.live.push(m);
  }

  /** The model the run kept (see MachineModel). */
  expected(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [id, m] of this.model) if (!m.expired) out.set(id, describe(m.name, [m.ip], [m.account], [...m.alerts]));
    return out;
  }

  /** Keyed by machine id, so a second asset for one machine (`<id>:<hostname>`) counts as a duplicate. */
  sinkState(): Map<string, string[]> {
    const active = new Map<string, string[]>();
    for (const e of this.car.edges.values()) {
      if (!e.active || e.source !== CAR_SOURCE) continue;
      const k = `${e.type}|${e.from}`;
      active.set(k, [...(active.get(k) ?? []), e.to]);
    }
    const out = new Map<string, string[]>();
    for (const a of this.car.list('asset')) {
      if (a['source'] !== CAR_SOURCE) continue;
      const id = String(a['external_id']);
      const of = (type: string) => active.get(`${type}|${id}`) ?? [];
      const state = describe(String(a['name']), of('asset_ipaddress'), of('asset_account'), of('asset_vulnerability'));
      const machine = id.split(':')[0]!;
      out.set(machine, [...(out.get(machine) ?? []), state]);
    }
    return out;
  }

  /** What the run made CAR do beyond plain imports (a run that never did these proves little). */
  exercised(): { assetDeletes: number; disabled: Record<string, number> } {
    const disabled: Record<string, number> = { asset_ipaddress: 0, asset_account: 0, asset_vulnerability: 0 };
    for (const e of this.car.edges.values()) if (!e.active && e.type in disabled) disabled[e.type]!++;
    const assetDeletes = this.car.requestLog.filter((r) => r.method === 'DELETE' && r.path.endsWith('/asset') && r.status === 200).length;
    return { assetDeletes, disabled };
  }

  /** Nodes and edges CAR applied again from one import sent twice (its graph upserts and would hide them). */
  repeatedSends(interruptions: readonly Interruption[]): number {
    return this.car.sends.repeats({ interruptions }).length;
  }

  /** Accepted imports, edge PATCHes and deletes. */
  sinkWrites(): number {
    return this.car.requestLog.filter((r) => r.status >= 200 && r.status < 300 && r.method !== 'GET').length;
  }

  /** Operations the service gave up on (the state store's dead letters). */
  deadLetters(): string[] {
    const db = new Database(join(this.env()['STORE_DIR']!, 'threatbridge.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT key, reason FROM dead_letters').all() as { key: string; reason: string }[]).map((d) => `${d.key}: ${d.reason}`);
    } finally {
      db.close();
    }
  }

  diagnose(keys: string[], env: NodeJS.ProcessEnv): string {
    const db = new Database(join(env['STORE_DIR']!, 'threatbridge.db'), { readonly: true, fileMustExist: true });
    try {
      const want = this.expected();
      const held = this.sinkState();
      const out: string[] = [];
      for (const id of keys) {
        const key = `machine:${id}`;
        out.push(`        ${id}: want ${want.get(id) ?? 'absent'}; car ${JSON.stringify(held.get(id) ?? [])}`);
        out.push(`          defender ${JSON.stringify(this.data.machines.get(id) ?? null).slice(0, 400)}`);
        out.push(`          outbox ${JSON.stringify(db.prepare('SELECT key, seq, op, attempts, next_attempt_at, last_error FROM outbox WHERE key = ?').all(key))}`);
        out.push(`          sink_ids ${JSON.stringify(db.prepare('SELECT key, external_id FROM sink_ids WHERE key = ?').all(key))}`);
        out.push(`          dead letters ${JSON.stringify(db.prepare('SELECT key, reason FROM dead_letters WHERE key = ?').all(key))}`);
      }
      return out.join('\n');
    } finally {
      db.close();
    }
  }
}
