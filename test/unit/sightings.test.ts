// Sightings (issue 17): matching CustomTI alerts to claims (both store engines), the pure routes,
// pycti's deterministic ids (vectors computed independently with Python's uuid module), the
// OpenCTI delivery against the OpenCTI simulator (idempotent through lost answers), the MISP
// delivery against the MISP simulator (once per alert, even after an unconfirmed send), and the
// loop guard (a sighting on the OpenCTI stream asserts nothing).
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { observableKey } from '../../src/core/claims.js';
import type { DefenderAlertChange, IndicatorHit } from '../../src/core/records.js';
import type { HitLookup, Store } from '../../src/core/store.js';
import type { Claim, IndicatorChange, Observable, OutboxItem } from '../../src/core/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { MispSightingsClient } from '../../src/sinks/misp-sightings/client.js';
import { MispSightingsDelivery, sightingSource } from '../../src/sinks/misp-sightings/delivery.js';
import { mispSightingsRoute } from '../../src/sinks/misp-sightings/route.js';
import { OpenctiSightingsClient } from '../../src/sinks/opencti-sightings/client.js';
import { OpenctiSightingsDelivery } from '../../src/sinks/opencti-sightings/delivery.js';
import { openctiSightingsRoute } from '../../src/sinks/opencti-sightings/route.js';
import { identityId, sightingId } from '../../src/sinks/opencti-sightings/stix-id.js';
import { sightingKey, sightingPayloads } from '../../src/sinks/sightings.js';
import { alertObservables, attachHits, findHits } from '../../src/sources/defender-alerts/hits.js';
import { normaliseAlert } from '../../src/sources/defender-alerts/normalise.js';
import { readAlert } from '../../src/sources/defender-alerts/poller.js';
import { createContext, normaliseEvent } from '../../src/sources/opencti/normalise.js';
import { PostgresStore } from '../../src/store/postgres.js';
import { activeFlows, flowStatuses } from '../../src/config/flows.js';
import { loadConfig } from '../../src/config/load.js';
import { irisDescription } from '../../src/sinks/iris/mapper.js';
import { writeFileSync } from 'node:fs';
import { SqliteStore } from '../../src/store/sqlite.js';
import { customTiAlert, evidence } from '../../sim/defender/alerts.js';
import { MispSimulator } from '../../sim/misp/server.js';
import { OpenCtiSimulator } from '../../sim/opencti/index.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';
import { dropSchema, freshSchemaName, requirePostgres, TEST_PG_URL } from '../support/postgres.js';

const log = createLogger('silent');
const TENANT = 'tenant-1';
const PORTAL = 'https://security.microsoft.com';

function alert(fields: Record<string, unknown>): DefenderAlertChange {
  const now = '2026-12-07T10:00:00.000Z';
  const n = normaliseAlert({ id: 'da1_1', title: 'Hit', severity: 'Medium', status: 'New', lastUpdateTime: now, firstEventTime: now, lastEventTime: now, detectionSource: 'CustomTI', ...fields }, TENANT, PORTAL);
  if (!('change' in n)) throw new Error(`bad fixture: ${n.rejected.detail}`);
  return n.change;
}

function claim(o: Observable, system: 'opencti' | 'misp', id: string, title = 'Indicator'): Claim {
  const change: IndicatorChange = {
    observable: o, score: 80, labels: [], tlp: null, title, description: '', validFrom: null, validUntil: null,
    sourceRef: { system, id, url: `https://${system}.example/${id}` },
  };
  return { key: observableKey(o), sourceId: id, change, updatedAt: 1 };
}

function outboxItem(key: string, payload: unknown, unconfirmedSend = false, attempts = 0): OutboxItem {
  return { sink: 's', key, op: 'upsert', payload, sourceRef: null, seq: 1, attempts, enqueuedAt: 0, unconfirmedSend };
}

describe('sightings: matching an alert to the claims', () => {
  it('reads the evidence in the mapper\'s canonical forms: IPv6 spellings, case, trailing dots, URL hosts and their parents, hashes', () => {
    const a = alert({ evidence: [
      evidence({ entityType: 'Ip', ipAddress: '2001:DB8:0:0:0:0:0:1' }),
      evidence({ entityType: 'Url', url: 'HTTPS://Sub.EVIL.example.COM./x?y=1' }),
      evidence({ entityType: 'Url', url: 'Bare.Example.NET.' }),
      evidence({ entityType: 'File', sha1: 'DA39A3EE5E6B4B0D3255BFEF95601890AFD80709', sha256: 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855' }),
    ] });
    const keys = alertObservables(a).map(observableKey);
    expect(keys).to.include.members([
      'ipv6:2001:db8::1', 'domain:sub.evil.example.com', 'domain:evil.example.com', 'domain:example.com', 'domain:bare.example.net',
      'sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709', 'cert-sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709',
      'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    ]);
    expect(keys.some((k) => k.startsWith('url:'))).to.equal(true);
    expect(keys).to.not.include('domain:com');
  });

  it('hostile evidence (objects for strings, __proto__, a huge URL, thousands of rows) costs nothing and throws nothing', () => {
    const rows = [
      JSON.parse('{"__proto__":{"x":1},"entityType":"Ip","ipAddress":{"toString":"1.2.3.4"}}'), 'text', 7, null,
      evidence({ entityType: 'Url', url: `http://${'a'.repeat(300_000)}.example/` }),
      ...Array.from({ length: 5000 }, (_, i) => evidence({ entityType: 'Ip', ipAddress: `10.0.${i >> 8}.${i & 255}` })),
    ];
    const a = alert({ evidence: rows });
    const obs = alertObservables(a);
    expect(obs.length).to.be.at.most(200);
    expect(({} as Record<string, unknown>)['x']).to.equal(undefined);
  });

  const engines: { name: string; before?: (ctx: Mocha.Context) => Promise<void>; open(): Promise<{ store: Store; close(): Promise<void> }> }[] = [
    { name: 'SQLite', open: async () => { const s = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-hits-'))); return { store: s, close: () => s.close() }; } },
    {
      name: 'PostgreSQL', before: requirePostgres,
      open: async () => { const schema = freshSchemaName(); const s = await PostgresStore.open({ url: TEST_PG_URL, schema }); return { store: s, close: async () => { await s.close(); await dropSchema(schema); } }; },
    },
  ];
  for (const engine of engines) {
    describe(`on ${engine.name}`, () => {
      let store: Store;
      let close: () => Promise<void>;
      before(async function () { if (engine.before) await engine.before(this); });
      beforeEach(async () => ({ store, close } = await engine.open()));
      afterEach(async () => close?.());

      const commit = (claims: Claim[]) => store.commit({ source: 'opencti', checkpoint: null, claimUpserts: claims, claimDeletes: [], ops: [], deadLetters: [] });

      it('finds the claims of every platform that asserted an evidence value, and none for a non-CustomTI alert', async () => {
        await commit([
          claim({ type: 'ipv6', value: '2001:db8::1' }, 'opencti', 'indicator--a'),
          claim({ type: 'ipv6', value: '2001:db8::1' }, 'misp', 'misp:7:4cf76d64-4855-4b6a-9b7e-2f0c8d1a0a11'),
          claim({ type: 'domain', value: 'evil.example.com' }, 'opencti', 'indicator--b'),
          claim({ type: 'ipv4', value: '192.0.2.1' }, 'opencti', 'indicator--unrelated'),
        ]);
        const a = alert({ evidence: [evidence({ entityType: 'Ip', ipAddress: '2001:0DB8::0:1' }), evidence({ entityType: 'Url', url: 'https://a.Evil.Example.com/p' })] });
        const hits = await findHits(a, store);
        expect(hits.map((h) => `${h.system} ${h.sourceId} ${h.matchedBy}`).sort()).to.deep.equal([
          'misp misp:7:4cf76d64-4855-4b6a-9b7e-2f0c8d1a0a11 evidence', 'opencti indicator--a evidence', 'opencti indicator--b evidence',
        ]);
        expect(await findHits({ ...a, detectionSource: 'WindowsDefenderAtp' }, store)).to.deep.equal([]);
      });

      it('falls back to the title for an alert whose evidence names nothing we claim (Audit indicators)', async () => {
        await commit([claim({ type: 'url', value: 'http://x.example/a' }, 'opencti', 'indicator--t', 'Emotet C2 URL')]);
        const hits = await findHits(alert({ title: 'Emotet C2 URL', evidence: [] }), store);
        expect(hits.map((h) => [h.sourceId, h.matchedBy])).to.deep.equal([['indicator--t', 'title']]);
        expect(await findHits(alert({ title: 'Something else', evidence: [] }), store)).to.deep.equal([]);
        // A title several values share names none of them.
        await commit([claim({ type: 'ipv4', value: '192.0.2.7' }, 'misp', 'misp:9:4cf76d64-4855-4b6a-9b7e-2f0c8d1a0a12', 'Event 9'),
          claim({ type: 'ipv4', value: '192.0.2.8' }, 'misp', 'misp:9:4cf76d64-4855-4b6a-9b7e-2f0c8d1a0a13', 'Event 9')]);
        expect(await findHits(alert({ title: 'Event 9', evidence: [] }), store)).to.deep.equal([]);
      });
    });
  }

  it('attaches hits to the alert records the poller hands on, and leaves the rest as they are', async () => {
    const lookup: HitLookup = {
      loadClaims: async (keys) => (keys.includes('ipv4:203.0.113.9') ? [claim({ type: 'ipv4', value: '203.0.113.9' }, 'opencti', 'indicator--z')] : []),
      claimsByTitle: async () => [],
    };
    const raw = { id: 'da2', title: 'x', lastUpdateTime: '2026-12-07T10:00:00Z', detectionSource: 'CustomTI', evidence: [evidence({ entityType: 'Ip', ipAddress: '203.0.113.9' })] };
    const items = [
      { normalised: readAlert(raw, TENANT, PORTAL), raw, event: 'alert', checkpoint: null, position: 'da2' },
      { normalised: readAlert({ id: {} }, TENANT, PORTAL), raw: { id: {} }, event: 'alert', checkpoint: null, position: 'bad' },
    ];
    const counted: IndicatorHit[] = [];
    const out = await attachHits(items, lookup, (h) => counted.push(h));
    expect(((out[0]!.normalised as { record: DefenderAlertChange }).record.hits ?? []).map((h) => h.sourceId)).to.deep.equal(['indicator--z']);
    expect(out[1]).to.equal(items[1]);
    expect(counted).to.have.length(1);
  });
});

describe('sightings: routes and ids', () => {
  const hit = (system: 'opencti' | 'misp', sourceId: string): IndicatorHit => ({ key: 'ipv4:203.0.113.9', value: '203.0.113.9', system, sourceId, url: null, title: 'T', matchedBy: 'evidence' });
  const withHits = (hits: IndicatorHit[]) => ({ kind: 'record' as const, type: 'defender-alert', id: 'da1_1', op: 'upsert' as const, record: { ...alert({}), hits } });

  it('routes each hit to its platform\'s sink, keyed by tenant, indicator and alert; OpenCTI sights indicators only', () => {
    const change = withHits([hit('opencti', 'indicator--a'), hit('opencti', 'ipv4-addr--b'), hit('misp', 'misp:1:4cf76d64-4855-4b6a-9b7e-2f0c8d1a0a11')]);
    const octi = openctiSightingsRoute('opencti-sightings').route(change, 0);
    const misp = mispSightingsRoute('misp-sightings').route(change, 0);
    expect(octi.map((o) => o.key)).to.deep.equal([`${TENANT}|indicator--a|da1_1`]);
    expect(misp.map((o) => o.key)).to.deep.equal([`${TENANT}|misp:1:4cf76d64-4855-4b6a-9b7e-2f0c8d1a0a11|da1_1`]);
    expect(openctiSightingsRoute('o').route(withHits([]), 0)).to.deep.equal([]);
  });

  it('computes pycti\'s deterministic ids (vectors from Python uuid5 over sorted compact JSON)', () => {
    expect(sightingId('indicator--9299f726-ce06-492e-8472-2b52ccb53191', ['identity--5206ba14-478f-4b0b-9a48-395f690c20a2']))
      .to.equal('sighting--dae4b854-aa89-5fa9-8f83-a2f4e6558042');
    expect(identityId('  Microsoft Defender for Endpoint (T1) ', 'system')).to.equal('identity--aa31cfe9-819c-5d3e-8b42-d01af8566e7e');
  });

  it('a sighting coming back over the OpenCTI stream asserts nothing (no loop into Defender)', () => {
    const data = { id: 'sighting--dae4b854-aa89-5fa9-8f83-a2f4e6558042', type: 'sighting', spec_version: '2.1', sighting_of_ref: 'indicator--a', where_sighted_refs: ['identity--b'], count: 3 };
    for (const event of ['create', 'update']) {
      const n = normaliseEvent(event, JSON.stringify({ data }), createContext('http://opencti'));
      expect(n.changes, event).to.deep.equal([]);
      expect(n.retractAll, event).to.equal(false);
      expect(n.ignored, event).to.be.a('string');
    }
  });
});

describe('sightings: OpenCTI delivery against the simulator', () => {
  let sim: OpenCtiSimulator;
  let store: SqliteStore;
  const indicator = makeIndicator({ observableType: 'ipv4-addr', value: '203.0.113.9' });
  beforeEach(async () => {
    sim = new OpenCtiSimulator({ token: 'tok', streams: ['s'] });
    await sim.start();
    sim.create(indicator);
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-octi-s-')));
  });
  afterEach(async () => { await sim.stop(); await store.close(); });

  const delivery = (token = 'tok') => new OpenctiSightingsDelivery('opencti-sightings',
    new OpenctiSightingsClient({ url: sim.url, token, verifyTls: true, timeoutMs: 5000, sink: 'opencti-sightings', log, metrics: new Metrics() }), store, 'Microsoft Defender for Endpoint', log);
  const payload = (alertId: string, first: string, last = first) => sightingPayloads({ ...alert({ id: alertId, firstEventTime: first, lastEventTime: last }), id: alertId, link: `${PORTAL}/alerts/${alertId}`,
    hits: [{ key: 'ipv4:203.0.113.9', value: '203.0.113.9', system: 'opencti', sourceId: indicator.id, url: null, title: 'T', matchedBy: 'evidence' }] }, 'opencti')[0]!;
  const send = async (d: OpenctiSightingsDelivery, p: ReturnType<typeof payload>, unconfirmed = false) =>
    (await d.deliver([outboxItem(sightingKey(p), p, unconfirmed)], new AbortController().signal))[0]!.outcome;

  it('creates one sighting per indicator and tenant, counts each alert once through lost answers, and widens first/last seen', async () => {
    const d = delivery();
    const p1 = payload('da-1', '2026-12-07T10:00:00.000Z');
    expect((await send(d, p1)).kind).to.equal('ack');
    expect((await send(d, p1, true)).kind).to.equal('ack'); // the ack was lost: the same operation again
    expect((await send(delivery(), p1, true)).kind).to.equal('ack'); // after a restart (no identity cache)
    let s = sim.sightings.of(indicator.id);
    expect(s).to.have.length(1);
    expect(s[0]).to.include({ attribute_count: 1, first_seen: '2026-12-07T10:00:00.000Z' });
    expect(s[0]!.standard_id).to.equal(sightingId(indicator.id, [[...sim.sightings.identities.values()][0]!.standard_id]));

    const p2 = payload('da-2', '2026-12-07T09:00:00.000Z', '2026-12-07T12:00:00.000Z');
    await send(d, p2);
    await send(d, p2, true);
    s = sim.sightings.of(indicator.id);
    expect(s).to.have.length(1);
    expect(s[0]).to.include({ attribute_count: 2, first_seen: '2026-12-07T09:00:00.000Z', last_seen: '2026-12-07T12:00:00.000Z' });
    expect(sim.sightings.identities.size).to.equal(1);
  });

  it('waits for the set-up on a wrong token, retries an outage, dead-letters a sighting of an indicator OpenCTI does not hold', async () => {
    expect((await send(delivery('wrong'), payload('da-1', '2026-12-07T10:00:00.000Z'))).kind).to.equal('wait-for-setup');
    sim.setDown(503, 'Service Unavailable', { graphql: true });
    expect((await send(delivery(), payload('da-1', '2026-12-07T10:00:00.000Z'))).kind).to.equal('retry');
    sim.setDown(null);
    const gone = { ...payload('da-3', '2026-12-07T10:00:00.000Z') };
    gone.hit = { ...gone.hit, sourceId: 'indicator--00000000-0000-4000-8000-000000000000' };
    expect((await send(delivery(), gone)).kind).to.equal('dead');
    expect(sim.sightings.sightings.size).to.equal(0);
  });
});

describe('sightings: MISP delivery against the simulator', () => {
  let misp: MispSimulator;
  let store: SqliteStore;
  let attr: { uuid: string };
  const KEY = 'K'.repeat(40);
  beforeEach(async () => {
    misp = await new MispSimulator({ key: KEY }).start();
    const ev = misp.createEvent({ info: 'e' });
    attr = misp.addAttribute(ev, { type: 'ip-dst', value: '203.0.113.9' });
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-misp-s-')));
  });
  afterEach(async () => { await misp.stop(); await store.close(); });

  const delivery = (key = KEY) => new MispSightingsDelivery('misp-sightings',
    new MispSightingsClient({ url: misp.url, key, verifyTls: true, timeoutMs: 5000, sink: 'misp-sightings', log, metrics: new Metrics() }), store, 'Defender', log);
  const payload = (alertId: string, uuid = attr.uuid) => sightingPayloads({ ...alert({ id: alertId }), id: alertId,
    hits: [{ key: 'ipv4:203.0.113.9', value: '203.0.113.9', system: 'misp', sourceId: `misp:1:${uuid}`, url: null, title: 'T', matchedBy: 'evidence' }] }, 'misp')[0]!;
  const item = (p: ReturnType<typeof payload>, unconfirmed = false) => outboxItem(sightingKey(p), p, unconfirmed);
  const adds = () => misp.requests.filter((r) => r.path === '/sightings/add').length;

  it('adds one sighting per alert: not again when MISP already holds it after an unconfirmed send, nor for a later version of the alert', async () => {
    const p = payload('da-1');
    const [first] = await delivery().deliver([item(p)], new AbortController().signal);
    expect(first!.outcome.kind).to.equal('ack');
    expect(misp.sightings.of(attr.uuid)).to.have.length(1);
    expect(misp.sightings.of(attr.uuid)[0]).to.include({ source: sightingSource('Defender', 'da-1'), type: '0', date_sighting: String(Date.parse('2026-12-07T10:00:00.000Z') / 1000) });
    // The POST went out but the ack was lost (crash): the retry finds it and does not post.
    const [again] = await delivery().deliver([item(p, true)], new AbortController().signal);
    expect(again!.outcome).to.include({ kind: 'ack', externalId: misp.sightings.of(attr.uuid)[0]!.id });
    expect(adds()).to.equal(1);
    // Acked: a later version of the alert makes no call at all.
    await store.setSinkIds('misp-sightings', [{ key: sightingKey(p), externalId: '1' }]);
    const before = misp.requests.length;
    await delivery().deliver([item(p, true)], new AbortController().signal);
    expect(misp.requests.length).to.equal(before);
    // Another alert is another sighting (MISP does not deduplicate).
    await delivery().deliver([item(payload('da-2'))], new AbortController().signal);
    expect(misp.sightings.of(attr.uuid)).to.have.length(2);
  });

  it('dead-letters a sighting of an attribute MISP does not hold, waits on a wrong key, retries a MISP down', async () => {
    const gone = (await delivery().deliver([item(payload('da-1', '00000000-0000-4000-8000-000000000000'))], new AbortController().signal))[0]!.outcome;
    expect(gone.kind).to.equal('dead');
    expect((gone as { reason: string }).reason).to.include('No valid attributes found');
    expect((await delivery('W'.repeat(40)).deliver([item(payload('da-1'))], new AbortController().signal))[0]!.outcome.kind).to.equal('wait-for-setup');
    misp.setRestDown(true);
    expect((await delivery().deliver([item(payload('da-1'))], new AbortController().signal))[0]!.outcome.kind).to.equal('retry');
    expect(misp.sightings.sightings).to.have.length(0);
  });
});

describe('sightings: switches and IRIS', () => {
  const cfg = (env: Record<string, string>) => {
    const file = join(mkdtempSync(join(tmpdir(), 'tb-sight-cfg-')), 'config.yml');
    writeFileSync(file, '');
    return loadConfig({ file, env: {
      MICROSOFT_DEFENDER_INTEL_TENANT_ID: 't', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'c', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 's',
      OPENCTI_URL: 'http://opencti:8080', OPENCTI_TOKEN: 'tok', CONNECTOR_ID: '11111111-2222-4333-8444-555555555555', CONNECTOR_LIVE_STREAM_ID: 'x', ...env,
    } });
  };
  const names = (flows: { name: string }[]) => flows.map((f) => f.name);

  it('is off by default; each platform is its own switch and names the keys it lacks', () => {
    expect(names(activeFlows(cfg({})))).to.not.include.members(['defender_alerts -> opencti-sightings']);
    expect(names(activeFlows(cfg({})))).to.not.include('defender_alerts -> misp-sightings');
    expect(names(activeFlows(cfg({ SIGHTINGS_OPENCTI_ENABLED: 'true' })))).to.include('defender_alerts -> opencti-sightings');
    const misp = flowStatuses(cfg({ SIGHTINGS_MISP_ENABLED: 'true' })).find((f) => f.sink === 'misp-sightings')!;
    expect(misp).to.include({ wanted: true });
    expect(misp.missing).to.deep.equal(['misp.url', 'misp.key']);
  });

  it('the IRIS alert of a CustomTI alert names the indicator and links to it', () => {
    const a = { ...alert({}), hits: [
      { key: 'ipv4:203.0.113.9', value: '203.0.113.9', system: 'opencti' as const, sourceId: 'indicator--a', url: 'https://octi/dashboard/id/x', title: 'C2 server', matchedBy: 'evidence' as const },
      { key: 'ipv4:203.0.113.9', value: '203.0.113.9', system: 'misp' as const, sourceId: 'misp:4:u', url: 'https://misp/events/view/4', title: 'MISP C2', matchedBy: 'evidence' as const },
    ] };
    const text = irisDescription(a);
    expect(text).to.include('C2 server (203.0.113.9) from OpenCTI: https://octi/dashboard/id/x');
    expect(text).to.include('MISP C2 (203.0.113.9) from MISP: https://misp/events/view/4');
    expect(irisDescription(alert({}))).to.not.include('Indicator that fired');
  });
});

describe('sightings: the Defender simulator\'s CustomTI alerts', () => {
  it('name the indicator by title and carry its value as evidence of its kind', () => {
    const a = customTiAlert({ indicatorValue: 'abc.example', indicatorType: 'DomainName', title: 'C2', severity: 'High' });
    expect(a).to.include({ detectionSource: 'CustomTI', title: 'C2', severity: 'High' });
    expect(a.evidence![0]).to.include({ entityType: 'Url', url: 'abc.example' });
  });
});
