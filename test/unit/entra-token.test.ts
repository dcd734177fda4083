// The token provider against a token endpoint that answers only what Microsoft documents:
// POST /{tenant}/oauth2/v2.0/token (no openid-configuration, no instance discovery).
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, errorFields } from '../../src/observability/logger.js';
import { TokenError, TokenProvider } from '../../src/microsoft/token.js';

interface Seen { method: string; path: string; form: URLSearchParams }

describe('Entra ID token provider', () => {
  let server: http.Server;
  let url: string;
  const seen: Seen[] = [];
  let issued = 0;

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        seen.push({ method: req.method ?? '', path, form: new URLSearchParams(body) });
        if (req.method === 'POST' && path === '/tenant-1/oauth2/v2.0/token') {
          const form = new URLSearchParams(body);
          if (form.get('client_secret') !== 's3cret') {
            res.writeHead(401, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t', error_codes: [7000215] }));
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: `token-${++issued}` }));
          return;
        }
        if (path.startsWith('/tenant-behind-proxy/')) {
          res.writeHead(502, { 'content-type': 'text/html' });
          res.end('<html><body>Bad Gateway</body></html>');
          return;
        }
        res.writeHead(404).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => { seen.length = 0; });

  const provider = (clientSecret = 's3cret', tenantId = 'tenant-1') => new TokenProvider({ loginUrl: url, tenantId, clientId: 'app-1', clientSecret,
    scope: 'https://api.securitycenter.microsoft.com/.default', verifyTls: true, timeoutMs: 5000, log: createLogger('silent') });

  it('asks only the documented token endpoint, with the client-credentials form, and caches the token', async () => {
    const tokens = provider();
    expect(await tokens.getToken()).to.match(/^token-\d+$/);
    const again = await tokens.getToken();
    expect(seen.map((s) => `${s.method} ${s.path}`)).to.deep.equal(['POST /tenant-1/oauth2/v2.0/token']);
    const form = seen[0]!.form;
    expect(form.get('grant_type')).to.equal('client_credentials');
    expect(form.get('client_id')).to.equal('app-1');
    expect(form.get('scope')).to.equal('https://api.securitycenter.microsoft.com/.default');
    expect(again, 'cached').to.match(/^token-\d+$/);
    expect(await tokens.getToken(true), 'a forced refresh asks again').to.not.equal(again);
  });

  it('names the tenant and client and AADSTS code when the secret is refused (in the detail logs get), never the secret', async () => {
    const err = await provider('wrong-secret').getToken().then(() => null, (e: TokenError) => e);
    expect(err?.detail).to.include('tenant-1').and.include('app-1').and.include('7000215');
    expect(errorFields(err)['detail']).to.equal(err?.detail);
    expect(`${err?.message} ${err?.detail}`).to.not.include('wrong-secret');
  });

  it('says what is wrong without identifiers in the message (/readyz, the status page)', async () => {
    const err = await provider('wrong-secret').getToken().then(() => null, (e: TokenError) => e);
    expect(err?.message).to.include('AADSTS7000215').and.include('client secret is wrong or expired');
    expect(err?.message).to.not.include('tenant-1').and.not.include('app-1').and.not.match(/Trace ID|Correlation ID/);
  });

  it('reports a non-JSON answer (a proxy error page) with its status instead of a parse error', async () => {
    const err = await provider('s3cret', 'tenant-behind-proxy').getToken().then(() => null, (e: TokenError) => e);
    expect(err?.message).to.include('HTTP 502');
    expect(err?.detail).to.include('HTTP 502').and.include('Bad Gateway');
  });
});
