import https from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { expect } from 'chai';
import { DefenderSimulator, type DefenderSimulatorOptions } from '../../sim/defender.js';
import { EntraSimulator } from '../../sim/entra.js';
import { createTestCertificate, type TestCertificate } from '../../sim/tls.js';

const TENANT = 'tenant-one';
const OTHER_TENANT = 'tenant-two';
const APP = 'app-all'; // Ti.ReadWrite.All
const APP_OWN = 'app-own'; // Ti.ReadWrite: sees only its own indicators
const APP_NOPE = 'app-alerts'; // no indicator permission
const SECRET = 's3cret';
const MDE_SCOPE = 'https://api.securitycenter.microsoft.com/.default';
const SHA256 = 'a'.repeat(64);

const ind = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  indicatorValue: '198.51.100.7',
  indicatorType: 'IpAddress',
  action: 'Block',
  title: 'test',
  description: 'from test',
  ...over,
});
const ips = (n: number, start = 0): Record<string, unknown>[] => Array.from({ length: n }, (_, i) => ind({ indicatorValue: `10.0.${Math.floor((i + start) / 250)}.${((i + start) % 250) + 1}` }));
const past = (): string => new Date(Date.now() - 86_400_000).toISOString();
const future = (): string => new Date(Date.now() + 86_400_000).toISOString();

describe('sim: Defender indicators API', function () {
  this.timeout(30_000);
  let cert: TestCertificate;
  let entra: EntraSimulator;
  let http: AxiosInstance;
  const sims: DefenderSimulator[] = [];

  async function token(clientId = APP, tenantId = TENANT, scope = MDE_SCOPE): Promise<string> {
    const res = await http.post(`${entra.url}/${tenantId}/oauth2/v2.0/token`, new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: SECRET, scope }));
    expect(res.status, JSON.stringify(res.data)).to.equal(200);
    return res.data.access_token as string;
  }

  async function startSim(opts: Partial<DefenderSimulatorOptions> = {}): Promise<DefenderSimulator> {
    const sim = new DefenderSimulator({ entra, tls: cert, rateLimits: false, ...opts });
    await sim.start();
    sims.push(sim);
    return sim;
  }

  /** Calls the simulator; `bearer` null sends no Authorization header. */
  function call(sim: DefenderSimulator, method: string, path: string, body?: unknown, bearer?: string | null): Promise<AxiosResponse> {
    const headers: Record<string, string> = {};
    if (bearer !== null) headers.Authorization = `Bearer ${bearer ?? defaultToken}`;
    return http.request({ method, url: path.startsWith('http') ? path : `${sim.url}${path}`, data: body, headers });
  }

  let defaultToken: string;
  let sim: DefenderSimulator;

  before(async () => {
    cert = await createTestCertificate();
    entra = new EntraSimulator({ tls: cert });
    await entra.start();
    for (const tenantId of [TENANT, OTHER_TENANT]) {
      entra.registerApp({ tenantId, clientId: APP, clientSecret: SECRET, roles: ['Ti.ReadWrite.All'], displayName: 'ThreatBridge' });
      entra.registerApp({ tenantId, clientId: APP_OWN, clientSecret: SECRET, roles: ['Ti.ReadWrite'], displayName: 'Own' });
      entra.registerApp({ tenantId, clientId: APP_NOPE, clientSecret: SECRET, roles: ['Alert.Read.All'] });
    }
    http = axios.create({ httpsAgent: new https.Agent({ ca: cert.cert, keepAlive: true }), validateStatus: () => true });
    defaultToken = await token();
    sim = await startSim();
  });
  after(async () => {
    for (const s of sims) await s.stop();
    await entra.stop();
  });
  beforeEach(() => sim.reset());

  describe('authentication', () => {
    it('answers 401 Unauthorized with a GUID target when the bearer is missing or unknown', async () => {
      for (const bearer of [null, 'not-a-token']) {
        const res = await call(sim, 'GET', '/api/indicators', undefined, bearer);
        expect(res.status).to.equal(401);
        expect(res.data.error.code).to.equal('Unauthorized');
        expect(res.data.error.target).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      }
    });

    it('rejects a token for another resource (Graph) with 401', async () => {
      const graph = await token(APP, TENANT, 'https://graph.microsoft.com/.default');
      expect((await call(sim, 'GET', '/api/indicators', undefined, graph)).status).to.equal(401);
    });

    it('accepts the legacy WindowsDefenderATP audience', async () => {
      const legacy = await token(APP, TENANT, 'https://securitycenter.onmicrosoft.com/windowsatpservice/.default');
      expect((await call(sim, 'GET', '/api/indicators', undefined, legacy)).status).to.equal(200);
    });

    it('answers 403 Forbidden without a Ti.ReadWrite role', async () => {
      const res = await call(sim, 'POST', '/api/indicators', ind(), await token(APP_NOPE));
      expect(res.status).to.equal(403);
      expect(res.data.error.code).to.equal('Forbidden');
      expect(sim.indicators()).to.have.length(0);
    });

    it('answers 401 after revokeAll() until a new token is fetched (token expiry mid-run)', async () => {
      const t = await token();
      expect((await call(sim, 'GET', '/api/indicators', undefined, t)).status).to.equal(200);
      entra.revokeAll();
      expect((await call(sim, 'GET', '/api/indicators', undefined, t)).status).to.equal(401);
      defaultToken = await token();
      expect((await call(sim, 'GET', '/api/indicators')).status).to.equal(200);
    });

    it('answers 401 for an expired token', async () => {
      entra.setTokenLifetime(0);
      const t = await token();
      entra.setTokenLifetime(3599);
      expect((await call(sim, 'GET', '/api/indicators', undefined, t)).status).to.equal(401);
    });
  });

  describe('POST /api/indicators', () => {
    it('creates an indicator with the server-filled fields', async () => {
      const res = await call(sim, 'POST', '/api/indicators', ind({ application: 'ThreatBridge', severity: 'High', externalId: 'x-1', expirationTime: '2099-01-01T00:00:00Z' }));
      expect(res.status).to.equal(200);
      expect(res.data.id).to.match(/^\d+$/);
      expect(res.data).to.include({
        indicatorValue: '198.51.100.7', indicatorType: 'IpAddress', action: 'Block', application: 'ThreatBridge', severity: 'High',
        createdBy: APP, createdByDisplayName: 'ThreatBridge', source: 'ThreatBridge', sourceType: 'AadApp', generateAlert: false,
        externalId: 'x-1', expirationTime: '2099-01-01T00:00:00Z', lastUpdatedBy: null, recommendedActions: null,
      });
      expect(res.data.rbacGroupNames).to.deep.equal([]);
      expect(res.data.rbacGroupIds).to.deep.equal([]);
      expect(res.data.creationTimeDateTimeUtc).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/);
      expect(sim.find('IpAddress', '198.51.100.7')?.id).to.equal(res.data.id);
    });

    it('upserts on (type, case-insensitive value): keeps id, creation time, createdBy and application', async () => {
      const first = (await call(sim, 'POST', '/api/indicators', ind({ indicatorType: 'DomainName', indicatorValue: 'evil.example', application: 'first' }))).data;
      await new Promise((r) => setTimeout(r, 5));
      const res = await call(sim, 'POST', '/api/indicators', ind({ indicatorType: 'DomainName', indicatorValue: 'EVIL.example', application: 'second', title: 'renamed' }), await token(APP_OWN));
      expect(res.status).to.equal(200);
      expect(res.data).to.include({ id: first.id, application: 'first', title: 'renamed', createdBy: APP, lastUpdatedBy: APP_OWN, creationTimeDateTimeUtc: first.creationTimeDateTimeUtc });
      expect(Date.parse(res.data.lastUpdateTime)).to.be.greaterThan(Date.parse(first.lastUpdateTime));
      expect(sim.indicators()).to.have.length(1);
    });

    it('keeps the same value under different types apart', async () => {
      await call(sim, 'POST', '/api/indicators', ind({ indicatorType: 'FileSha256', indicatorValue: SHA256 }));
      await call(sim, 'POST', '/api/indicators', ind({ indicatorType: 'FileSha1', indicatorValue: 'b'.repeat(40) }));
      await call(sim, 'POST', '/api/indicators', ind({ indicatorType: 'CertificateThumbprint', indicatorValue: 'b'.repeat(40), action: 'Allowed' }));
      expect(sim.indicators()).to.have.length(3);
    });

    it('updates by body id and answers 404 for an unknown id', async () => {
      const created = (await call(sim, 'POST', '/api/indicators', ind())).data;
      const upd = await call(sim, 'POST', '/api/indicators', ind({ id: created.id, action: 'Allowed' }));
      expect(upd.status).to.equal(200);
      expect(upd.data).to.include({ id: created.id, action: 'Allowed' });
      const missing = await call(sim, 'POST', '/api/indicators', ind({ id: '999999' }));
      expect(missing.status).to.equal(404);
      expect(missing.data.error.code).to.equal('ResourceNotFound');
    });

    const invalid: [string, Record<string, unknown>, string, RegExp?][] = [
      ['CIDR', { indicatorValue: '10.0.0.0/8' }, 'InvalidIpAddress'],
      ['IPv6 with ::', { indicatorValue: '2001:4860:4860::8888' }, 'InvalidIpAddress'],
      ['IPv4 out of range', { indicatorValue: '256.1.1.1' }, 'InvalidIpAddress'],
      ['short MD5', { indicatorType: 'FileMd5', indicatorValue: 'abc123' }, 'InvalidHashValue'],
      ['SHA-1 with 64 chars', { indicatorType: 'FileSha1', indicatorValue: SHA256 }, 'InvalidHashValue'],
      ['non-hex SHA-256', { indicatorType: 'FileSha256', indicatorValue: 'z'.repeat(64) }, 'InvalidHashValue'],
      ['short thumbprint', { indicatorType: 'CertificateThumbprint', indicatorValue: 'ab', action: 'Allowed' }, 'InvalidHashValue'],
      ['bad domain', { indicatorType: 'DomainName', indicatorValue: 'not a domain' }, 'InvalidDomainName'],
      ['wildcard domain', { indicatorType: 'DomainName', indicatorValue: '*.evil.example' }, 'InvalidDomainName'],
      ['bad URL', { indicatorType: 'Url', indicatorValue: 'ftp://x y' }, 'InvalidUrl'],
      ['empty value', { indicatorValue: '' }, 'InvalidInput', /^Recieved an empty indicator value\.$/],
      ['missing value', { indicatorValue: undefined }, 'MissingRequiredParameter', /indicatorValue/],
      ['missing title', { title: undefined }, 'MissingRequiredParameter', /title/],
      ['camel-cased key', { IndicatorValue: '1.2.3.4', indicatorValue: undefined }, 'MissingRequiredParameter'],
      ['Audit without generateAlert', { action: 'Audit' }, 'InvalidInput', /generateAlert/],
      ['Warn on a certificate', { indicatorType: 'CertificateThumbprint', indicatorValue: 'c'.repeat(40), action: 'Warn' }, 'InvalidInput'],
      ['BlockAndRemediate on an IP', { action: 'BlockAndRemediate' }, 'InvalidInput'],
      ['unknown type', { indicatorType: 'EmailAddress' }, 'InvalidInput'],
      ['mis-cased action', { action: 'block' }, 'InvalidInput'],
      ['bad severity', { severity: 'Critical' }, 'InvalidInput'],
      ['bad expirationTime', { expirationTime: 'tomorrow' }, 'InvalidInput'],
    ];
    for (const [name, over, code, message] of invalid) {
      it(`rejects ${name} with 400 ${code}`, async () => {
        const res = await call(sim, 'POST', '/api/indicators', ind(over));
        expect(res.status).to.equal(400);
        expect(res.data.error.code).to.equal(code);
        if (message) expect(res.data.error.message).to.match(message);
        expect(sim.indicators()).to.have.length(0);
      });
    }

    const valid: [string, Record<string, unknown>][] = [
      ['full IPv6', { indicatorValue: '2001:4860:4860:0:0:0:0:8888' }],
      ['legacy AlertAndBlock on a URL', { indicatorType: 'Url', indicatorValue: 'https://evil.example/path?q=1', action: 'AlertAndBlock' }],
      ['scheme-less URL', { indicatorType: 'Url', indicatorValue: 'evil.example/payload' }],
      ['Audit with generateAlert', { action: 'Audit', generateAlert: true }],
      ['BlockAndRemediate on a file', { indicatorType: 'FileMd5', indicatorValue: 'D41D8CD98F00B204E9800998ECF8427E', action: 'BlockAndRemediate' }],
      ['punycode domain', { indicatorType: 'DomainName', indicatorValue: 'xn--bcher-kva.example' }],
    ];
    for (const [name, over] of valid) {
      it(`accepts ${name}`, async () => {
        const res = await call(sim, 'POST', '/api/indicators', ind(over));
        expect(res.status, JSON.stringify(res.data)).to.equal(200);
      });
    }

    it('requires a JSON content type and a JSON body', async () => {
      const text = await http.post(`${sim.url}/api/indicators`, 'x', { headers: { Authorization: `Bearer ${defaultToken}`, 'Content-Type': 'text/plain' } });
      expect(text.status).to.equal(415);
      const broken = await http.post(`${sim.url}/api/indicators`, '{"a":', { headers: { Authorization: `Bearer ${defaultToken}`, 'Content-Type': 'application/json' } });
      expect(broken.status).to.equal(400);
      expect(broken.data.error.code).to.equal('InvalidRequestBody');
    });
  });

  describe('POST /api/indicators/import', () => {
    it('needs the case-sensitive Indicators key', async () => {
      const res = await call(sim, 'POST', '/api/indicators/import', { indicators: [ind()] });
      expect(res.status).to.equal(400);
      expect(['InvalidRequestBody', 'MissingRequiredParameter']).to.include(res.data.error.code);
      expect(sim.indicators()).to.have.length(0);
    });

    it('rejects more than 500 items as a whole', async () => {
      const res = await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(501) });
      expect(res.status).to.equal(400);
      expect(res.data.error).to.include({ code: 'MaximumBatchSizeExceeded', message: 'Maximum batch size exceeded. Received: 501, allowed: 500.' });
      expect(sim.indicators()).to.have.length(0);
    });

    it('stores 500 items and answers one result per item, in order', async () => {
      const res = await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(500) });
      expect(res.status).to.equal(200);
      expect(res.data.value).to.have.length(500);
      expect(res.data.value.map((v: { indicator: string }) => v.indicator)).to.deep.equal(ips(500).map((i) => i.indicatorValue));
      expect(sim.indicators()).to.have.length(500);
      expect(sim.requestLog.at(-1)).to.include({ endpoint: 'indicators.import', status: 200, items: 500 });
    });

    it('reports per-item failures and stores the valid items', async () => {
      const res = await call(sim, 'POST', '/api/indicators/import', {
        Indicators: [ind({ indicatorValue: '192.0.2.1' }), ind({ indicatorValue: '192.0.2.0/24' }), ind({ indicatorType: 'FileSha256', indicatorValue: 'abc' }), ind({ indicatorValue: '192.0.2.2' })],
      });
      expect(res.status).to.equal(200);
      const v = res.data.value as { id: string | null; indicator: string; isFailed: boolean; failureReason: string | null }[];
      expect(v.map((x) => x.isFailed)).to.deep.equal([false, true, true, false]);
      expect(v[0]).to.include({ indicator: '192.0.2.1', failureReason: null });
      expect(v[0]?.id).to.match(/^\d+$/);
      expect(v[1]).to.include({ id: null, indicator: '192.0.2.0/24' });
      expect(v[1]?.failureReason).to.match(/CIDR/);
      expect(v[2]?.failureReason).to.match(/hash/i);
      expect(sim.indicators().map((i) => i.indicatorValue)).to.deep.equal(['192.0.2.1', '192.0.2.2']);
    });

    it('is an idempotent upsert when repeated', async () => {
      const first = await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(3) });
      const again = await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(3) });
      expect(again.data.value.map((v: { id: string }) => v.id)).to.deep.equal(first.data.value.map((v: { id: string }) => v.id));
      expect(sim.indicators()).to.have.length(3);
    });
  });

  describe('active cap and expiry', () => {
    it('refuses creations beyond maxIndicators but still allows updates', async () => {
      const capped = await startSim({ maxIndicators: 3 });
      expect((await call(capped, 'POST', '/api/indicators/import', { Indicators: ips(3) })).status).to.equal(200);
      const single = await call(capped, 'POST', '/api/indicators', ind({ indicatorValue: '203.0.113.9' }));
      expect(single.status).to.equal(400);
      expect(single.data.error.code).to.equal('BadRequest');
      expect(single.data.error.message).to.match(/maximum number of active indicators \(3\)/);
      const batch = await call(capped, 'POST', '/api/indicators/import', { Indicators: [...ips(1), ind({ indicatorValue: '203.0.113.10' })] });
      expect(batch.data.value.map((v: { isFailed: boolean }) => v.isFailed)).to.deep.equal([false, true]);
      expect(batch.data.value[1].failureReason).to.match(/maximum number of active indicators/);
      expect(capped.indicators()).to.have.length(3);
    });

    it('excludes expired indicators from GET and from the count', async () => {
      const capped = await startSim({ maxIndicators: 1 });
      const expired = await call(capped, 'POST', '/api/indicators', ind({ indicatorValue: '203.0.113.1', expirationTime: past() }));
      expect(expired.status).to.equal(200);
      const live = await call(capped, 'POST', '/api/indicators', ind({ indicatorValue: '203.0.113.2', expirationTime: future() }));
      expect(live.status).to.equal(200);
      const listed = await call(capped, 'GET', '/api/indicators');
      expect(listed.data.value.map((i: { indicatorValue: string }) => i.indicatorValue)).to.deep.equal(['203.0.113.2']);
      expect(capped.indicators()).to.have.length(1);
      expect(capped.find('IpAddress', '203.0.113.1')).to.equal(undefined);
    });

    it('frees cap room when an indicator expires as time passes', async () => {
      let now = Date.parse('2030-01-01T00:00:00Z');
      const capped = await startSim({ maxIndicators: 1, now: () => now });
      expect((await call(capped, 'POST', '/api/indicators', ind({ indicatorValue: '203.0.113.1', expirationTime: '2030-01-01T00:01:00Z' }))).status).to.equal(200);
      expect((await call(capped, 'POST', '/api/indicators', ind({ indicatorValue: '203.0.113.2' }))).status).to.equal(400);
      now += 61_000;
      expect((await call(capped, 'GET', '/api/indicators')).data.value).to.have.length(0);
      expect((await call(capped, 'POST', '/api/indicators', ind({ indicatorValue: '203.0.113.2' }))).status).to.equal(200);
      // Reviving the expired one would exceed the cap again.
      const revive = await call(capped, 'POST', '/api/indicators', ind({ indicatorValue: '203.0.113.1' }));
      expect(revive.status).to.equal(400);
    });
  });

  describe('GET /api/indicators', () => {
    it('filters with OData and answers with @odata.context', async () => {
      await call(sim, 'POST', '/api/indicators/import', { Indicators: [...ips(3), ind({ indicatorType: 'Url', indicatorValue: "https://evil.example/?q=o'brien&x=1", application: 'tb' })] });
      const filter = encodeURIComponent("indicatorValue eq 'https://evil.example/?q=o''brien&x=1' and application eq 'tb'");
      const res = await call(sim, 'GET', `/api/indicators?$filter=${filter}`);
      expect(res.status).to.equal(200);
      expect(res.data['@odata.context']).to.equal(`${sim.url}/api/$metadata#Indicators`);
      expect(res.data.value.map((i: { indicatorValue: string }) => i.indicatorValue)).to.deep.equal(["https://evil.example/?q=o'brien&x=1"]);
      const byType = await call(sim, 'GET', "/api/indicators?$filter=indicatorType+eq+'IpAddress'+AND+createdBy+eq+'app-all'");
      expect(byType.data.value).to.have.length(3);
      const dated = await call(sim, 'GET', `/api/indicators?$filter=creationTimeDateTimeUtc ge ${new Date(Date.now() - 60_000).toISOString()}`);
      expect(dated.data.value).to.have.length(4);
    });

    it('pages with $top/$skip, @odata.count and @odata.nextLink', async () => {
      await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(12) });
      const seen: string[] = [];
      let res = await call(sim, 'GET', '/api/indicators?$top=5&$count=true');
      expect(res.data['@odata.count']).to.equal(12);
      let pages = 1;
      seen.push(...res.data.value.map((i: { id: string }) => i.id));
      expect(res.data['@odata.nextLink']).to.equal(`${sim.url}/api/indicators?$top=5&$count=true&$skip=5`);
      while (res.data['@odata.nextLink']) {
        res = await call(sim, 'GET', res.data['@odata.nextLink'] as string);
        seen.push(...res.data.value.map((i: { id: string }) => i.id));
        pages++;
      }
      expect(pages).to.equal(3);
      expect(new Set(seen).size).to.equal(12);
      expect(res.data.value).to.have.length(2);
    });

    it('pages server-side without $top', async () => {
      const small = await startSim({ pageSize: 4 });
      await call(small, 'POST', '/api/indicators/import', { Indicators: ips(6) });
      const res = await call(small, 'GET', '/api/indicators');
      expect(res.data.value).to.have.length(4);
      expect(res.data['@odata.nextLink']).to.equal(`${small.url}/api/indicators?$skip=4`);
    });

    it('rejects $top above 10,000 and malformed filters with 400 ODataError', async () => {
      for (const q of ['$top=10001', "$filter=indicatorValue eq 'unterminated", '$filter=expirationTime ge \'2020-01-01\'', "$filter=nosuch eq 'x'"]) {
        const res = await call(sim, 'GET', `/api/indicators?${q}`);
        expect(res.status, q).to.equal(400);
        expect(res.data.error.code).to.equal('ODataError');
      }
    });

    it('shows a Ti.ReadWrite app only its own indicators', async () => {
      await call(sim, 'POST', '/api/indicators', ind({ indicatorValue: '192.0.2.10' }));
      const ownToken = await token(APP_OWN);
      await call(sim, 'POST', '/api/indicators', ind({ indicatorValue: '192.0.2.11' }), ownToken);
      const own = await call(sim, 'GET', '/api/indicators', undefined, ownToken);
      expect(own.data.value.map((i: { indicatorValue: string }) => i.indicatorValue)).to.deep.equal(['192.0.2.11']);
      const all = await call(sim, 'GET', '/api/indicators');
      expect(all.data.value).to.have.length(2);
    });

    it('keeps tenants apart', async () => {
      await call(sim, 'POST', '/api/indicators', ind());
      const other = await call(sim, 'GET', '/api/indicators', undefined, await token(APP, OTHER_TENANT));
      expect(other.data.value).to.have.length(0);
      expect(sim.indicators(OTHER_TENANT)).to.have.length(0);
      expect(sim.indicators(TENANT)).to.have.length(1);
    });
  });

  describe('deletion', () => {
    it('DELETE /api/indicators/{id} answers 204, then 404 ResourceNotFound', async () => {
      const id = (await call(sim, 'POST', '/api/indicators', ind())).data.id as string;
      const del = await call(sim, 'DELETE', `/api/indicators/${id}`);
      expect(del.status).to.equal(204);
      expect(del.data).to.equal('');
      const again = await call(sim, 'DELETE', `/api/indicators/${id}`);
      expect(again.status).to.equal(404);
      expect(again.data.error.code).to.equal('ResourceNotFound');
    });

    it('BatchDelete deletes all ids with 204', async () => {
      const ids = (await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(3) })).data.value.map((v: { id: string }) => v.id);
      const res = await call(sim, 'POST', '/api/indicators/BatchDelete', { IndicatorIds: ids });
      expect(res.status).to.equal(204);
      expect(sim.indicators()).to.have.length(0);
    });

    it('BatchDelete with one unknown id answers 404 and deletes nothing', async () => {
      const ids = (await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(3) })).data.value.map((v: { id: string }) => v.id);
      const res = await call(sim, 'POST', '/api/indicators/BatchDelete', { IndicatorIds: [...ids, '987654'] });
      expect(res.status).to.equal(404);
      expect(res.data.error.code).to.equal('ResourceNotFound');
      expect(res.data.error.message).to.include('987654');
      expect(sim.indicators()).to.have.length(3);
    });

    it('BatchDelete rejects an empty list and more than 500 ids with 400', async () => {
      expect((await call(sim, 'POST', '/api/indicators/BatchDelete', { IndicatorIds: [] })).status).to.equal(400);
      const big = await call(sim, 'POST', '/api/indicators/BatchDelete', { IndicatorIds: Array.from({ length: 501 }, (_, i) => String(i + 1)) });
      expect(big.status).to.equal(400);
      expect(big.data.error.code).to.equal('MaximumBatchSizeExceeded');
      expect((await call(sim, 'POST', '/api/indicators/BatchDelete', { indicatorIds: ['1'] })).status).to.equal(400);
    });

    it("does not let a Ti.ReadWrite app delete another app's indicator", async () => {
      const id = (await call(sim, 'POST', '/api/indicators', ind())).data.id as string;
      expect((await call(sim, 'DELETE', `/api/indicators/${id}`, undefined, await token(APP_OWN))).status).to.equal(404);
      expect(sim.indicators()).to.have.length(1);
    });
  });

  describe('rate limits', () => {
    // Windows on a clock the test moves by hand: no assertion depends on how fast this machine is.
    let simNow = 0;
    const limitClock = () => simNow;
    beforeEach(() => { simNow = 0; });

    it('answers 429 TooManyRequests with Retry-After past the documented 30/min import quota', async () => {
      const limited = await startSim({ rateLimits: true, timeScale: 12, limitClock }); // a simulated minute lasts five real seconds
      const statuses: number[] = [];
      for (let i = 0; i < 31; i++) statuses.push((await call(limited, 'POST', '/api/indicators/import', { Indicators: ips(1, i) })).status);
      expect(statuses.slice(0, 30).every((s) => s === 200)).to.equal(true);
      expect(statuses[30]).to.equal(429);
      simNow = 30_000;
      const throttled = await call(limited, 'POST', '/api/indicators/import', { Indicators: ips(1, 99) });
      expect(throttled.status).to.equal(429);
      expect(throttled.data.error.code).to.equal('TooManyRequests');
      // Real seconds: the 30 s left of the simulated minute, scaled down ×12, rounded up.
      expect(throttled.headers['retry-after']).to.equal('3');
      expect(limited.find('IpAddress', ips(1, 99)[0]?.indicatorValue as string)).to.equal(undefined);
      // Other endpoints and other apps have their own quotas.
      expect((await call(limited, 'GET', '/api/indicators')).status).to.equal(200);
      expect((await call(limited, 'POST', '/api/indicators/import', { Indicators: ips(1, 200) }, await token(APP_OWN))).status).to.equal(200);
      simNow = 60_001; // the first 30 have left the sliding minute
      expect((await call(limited, 'POST', '/api/indicators/import', { Indicators: ips(1, 99) })).status).to.equal(200);
    });

    it('counts throttled requests, so hammering keeps the rate high', async () => {
      const limited = await startSim({ rateLimits: { 'indicators.list': [{ limit: 2, windowMs: 60_000 }] }, limitClock });
      const get = async (): Promise<number> => (await call(limited, 'GET', '/api/indicators')).status;
      expect([await get(), await get(), await get()]).to.deep.equal([200, 200, 429]);
      for (simNow = 10_000; simNow <= 50_000; simNow += 10_000) expect(await get()).to.equal(429);
      simNow = 61_000;
      // The first two are out of the window, but the 429s sent meanwhile still count.
      expect(await get()).to.equal(429);
      simNow = 121_001; // every request so far is out of the window
      expect(await get()).to.equal(200);
    });

    it('lets a client that honours Retry-After through on its retry', async () => {
      const limited = await startSim({ rateLimits: { 'indicators.submit': [{ limit: 1, windowMs: 120_000 }] }, timeScale: 60, limitClock });
      expect((await call(limited, 'POST', '/api/indicators', ind())).status).to.equal(200);
      const denied = await call(limited, 'POST', '/api/indicators', ind());
      expect(denied.status).to.equal(429);
      expect(denied.headers['retry-after']).to.equal('2'); // two simulated minutes at ×60
      simNow = 2 * 60_000; // Retry-After's 2 real seconds, at ×60
      expect((await call(limited, 'POST', '/api/indicators', ind())).status).to.equal(200);
    });
  });

  describe('send log', () => {
    const key = (value: string) => `${TENANT}\u0000IpAddress\u0000${value}`;

    it('counts an item sent again unchanged, but not an update, a re-send after a delete, or one across an interruption', async () => {
      const [a] = ips(1);
      expect((await call(sim, 'POST', '/api/indicators/import', { Indicators: [a] })).status).to.equal(200);
      // An update (new content), then the same update again: only the second is a repeat.
      const update = { ...a, severity: 'Low' };
      expect((await call(sim, 'POST', '/api/indicators/import', { Indicators: [update] })).status).to.equal(200);
      expect(sim.sends.repeats()).to.deep.equal([]);
      await call(sim, 'POST', '/api/indicators/import', { Indicators: [update] });
      expect(sim.sends.repeats().map((r) => r.key)).to.deep.equal([key('10.0.0.1')]);
      // Deleted (here by hand), then sent again with the same content: the store changed in between.
      sim.deleteByHand(sim.find('IpAddress', '10.0.0.1')!.id);
      await call(sim, 'POST', '/api/indicators/import', { Indicators: [update] });
      expect(sim.sends.repeats()).to.have.length(1);
      // A send after an interruption soon after the answer: its answer may have been lost with the process.
      const [b] = ips(1, 5);
      await call(sim, 'POST', '/api/indicators/import', { Indicators: [b] });
      const crash = Date.now();
      await call(sim, 'POST', '/api/indicators', b);
      expect(sim.sends.repeats({ interruptions: [crash] })).to.have.length(1);
      expect(sim.sends.repeats().map((r) => r.key)).to.deep.equal([key('10.0.0.1'), key('10.0.0.6')]);
      expect(sim.sends.repeats({ interruptions: [crash], graceMs: -1 }), 'an interruption long after the answer excuses nothing')
        .to.have.length(2);
      expect(sim.sends.perKey().get(key('10.0.0.1'))).to.equal(4);
    });

    it('records only the items Defender applied', async () => {
      const bad = ind({ indicatorValue: 'not an ip' });
      await call(sim, 'POST', '/api/indicators/import', { Indicators: [bad, ...ips(1)] });
      sim.failNext(1, 503, { endpoint: 'indicators.import' });
      await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(1) });
      expect(sim.sends.sends.map((s) => s.key)).to.deep.equal([key('10.0.0.1')]);
    });
  });

  describe('fault injection and inspection', () => {
    it('failNext fails only the chosen endpoint, without applying the request', async () => {
      sim.failNext(2, 503, { endpoint: 'indicators.import' });
      sim.failNext(1, 429, { endpoint: 'indicators.list', retryAfter: 7 });
      const a = await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(1) });
      expect(a.status).to.equal(503);
      expect(a.data.error.code).to.equal('ServiceUnavailable');
      expect((await call(sim, 'POST', '/api/indicators', ind())).status).to.equal(200);
      expect((await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(1) })).status).to.equal(503);
      expect((await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(1) })).status).to.equal(200);
      const list = await call(sim, 'GET', '/api/indicators');
      expect(list.status).to.equal(429);
      expect(list.headers['retry-after']).to.equal('7');
      expect(sim.indicators()).to.have.length(2);
      expect(sim.counts()).to.deep.equal({ 'indicators.import': 3, 'indicators.submit': 1, 'indicators.list': 1 });
    });

    it('failNext can send a custom body', async () => {
      sim.failNext(1, 500, { body: { error: { code: 'InternalServerError', message: 'boom', target: 'x' } } });
      const res = await call(sim, 'GET', '/api/indicators');
      expect(res.status).to.equal(500);
      expect(res.data.error.message).to.equal('boom');
    });

    it('setDown resets connections or answers 503 until lifted', async () => {
      sim.setDown(true);
      let error: unknown;
      try {
        await call(sim, 'GET', '/api/indicators');
      } catch (err) {
        error = err;
      }
      expect(error, 'connection should fail').to.be.instanceOf(Error);
      sim.setDown(true, 503);
      expect((await call(sim, 'GET', '/api/indicators')).status).to.equal(503);
      sim.setDown(false);
      expect((await call(sim, 'GET', '/api/indicators')).status).to.equal(200);
    });

    it('dropNextResponse applies the request but loses the answer; the retry is an idempotent upsert', async () => {
      sim.dropNextResponse(1, 'indicators.import');
      let error: unknown;
      try {
        await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(2) });
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(Error);
      expect(sim.indicators()).to.have.length(2);
      const ids = sim.indicators().map((i) => i.id);
      const retry = await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(2) });
      expect(retry.status).to.equal(200);
      expect(retry.data.value.map((v: { id: string }) => v.id)).to.deep.equal(ids);
      expect(sim.indicators()).to.have.length(2);
      expect(sim.requestLog.map((e) => e.fault)).to.deep.equal(['dropped', null]);
      expect(sim.sends.repeats(), 'a retry after a lost answer is not a repeat').to.deep.equal([]);
      // Sent again once the answer was in: two repeats, although the store still holds two indicators.
      expect((await call(sim, 'POST', '/api/indicators/import', { Indicators: ips(2) })).status).to.equal(200);
      expect(sim.sends.repeats().map((r) => r.key)).to.deep.equal([`${TENANT}\u0000IpAddress\u000010.0.0.1`, `${TENANT}\u0000IpAddress\u000010.0.0.2`]);
      expect(sim.indicators()).to.have.length(2);
    });

    it('setLatency delays answers', async () => {
      sim.setLatency(150);
      const t0 = Date.now();
      await call(sim, 'GET', '/api/indicators');
      expect(Date.now() - t0).to.be.at.least(140);
      sim.setLatency(0);
    });

    it('routes case-insensitively, including the /api/v1.0 alias, and 404s unknown paths', async () => {
      const id = (await call(sim, 'POST', '/api/v1.0/Indicators', ind())).data.id as string;
      expect(id).to.match(/^\d+$/);
      expect((await call(sim, 'POST', '/api/indicators/batchdelete', { IndicatorIds: [id] })).status).to.equal(204);
      const unknown = await call(sim, 'GET', '/api/nothing');
      expect(unknown.status).to.equal(404);
      expect(unknown.data.error.code).to.equal('NotFound');
    });

    it('serves a read-only human view under /_sim, not under /api', async () => {
      await call(sim, 'POST', '/api/indicators', ind());
      const res = await call(sim, 'GET', '/_sim/indicators', undefined, null);
      expect(res.status).to.equal(200);
      expect(res.data.count).to.equal(1);
      expect(res.data.value[0]).to.include({ tenantId: TENANT, indicatorValue: '198.51.100.7' });
      expect((await call(sim, 'POST', '/_sim/indicators', {}, null)).status).to.equal(404);
    });

    it('seed() stores indicators without HTTP and reset() forgets everything', async () => {
      const seeded = sim.seed(TENANT, APP, ips(5));
      expect(seeded.map((i) => i.createdBy)).to.deep.equal(Array(5).fill(APP));
      expect((await call(sim, 'GET', '/api/indicators')).data.value).to.have.length(5);
      sim.reset();
      expect(sim.indicators()).to.have.length(0);
      expect(sim.requestLog).to.have.length(0);
    });
  });
});
