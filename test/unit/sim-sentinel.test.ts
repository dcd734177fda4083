// The Sentinel upload simulator follows the documented API: auth and audience, api-version,
// sourcesystem, the 100-object and 100-requests-per-minute limits, body size, versioning by modified.
import { expect } from 'chai';
import { createHttpClient, type HttpClient } from '../../src/net/http.js';
import { createLogger } from '../../src/observability/logger.js';
import { EntraSimulator } from '../../sim/entra.js';
import { SentinelSimulator } from '../../sim/sentinel.js';
import { createTestCertificate } from '../../sim/tls.js';
import { TokenProvider } from '../../src/microsoft/token.js';

const WS = '12345678-1234-4234-8234-123456789abc';
const log = createLogger('silent');

function indicator(n: number, modified = '2026-01-02T00:00:00.000Z') {
  return { type: 'indicator', spec_version: '2.1', id: `indicator--00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    created: '2026-01-01T00:00:00.000Z', modified, pattern: `[ipv4-addr:value = '10.0.0.${n % 250}']`, pattern_type: 'stix',
    valid_from: '2026-01-01T00:00:00.000Z', name: `n${n}` };
}

describe('Sentinel upload simulator', function () {
  this.timeout(20_000);
  let entra: EntraSimulator;
  let sim: SentinelSimulator;
  let http: HttpClient;
  let token: string;
  const path = `/workspaces/${WS}/threat-intelligence-stix-objects:upload?api-version=2024-02-01-preview`;
  const post = (body: unknown, url = path, auth = `Bearer ${token}`) =>
    http.request<Record<string, unknown> | string>({ method: 'POST', url, data: body, headers: { Authorization: auth, 'Content-Type': 'application/json' } });

  before(async () => {
    const tls = await createTestCertificate();
    entra = new EntraSimulator({ tls });
    await entra.start();
    entra.registerApp({ tenantId: 't', clientId: 'app', clientSecret: 'secret-x', roles: [] });
    entra.registerApp({ tenantId: 't', clientId: 'other', clientSecret: 'secret-y', roles: [] });
    sim = new SentinelSimulator({ entra, tls, workspaces: { [WS]: ['app'] }, requestsPerMinute: 8, bodyLimitBytes: 64 * 1024 });
    await sim.start();
    http = createHttpClient({ system: 'test', baseURL: sim.url, timeoutMs: 5000, verifyTls: false });
    token = await new TokenProvider({ loginUrl: entra.url, tenantId: 't', clientId: 'app', clientSecret: 'secret-x',
      scope: 'https://management.azure.com/.default', verifyTls: false, timeoutMs: 5000, log }).getToken();
  });
  after(async () => {
    await sim.stop();
    await entra.stop();
  });

  it('checks the request before the objects, then answers per record inside a 200', async () => {
    expect((await post({ sourcesystem: 'x', stixobjects: [] }, path, 'Bearer nope')).status).to.equal(401);
    expect((await post({ sourcesystem: 'x', stixobjects: [] }, `/workspaces/${WS}/threat-intelligence-stix-objects:upload`)).status).to.equal(400);
    expect((await post({ sourcesystem: 'x', stixobjects: [] }, path.replace(WS, '00000000-0000-4000-8000-000000000000'))).status).to.equal(404);
    expect((await post({ sourcesystem: 'Microsoft Sentinel', stixobjects: [indicator(1)] })).status).to.equal(400);
    const tooMany = await post({ sourcesystem: 'x', stixobjects: Array.from({ length: 101 }, (_, i) => indicator(i)) });
    expect(tooMany.status).to.equal(400);
    const ok = await post({ sourcesystem: 'x', stixobjects: [indicator(1), { ...indicator(2), id: undefined }, indicator(3)] });
    expect(ok.status).to.equal(200);
    expect(ok.data).to.deep.equal({ errors: [{ recordIndex: 1, errorMessages: ['Error for Property=id: Required property is missing. Actual value: NULL.'] }] });
    expect(sim.indicators(WS).map((o) => o['name']).sort()).to.deep.equal(['n1', 'n3']);
  });

  it('keeps the newest version of an id and ignores an older one', async () => {
    await post({ sourcesystem: 'x', stixobjects: [{ ...indicator(7, '2026-01-05T00:00:00.000Z'), name: 'new' }] });
    await post({ sourcesystem: 'x', stixobjects: [{ ...indicator(7, '2026-01-03T00:00:00.000Z'), name: 'old' }] });
    expect(sim.indicators(WS).filter((o) => o['id'] === indicator(7).id).map((o) => o['name'])).to.deep.equal(['new']);
  });

  it('refuses a caller without the Contributor role, too-large bodies, and throttles past the per-minute quota', async () => {
    const other = await new TokenProvider({ loginUrl: entra.url, tenantId: 't', clientId: 'other', clientSecret: 'secret-y',
      scope: 'https://management.azure.com/.default', verifyTls: false, timeoutMs: 5000, log }).getToken();
    expect((await post({ sourcesystem: 'x', stixobjects: [] }, path, `Bearer ${other}`)).status).to.equal(403);
    expect((await post({ sourcesystem: 'x', stixobjects: [{ ...indicator(1), description: 'x'.repeat(70_000) }] })).status).to.equal(413);
    let res = await post({ sourcesystem: 'x', stixobjects: [] });
    for (let i = 0; i < 10 && res.status !== 429; i++) res = await post({ sourcesystem: 'x', stixobjects: [] });
    expect(res.status).to.equal(429);
    expect(res.headers['retry-after']).to.match(/^\d+$/);
    expect((res.data as { message: string }).message).to.match(/^Rate limit is exceeded\. Try again in \d+ seconds\.$/);
  });
});
