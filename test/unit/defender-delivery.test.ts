// Contract tests of the Defender delivery policy against recorded API shapes (nock).
import { expect } from 'chai';
import nock from 'nock';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { DeliveryWorker } from '../../src/core/delivery.js';
import { DefenderApi, DefenderApiError } from '../../src/microsoft/defender/client.js';
import type { DefenderHolders } from '../../src/sinks/defender/reconcile.js';
import { DefenderDelivery } from '../../src/sinks/defender/delivery.js';
import type { TokenProvider } from '../../src/microsoft/token.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { SinkOp } from '../../src/core/types.js';

const BASE = 'https://defender.test';
const log = createLogger('error');

function body(value: string) {
  return { indicatorValue: value, indicatorType: 'IpAddress', action: 'Block', title: value, description: 'd', severity: 'High',
    expirationTime: '2030-01-01T00:00:00Z', generateAlert: true, application: 'ThreatBridge' };
}
const upsert = (value: string): SinkOp => ({ sink: 'defender', key: `ipv4:${value}`, op: 'upsert', payload: body(value), sourceRef: null });
const del = (value: string): SinkOp => ({ sink: 'defender', key: `ipv4:${value}`, op: 'delete', payload: { indicatorType: 'IpAddress', indicatorValue: value }, sourceRef: null });

describe('Defender delivery (contract)', () => {
  let store: SqliteStore;
  let delivery: DefenderDelivery;
  let client: DefenderApi;
  let tokens: { calls: boolean[] };

  beforeEach(() => {
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-dd-')));
    tokens = { calls: [] };
    const provider = { getToken: async (force: boolean) => { tokens.calls.push(force); return force ? 'fresh' : 'cached'; } } as unknown as TokenProvider;
    client = new DefenderApi({ baseUrl: BASE, resourcePath: '/api/indicators', timeoutMs: 5000, verifyTls: true,
      batchCallsPerMinute: 30, callsPerMinute: 90, callsPerHour: 1500, tokens: provider, log, metrics: { metrics: new Metrics(), label: 'defender' } });
    delivery = new DefenderDelivery('defender', 500, client, store, log, new Metrics());
    nock.disableNetConnect();
  });
  afterEach(async () => {
    nock.cleanAll();
    nock.enableNetConnect();
    await store.close();
  });

  const enqueue = (ops: SinkOp[]) => store.commit({ source: 't', checkpoint: null, claimUpserts: [], claimDeletes: [], ops, deadLetters: [] });
  const run = async () => new DeliveryWorker(store, delivery, log, new Metrics()).deliver(await store.claimDue('defender', 500, Date.now(), 60_000));

  it('imports a batch in one call with capital Indicators and records the ids', async () => {
    await enqueue([upsert('1.1.1.1'), upsert('2.2.2.2')]);
    const scope = nock(BASE).matchHeader('authorization', 'Bearer cached')
      .post('/api/indicators/import', (b) => Array.isArray(b.Indicators) && b.Indicators.length === 2)
      .reply(200, { value: [
        { id: '11', indicator: '2.2.2.2', isFailed: false, failureReason: null },
        { id: '10', indicator: '1.1.1.1', isFailed: false, failureReason: null },
      ] });
    await run();
    scope.done();
    const ids = await store.getSinkIds('defender', ['ipv4:1.1.1.1', 'ipv4:2.2.2.2']);
    expect(Object.fromEntries(ids)).to.deep.equal({ 'ipv4:1.1.1.1': '10', 'ipv4:2.2.2.2': '11' });
    expect((await store.outboxStats(Date.now())).length).to.equal(0);
  });

  it('dead-letters an item Defender rejects and keeps the others', async () => {
    await enqueue([upsert('1.1.1.1'), upsert('3.3.3.3')]);
    nock(BASE).post('/api/indicators/import').reply(200, { value: [
      { id: '1', indicator: '1.1.1.1', isFailed: false, failureReason: null },
      { id: null, indicator: '3.3.3.3', isFailed: true, failureReason: 'InvalidIpAddress: reserved range' },
    ] });
    await run();
    const dead = await store.listDeadLetters();
    expect(dead.map((d) => d.key)).to.deep.equal(['ipv4:3.3.3.3']);
    expect(dead[0]!.reason).to.include('InvalidIpAddress');
  });

  it('bisects a whole-batch 400 down to the bad item', async () => {
    await enqueue(['1.1.1.1', '2.2.2.2', '3.3.3.3', '4.4.4.4'].map(upsert));
    nock(BASE).post('/api/indicators/import').times(10).reply((_uri, b) => {
      const values = (b as { Indicators: { indicatorValue: string }[] }).Indicators.map((i) => i.indicatorValue);
      if (values.includes('3.3.3.3')) return [400, { error: { code: 'InvalidRequestBody', message: 'bad item' } }];
      return [200, { value: values.map((v, i) => ({ id: `id${i}${v}`, indicator: v, isFailed: false, failureReason: null })) }];
    });
    await run();
    expect((await store.listDeadLetters()).map((d) => d.key)).to.deep.equal(['ipv4:3.3.3.3']);
    expect((await store.getSinkIds('defender', ['ipv4:1.1.1.1', 'ipv4:2.2.2.2', 'ipv4:4.4.4.4'])).size).to.equal(3);
  });

  it('honours Retry-After on 429 and keeps the work', async () => {
    await enqueue([upsert('1.1.1.1')]);
    nock(BASE).post('/api/indicators/import').reply(429, { error: { code: 'TooManyRequests', message: 'quota' } }, { 'Retry-After': '30' });
    const before = Date.now();
    await run();
    const next = await store.nextDueAt('defender');
    expect(next).to.be.at.least(before + 29_000);
    expect(client.pacer.pausedMs).to.be.greaterThan(25_000);
    expect(await store.listDeadLetters()).to.have.length(0);
  });

  it('keeps work on 5xx and on a dropped connection', async () => {
    await enqueue([upsert('1.1.1.1')]);
    nock(BASE).post('/api/indicators/import').reply(503, 'unavailable');
    await run();
    expect((await store.outboxStats(Date.now() + 10 * 60_000))[0]!.pending).to.equal(1);
    await store.retry(await store.claimDue('defender', 10, Date.now() + 10 * 60_000, 1), 0, 'x');
    nock(BASE).post('/api/indicators/import').replyWithError({ code: 'ECONNRESET', message: 'socket hang up' });
    await run();
    expect((await store.outboxStats(Date.now()))[0]!.pending).to.equal(1);
    expect(await store.listDeadLetters()).to.have.length(0);
  });

  it('refreshes the token once on 401', async () => {
    await enqueue([upsert('1.1.1.1')]);
    nock(BASE).post('/api/indicators/import').matchHeader('authorization', 'Bearer cached').reply(401, { error: { code: 'Unauthorized' } });
    nock(BASE).post('/api/indicators/import').matchHeader('authorization', 'Bearer fresh')
      .reply(200, { value: [{ id: '5', indicator: '1.1.1.1', isFailed: false, failureReason: null }] });
    await run();
    expect(tokens.calls).to.deep.equal([false, true]);
    expect((await store.getSinkIds('defender', ['ipv4:1.1.1.1'])).get('ipv4:1.1.1.1')).to.equal('5');
  });

  it('deletes by recorded id through BatchDelete and treats a vanished id as done', async () => {
    await enqueue([upsert('1.1.1.1'), upsert('2.2.2.2')]);
    nock(BASE).post('/api/indicators/import').reply(200, { value: [
      { id: '1', indicator: '1.1.1.1', isFailed: false, failureReason: null },
      { id: '2', indicator: '2.2.2.2', isFailed: false, failureReason: null },
    ] });
    await run();
    await enqueue([del('1.1.1.1'), del('2.2.2.2'), del('9.9.9.9')]);
    nock(BASE).post('/api/indicators/BatchDelete', { IndicatorIds: ['1', '2'] }).reply(404, { error: { code: 'ResourceNotFound' } });
    nock(BASE).post('/api/indicators/BatchDelete', { IndicatorIds: ['1'] }).reply(204);
    nock(BASE).post('/api/indicators/BatchDelete', { IndicatorIds: ['2'] }).reply(404, { error: { code: 'ResourceNotFound' } });
    await run();
    expect(nock.isDone()).to.equal(true);
    expect((await store.getSinkIds('defender', ['ipv4:1.1.1.1', 'ipv4:2.2.2.2'])).size).to.equal(0);
    expect(await store.outboxStats(Date.now())).to.deep.equal([]);
  });

  it("treats a whole-call 400 for the tenant's indicator cap as capacity: retried, not bisected or dead-lettered", async () => {
    await enqueue([upsert('3.3.3.3'), upsert('4.4.4.4')]);
    const scope = nock(BASE).post('/api/indicators/import').once()
      .reply(400, { error: { code: 'BadRequest', message: 'The maximum number of active indicators (15000) for this tenant has been reached.', target: 'x' } });
    await run();
    scope.done();
    expect(await store.listDeadLetters()).to.have.length(0);
    expect((await store.outboxStats(Date.now() + 16 * 60_000))[0]).to.include({ pending: 2, due: 2 });
  });

  it('waits for set-up, sending nothing, when Defender refuses to list who holds the values (403)', async () => {
    await enqueue([upsert('3.3.3.3')]);
    const holders = { holdersOf: async () => { throw new DefenderApiError('Defender indicators listing failed (HTTP 403): Forbidden', 403); } } as unknown as DefenderHolders;
    const guarded = new DefenderDelivery('defender', 500, client, store, log, new Metrics(), { holders });
    const items = await store.claimDue('defender', 500, Date.now(), 60_000);
    const { send, settled } = await guarded.prepare(items, new AbortController().signal);
    expect(send).to.have.length(0);
    expect(settled.map((s) => s.outcome.kind)).to.deep.equal(['wait-for-setup']);
    expect((settled[0]!.outcome as { reason: string }).reason).to.contain('Ti.ReadWrite.All');
  });
});

