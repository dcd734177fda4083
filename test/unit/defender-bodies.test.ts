// The Defender outbox keeps a reference to the claim instead of the indicator body, and the
// delivery makes the body again (src/sinks/defender/delivery-bodies.ts). Against a real SQLite
// store and the recorded API shapes (nock): Defender receives exactly the body the route made at
// ingest; rows written before the change (whole bodies) still deliver; a row whose claim is gone
// sends nothing; the review file, the guard and dead letters read bodies, never references.
import { expect } from 'chai';
import Database from 'better-sqlite3';
import nock from 'nock';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../src/core/delivery.js';
import { Pipeline, type IngestItem } from '../../src/core/pipeline.js';
import { Router } from '../../src/core/router.js';
import type { IndicatorChange, SinkOp } from '../../src/core/types.js';
import { Breaker } from '../../src/guard/breaker.js';
import { GuardGate } from '../../src/guard/gate.js';
import { DEFENDER_GATE_ACTIONS } from '../../src/guard/guard.js';
import { ProtectedList } from '../../src/guard/list.js';
import { DefenderApi } from '../../src/microsoft/defender/client.js';
import type { TokenProvider } from '../../src/microsoft/token.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { BodiesAtDelivery } from '../../src/sinks/defender/delivery-bodies.js';
import { DefenderDelivery } from '../../src/sinks/defender/delivery.js';
import { mapToDefender, type DefenderIndicatorBody, type DefenderMapping } from '../../src/sinks/defender/mapper.js';
import { DefenderRoute } from '../../src/sinks/defender/route.js';
import { RecordingHandler } from '../../src/sinks/dry-run.js';
import { SqliteStore } from '../../src/store/sqlite.js';

const BASE = 'https://defender.test';
const log = createLogger('silent');
const mapping: DefenderMapping = { expireDays: 30, expireDaysByType: {}, defaultAction: 'Alert', passiveOnly: false, minScore: 0,
  application: 'ThreatBridge', rbacGroupNames: [], tags: ['tb'] };

const change = (id: string, type: 'ipv4' | 'domain' | 'url', value: string, score: number): IndicatorChange => ({
  observable: { type, value }, score, labels: ['apt'], tlp: 'TLP:GREEN', title: `title ${id}`, description: `about ${value}`,
  validFrom: null, validUntil: null, sourceRef: { system: 'opencti', id, url: `http://opencti/${id}` },
});
const create = (n: number, c: IndicatorChange): IngestItem => ({
  normalised: { sourceRef: c.sourceRef, changes: [c], retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: null },
  raw: { n }, event: 'create', position: `${n}-0`, checkpoint: { position: `${n}-0`, state: {} },
});
const remove = (n: number, id: string): IngestItem => ({
  normalised: { sourceRef: { system: 'opencti', id }, changes: [], retractAll: true, alsoRetract: [], skipped: [], rejected: null, ignored: null },
  raw: { n }, event: 'delete', position: `${n}-0`, checkpoint: { position: `${n}-0`, state: {} },
});

describe('Defender outbox rows name their claim; the delivery makes the body', () => {
  let dir: string;
  let store: SqliteStore;
  let imports: DefenderIndicatorBody[][];
  /** Defender's verdict per value (default: accepted). */
  let refuse: Set<string>;
  const route = new DefenderRoute('defender', mapping);
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tb-bodies-'));
    store = new SqliteStore(dir);
    imports = [];
    refuse = new Set();
    nock.disableNetConnect();
    nock(BASE).persist().post('/api/indicators/import').reply((_uri, b) => {
      const list = (b as { Indicators: DefenderIndicatorBody[] }).Indicators;
      imports.push(list);
      return [200, { value: list.map((i) => ({ id: `id-${i.indicatorValue}`, indicator: i.indicatorValue, isFailed: refuse.has(i.indicatorValue),
        failureReason: refuse.has(i.indicatorValue) ? 'InvalidIndicatorValue' : null })) }];
    });
  });
  afterEach(async () => {
    nock.cleanAll();
    nock.enableNetConnect();
    await store.close();
  });

  const pipeline = () => new Pipeline(store, new Router([route]), log, new Metrics());
  const client = () => new DefenderApi({ baseUrl: BASE, resourcePath: '/api/indicators', timeoutMs: 5000, verifyTls: true,
    batchCallsPerMinute: 1000, callsPerMinute: 1000, callsPerHour: 10_000, tokens: { getToken: async () => 't' } as unknown as TokenProvider,
    log, metrics: { metrics: new Metrics(), label: 'defender' } });
  /** The Defender sink as the service wires it: bodies first, then `wrap` (review file), then the delivery. */
  const worker = (options: { gate?: GuardGate; wrap?: (h: SinkHandler) => SinkHandler } = {}) => {
    const delivery = new DefenderDelivery('defender', 500, client(), store, log, new Metrics(), options.gate ? { gate: options.gate } : {});
    return new DeliveryWorker(store, new BodiesAtDelivery((options.wrap ?? ((h) => h))(delivery), store, route, log), log, new Metrics());
  };
  const rows = () => {
    const db = new Database(join(dir, 'threatbridge.db'), { readonly: true });
    try {
      return db.prepare('SELECT key, op, payload FROM outbox ORDER BY key').all() as { key: string; op: string; payload: string }[];
    } finally {
      db.close();
    }
  };
  const byValue = (list: DefenderIndicatorBody[]) => [...list].sort((a, b) => a.indicatorValue.localeCompare(b.indicatorValue));

  it('stores a reference instead of the body, and Defender receives the very body the route made at ingest', async () => {
    const ingested = await pipeline().ingest('opencti', [
      create(1, change('indicator--1', 'ipv4', '198.51.100.7', 80)),
      create(2, change('indicator--2', 'domain', 'bad.example.org', 40)),
      create(3, change('indicator--3', 'url', 'http://bad.example.net/x?y=1', 10)),
    ], Date.now() - 5_000);
    const stored = rows();
    expect(stored).to.have.length(3);
    for (const r of stored) {
      expect(JSON.parse(r.payload)).to.have.all.keys('claim', 'at', 'v');
      expect(r.payload.length, 'a reference, not a body').to.be.below(80);
    }
    await worker().drainOnce();
    expect(imports).to.have.length(1);
    expect(byValue(imports[0]!)).to.deep.equal(byValue(ingested.ops.map((o) => o.payload as DefenderIndicatorBody)));
    expect(rows()).to.deep.equal([]);
    expect((await store.getSinkIds('defender', ['ipv4:198.51.100.7'])).get('ipv4:198.51.100.7')).to.equal('id-198.51.100.7');
  });

  it('delivers a row written before the change, which carries the whole body', async () => {
    const body = route.route('ipv4:198.51.100.8', { key: 'ipv4:198.51.100.8', sourceId: 'indicator--8', updatedAt: 1,
      change: change('indicator--8', 'ipv4', '198.51.100.8', 70) }, Date.now()).op!.payload as DefenderIndicatorBody;
    const old: SinkOp = { sink: 'defender', key: 'ipv4:198.51.100.8', op: 'upsert', payload: body, sourceRef: { system: 'opencti', id: 'indicator--8' } };
    await store.commit({ source: 't', checkpoint: null, claimUpserts: [], claimDeletes: [], ops: [old], deadLetters: [] });
    expect(JSON.parse(rows()[0]!.payload)).to.have.property('indicatorValue', '198.51.100.8');
    await worker().drainOnce();
    expect(imports).to.deep.equal([[body]]);
    expect(rows()).to.deep.equal([]);
  });

  it('sends nothing for a row whose claim is gone: the removal queued after it is what goes', async () => {
    await pipeline().ingest('opencti', [create(1, change('indicator--1', 'ipv4', '198.51.100.9', 80))]);
    const leased = await store.claimDue('defender', 500, Date.now(), 60_000);
    // The object is deleted while its upsert is in flight: the claim goes, a delete replaces the row.
    await pipeline().ingest('opencti', [remove(2, 'indicator--1')]);
    const w = worker();
    await w.deliver(leased);
    expect(imports, 'nothing imported for a claim that no longer exists').to.deep.equal([]);
    expect(rows().map((r) => [r.key, r.op])).to.deep.equal([['ipv4:198.51.100.9', 'delete']]);
    // Never created in Defender: the delete is acknowledged without a call.
    await w.drainOnce();
    expect(rows()).to.deep.equal([]);
    expect(imports).to.deep.equal([]);
  });

  it('a row in flight when its claim changes sends nothing: the newer row sends the new state, once', async () => {
    await pipeline().ingest('opencti', [create(1, change('indicator--1', 'ipv4', '198.51.100.10', 80))]);
    const leased = await store.claimDue('defender', 500, Date.now(), 60_000);
    await new Promise((r) => setTimeout(r, 5)); // another batch, another millisecond
    // The object is rescored while its first upsert is in flight: a newer row replaces it and waits for the lease.
    await pipeline().ingest('opencti', [create(2, change('indicator--1', 'ipv4', '198.51.100.10', 40))]);
    const w = worker();
    await w.deliver(leased);
    await w.drainOnce();
    // Before the fix the in-flight row was sent with the new body and the newer row again (issue 12).
    expect(imports.map((list) => list.map((i) => [i.indicatorValue, i.severity]))).to.deep.equal([[['198.51.100.10', 'Medium']]]);
    expect(rows()).to.deep.equal([]);
    expect((await store.getSinkIds('defender', ['ipv4:198.51.100.10'])).get('ipv4:198.51.100.10')).to.equal('id-198.51.100.10');
  });

  it('the review file, the guard and dead letters read bodies, never references', async () => {
    const review = join(dir, 'review.jsonl');
    const l = log;
    const gate = new GuardGate({ sink: 'defender', enabled: true, onProtected: 'audit', specialAddresses: 'audit', holdMs: 1000,
      actions: DEFENDER_GATE_ACTIONS, withdrawalShare: 0, withdrawalMin: 50 },
    new ProtectedList(configSchema.parse({}).guard, l), new Breaker(store, l, new Metrics(), 0, 1000), store, l, new Metrics());
    refuse.add('198.51.100.10');
    await pipeline().ingest('opencti', [
      create(1, change('indicator--1', 'domain', 'download.microsoft.com', 90)),
      create(2, change('indicator--2', 'ipv4', '198.51.100.10', 90)),
    ]);
    await worker({ gate, wrap: (h) => new RecordingHandler(h, { sink: 'defender', batchSize: 500, file: review, log: l }) }).drainOnce();
    const recorded = readFileSync(review, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { key: string; payload: DefenderIndicatorBody });
    expect(recorded.map((r) => [r.key, r.payload.indicatorValue, r.payload.action]).sort()).to.deep.equal([
      ['domain:download.microsoft.com', 'download.microsoft.com', 'Block'],
      ['ipv4:198.51.100.10', '198.51.100.10', 'Block'],
    ]);
    // The guard read the Block from the body and sent Audit for the protected value.
    expect(byValue(imports[0]!).map((b) => [b.indicatorValue, b.action])).to.deep.equal([
      ['198.51.100.10', 'Block'],
      ['download.microsoft.com', 'Audit'],
    ]);
    const letters = await store.listDeadLetters({ sink: 'defender' });
    expect(letters.map((d) => (d.payload as DefenderIndicatorBody).indicatorValue)).to.deep.equal(['198.51.100.10']);
    // Its source, rebuilt from the claim with the body, is what the guard attributes the decision to.
    expect((await store.listDecisions({ limit: 10 })).map((d) => [d.key, d.wanted, d.outcome, d.source, d.sourceRef]))
      .to.deep.include(['domain:download.microsoft.com', 'Block', 'downgrade', 'opencti', 'indicator--1']);
  });
});

describe('Defender route: the body of an upsert is made when read', () => {
  it('routes without building the body; the first read makes the body mapToDefender makes, later reads get the same one', () => {
    let tagReads = 0;
    // Only the body reads the tags: how often they were read says how often a body was built.
    const counting: DefenderMapping = { ...mapping, get tags() { tagReads += 1; return ['tb']; } };
    const claim = { key: 'ipv4:198.51.100.9', sourceId: 'indicator--9', updatedAt: 7, change: change('indicator--9', 'ipv4', '198.51.100.9', 70) };
    const now = Date.now();
    const op = new DefenderRoute('defender', counting).route(claim.key, claim, now).op!;
    expect(tagReads, 'nothing built while routing').to.equal(0);
    expect(op.stored).to.deep.equal({ claim: 'indicator--9', at: now, v: 7 });
    const body = op.payload;
    expect(body).to.deep.equal((mapToDefender(claim.change, mapping, now) as { body: DefenderIndicatorBody }).body);
    expect(op.payload).to.equal(body);
    expect(tagReads).to.equal(1);
  });
});
