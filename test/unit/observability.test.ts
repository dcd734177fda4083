// Issue 16: what the service says and shows. Lines are counted from a captured log stream; pages
// and answers are read over real HTTP on loopback.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ignoredEvent, Pipeline, type IngestItem } from '../../src/core/pipeline.js';
import { Router, type SinkRoute } from '../../src/core/router.js';
import { TlpPolicy } from '../../src/guard/tlp.js';
import { msalLine, TokenProvider } from '../../src/microsoft/token.js';
import { LogLevel } from '@azure/msal-node';
import { DefenderApi } from '../../src/microsoft/defender/client.js';
import { DefenderSimulator, MDE_AUDIENCES } from '../../sim/defender/server.js';
import { HealthServer } from '../../src/observability/health.js';
import { esc } from '../../src/observability/html.js';
import { Metrics } from '../../src/observability/metrics.js';
import { publicText } from '../../src/observability/public-text.js';
import { Reachability } from '../../src/observability/reachability.js';
import { renderStatus, type StatusModel } from '../../src/observability/status-page.js';
import { statusModel } from '../../src/observability/status-model.js';
import { registerSecret } from '../../src/observability/logger.js';
import { mispSection } from '../../src/sources/misp/config.js';
import { MispRest } from '../../src/sources/misp/rest.js';
import { EventCache, normaliseZmq } from '../../src/sources/misp/normalise.js';
import { createContext, normaliseEvent } from '../../src/sources/opencti/normalise.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { capturingLogger } from '../support/log-capture.js';

const GUID = '5b6d2f0e-1c2a-4b9e-8a51-3d0f1e2a7c44';

async function serve(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

describe('reachability lines (one error after the stated time, one line on recovery)', () => {
  it('a part down for 60 s logs exactly one error however often it fails, and one line when it answers again', () => {
    let now = 1_000_000;
    const { log, lines } = capturingLogger('info');
    const connected: string[] = [];
    const reach = new Reachability((kind, name, up) => connected.push(`${kind}:${name}:${up ? 1 : 0}`), () => now);
    reach.attach(log, 60_000);
    try {
      // A blip shorter than the stated time: no line at all.
      reach.down('source', 'misp', 'connect ECONNREFUSED');
      now += 30_000;
      reach.check();
      reach.up('source', 'misp');
      expect(lines).to.have.length(0);
      // An outage: failures every second for two minutes.
      for (let t = 0; t < 120; t++) {
        reach.down('source', 'misp', 'connect ECONNREFUSED');
        now += 1000;
        reach.check();
      }
      const errors = lines.filter((l) => l.level === 'error');
      expect(errors).to.have.length(1);
      expect(errors[0]).to.include({ source: 'misp', problem: 'connect ECONNREFUSED' });
      expect(errors[0]!['downForS']).to.be.within(60, 61);
      reach.up('source', 'misp');
      reach.up('source', 'misp');
      expect(lines).to.have.length(2);
      expect(lines[1]).to.include({ level: 'info', source: 'misp' });
      expect(lines[1]!.msg).to.match(/reachable again after 12\d s/);
      expect(connected.at(-1)).to.equal('source:misp:1');
      expect(connected).to.include('source:misp:0');
    } finally {
      reach.detach();
    }
  });

  it('drives the connected gauge of every source (MISP and the pollers included)', async () => {
    const m = new Metrics();
    m.reach.down('source', 'misp', 'x');
    m.reach.up('source', 'defender_assets');
    const values = (await m.sourceConnected.get()).values.map((v) => [v.labels.source, v.value]);
    expect(values).to.deep.include.members([['misp', 0], ['defender_assets', 1]]);
  });
});

describe('skip reasons: one debug line per decision, nothing at info', () => {
  const route: SinkRoute = {
    sink: 'test',
    route: (key, claim) => ({ sink: 'test', op: claim ? { sink: 'test', key, op: 'upsert', payload: null, sourceRef: claim.change.sourceRef } : null, reason: 'test' }),
  };

  /** Revoked on create (OpenCTI), IDS flag off (MISP), a TLP:RED indicator, an unusable observable. */
  function decisions(): IngestItem[] {
    const OCTI = 'extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba';
    const indicator = (o: Record<string, unknown>) => JSON.stringify({ type: 'create', data: {
      id: 'indicator--0f3d4b3e-6c1a-5b7e-9a52-2f6f0c6c1d11', spec_version: '2.1', type: 'indicator', name: 'x', pattern_type: 'stix', valid_from: '2023-11-14T22:13:20.000Z',
      extensions: { [OCTI]: { id: GUID, type: 'Indicator', score: 80 } }, ...o } });
    const revoked = normaliseEvent('create', indicator({ id: 'indicator--11111111-1111-4111-8111-111111111111', pattern: "[ipv4-addr:value = '198.51.100.1']", revoked: true }), createContext('http://opencti:8080'));
    const red = normaliseEvent('create', indicator({ id: 'indicator--22222222-2222-4222-8222-222222222222', pattern: "[ipv4-addr:value = '198.51.100.2']",
      object_marking_refs: ['marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed'] }), createContext('http://opencti:8080'));
    const mixed = normaliseEvent('create', indicator({ id: 'indicator--33333333-3333-4333-8333-333333333333', pattern: "[ipv4-addr:value = '198.51.100.3'] OR [ipv4-addr:value = '999.1.1.1']" }), createContext('http://opencti:8080'));
    const ctx = { policy: { ...mispSection.parse({}), url: 'https://misp.example' }, events: new EventCache(), now: () => Date.now() };
    const noIds = normaliseZmq('misp_json', JSON.stringify({ Event: { id: '7', uuid: 'e-7', info: 'x', published: true, threat_level_id: '1', publish_timestamp: '1773000000', orgc_id: '1',
      Attribute: [{ id: '66', event_id: '7', type: 'ip-dst', value: '198.51.100.4', to_ids: false, uuid: 'a-1', timestamp: '1773000000', deleted: false }] } }), ctx).items[0]!;
    expect(revoked.withdrawn).to.equal('revoked on create: nothing sent');
    expect(noIds.normalised.withdrawn).to.equal('IDS flag is off');
    expect(red.changes[0]?.tlp).to.equal('TLP:RED');
    expect(mixed.skipped).to.have.length(1);
    const item = (normalised: IngestItem['normalised'], n: number): IngestItem => ({ normalised, raw: null, event: 'create', position: `${n}-0`, checkpoint: null });
    return [item(revoked, 1), item(red, 2), item(mixed, 3), item(noIds.normalised, 4)];
  }

  async function run(level: string) {
    const dir = mkdtempSync(join(tmpdir(), 'tb-obs-'));
    const store = new SqliteStore(dir);
    const { log, lines } = capturingLogger(level);
    try {
      await new Pipeline(store, new Router([route]), log, new Metrics(), { screen: new TlpPolicy({}), decisions: store }).ingest('opencti', decisions());
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
    return lines;
  }

  it('at debug: revoked-on-create, IDS flag off, TLP:RED and an unusable observable each leave exactly one line with the reason', async () => {
    const lines = (await run('debug')).filter((l) => l.msg !== 'routing decision');
    const byMsg = (msg: string) => lines.filter((l) => l.msg === msg);
    expect(byMsg('nothing asserted').map((l) => l['reason'])).to.deep.equal(['revoked on create: nothing sent', 'IDS flag is off']);
    expect(byMsg('TLP policy: indicator stays home')).to.have.length(1);
    expect(byMsg('observable skipped')).to.have.length(1);
    expect(lines.every((l) => l.level === 'debug'), JSON.stringify(lines)).to.equal(true);
    expect(lines).to.have.length(4);
  });

  it('at the default level (info): none of them', async () => {
    expect(await run('info')).to.deep.equal([]);
  });
});

describe('metrics of a stored batch', () => {
  it('count every event, skipped observable and enqueued operation of the batch by label set', async () => {
    const route: SinkRoute = {
      sink: 'test',
      route: (key, claim) => ({ sink: 'test', op: claim ? { sink: 'test', key, op: 'upsert', payload: null, sourceRef: claim.change.sourceRef } : null, reason: 'test' }),
    };
    const indicator = (n: number, pattern: string) => normaliseEvent('create', JSON.stringify({ type: 'create', data: {
      id: `indicator--${n}${n}${n}${n}${n}${n}${n}${n}-1111-4111-8111-111111111111`, spec_version: '2.1', type: 'indicator', name: 'x', pattern_type: 'stix',
      valid_from: '2023-11-14T22:13:20.000Z', pattern } }), createContext('http://opencti:8080'));
    const mixed = indicator(3, "[ipv4-addr:value = '198.51.100.3'] OR [ipv4-addr:value = '999.1.1.1']");
    const item = (normalised: IngestItem['normalised'], n: number, event = 'create'): IngestItem => ({ normalised, raw: null, event, position: `${n}-0`, checkpoint: null });
    const dir = mkdtempSync(join(tmpdir(), 'tb-obs-'));
    const store = new SqliteStore(dir);
    const metrics = new Metrics();
    try {
      await new Pipeline(store, new Router([route]), capturingLogger('info').log, metrics).ingest('opencti', [
        item(indicator(1, "[ipv4-addr:value = '198.51.100.1']"), 1), item(indicator(2, "[ipv4-addr:value = '198.51.100.2']"), 2), item(mixed, 3),
        item(ignoredEvent('heartbeat'), 4, 'heartbeat'),
      ]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const values = async (m: { get(): Promise<{ values: { labels: object; value: number }[] }> }) => (await m.get()).values.map((v) => [v.labels, v.value]);
    expect(await values(metrics.events)).to.deep.equal([
      [{ source: 'opencti', event: 'create', outcome: 'applied' }, 3], [{ source: 'opencti', event: 'heartbeat', outcome: 'ignored' }, 1]]);
    expect(await values(metrics.skipped)).to.deep.equal([[{ source: 'opencti', reason: mixed.skipped[0]!.code }, 1]]);
    expect(await values(metrics.opsEnqueued)).to.deep.equal([[{ sink: 'test', op: 'upsert' }, 3]]);
  });
});

describe("msal's free-text log lines", () => {
  it('become structured lines at trace (warnings) or debug (errors), with the text and correlation id as fields', () => {
    const msg = '[Mon, 07 Dec 2026 17:00:00 GMT] : [0f9b2c1e-0000-4000-8000-000000000001] : @azure/msal-node@3.8.0 : Warning - No client info in response';
    const { log, lines } = capturingLogger('trace');
    msalLine(log, LogLevel.Warning, msg);
    msalLine(log, LogLevel.Error, '[Mon, 07 Dec 2026 17:00:00 GMT] : @azure/msal-node@3.8.0 : Error - network failure');
    msalLine(log, LogLevel.Warning, 'not in the usual shape');
    expect(lines.map((l) => [l.level, l.msg, l['system'], l['msalLevel'], l['correlationId']])).to.deep.equal([
      ['trace', 'msal: No client info in response', 'entra', 'Warning', '0f9b2c1e-0000-4000-8000-000000000001'],
      ['debug', 'msal: network failure', 'entra', 'Error', undefined],
      ['trace', 'msal: not in the usual shape', 'entra', 'Warning', undefined],
    ]);
    const quiet = capturingLogger('info');
    msalLine(quiet.log, LogLevel.Warning, msg);
    expect(quiet.lines).to.deep.equal([]);
  });
});

describe('text shown outside the logs', () => {
  it('publicText drops GUIDs, URL credentials, Entra trace trailers, registered secrets and control characters', () => {
    registerSecret('sup3r-secret-value');
    const text = publicText(`AADSTS7000215 for client ${GUID} at https://user:pa55@host.example/x sup3r-secret-value \u001b[2J Trace ID: abc Correlation ID: def`);
    expect(text).to.not.include(GUID).and.not.include('pa55').and.not.include('sup3r-secret-value').and.not.include('\u001b').and.not.include('Trace ID');
    expect(text).to.include('AADSTS7000215').and.include('[id]');
    expect(publicText('x'.repeat(1000))).to.have.length(300);
  });

  it('esc escapes the five HTML characters and nothing else', () => {
    expect(esc(`<a href="x" onclick='y'>&amp;</a>`)).to.equal('&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
    expect(esc('plain ü 🙂')).to.equal('plain ü 🙂');
    expect(esc(null)).to.equal('');
  });

  it('the status page escapes every value it did not write (a hostile dead letter, source name and reason)', () => {
    const evil = '<script>alert(1)</script><img src=x onerror=alert(2)>';
    const model: StatusModel = {
      generatedAt: Date.now(), flows: [evil], store: evil,
      sources: [{ name: evil, role: 'reader', connected: false, problem: evil, downSince: Date.now() - 90_000, lastEventAt: null, lagSeconds: null }],
      sinks: [{ name: evil, pending: 3, oldestSeconds: 61, throttled: 2, reachable: true, problem: evil, downSince: null }],
      breakers: [{ source: evil, trippedAt: Date.now(), reason: evil }],
      deadLetters: { bySink: [{ sink: evil, count: 1 }], recent: [{ id: 1, sink: evil, op: evil, key: `${evil}\u001b[2J`, reason: evil, createdAt: Date.now() }] },
      caps: [{ sink: 'defender', held: 14_990, max: 15_000, budget: 14_500 }],
    };
    const html = renderStatus(model, 10);
    expect(html).to.not.include('<script').and.not.include('<img').and.not.include('\u001b');
    expect(html).to.include('&lt;script&gt;').and.include('threatbridge resume &lt;script');
    expect(html).to.include('<meta http-equiv="refresh" content="10">');
    expect(html).to.include('14,990').and.include('15,000');
  });
});

describe('health port', () => {
  const model = async (): Promise<StatusModel> => ({ generatedAt: Date.now(), flows: ['opencti -> defender'], store: 'sqlite', sources: [], sinks: [],
    breakers: [], deadLetters: { bySink: [], recent: [] }, caps: [] });

  it('/readyz says what is wrong without identifiers', async () => {
    const h = new HealthServer(new Metrics(), [{ name: 'defender', check: async () => `Entra ID token request failed for client ${GUID} in tenant ${GUID}: Trace ID: 1 Correlation ID: 2` }], false);
    const port = await h.start(0, '127.0.0.1');
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(res.status).to.equal(503);
      const body = await res.text();
      expect(body).to.include('Entra ID token request failed').and.not.include(GUID).and.not.include('Trace ID');
    } finally { await h.stop(); }
  });

  it('bound to loopback, /status is open; it is read-only and sends no script', async () => {
    const h = new HealthServer(new Metrics(), [], false, async () => {}, { model });
    const port = await h.start(0, '127.0.0.1');
    try {
      const res = await fetch(`http://127.0.0.1:${port}/status`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/html/);
      expect(res.headers.get('content-security-policy')).to.include("default-src 'none'");
      expect(await res.text()).to.include('ThreatBridge status').and.include('opencti -&gt; defender');
      expect((await fetch(`http://127.0.0.1:${port}/status`, { method: 'POST' })).status).to.equal(405);
    } finally { await h.stop(); }
  });

  it('bound beyond loopback with a token: 401 without it, 200 with the bearer, ?token= becomes a cookie and leaves the address', async () => {
    const token = 'status-token-0123456789';
    const h = new HealthServer(new Metrics(), [], false, async () => {}, { model, token });
    const port = await h.start(0, '0.0.0.0');
    const base = `http://127.0.0.1:${port}`;
    try {
      const none = await fetch(`${base}/status`);
      expect(none.status).to.equal(401);
      expect(await none.text()).to.not.include(token);
      expect((await fetch(`${base}/status`, { headers: { Authorization: 'Bearer wrong-token-0123456789' } })).status).to.equal(401);
      expect((await fetch(`${base}/status`, { headers: { Authorization: `Bearer ${token}` } })).status).to.equal(200);
      expect((await fetch(`${base}/status?token=nope`, { redirect: 'manual' })).status).to.equal(401);
      const swap = await fetch(`${base}/status?token=${token}&refresh=5`, { redirect: 'manual' });
      expect(swap.status).to.equal(303);
      expect(swap.headers.get('location')).to.equal('/status?refresh=5');
      const cookie = swap.headers.get('set-cookie')!;
      expect(cookie).to.match(/HttpOnly/).and.match(/SameSite=Strict/).and.not.include(token);
      const withCookie = await fetch(`${base}/status?refresh=5`, { headers: { Cookie: cookie.split(';')[0]! } });
      expect(withCookie.status).to.equal(200);
      expect(await withCookie.text()).to.include('content="5"');
      expect((await fetch(`${base}/status`, { headers: { Cookie: 'tb_status=' + 'a'.repeat(64) } })).status).to.equal(401);
    } finally { await h.stop(); }
  });

  it('hostile requests to /status cost a 4xx each, never a 500 or the server', async () => {
    const token = 'status-token-0123456789';
    const h = new HealthServer(new Metrics(), [], false, async () => {}, { model, token });
    const port = await h.start(0, '0.0.0.0');
    const base = `http://127.0.0.1:${port}`;
    try {
      const statuses: number[] = [];
      for (const [path, headers] of [
        ['/status?token=%ED%A0%80&refresh=abc', {}],
        ['/status?token=' + 'x'.repeat(20_000), {}],
        ['/status?__proto__=1&constructor=2&refresh=-5', {}],
        ['/status', { Cookie: 'tb_status=' + 'z'.repeat(64) + '; tb_status=__proto__' }],
        ['/status', { Cookie: '=;;=tb_status;' + 'a'.repeat(8000) }],
        ['/status', { Authorization: 'Bearer ' + 'y'.repeat(8000) }],
        ['/status', { Authorization: 'Basic Zm9vOmJhcg==' }],
        ['//status/../status?%zz', {}],
      ] as [string, Record<string, string>][]) {
        statuses.push((await fetch(`${base}${path}`, { headers, redirect: 'manual' })).status);
      }
      expect(statuses.every((s) => s >= 400 && s < 500), String(statuses)).to.equal(true);
      expect((await fetch(`${base}/status?refresh=abc`, { headers: { Authorization: `Bearer ${token}` } })).status).to.equal(200);
    } finally { await h.stop(); }
  });

  it('bound beyond loopback without a token: only loopback peers see /status', async function () {
    const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    const h = new HealthServer(new Metrics(), [], false, async () => {}, { model });
    const port = await h.start(0, '0.0.0.0');
    try {
      expect((await fetch(`http://127.0.0.1:${port}/status`)).status).to.equal(200);
      if (!external) return this.skip();
      const res = await fetch(`http://${external}:${port}/status`);
      expect(res.status).to.equal(401);
      expect(await res.text()).to.include('CONNECTOR_STATUS_TOKEN');
    } finally { await h.stop(); }
  });
});

describe('metrics of issue 16', () => {
  it('Entra ID token calls are counted under entra/token with their status', async () => {
    const srv = await serve((req, res) => {
      req.resume();
      req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3599, access_token: 'tok-123456789' })); });
    });
    const metrics = new Metrics();
    try {
      const t = new TokenProvider({ loginUrl: srv.url, tenantId: 't', clientId: 'c', clientSecret: 's3cret-value', scope: 'api://x/.default', verifyTls: true, timeoutMs: 5000,
        log: capturingLogger('silent').log, metrics });
      await t.getToken();
      const v = (await metrics.sinkRequests.get()).values.map((x) => x.labels);
      expect(v).to.deep.include({ sink: 'entra', endpoint: 'token', status: '200' });
    } finally { await srv.close(); }
  });

  it('a machine-details 404 is counted as the machine endpoint of the part that asked, not as an alerts listing', async () => {
    const sim = new DefenderSimulator({ entra: { tokenInfo: () => ({ tenantId: 't', clientId: 'app', roles: ['Alert.Read.All', 'Machine.Read.All'], audience: MDE_AUDIENCES[0]!, displayName: 'app' }) } });
    await sim.start();
    const metrics = new Metrics();
    try {
      const client = new DefenderApi({ baseUrl: sim.url, timeoutMs: 5000, verifyTls: true, callsPerMinute: 100, callsPerHour: 1500, tokens: { getToken: async () => 'token' } as unknown as TokenProvider,
        log: capturingLogger('silent').log, metrics: { metrics, label: 'defender_alerts' }, tenantId: 't' });
      expect(await client.machine('f'.repeat(40))).to.equal(null);
      const labels = (await metrics.sinkRequests.get()).values.map((x) => x.labels);
      expect(labels).to.deep.equal([{ sink: 'defender_alerts', endpoint: 'machine', status: '404' }]);
    } finally { await sim.stop(); }
  });

  it('MISP REST calls are counted under misp/search', async () => {
    const srv = await serve((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"response":{"Attribute":[]}}'); }); });
    const metrics = new Metrics();
    try {
      await new MispRest({ url: srv.url, key: 'k'.repeat(40), verifyTls: true, timeoutMs: 5000, log: capturingLogger('silent').log, metrics }).searchAttributes({});
      expect((await metrics.sinkRequests.get()).values.map((x) => x.labels)).to.deep.include({ sink: 'misp', endpoint: 'search', status: '200' });
    } finally { await srv.close(); }
  });

  it('last-event age and lag per source are exported, a known source before its first event included', async () => {
    const m = new Metrics();
    m.activity.known('misp');
    m.activity.event('opencti', Date.now() - 5000);
    m.activity.polled('defender_alerts', Date.now() - 30_000);
    const text = await m.registry.metrics();
    expect(text).to.match(/threatbridge_source_last_event_age_seconds\{source="opencti"\} [0-9.]+/);
    expect(text).to.match(/threatbridge_source_lag_seconds\{source="opencti"\} (4|5)(\.\d+)?\n/);
    expect(text).to.match(/threatbridge_source_lag_seconds\{source="defender_alerts"\} (29|30)(\.\d+)?\n/);
    expect(text).to.not.match(/last_event_age_seconds\{source="misp"\}/);
  });

  it('the status model lists every configured sink, an empty one (CAR) included, and open breakers and dead letters from the store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-obs-'));
    const store = new SqliteStore(dir);
    try {
      await store.tripBreaker({ source: 'misp', trippedAt: Date.now() - 60_000, reason: 'too many' });
      await store.commit({ source: 'opencti', checkpoint: null, claimUpserts: [], claimDeletes: [], ops: [],
        deadLetters: [{ sink: 'source:opencti', key: 'indicator--x', op: 'create', payload: { big: 'x'.repeat(1000) }, sourceRef: null, reason: 'invalid_pattern: nope' }] });
      const m = new Metrics();
      m.reach.down('sink', 'car', 'server error (503)');
      const model = await statusModel({ metrics: m, store, flows: [], storeName: 'sqlite', sources: ['opencti'], sinks: ['defender', 'car'], caps: [{ sink: 'defender', max: 15000, budget: 14500 }] });
      expect(model.sinks.map((s) => [s.name, s.pending, s.reachable])).to.deep.equal([['defender', 0, null], ['car', 0, false]]);
      expect(model.breakers.map((b) => b.source)).to.deep.equal(['misp']);
      expect(model.deadLetters.bySink).to.deep.equal([{ sink: 'source:opencti', count: 1 }]);
      expect(model.deadLetters.recent[0]).to.include({ key: 'indicator--x', reason: 'invalid_pattern: nope' }).and.not.have.property('payload');
      expect(model.caps).to.deep.equal([{ sink: 'defender', max: 15000, budget: 14500, held: 0 }]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
