// node dist/bench/car-assets.js [machines]: CAR delivery of a fleet's initial import and of an
// incremental run where 10 % of the machines changed IP, against the CAR simulator over loopback.
// Prints calls and times; figures on the shared 2-core machine vary by ±20 %.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliveryWorker } from '../src/core/delivery.js';
import type { SinkOp } from '../src/core/types.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { CarSimulator } from '../sim/car/server.js';
import { CarClient } from '../src/sinks/car/client.js';
import { CarDelivery } from '../src/sinks/car/delivery.js';
import { machineKey } from '../src/sinks/car/route.js';
import { machineSnapshot } from '../src/sources/defender-assets/snapshot.js';
import { SqliteStore } from '../src/store/sqlite.js';

const n = Number(process.argv[2] ?? 5000);
const log = createLogger('silent');
const hex = (i: number) => i.toString(16).padStart(40, '0');
const op = (i: number, ipLast: number): SinkOp => ({
  sink: 'car', key: machineKey(hex(i)), op: 'upsert', sourceRef: null,
  payload: { kind: 'machine', snapshot: machineSnapshot({
    id: hex(i), computerDnsName: `pc${i}.corp.example`, osPlatform: 'Windows11', lastExternalIpAddress: '198.51.100.1',
    ipAddresses: [{ ipAddress: `10.${(i >> 8) & 255}.${i & 255}.${ipLast}`, macAddress: i.toString(16).padStart(12, '0'), operationalStatus: 'Up' }],
  }, { users: [{ id: `corp\\u${i}`, accountName: `u${i}`, accountDomain: 'corp' }], vulnerabilities: [{ cveId: `CVE-2024-${i % 200}`, machineId: hex(i) }], vulnerabilityDetails: new Map() }) },
});

const car = new CarSimulator({ apiKey: 'k', password: 'p' });
await car.start();
const store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-bench-car-')));
const metrics = new Metrics();
const client = new CarClient({ url: car.url, apiKey: 'k', password: 'p', timeoutMs: 60_000, verifyTls: true, sink: 'car', log, metrics });
const handler = new CarDelivery('car', 50, client, store, log, { source: { _key: 'bench' }, pageSize: 2000, importTimeoutMs: 60_000, pollBaseMs: 5 });
const worker = new DeliveryWorker(store, handler, log, metrics);
const commit = (ops: SinkOp[]) => store.commit({ source: 'bench', checkpoint: null, claimUpserts: [], claimDeletes: [], ops, deadLetters: [] });

const calls = () => ({ imports: car.count('POST', '/imports'), status: car.count('GET', '/importstatus'), patches: car.requestLog.filter((r) => r.method === 'PATCH').length });
let t = performance.now();
await commit(Array.from({ length: n }, (_, i) => op(i, 1)));
await worker.drainOnce();
const initial = { ms: Math.round(performance.now() - t), ...calls(), assets: car.list('asset').length, edges: car.edges.size };
const before = calls();
t = performance.now();
const changed = Array.from({ length: Math.ceil(n / 10) }, (_, k) => op(k * 10, 2));
await commit(changed);
await worker.drainOnce();
const after = calls();
const incremental = { ms: Math.round(performance.now() - t), machines: changed.length, imports: after.imports - before.imports, patches: after.patches - before.patches,
  disabled: [...car.edges.values()].filter((e) => !e.active).length };
console.log(JSON.stringify({ machines: n, initial, incremental, rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) }, null, 2));
await store.close();
await car.stop();
