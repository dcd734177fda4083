// Upload N new indicators to the simulated Sentinel STIX upload API through the real delivery
// path (outbox → worker → SentinelDelivery → SentinelClient, paced, with the simulator enforcing
// 100 objects per request and 100 requests per minute, time-scaled): calls used vs ceil(n/100).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliveryWorker } from '../src/core/delivery.js';
import type { SinkOp } from '../src/core/types.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { TokenProvider } from '../src/microsoft/token.js';
import { SentinelClient } from '../src/microsoft/sentinel/client.js';
import { SentinelDelivery } from '../src/sinks/sentinel/delivery.js';
import { mapToSentinel } from '../src/sinks/sentinel/mapper.js';
import { EntraSimulator } from '../sim/entra.js';
import { SentinelSimulator } from '../sim/sentinel.js';
import { createTestCertificate } from '../sim/tls.js';
import { SqliteStore } from '../src/store/sqlite.js';

const WS = '0a0b0c0d-0e0f-4000-8000-000000000001';

export async function uploadSentinel(n: number, timeScale: number) {
  const log = createLogger('error');
  const tls = await createTestCertificate();
  const entra = new EntraSimulator({ tls });
  await entra.start();
  entra.registerApp({ tenantId: 't', clientId: 'c', clientSecret: 's', roles: [] });
  const sentinel = new SentinelSimulator({ entra, tls, workspaces: { [WS]: ['c'] }, timeScale });
  await sentinel.start();
  // As in converge.ts: the bench process cannot trust the simulators' certificate through
  // NODE_EXTRA_CA_CERTS, so verification is off for these loopback calls.
  const tokens = new TokenProvider({ loginUrl: entra.url, tenantId: 't', clientId: 'c', clientSecret: 's',
    scope: 'https://management.azure.com/.default', verifyTls: false, timeoutMs: 30_000, log });
  const metrics = new Metrics();
  const client = new SentinelClient({ host: sentinel.url, workspaceId: WS, apiVersion: '2024-02-01-preview', sourceSystem: 'ThreatBridge',
    timeoutMs: 60_000, verifyTls: false, requestsPerMinute: 95, timeScale, sink: 'sentinel', tokens, audit: null, log, metrics });
  const store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-sentinel-')));
  const now = Date.now();
  const ops: SinkOp[] = [];
  const mapping = { sink: 'sentinel', passiveOnly: false, daysToExpire: 30, minScore: 0, labels: [] };
  for (let i = 0; i < n; i++) {
    const value = `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.9`;
    const key = `ipv4:${value}`;
    const mapped = mapToSentinel(key, { observable: { type: 'ipv4', value }, score: 70, labels: [], tlp: null, title: value, description: '',
      validFrom: null, validUntil: null, sourceRef: { system: 'opencti', id: `indicator--${i}` } }, mapping, now);
    if (mapped.kind === 'upsert') ops.push({ sink: 'sentinel', key, op: 'upsert', payload: mapped.object, sourceRef: null });
  }
  await store.commit({ source: 'bench', checkpoint: null, claimUpserts: [], claimDeletes: [], ops, deadLetters: [] });
  const worker = new DeliveryWorker(store, new SentinelDelivery('sentinel', 100, client, store, log), log, metrics, { idlePollMs: 50 });
  const started = Date.now();
  worker.start();
  while ((await store.outboxStats(Date.now())).length > 0) await new Promise((r) => setTimeout(r, 50));
  const realSeconds = (Date.now() - started) / 1000;
  await worker.stop(5000);
  const calls = sentinel.requestLog.length;
  const throttled = sentinel.requestLog.filter((r) => r.status === 429).length;
  const held = sentinel.indicators(WS).length;
  const deadLetters = (await store.listDeadLetters({ sink: 'sentinel' })).length;
  await store.close();
  await sentinel.stop();
  await entra.stop();
  return { objects: n, uploadCalls: calls, callBound: Math.ceil(n / 100), throttled, deadLetters, held, realSeconds,
    simulatedMinutes: (realSeconds * timeScale) / 60, timeScale };
}
