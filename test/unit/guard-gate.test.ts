// The gate on a real store, driven the way the service drives it: the Defender delivery asks the
// gate, answers what the breaker holds as `retry` outcomes, and the core settles them in the
// outbox. What `threatbridge resume` releases goes out in full and does not count again; a source
// removing a large share of what a sink holds waits; one summary line per interval, and the core
// adds none per batch.
import { expect } from 'chai';
import nock from 'nock';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { configSchema } from '../../src/config/schema.js';
import { DeliveryWorker } from '../../src/core/delivery.js';
import { Breaker } from '../../src/guard/breaker.js';
import { GuardGate } from '../../src/guard/gate.js';
import { DEFENDER_GATE_ACTIONS } from '../../src/guard/guard.js';
import { ProtectedList } from '../../src/guard/list.js';
import { DefenderApi } from '../../src/microsoft/defender/client.js';
import type { TokenProvider } from '../../src/microsoft/token.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { DefenderDelivery } from '../../src/sinks/defender/delivery.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { OutboxItem, SinkOp } from '../../src/core/types.js';
import type { Store } from '../../src/core/store.js';

const BASE = 'https://defender.test';
type Body = { action: string };
const value = (n: number) => `203.0.${Math.floor(n / 250)}.${(n % 250) + 1}`;
const ip = (n: number) => `ipv4:${value(n)}`;
const block = (n: number): SinkOp => ({ sink: 'defender', key: ip(n), op: 'upsert', sourceRef: { system: 'opencti', id: `indicator--${n}` },
  payload: { indicatorValue: value(n), indicatorType: 'IpAddress', action: 'Block', title: 't', description: 'd', severity: 'High',
    expirationTime: '2030-01-01T00:00:00Z', generateAlert: true, application: 'ThreatBridge' } });
const remove = (n: number): SinkOp => ({ sink: 'defender', key: ip(n), op: 'delete', sourceRef: { system: 'opencti', id: `indicator--${n}` },
  payload: { indicatorType: 'IpAddress', indicatorValue: value(n) } });
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('guard gate on a store, through the Defender delivery and the core', () => {
  let store: Store;
  let lines: { msg: string; held?: number }[];
  /** Values per import call, ids per BatchDelete call, as Defender received them. */
  let imports: string[][];
  let deletes: string[][];
  const log = () => createLogger('warn', new Writable({ write(chunk, _e, done) { lines.push(JSON.parse(String(chunk))); done(); } }));
  beforeEach(() => {
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-gate-')));
    lines = [];
    imports = [];
    deletes = [];
    nock.disableNetConnect();
    nock(BASE).persist().post('/api/indicators/import').reply((_uri, b) => {
      const values = (b as { Indicators: { indicatorValue: string }[] }).Indicators.map((i) => i.indicatorValue);
      imports.push(values);
      return [200, { value: values.map((v) => ({ id: `id-${v}`, indicator: v, isFailed: false, failureReason: null })) }];
    });
    nock(BASE).persist().post('/api/indicators/BatchDelete').reply((_uri, b) => {
      deletes.push((b as { IndicatorIds: string[] }).IndicatorIds);
      return [204, ''];
    });
  });
  afterEach(async () => {
    nock.cleanAll();
    nock.enableNetConnect();
    await store.close();
  });

  const gateWith = (l: Logger, over: { maxPerHour?: number; share?: number; min?: number; holdMs?: number } = {}) => {
    const breaker = new Breaker(store, l, new Metrics(), over.maxPerHour ?? 0, 1000);
    return new GuardGate({ sink: 'defender', enabled: true, onProtected: 'audit', specialAddresses: 'audit', holdMs: over.holdMs ?? 1000,
      actions: DEFENDER_GATE_ACTIONS, withdrawalShare: over.share ?? 0.2, withdrawalMin: over.min ?? 10 },
    new ProtectedList(configSchema.parse({}).guard, l), breaker, store, l, new Metrics());
  };
  /** The Defender sink as the service builds it: delivery with the gate, settled by the core's worker. */
  const sinkWith = (over: Parameters<typeof gateWith>[1] = {}, batchSize = 500) => {
    const l = log();
    const gate = gateWith(l, over);
    const tokens = { getToken: async () => 'token' } as unknown as TokenProvider;
    const client = new DefenderApi({ baseUrl: BASE, resourcePath: '/api/indicators', timeoutMs: 5000, verifyTls: true,
      batchCallsPerMinute: 1000, callsPerMinute: 1000, callsPerHour: 10_000, tokens, log: l, metrics: { metrics: new Metrics(), label: 'defender' } });
    const worker = new DeliveryWorker(store, new DefenderDelivery('defender', batchSize, client, store, l, new Metrics(), { gate }), l, new Metrics());
    /** Lease what is due at `at` (default now) and deliver it. */
    const deliver = async (at = Date.now()) => worker.deliver(await store.claimDue('defender', batchSize, at, 60_000));
    return { gate, worker, deliver };
  };
  const enqueue = (ops: SinkOp[]) => store.commit({ source: 't', checkpoint: null, claimUpserts: [], claimDeletes: [], ops, deadLetters: [] });
  const waiting = async (at: number) => (await store.outboxStats(at)).find((s) => s.sink === 'defender') ?? { pending: 0, due: 0 };

  it('resume releases everything the breaker held, and the hour counts from the release', async () => {
    const { gate, deliver } = sinkWith({ maxPerHour: 30, holdMs: 1000 });
    await enqueue(Array.from({ length: 40 }, (_, n) => block(n)));
    await deliver();
    expect(imports.map((c) => c.length)).to.deep.equal([30]);
    const heldKeys = Array.from({ length: 40 }, (_, n) => ip(n)).filter((k) => !imports[0]!.includes(k.slice(5)));
    expect(heldKeys).to.have.length(10);
    expect([...gate.breaker.paused]).to.deep.equal(['opencti']);
    // The core stored the ten as a retry: they wait in the outbox until the hold interval is over.
    expect(await waiting(Date.now())).to.include({ pending: 10, due: 0 });
    expect(await waiting(Date.now() + 1500)).to.include({ pending: 10, due: 10 });

    await store.resumeBreakers('opencti', Date.now());
    await gate.breaker.refresh(true);
    await pause(5);
    // The ten come back (retried), together with 29 new ones enqueued after the release.
    await enqueue(Array.from({ length: 29 }, (_, n) => block(100 + n)));
    await deliver(Date.now() + 1500);
    expect(imports[1], 'nothing held: the released ten do not count again').to.have.length(39);
    expect(await waiting(Date.now() + 3_600_000)).to.include({ pending: 0 });
    expect(gate.breaker.paused.size).to.equal(0);
    const released = (await store.listDecisions({ limit: 100 })).filter((d) => d.reason.includes('released'));
    expect(released.map((d) => d.key).sort()).to.deep.equal(heldKeys.sort());
    // The window counts from the release: 29 used, one more fits, the second trips it.
    await enqueue([block(200)]);
    await deliver();
    expect(imports[2]).to.deep.equal([value(200)]);
    await enqueue([block(201)]);
    await deliver();
    expect(imports).to.have.length(3);
    expect(await waiting(Date.now() + 1500)).to.include({ pending: 1, due: 1 });
  });

  it('holds removals of more than the share of what the sink holds until resume, and lets routine removals go', async () => {
    const { gate, deliver } = sinkWith({ share: 0.2, min: 10, holdMs: 1000 });
    await store.setSinkIds('defender', Array.from({ length: 100 }, (_, n) => ({ key: ip(n), externalId: `id-${n}` })));
    // Routine: 5 of 100 go (below the minimum), then 10 more (15% of what was held) still go.
    await enqueue(Array.from({ length: 5 }, (_, n) => remove(n)));
    await deliver();
    expect(deletes.map((c) => c.length)).to.deep.equal([5]);
    await enqueue(Array.from({ length: 10 }, (_, n) => remove(5 + n)));
    await deliver();
    expect(deletes.map((c) => c.length)).to.deep.equal([5, 10]);
    // A filter change: 75 more would make 90 of 100: all 75 wait, the breaker is open.
    await enqueue(Array.from({ length: 75 }, (_, n) => remove(15 + n)));
    await deliver();
    expect(deletes).to.have.length(2);
    expect(await waiting(Date.now())).to.include({ pending: 75, due: 0 });
    expect([...gate.breaker.paused]).to.deep.equal(['opencti']);
    expect((await store.listBreakers())[0]!.reason).to.include('90 removals').and.include('90%');
    // Removals of what the sink does not hold cost nothing and are never held.
    await enqueue([remove(999)]);
    await deliver();
    expect(deletes).to.have.length(2);
    expect(await waiting(Date.now() + 1500)).to.include({ pending: 75, due: 75 });

    await store.resumeBreakers(null, Date.now());
    await gate.breaker.refresh(true);
    await deliver(Date.now() + 1500);
    expect(deletes[2], 'the operator released them: all go').to.have.length(75);
    expect(await waiting(Date.now() + 3_600_000)).to.include({ pending: 0 });
  });

  /** A removal as the core hands it to the delivery: `attempts` failed tries before (the sink was down). */
  const removal = (n: number, attempts = 0): OutboxItem => ({ ...remove(n), seq: n + 1, attempts, enqueuedAt: Date.now(), unconfirmedSend: false });
  const keysOf = (from: number, count: number) => new Set(Array.from({ length: count }, (_, n) => ip(from + n)));

  it('a cold sink: deliberate deletes of a few of what it has just confirmed do not trip it', async () => {
    // A fresh sink with a low removal minimum: six confirmed, the source deletes three of them.
    const { gate, deliver } = sinkWith({ share: 0.2, min: 2, holdMs: 1000 });
    await enqueue(Array.from({ length: 6 }, (_, n) => block(n)));
    await deliver();
    expect(imports.map((c) => c.length)).to.deep.equal([6]);
    await enqueue(Array.from({ length: 3 }, (_, n) => remove(n)));
    await deliver();
    expect(deletes.map((c) => c.length), 'measured against at least 20, not against the 6 it holds').to.deep.equal([3]);
    expect(gate.breaker.paused.size).to.equal(0);
    expect(await store.listBreakers()).to.deep.equal([]);
  });

  it('a down sink: a retried removal counts once; a mass withdrawal of what it holds still trips it', async () => {
    const gate = gateWith(log(), { share: 0.2, min: 10 });
    const held = keysOf(0, 200);
    // 25 of 200 (12.5%) asked; the sink fails them four times over: still 25 removals, never 125.
    for (let attempts = 0; attempts < 5; attempts++) {
      const r = await gate.screenRemovals(Array.from({ length: 25 }, (_, n) => removal(n, attempts)), held, 200);
      expect(r.send, `attempt ${attempts}`).to.have.length(25);
      expect(r.hold).to.have.length(0);
    }
    expect(gate.breaker.paused.size).to.equal(0);
    expect((await store.listDecisions({ limit: 1000 })).filter((d) => d.outcome === 'withdraw')).to.have.length(125);
    // The sink is back and the 25 went (175 held). A filter change drops 135 more: 160 of the 200
    // confirmed (80%) wait for resume.
    const r = await gate.screenRemovals(Array.from({ length: 135 }, (_, n) => removal(25 + n)), keysOf(25, 175), 175);
    expect(r.send).to.have.length(0);
    expect(r.hold).to.have.length(135);
    expect([...gate.breaker.paused]).to.deep.equal(['opencti']);
    expect((await store.listBreakers())[0]!.reason).to.include('160 removals').and.include('80%').and.include('of the 200');
  });

  it('a freshly filled sink: a source reset withdrawing nearly all of it trips it', async () => {
    const { gate, deliver } = sinkWith({ share: 0.2, min: 10, holdMs: 1000 });
    await enqueue(Array.from({ length: 30 }, (_, n) => block(n)));
    await deliver();
    await enqueue(Array.from({ length: 28 }, (_, n) => remove(n)));
    await deliver();
    expect(deletes).to.have.length(0);
    expect(await waiting(Date.now())).to.include({ pending: 28, due: 0 });
    expect([...gate.breaker.paused]).to.deep.equal(['opencti']);
    expect((await store.listBreakers())[0]!.reason).to.include('28 removals').and.include('93%');
  });

  it('logs one summary line per interval for a held cold fill, not one per indicator or per batch', async () => {
    const { gate, worker } = sinkWith({ maxPerHour: 5, holdMs: 60_000 }, 50);
    await enqueue(Array.from({ length: 500 }, (_, n) => block(n)));
    expect(await worker.drainOnce()).to.equal(500);
    expect(imports.map((c) => c.length)).to.deep.equal([5]);
    const summaries = lines.filter((l) => String(l.msg).includes('wait for `threatbridge resume opencti`'));
    expect(summaries).to.have.length(1);
    expect(summaries[0]!.held).to.equal(45);
    expect(lines.length, 'trip error + one summary; the core logs no line per held batch').to.be.at.most(3);
    expect((await store.listDecisions({ limit: 1000 })).filter((d) => d.outcome === 'breaker')).to.have.length(495);
    expect(await waiting(Date.now() + 59_000)).to.include({ pending: 495, due: 0 });
    // The next interval brings one more line with what waited meanwhile (the gate's own clock).
    const one: OutboxItem<Body> = { sink: 'defender', key: ip(999), op: 'upsert', payload: { action: 'Block' },
      sourceRef: { system: 'opencti', id: 'indicator--999' }, seq: 1000, attempts: 0, enqueuedAt: Date.now(), unconfirmedSend: false };
    const later = Date.now() + 61_000;
    const r = await gate.screen([one], new Set(), (p) => p.action, (p, action) => ({ ...p, action }), later);
    expect(r.hold).to.have.length(1);
    expect(r.holdAs, 'looked at again one hold interval later').to.include({ kind: 'retry', notBefore: later + 60_000 });
    const next = lines.filter((l) => String(l.msg).includes('wait for `threatbridge resume opencti`'));
    expect(next).to.have.length(2);
    expect(next[1]!.held).to.equal(451);
  });
});
