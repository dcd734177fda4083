// The Defender alerts → DFIR-IRIS flow for the fault suite: alerts are raised and changed (title,
// severity, status) in the Defender simulator's alert store; the service polls them and IRIS
// (simulator) must end holding each alert once, with its last title, severity and status as the
// service maps them.
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { defenderAlerts } from '../../sim/defender/alert-routes.js';
import type { AlertStore } from '../../sim/defender/alerts.js';
import { IrisSimulator } from '../../sim/iris/server.js';
import { Lab, LAB_CLIENT, LAB_SECRET, LAB_TENANT } from '../../sim/lab.js';
import { rng, type FaultFlow } from './harness.js';

const SEVERITIES = ['Informational', 'Low', 'Medium', 'High'];
// The oracle, from the IRIS API facts (a fresh 2.4 install, the simulator's default layout), not from
// the service's id lookup: Defender's severity names are IRIS's; new alerts are New, resolved ones Closed.
const IRIS_SEVERITY_ID: Record<string, number> = { Medium: 1, Informational: 3, Low: 4, High: 5 };
const IRIS_STATUS_NEW = 2;
const IRIS_STATUS_CLOSED = 6;

interface LiveAlert { id: string; title: string; severity: string; resolved: boolean; version: number }

export class DefenderIrisFlow implements FaultFlow {
  readonly name = 'defender alerts -> iris';
  readonly lab = new Lab();
  readonly iris = new IrisSimulator();
  private alerts!: AlertStore;
  private apiKey = '';
  private readonly live: LiveAlert[] = [];
  private readonly random: () => number;

  constructor(seed: number, private readonly total: number, private readonly pace = { every: 10, ms: 50 }) {
    this.random = rng(seed);
  }

  async start(): Promise<void> {
    await this.lab.start();
    // The Lab's app has Ti.ReadWrite.All only; reading alerts needs Alert.Read.All as well.
    this.lab.entra.registerApp({ tenantId: LAB_TENANT, clientId: LAB_CLIENT, clientSecret: LAB_SECRET, roles: ['Ti.ReadWrite.All', 'Alert.Read.All'] });
    this.alerts = defenderAlerts(this.lab.defender);
    await this.iris.start();
    this.apiKey = this.iris.addUser('threatbridge', ['alerts_read', 'alerts_write', 'customers_read'], [1]).apiKey;
  }

  async stop(): Promise<void> {
    await this.iris.stop();
    await this.lab.stop();
  }

  env(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
    return this.lab.env({
      OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', CONNECTOR_ID: '',
      IRIS_URL: this.iris.url, IRIS_API_KEY: this.apiKey, IRIS_CUSTOMER_ID: '1',
      // Every status, so an alert moved to InProgress before its first poll still goes to IRIS.
      DEFENDER_ALERTS_STATUSES: 'New,InProgress,Resolved',
      DEFENDER_ALERTS_INTERVAL: '1', DEFENDER_ALERTS_OVERLAP_SECONDS: '10', DEFENDER_ALERTS_PAGE_SIZE: '10000',
      // Each simulated alert has its own machine: a lookup each would pace the polls to a crawl.
      DEFENDER_ALERTS_MACHINE_DETAILS: 'false',
      ...overrides,
    });
  }

  /** Spread over several polls: the poller reads what changed since its last poll. */
  pauseAfter(i: number): number {
    return i % this.pace.every === this.pace.every - 1 ? this.pace.ms : 0;
  }

  /** The first half mostly raises alerts; then changes of random ones (a resolved alert stays resolved). */
  emit(i: number): void {
    const phase = i / this.total;
    if (this.live.length < 10 || phase < 0.5 || this.random() < 0.15) {
      const severity = SEVERITIES[Math.floor(this.random() * SEVERITIES.length)]!;
      const a = this.alerts.add(LAB_TENANT, { severity, title: `Fault alert ${i}`, machineId: null });
      this.live.push({ id: a.id, title: a.title, severity, resolved: false, version: 0 });
      return;
    }
    const entry = this.live[Math.floor(this.random() * this.live.length)]!;
    const r = this.random();
    if (r < 0.35) {
      entry.severity = SEVERITIES[Math.floor(this.random() * SEVERITIES.length)]!;
      this.alerts.update(LAB_TENANT, entry.id, { severity: entry.severity });
    } else if (r < 0.7) {
      entry.title = `${entry.title.replace(/ v\d+$/, '')} v${++entry.version}`;
      this.alerts.update(LAB_TENANT, entry.id, { title: entry.title });
    } else if (r < 0.85 || entry.resolved) {
      // IRIS keeps its own workflow status for an unresolved alert, so this changes Defender only.
      if (!entry.resolved) this.alerts.update(LAB_TENANT, entry.id, { status: 'InProgress' });
      else this.alerts.update(LAB_TENANT, entry.id, { assignedTo: `analyst${i}@contoso.com` });
    } else {
      // Resolved is terminal here: un-resolving would leave IRIS Closed or New depending on whether
      // a poll saw the resolution, which no expected state can tell.
      entry.resolved = true;
      this.alerts.update(LAB_TENANT, entry.id, { status: 'Resolved' });
    }
  }

  private state(title: string, severityId: number, statusId: number): string {
    return `${title} | severity ${severityId} | status ${statusId}`;
  }

  expected(): Map<string, string> {
    return new Map(this.live.map((a) => [a.id, this.state(a.title, IRIS_SEVERITY_ID[a.severity]!,
      a.resolved ? IRIS_STATUS_CLOSED : IRIS_STATUS_NEW)]));
  }

  sinkState(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const a of this.iris.alertList()) {
      const ref = a.alert_source_ref ?? `(no source ref: IRIS alert ${a.alert_id})`;
      out.set(ref, [...(out.get(ref) ?? []), this.state(a.alert_title, a.alert_severity_id, a.alert_status_id)]);
    }
    return out;
  }

  /** Creates and updates IRIS applied, including those whose answer was dropped on purpose. */
  sinkWrites(): number {
    return this.iris.requestLog.filter((e) => e.method === 'POST' && /^\/alerts\/(add|update\/\d+)$/.test(e.path)
      && (e.status === 200 || e.fault === 'dropped')).length;
  }

  diagnose(keys: string[], env: NodeJS.ProcessEnv): string {
    const db = new Database(join(env['STORE_DIR']!, 'threatbridge.db'), { readonly: true, fileMustExist: true });
    try {
      const held = this.sinkState();
      const want = this.expected();
      const out: string[] = [];
      for (const key of keys) {
        out.push(`        ${key}: want ${want.get(key) ?? 'absent'}; iris ${JSON.stringify(held.get(key) ?? [])}; defender ${JSON.stringify(this.alerts.get(LAB_TENANT, key)?.lastUpdateTime ?? null)}`);
        out.push(`          outbox ${JSON.stringify(db.prepare('SELECT key, seq, op, attempts, next_attempt_at, lease_until, last_error FROM outbox WHERE key = ?').all(key))}`);
        out.push(`          sink_ids ${JSON.stringify(db.prepare('SELECT key, external_id FROM sink_ids WHERE key = ?').all(key))}`);
        out.push(`          dead letters ${JSON.stringify(db.prepare('SELECT key, reason FROM dead_letters WHERE key = ?').all(key))}`);
      }
      return out.join('\n');
    } finally {
      db.close();
    }
  }
}
