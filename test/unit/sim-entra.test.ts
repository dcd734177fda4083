import { spawn } from 'node:child_process';
import https from 'node:https';
import { ConfidentialClientApplication, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node';
import axios, { type AxiosInstance } from 'axios';
import { expect } from 'chai';
import { EntraSimulator } from '../../sim/entra.js';
import { createTestCertificate, type TestCertificate } from '../../sim/tls.js';

const TENANT = '11111111-2222-3333-4444-555555555555';
const CLIENT = 'aaaaaaaa-0000-0000-0000-000000000001';
const SECRET = 'correct-horse';
const MDE_SCOPE = 'https://api.securitycenter.microsoft.com/.default';

/** msal-node network client that trusts the simulator's certificate (NODE_EXTRA_CA_CERTS is read at startup only). */
function trustingNetworkClient(ca: string): INetworkModule {
  const send = <T>(url: string, method: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> =>
    new Promise((resolve, reject) => {
      const req = https.request(url, { method, headers: options?.headers ?? {}, ca }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers[k] = v;
          resolve({ headers, body: JSON.parse(data) as T, status: res.statusCode ?? 0 });
        });
      });
      req.on('error', reject);
      if (method === 'POST') req.write(options?.body ?? '');
      req.end();
    });
  return {
    sendGetRequestAsync: <T>(url: string, options?: NetworkRequestOptions) => send<T>(url, 'GET', options),
    sendPostRequestAsync: <T>(url: string, options?: NetworkRequestOptions) => send<T>(url, 'POST', options),
  };
}

describe('sim: Entra token endpoint', function () {
  this.timeout(30_000);
  let cert: TestCertificate;
  let entra: EntraSimulator;
  let http: AxiosInstance;

  const tokenRequest = (fields: Record<string, string>, tenant = TENANT) =>
    http.post(`${entra.url}/${tenant}/oauth2/v2.0/token`, new URLSearchParams(fields));
  const goodFields = (): Record<string, string> => ({ grant_type: 'client_credentials', client_id: CLIENT, client_secret: SECRET, scope: MDE_SCOPE });

  before(async () => {
    cert = await createTestCertificate();
    entra = new EntraSimulator({ tls: cert });
    await entra.start();
    http = axios.create({ httpsAgent: new https.Agent({ ca: cert.cert }), validateStatus: () => true });
  });
  after(() => entra.stop());
  beforeEach(() => {
    entra.registerApp({ tenantId: TENANT, clientId: CLIENT, clientSecret: SECRET, roles: ['Ti.ReadWrite.All'], displayName: 'ThreatBridge' });
    entra.setTokenLifetime(3599);
  });

  it('caches one certificate per process, valid for localhost and 127.0.0.1', async () => {
    expect(await createTestCertificate()).to.equal(cert);
    const viaIp = await http.get(`https://127.0.0.1:${new URL(entra.url).port}/${TENANT}/v2.0/.well-known/openid-configuration`);
    expect(viaIp.status).to.equal(200);
    expect(entra.url).to.match(/^https:\/\/localhost:\d+$/);
  });

  it('serves OpenID metadata pointing at itself', async () => {
    const res = await http.get(`${entra.url}/${TENANT}/v2.0/.well-known/openid-configuration`);
    expect(res.status).to.equal(200);
    expect(res.data.token_endpoint).to.equal(`${entra.url}/${TENANT}/oauth2/v2.0/token`);
    expect(res.data.issuer).to.equal(`${entra.url}/${TENANT}/v2.0`);
    expect(res.data).to.include.keys('authorization_endpoint', 'jwks_uri', 'response_types_supported');
    const unknown = await http.get(`${entra.url}/no-such-tenant/v2.0/.well-known/openid-configuration`);
    expect(unknown.status).to.equal(400);
    expect(unknown.data.error_codes).to.deep.equal([90002]);
  });

  it('issues a bearer token for client credentials and remembers who it is for', async () => {
    const before = entra.tokenRequests;
    const res = await tokenRequest(goodFields());
    expect(res.status).to.equal(200);
    expect(res.data).to.include({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599 });
    expect(res.data.access_token).to.be.a('string').with.length.greaterThan(40);
    expect(entra.tokenRequests).to.equal(before + 1);
    expect(entra.tokenInfo(res.data.access_token)).to.deep.equal({
      tenantId: TENANT, clientId: CLIENT, roles: ['Ti.ReadWrite.All'], audience: 'https://api.securitycenter.microsoft.com', displayName: 'ThreatBridge',
    });
    expect(entra.tokenInfo('forged')).to.equal('unknown');
  });

  it('accepts the legacy WindowsDefenderATP scope and sets the audience accordingly', async () => {
    const res = await tokenRequest({ ...goodFields(), scope: 'https://securitycenter.onmicrosoft.com/windowsatpservice/.default' });
    expect(res.status).to.equal(200);
    const info = entra.tokenInfo(res.data.access_token);
    expect(info).to.have.property('audience', 'https://securitycenter.onmicrosoft.com/windowsatpservice');
  });

  const errorCases: { name: string; fields: (f: Record<string, string>) => Record<string, string>; tenant?: string; status: number; error: string; code: number }[] = [
    { name: 'wrong secret', fields: (f) => ({ ...f, client_secret: 'nope' }), status: 401, error: 'invalid_client', code: 7000215 },
    { name: 'unknown app', fields: (f) => ({ ...f, client_id: 'not-registered' }), status: 400, error: 'unauthorized_client', code: 700016 },
    { name: 'unknown tenant', fields: (f) => f, tenant: 'contoso.example', status: 400, error: 'invalid_request', code: 90002 },
    { name: 'unknown resource', fields: (f) => ({ ...f, scope: 'https://example.com/.default' }), status: 400, error: 'invalid_resource', code: 500011 },
    { name: 'scope without /.default', fields: (f) => ({ ...f, scope: 'https://graph.microsoft.com/User.Read' }), status: 400, error: 'invalid_scope', code: 1002012 },
    { name: 'two resources', fields: (f) => ({ ...f, scope: `${MDE_SCOPE} https://graph.microsoft.com/.default` }), status: 400, error: 'invalid_scope', code: 70011 },
    { name: 'other grant type', fields: (f) => ({ ...f, grant_type: 'password' }), status: 400, error: 'unsupported_grant_type', code: 70003 },
    { name: 'missing secret', fields: ({ client_secret: _s, ...f }) => f, status: 401, error: 'invalid_client', code: 7000218 },
    { name: 'missing scope', fields: ({ scope: _s, ...f }) => f, status: 400, error: 'invalid_request', code: 900144 },
  ];
  for (const c of errorCases) {
    it(`rejects ${c.name} with AADSTS${c.code}`, async () => {
      const res = await tokenRequest(c.fields(goodFields()), c.tenant);
      expect(res.status).to.equal(c.status);
      expect(res.data.error).to.equal(c.error);
      expect(res.data.error_codes).to.deep.equal([c.code]);
      expect(res.data.error_description).to.match(new RegExp(`^AADSTS${c.code}: .+\\r\\nTrace ID: [0-9a-f-]{36}\\r\\nCorrelation ID: `));
      expect(res.data).to.include.keys('timestamp', 'trace_id', 'correlation_id');
      expect(res.data).not.to.have.property('access_token');
    });
  }

  it('reads only form bodies, like Entra (JSON → grant_type missing)', async () => {
    const res = await http.post(`${entra.url}/${TENANT}/oauth2/v2.0/token`, goodFields());
    expect(res.status).to.equal(400);
    expect(res.data.error_codes).to.deep.equal([900144]);
    expect(res.data.error_description).to.include("'grant_type'");
  });

  it('honours a configurable lifetime, and expired tokens read as expired', async () => {
    entra.setTokenLifetime(0);
    const res = await tokenRequest(goodFields());
    expect(res.data.expires_in).to.equal(0);
    expect(entra.tokenInfo(res.data.access_token)).to.equal('expired');
  });

  it('revokeAll() kills issued tokens but not later ones', async () => {
    const old = (await tokenRequest(goodFields())).data.access_token as string;
    expect(entra.tokenInfo(old)).to.be.an('object');
    entra.revokeAll();
    expect(entra.tokenInfo(old)).to.equal('expired');
    const fresh = (await tokenRequest(goodFields())).data.access_token as string;
    expect(entra.tokenInfo(fresh)).to.be.an('object');
  });

  it('serves msal-node ConfidentialClientApplication (in-process, custom network client)', async () => {
    const cca = new ConfidentialClientApplication({
      auth: { clientId: CLIENT, clientSecret: SECRET, authority: entra.authority(TENANT), knownAuthorities: [entra.host] },
      system: { networkClient: trustingNetworkClient(cert.cert) },
    });
    const before = entra.tokenRequests;
    const first = await cca.acquireTokenByClientCredential({ scopes: [MDE_SCOPE] });
    expect(first?.accessToken).to.be.a('string');
    expect(entra.tokenInfo(first?.accessToken ?? '')).to.have.property('clientId', CLIENT);
    const second = await cca.acquireTokenByClientCredential({ scopes: [MDE_SCOPE] });
    expect(second?.fromCache).to.equal(true);
    expect(entra.tokenRequests).to.equal(before + 1);
  });

  it('surfaces msal-node errors for a wrong secret', async () => {
    const cca = new ConfidentialClientApplication({
      auth: { clientId: CLIENT, clientSecret: 'wrong', authority: entra.authority(TENANT), knownAuthorities: [entra.host] },
      system: { networkClient: trustingNetworkClient(cert.cert) },
    });
    let caught: unknown;
    try {
      await cca.acquireTokenByClientCredential({ scopes: [MDE_SCOPE] });
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(Error);
    expect(String((caught as Error).message)).to.include('AADSTS7000215');
  });

  it('serves msal-node in a child process that trusts the certificate via NODE_EXTRA_CA_CERTS', async () => {
    const script = `
      import { ConfidentialClientApplication } from '@azure/msal-node';
      const [authority, host] = process.argv.slice(1);
      const cca = new ConfidentialClientApplication({ auth: { clientId: '${CLIENT}', clientSecret: '${SECRET}', authority, knownAuthorities: [host] } });
      const r = await cca.acquireTokenByClientCredential({ scopes: ['${MDE_SCOPE}'] });
      process.stdout.write(JSON.stringify({ token: r.accessToken, type: r.tokenType }));
    `;
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, entra.authority(TENANT), entra.host], {
        cwd: process.cwd(),
        env: { ...process.env, NODE_EXTRA_CA_CERTS: cert.caPath },
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (c) => resolve({ code: c, stdout: out, stderr: err }));
    });
    expect(code, stderr).to.equal(0);
    const parsed = JSON.parse(stdout) as { token: string; type: string };
    expect(parsed.type).to.equal('Bearer');
    expect(entra.tokenInfo(parsed.token)).to.have.property('tenantId', TENANT);
  });
});
