// Many tenants (issue 18): N new indicators from one source into T simulated Defender tenants, each
// with its own application and Microsoft's documented quotas (time-scaled), through the service's
// own hub (one sink instance, outbox queue, client and pacer per tenant). Quotas are per tenant and
// application, so T tenants should converge in about the time of one: the same run with one tenant
// is the yardstick. Calls and 429s are counted from the simulator's request log, per tenant.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../src/config/schema.js';
import type { IngestItem } from '../src/core/pipeline.js';
import { Hub } from '../src/flows/hub.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { DefenderSimulator } from '../sim/defender.js';
import { EntraSimulator } from '../sim/entra.js';
import { createTestCertificate } from '../sim/tls.js';

export interface TenantsRun {
  tenants: number;
  indicators: number;
  /** Real seconds from the burst's first event until every tenant holds all of it. */
  realSeconds: number;
  simulatedMinutes: number;
  importCallsPerTenant: { min: number; max: number };
  callBoundPerTenant: number;
  throttled: number;
  /** Indicators each tenant holds at the end: min and max. */
  heldPerTenant: { min: number; max: number };
}

async function run(tenants: number, n: number, timeScale: number): Promise<TenantsRun> {
  const log = createLogger('error');
  const tls = await createTestCertificate();
  const entra = new EntraSimulator({ tls });
  await entra.start();
  const defender = new DefenderSimulator({ entra, tls, timeScale });
  await defender.start();
  const targets = Array.from({ length: tenants }, (_, i) => {
    const t = { name: `t${i}`, tenant_id: `tenant-${i}`, client_id: `app-${i}`, client_secret: `secret-${i}` };
    entra.registerApp({ tenantId: t.tenant_id, clientId: t.client_id, clientSecret: t.client_secret, roles: ['Ti.ReadWrite.All'] });
    return t;
  });
  // The simulators' self-signed certificate is trusted only through NODE_EXTRA_CA_CERTS at process
  // start; these loopback calls turn verification off instead. The breaker is off: 15,000 new Blocks
  // per tenant would trip it (its own bench is bench/guard.ts); reconciliation is off (its own timer).
  const config = configSchema.parse({
    opencti: { url: 'http://127.0.0.1:9', token: 'x' },
    connector: { id: '6d0b5b6a-41d7-4a53-9d7d-6f1b2c3d4e5f', live_stream_id: 's' },
    microsoft_defender_intel: { login_url: entra.url, base_url: defender.url, ssl_verify: false, reconcile_interval: 0, import_calls_per_minute: 30, targets },
    guard: { breaker_max_blocks_per_hour: 0 },
  });
  const previousScale = process.env['THREATBRIDGE_TIME_SCALE'];
  process.env['THREATBRIDGE_TIME_SCALE'] = String(timeScale);
  const store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-tenants-')));
  const metrics = new Metrics();
  const hub = new Hub({ config, store, log, metrics });
  const items: IngestItem[] = [];
  for (let i = 0; i < n; i++) {
    const value = `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.9`;
    items.push({
      normalised: { sourceRef: { system: 'opencti', id: `indicator--${i}` }, retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: null,
        changes: [{ observable: { type: 'ipv4', value }, score: 70, labels: [], tlp: null, title: value, description: '', validFrom: null, validUntil: null,
          sourceRef: { system: 'opencti', id: `indicator--${i}` } }] },
      raw: null, event: 'create', position: String(i), checkpoint: { position: String(i), state: {} },
    });
  }
  // The service started (tokens, first listings), then a burst of n new indicators arrives.
  const parts = hub.parts();
  for (const p of parts) await p.start();
  const started = Date.now();
  for (let i = 0; i < n; i += 500) {
    await hub.pipeline.ingest('opencti', items.slice(i, i + 500));
    for (const s of hub.sinksOf('opencti')) s.worker.wake();
  }
  // Done when every tenant accepted n indicators: read from the simulator's log (cheap), not by
  // querying the outbox the workers are busy with.
  const accepted = new Map<string, number>();
  for (let seen = 0; [...accepted.values()].filter((v) => v >= n).length < tenants;) {
    await new Promise((r) => setTimeout(r, 50));
    for (; seen < defender.requestLog.length; seen++) {
      const r = defender.requestLog[seen]!;
      if (r.endpoint === 'indicators.import' && r.status === 200 && r.tenantId) accepted.set(r.tenantId, (accepted.get(r.tenantId) ?? 0) + (r.items ?? 0));
    }
  }
  const realSeconds = (Date.now() - started) / 1000;
  for (const p of parts.reverse()) await p.stop(5000);
  if (previousScale === undefined) delete process.env['THREATBRIDGE_TIME_SCALE'];
  else process.env['THREATBRIDGE_TIME_SCALE'] = previousScale;
  const imports = targets.map((t) => defender.requestLog.filter((r) => r.endpoint === 'indicators.import' && r.tenantId === t.tenant_id).length);
  const held = targets.map((t) => defender.indicators(t.tenant_id).length);
  const throttled = defender.requestLog.filter((r) => r.status === 429).length;
  if (process.env['BENCH_TENANTS_TRACE']) {
    for (const r of defender.requestLog) process.stderr.write(`${((r.time - started) / 1000).toFixed(2)} ${r.tenantId} ${r.endpoint} ${r.status} ${r.items}\n`);
  }
  await store.close();
  await defender.stop();
  await entra.stop();
  return {
    tenants, indicators: n, realSeconds, simulatedMinutes: (realSeconds * timeScale) / 60,
    importCallsPerTenant: { min: Math.min(...imports), max: Math.max(...imports) }, callBoundPerTenant: Math.ceil(n / 500), throttled,
    heldPerTenant: { min: Math.min(...held), max: Math.max(...held) },
  };
}

/** The same indicators into one tenant, then into `tenants`: the time ratio is the figure. */
export async function runTenants(tenants: number, n: number, timeScale: number): Promise<TenantsRun> {
  return run(tenants, n, timeScale);
}

export async function benchTenants(n: number, tenants: number, timeScale: number): Promise<{ one: TenantsRun; many: TenantsRun; ratio: number }> {
  const one = await run(1, n, timeScale);
  const many = await run(tenants, n, timeScale);
  return { one, many, ratio: many.realSeconds / one.realSeconds };
}
