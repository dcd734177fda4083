// Defender alerts → IRIS against the simulators in process: N new alerts with evidence are polled
// (paged) and delivered, then a tenth of them change, then nothing changes. Counts the calls each
// pass makes on both sides and the time it takes (IRIS has no documented quota; Defender's listing
// is paced at 90/min, which N/page_size pages never approach here).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliveryWorker } from '../src/core/delivery.js';
import { IngestLoop } from '../src/core/ingest-loop.js';
import { Pipeline } from '../src/core/pipeline.js';
import { Router } from '../src/core/router.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { defenderAlerts } from '../sim/defender/alert-routes.js';
import { evidence } from '../sim/defender/alerts.js';
import { DefenderSimulator, MDE_AUDIENCES } from '../sim/defender/server.js';
import { IrisSimulator } from '../sim/iris/server.js';
import { IrisClient } from '../src/sinks/iris/client.js';
import { irisSection } from '../src/sinks/iris/config.js';
import { IrisDelivery } from '../src/sinks/iris/delivery.js';
import { heldAlerts } from '../src/sinks/iris/index.js';
import { irisRoute } from '../src/sinks/iris/route.js';
import type { TokenProvider } from '../src/microsoft/token.js';
import { DefenderApi } from '../src/microsoft/defender/client.js';
import { defenderAlertsSection } from '../src/sources/defender-alerts/config.js';
import { DefenderAlertsPoller } from '../src/sources/defender-alerts/poller.js';
import { SqliteStore } from '../src/store/sqlite.js';

export async function benchAlertsToIris(n: number, pageSize = 1000) {
  const log = createLogger('silent');
  const tenant = 'bench-tenant';
  const defender = new DefenderSimulator({ entra: { tokenInfo: () => ({ tenantId: tenant, clientId: 'c', roles: ['Alert.Read.All'], audience: MDE_AUDIENCES[0]!, displayName: 'c' }) } });
  await defender.start();
  const iris = await new IrisSimulator().start();
  const key = iris.addUser('tb', ['alerts_read', 'alerts_write', 'customers_read'], [1]).apiKey;
  const alerts = defenderAlerts(defender);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(alerts.add(tenant, {
      severity: ['Low', 'Medium', 'High'][i % 3]!, mitreTechniques: ['T1059', 'T1105'], computerDnsName: `ws-${i % 200}.corp.example`,
      evidence: [
        evidence({ entityType: 'File', fileName: `f${i}.exe`, sha256: i.toString(16).padStart(64, 'a'), sha1: i.toString(16).padStart(40, 'b') }),
        evidence({ entityType: 'Process', fileName: 'powershell.exe', processCommandLine: `powershell -c ${i}`, processId: i }),
        evidence({ entityType: 'Ip', ipAddress: `10.${(i >> 8) & 255}.${i & 255}.7` }),
        evidence({ entityType: 'Url', url: `https://bad${i}.example.net/x` }),
      ],
    }).id);
  }
  const store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-bench-iris-')));
  const metrics = new Metrics();
  const tokens = { getToken: async () => 'token' } as unknown as TokenProvider;
  const client = new DefenderApi({ baseUrl: defender.url, timeoutMs: 60_000, verifyTls: true, callsPerMinute: 90, callsPerHour: 1400, tokens, log, metrics: { metrics, label: 'defender_alerts' }, tenantId: tenant, waitOut: 4 });
  const ingest = new IngestLoop('defender_alerts', new Pipeline(store, new Router([], [irisRoute('iris')]), log, metrics), { batchSize: 500, batchMs: 1, queueSize: 10_000 }, log);
  const poller = new DefenderAlertsPoller('defender_alerts', tenant, defenderAlertsSection.parse({ page_size: pageSize, machine_details: false }), client,
    { checkpoints: store, ingest, held: heldAlerts(store) }, log, metrics);
  const cfg = irisSection.parse({ url: iris.url, api_key: key, customer_id: 1 });
  const handler = new IrisDelivery('iris', cfg, new IrisClient({ url: iris.url, apiKey: key, verifyTls: true, timeoutMs: 60_000, sink: 'iris', log, metrics }), store, log);
  const worker = new DeliveryWorker(store, handler, log, metrics);

  const pass = async () => {
    const lists = defender.requestLog.length;
    const irisCalls = iris.requestLog.length;
    const t0 = process.hrtime.bigint();
    const polled = await poller.pollOnce();
    await worker.drainOnce();
    return {
      seconds: Number(process.hrtime.bigint() - t0) / 1e9, read: polled.read, queued: polled.queued,
      defenderCalls: defender.requestLog.length - lists, irisCalls: iris.requestLog.length - irisCalls,
    };
  };
  const first = await pass();
  for (let i = 0; i < n; i += 10) alerts.update(tenant, ids[i]!, { status: 'InProgress', severity: 'High' });
  const changed = await pass();
  const idle = await pass();
  const held = iris.alertList().length;
  await store.close();
  await iris.stop();
  await defender.stop();
  return { alerts: n, pageSize, first, changed, idle, irisAlerts: held, created: handler.counts.created, updated: handler.counts.updated };
}
