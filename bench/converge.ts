// Converge N new indicators into the simulated Defender with its documented quotas (time-scaled):
// counts import calls against the ceil(n/500) bound and the simulated minutes it takes.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliveryWorker } from '../src/core/delivery.js';
import type { Claim, SinkOp } from '../src/core/types.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { DefenderApi } from '../src/microsoft/defender/client.js';
import { DefenderDelivery } from '../src/sinks/defender/delivery.js';
import { BodiesAtDelivery } from '../src/sinks/defender/delivery-bodies.js';
import { DefenderRoute } from '../src/sinks/defender/route.js';
import { TokenProvider } from '../src/microsoft/token.js';
import { DefenderSimulator } from '../sim/defender.js';
import { EntraSimulator } from '../sim/entra.js';
import { createTestCertificate } from '../sim/tls.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { benchMapping } from './mapping.js';

export async function convergeDefender(n: number, timeScale: number) {
  const log = createLogger('error');
  const tls = await createTestCertificate();
  const entra = new EntraSimulator({ tls });
  await entra.start();
  entra.registerApp({ tenantId: 't', clientId: 'c', clientSecret: 's', roles: ['Ti.ReadWrite.All'] });
  const defender = new DefenderSimulator({ entra, tls, timeScale });
  await defender.start();
  // msal trusts the simulators' certificate only through NODE_EXTRA_CA_CERTS, read at process start;
  // the bench turns verification off for these loopback calls instead.
  const tokens = new TokenProvider({ loginUrl: entra.url, tenantId: 't', clientId: 'c', clientSecret: 's',
    scope: 'https://api.securitycenter.microsoft.com/.default', verifyTls: false, timeoutMs: 30_000, log });
  const metrics = new Metrics();
  const client = new DefenderApi({ baseUrl: defender.url, resourcePath: '/api/indicators', timeoutMs: 60_000, verifyTls: false,
    batchCallsPerMinute: 30, callsPerMinute: 90, callsPerHour: 1500, timeScale, tokens, log, metrics: { metrics, label: 'defender' } });
  const store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-converge-')));
  const now = Date.now();
  // As ingest stores them: claims, and outbox rows naming their claim (the body is made at delivery).
  const route = new DefenderRoute('defender', benchMapping);
  const claims: Claim[] = [];
  const ops: SinkOp[] = [];
  for (let i = 0; i < n; i++) {
    const value = `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.9`;
    const claim: Claim = { key: `ipv4:${value}`, sourceId: `indicator--${i}`, updatedAt: now, change: { observable: { type: 'ipv4', value }, score: 70, labels: [],
      tlp: null, title: value, description: '', validFrom: null, validUntil: null, sourceRef: { system: 'opencti', id: `indicator--${i}` } } };
    const op = route.route(claim.key, claim, now).op;
    if (op?.op === 'upsert') { claims.push(claim); ops.push(op); }
  }
  await store.commit({ source: 'bench', checkpoint: null, claimUpserts: claims, claimDeletes: [], ops, deadLetters: [] });
  const handler = new BodiesAtDelivery(new DefenderDelivery('defender', 500, client, store, log, metrics), store, route, log);
  const worker = new DeliveryWorker(store, handler, log, metrics, { idlePollMs: 50 });
  const started = Date.now();
  worker.start();
  while ((await store.outboxStats(Date.now())).length > 0) await new Promise((r) => setTimeout(r, 50));
  const realSeconds = (Date.now() - started) / 1000;
  await worker.stop(5000);
  const log_ = defender.requestLog;
  const importCalls = log_.filter((r) => r.endpoint === 'indicators.import').length;
  const throttled = log_.filter((r) => r.status === 429).length;
  const held = defender.indicators().length;
  await store.close();
  await defender.stop();
  await entra.stop();
  return { indicators: n, importCalls, callBound: Math.ceil(n / 500), throttled, realSeconds, simulatedMinutes: (realSeconds * timeScale) / 60, timeScale, held };
}
