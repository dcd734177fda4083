// The Sentinel delivery policy against the upload API simulator (in process, over loopback):
// batching, per-record errors in a 200, throttling, server errors, revocation, the audit log.
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliveryWorker } from '../../src/core/delivery.js';
import type { SinkOp } from '../../src/core/types.js';
import { EntraSimulator } from '../../sim/entra.js';
import { SentinelSimulator } from '../../sim/sentinel.js';
import { createTestCertificate } from '../../sim/tls.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { TokenProvider } from '../../src/microsoft/token.js';
import { AuditLog } from '../../src/microsoft/sentinel/audit.js';
import { SentinelClient } from '../../src/microsoft/sentinel/client.js';
import { SentinelDelivery } from '../../src/sinks/sentinel/delivery.js';
import { mapToSentinel, type SentinelMapping } from '../../src/sinks/sentinel/mapper.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { configSchema } from '../../src/config/schema.js';
import { Breaker } from '../../src/guard/breaker.js';
import { GuardGate } from '../../src/guard/gate.js';
import { ProtectedList } from '../../src/guard/list.js';
import { SENTINEL_GATE_ACTIONS } from '../../src/sinks/sentinel/index.js';

const WS = '0f0e0d0c-0b0a-4909-8807-060504030201';
const SECRET = 'sentinel-test-secret-value';
const log = createLogger('silent');
const mapping: SentinelMapping = { sink: 'sentinel', passiveOnly: false, daysToExpire: 30, minScore: 0, labels: [] };

function upsert(value: string, score = 70): SinkOp {
  const key = `domain:${value}`;
  const r = mapToSentinel(key, { observable: { type: 'domain', value }, score, labels: [], tlp: null, title: value, description: '',
    validFrom: null, validUntil: null, sourceRef: { system: 'opencti', id: `indicator--${value}` } }, mapping, Date.now());
  if (r.kind !== 'upsert') throw new Error(r.reason);
  return { sink: 'sentinel', key, op: 'upsert', payload: r.object, sourceRef: null };
}
const revoke = (value: string): SinkOp => ({ sink: 'sentinel', key: `domain:${value}`, op: 'delete', payload: { reason: 'deleted' }, sourceRef: null });

describe('Sentinel delivery against the upload API simulator', function () {
  this.timeout(30_000);
  let entra: EntraSimulator;
  let sentinel: SentinelSimulator;
  let store: SqliteStore;
  let worker: DeliveryWorker;
  let auditDir: string;

  before(async () => {
    const tls = await createTestCertificate();
    entra = new EntraSimulator({ tls });
    await entra.start();
    entra.registerApp({ tenantId: 't1', clientId: 'app-1', clientSecret: SECRET, roles: [] });
    sentinel = new SentinelSimulator({ entra, tls, workspaces: { [WS]: ['app-1'] } });
    await sentinel.start();
  });
  after(async () => {
    await sentinel.stop();
    await entra.stop();
  });

  function setup(options: { workspace?: string; scope?: string; batchSize?: number; gate?: (store: SqliteStore) => GuardGate } = {}) {
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-sd-')));
    auditDir = mkdtempSync(join(tmpdir(), 'tb-audit-'));
    const metrics = new Metrics();
    const tokens = new TokenProvider({ loginUrl: entra.url, tenantId: 't1', clientId: 'app-1', clientSecret: SECRET,
      scope: options.scope ?? 'https://management.azure.com/.default', verifyTls: false, timeoutMs: 10_000, log });
    const client = new SentinelClient({ host: sentinel.url, workspaceId: options.workspace ?? WS, apiVersion: '2024-02-01-preview',
      sourceSystem: 'ThreatBridge', timeoutMs: 10_000, verifyTls: false, requestsPerMinute: 100, sink: 'sentinel', tokens,
      audit: new AuditLog(auditDir), log, metrics });
    worker = new DeliveryWorker(store, new SentinelDelivery('sentinel', options.batchSize ?? 100, client, store, log, options.gate?.(store) ?? null), log, metrics);
  }
  afterEach(async () => store.close());

  const enqueue = (ops: SinkOp[]) => store.commit({ source: 't', checkpoint: null, claimUpserts: [], claimDeletes: [], ops, deadLetters: [] });
  const uploads = () => sentinel.requestLog.filter((r) => r.workspaceId === WS);
  const held = () => new Map(sentinel.indicators(WS).map((o) => [String(o['pattern']), o]));
  const reset = () => { sentinel.requestLog.length = 0; };

  it('uploads 250 objects in ceil(250/100) = 3 calls and records each id', async () => {
    setup();
    reset();
    const ops = Array.from({ length: 250 }, (_, i) => upsert(`bulk${i}.example.org`));
    await enqueue(ops);
    await worker.drainOnce();
    expect(uploads().map((u) => u.objects)).to.deep.equal([100, 100, 50]);
    expect(await store.countSinkIds('sentinel')).to.equal(250);
    expect(held().get("[domain-name:value = 'bulk7.example.org']")).to.include({ id: (ops[7]!.payload as { id: string }).id });
  });

  it('dead-letters only the records a 200 answer rejects, with their messages, and acks the rest', async () => {
    setup();
    const good = [upsert('ok1.example.org'), upsert('ok2.example.org')];
    const bad = upsert('bad.example.org');
    (bad.payload as Record<string, unknown>)['valid_until'] = (bad.payload as Record<string, unknown>)['valid_from'];
    await enqueue([good[0]!, bad, good[1]!]);
    await worker.drainOnce();
    expect(await store.countSinkIds('sentinel')).to.equal(2);
    const letters = await store.listDeadLetters({ sink: 'sentinel' });
    expect(letters.map((l) => l.key)).to.deep.equal(['domain:bad.example.org']);
    expect(letters[0]!.reason).to.include("[domain-name:value = 'bad.example.org']").and.include('Error for Property=valid_until');
    expect((await store.outboxStats(Date.now())).length).to.equal(0);
  });

  it('waits out a 429 (message only, no Retry-After) and 5xx answers without losing or duplicating', async () => {
    setup();
    reset();
    sentinel.failNext(1, 429);
    sentinel.failNext(2, 503);
    await enqueue([upsert('t1.example.org'), upsert('t2.example.org')]);
    const before = Date.now();
    await worker.drainOnce();
    expect(await store.countSinkIds('sentinel')).to.equal(0);
    const stats = await store.outboxStats(Date.now());
    expect(stats[0]!.pending).to.equal(2);
    // "Try again in 1 seconds" and no Retry-After: due again when the message said, not after a backoff.
    expect((await store.nextDueAt('sentinel'))! - before).to.be.within(900, 1800);
    worker.start();
    try {
      const deadline = Date.now() + 25_000;
      while ((await store.countSinkIds('sentinel')) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    } finally {
      await worker.stop(1000);
    }
    expect(await store.countSinkIds('sentinel')).to.equal(2);
    expect(uploads().map((u) => u.status)).to.deep.equal([429, 503, 503, 200]);
    expect(await store.listDeadLetters({ sink: 'sentinel' })).to.deep.equal([]);
  });

  it('leaves what the breaker holds waiting in the outbox for the hold interval, settled by the core, then sends it after resume', async () => {
    let breaker!: Breaker;
    setup({ gate: (s) => {
      breaker = new Breaker(s, log, new Metrics(), 2, 1000);
      return new GuardGate({ sink: 'sentinel', enabled: true, onProtected: 'audit', specialAddresses: 'audit', holdMs: 2000,
        actions: SENTINEL_GATE_ACTIONS, withdrawalShare: 0.2, withdrawalMin: 10 }, new ProtectedList(configSchema.parse({}).guard, log), breaker, s, log, new Metrics());
    } });
    reset();
    // Score 70 maps to action:block, which enforces: 2 new ones an hour, the other 3 wait.
    await enqueue(['h1', 'h2', 'h3', 'h4', 'h5'].map((h) => upsert(`${h}.example.org`, 70)));
    await worker.drainOnce();
    expect(uploads().map((u) => u.objects)).to.deep.equal([2]);
    expect((await store.outboxStats(Date.now()))[0]).to.include({ sink: 'sentinel', pending: 3, due: 0 });
    expect((await store.nextDueAt('sentinel'))! - Date.now()).to.be.within(1000, 2000);
    await store.resumeBreakers(null, Date.now());
    await breaker.refresh(true);
    const again = await store.claimDue('sentinel', 100, Date.now() + 2000, 60_000);
    expect(again.map((i) => i.attempts), 'retried once by the core').to.deep.equal([1, 1, 1]);
    await worker.deliver(again);
    expect(uploads().map((u) => u.objects)).to.deep.equal([2, 3]);
    expect(await store.countSinkIds('sentinel')).to.equal(5);
  });

  it('updates keep one object with the first created; revocation re-uploads it revoked; unknown keys cost no call', async () => {
    setup();
    await enqueue([upsert('rev.example.org', 40)]);
    await worker.drainOnce();
    const first = held().get("[domain-name:value = 'rev.example.org']")!;
    await new Promise((r) => setTimeout(r, 5));
    await enqueue([upsert('rev.example.org', 90)]);
    await worker.drainOnce();
    const second = held().get("[domain-name:value = 'rev.example.org']")!;
    expect(second).to.include({ id: first['id'], created: first['created'], confidence: 90 });
    expect(Date.parse(String(second['modified']))).to.be.above(Date.parse(String(first['modified'])));
    reset();
    await enqueue([revoke('rev.example.org'), revoke('never-uploaded.example.org')]);
    await worker.drainOnce();
    expect(uploads().map((u) => u.objects)).to.deep.equal([1]);
    const revoked = held().get("[domain-name:value = 'rev.example.org']")!;
    expect(revoked).to.include({ id: first['id'], created: first['created'], revoked: true });
    expect(Date.parse(String(revoked['valid_until']))).to.be.at.most(Date.now());
    expect(await store.countSinkIds('sentinel')).to.equal(0);
  });

  it('revokes an upload whose answer was lost in a crash, though no id was recorded for it', async () => {
    // The first run: the upload lands in Sentinel, then the process dies before recording it.
    setup();
    const crashed = store;
    await enqueue([upsert('lost-answer.example.org')]);
    await worker.drainOnce();
    await crashed.close();
    // What the next run finds: the upsert still queued (leased when the process died), then a delete replacing it.
    setup();
    await enqueue([upsert('lost-answer.example.org')]);
    expect(await store.claimDue('sentinel', 10, Date.now(), 1)).to.have.length(1);
    await new Promise((r) => setTimeout(r, 5));
    await enqueue([revoke('lost-answer.example.org')]);
    reset();
    await worker.drainOnce();
    expect(uploads().map((u) => u.objects)).to.deep.equal([1]);
    const object = held().get("[domain-name:value = 'lost-answer.example.org']")!;
    expect(object).to.include({ revoked: true });
    expect(Date.parse(String(object['valid_until']))).to.be.at.most(Date.now());
    expect((await store.outboxStats(Date.now())).length).to.equal(0);
  });

  it('keeps work waiting (never dead-letters it) when the workspace is unknown, and audits every call greppably without secrets', async () => {
    setup({ workspace: 'aaaaaaaa-0000-4000-8000-000000000000' });
    await enqueue([upsert('wait.example.org')]);
    await worker.drainOnce();
    expect(await store.listDeadLetters({ sink: 'sentinel' })).to.deep.equal([]);
    expect((await store.outboxStats(0))[0]!.pending).to.equal(1);
    const files = readdirSync(auditDir);
    expect(files).to.have.length(1);
    expect(files[0]).to.match(/^sentinel-audit-\d{4}-\d{2}-\d{2}\.jsonl$/);
    const text = readFileSync(join(auditDir, files[0]!), 'utf8');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).to.include({ outcome: 'ERROR', status: 404, method: 'POST' });
    expect(JSON.stringify(lines[0]!['request'])).to.include('wait.example.org');
    expect(text).to.not.include(SECRET).and.not.match(/Bearer\s+\w/).and.not.match(/authorization/i);
  });

  it('gets 401 for a token with the wrong audience', async () => {
    setup({ scope: 'https://graph.microsoft.com/.default' });
    reset();
    await enqueue([upsert('aud.example.org')]);
    await worker.drainOnce();
    expect(uploads().map((u) => u.status)).to.deep.equal([401, 401]);
    expect((await store.outboxStats(0))[0]!.pending).to.equal(1);
  });
});
