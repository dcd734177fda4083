// Loopback simulator of the Entra ID (Azure AD) v2.0 token endpoint, client-credentials flow only.
// It serves just enough OpenID metadata for msal-node to accept it as an authority listed in
// `knownAuthorities`, and keeps every issued token so resource simulators can validate it.

import { randomBytes, randomUUID } from 'node:crypto';
import type http from 'node:http';
import { LoopbackServer, readBody, sendJson, type TlsMaterial } from './loopback.js';
import { createTestCertificate } from './tls.js';

/** Resources whose `/.default` scope the simulator issues tokens for (audience = scope minus `/.default`). */
export const KNOWN_RESOURCES: readonly string[] = [
  'https://api.securitycenter.microsoft.com',
  'https://securitycenter.onmicrosoft.com/windowsatpservice',
  'https://management.azure.com',
  'https://graph.microsoft.com',
];

export interface RegisteredApp {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** App roles granted (admin-consented), e.g. `Ti.ReadWrite.All`; copied into every token. */
  roles: string[];
  /** Shown by resources as the creator's display name; defaults to a name derived from clientId. */
  displayName?: string;
}

export interface TokenInfo {
  tenantId: string;
  clientId: string;
  roles: string[];
  /** The resource the token was issued for, e.g. `https://api.securitycenter.microsoft.com`. */
  audience: string;
  displayName: string;
}

export interface EntraSimulatorOptions {
  /** Defaults to a generated self-signed certificate (see tls.ts). msal-node requires https. */
  tls?: TlsMaterial;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Seconds, reported as `expires_in`; default 3599 like the real service. */
  tokenLifetimeSeconds?: number;
  log?: (line: string) => void;
}

interface IssuedToken extends TokenInfo {
  expiresAt: number;
  generation: number;
}

interface TokenError {
  status: number;
  error: string;
  code: number;
  message: string;
}

const BODY_LIMIT = 64 * 1024;

export class EntraSimulator {
  private server: LoopbackServer | undefined;
  private readonly apps = new Map<string, Map<string, RegisteredApp>>(); // tenant -> clientId -> app
  private readonly tokens = new Map<string, IssuedToken>();
  private generation = 0; // bumped by revokeAll(); tokens of older generations are dead
  private lifetimeSeconds: number;
  private baseUrl = ''; // kept after stop() so in-flight requests can still build URLs
  /** Every POST to a token endpoint, successful or not. */
  tokenRequests = 0;
  /** Tokens successfully issued. */
  tokensIssued = 0;

  constructor(private readonly opts: EntraSimulatorOptions = {}) {
    this.lifetimeSeconds = opts.tokenLifetimeSeconds ?? 3599;
  }

  /** `https://localhost:PORT`; the authority for tenant T is `${url}/${T}`. */
  get url(): string {
    if (!this.server) throw new Error('EntraSimulator not started');
    return this.baseUrl;
  }

  /** `localhost:PORT`, the value to put in msal-node's `knownAuthorities`. */
  get host(): string {
    return new URL(this.url).host;
  }

  authority(tenantId: string): string {
    return `${this.url}/${tenantId}`;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const tls = this.opts.tls ?? (await createTestCertificate());
    const server = new LoopbackServer((req, res) => this.handle(req, res), {
      tls,
      port: this.opts.port,
      onError: (err) => this.opts.log?.(`entra: handler error ${String(err)}`),
    });
    await server.start();
    this.server = server;
    this.baseUrl = `https://localhost:${server.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.stop();
  }

  registerApp(app: RegisteredApp): void {
    let tenant = this.apps.get(app.tenantId);
    if (!tenant) this.apps.set(app.tenantId, (tenant = new Map()));
    tenant.set(app.clientId, { ...app, roles: [...app.roles] });
  }

  /** Validation hook for resource simulators. Revoked tokens read as 'expired'. */
  tokenInfo(token: string): TokenInfo | 'expired' | 'unknown' {
    const t = this.tokens.get(token);
    if (!t) return 'unknown';
    if (t.generation !== this.generation || Date.now() >= t.expiresAt) return 'expired';
    return { tenantId: t.tenantId, clientId: t.clientId, roles: [...t.roles], audience: t.audience, displayName: t.displayName };
  }

  /**
   * One application's secret in one tenant is replaced (an admin removed the old one): token
   * requests with the old secret get AADSTS7000215, and its tokens already issued are expired as at
   * the end of their lifetime, so the next call needs a new one. Other tenants of a multi-tenant
   * application and other applications are untouched.
   */
  revokeApp(tenantId: string, clientId: string, newSecret = randomBytes(16).toString('hex')): void {
    const app = this.apps.get(tenantId)?.get(clientId);
    if (!app) throw new Error(`no application ${clientId} in tenant ${tenantId}`);
    app.clientSecret = newSecret;
    for (const t of this.tokens.values()) if (t.tenantId === tenantId && t.clientId === clientId) t.expiresAt = 0;
  }

  /** Kills every token issued so far (a resource then answers 401); new requests get fresh tokens. */
  revokeAll(): void {
    this.generation++; // entries stay so tokenInfo can tell 'expired' from 'unknown'
  }

  setTokenLifetime(seconds: number): void {
    this.lifetimeSeconds = seconds;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const segments = url.pathname.split('/').filter((s) => s !== '');
    const method = req.method ?? 'GET';
    let status: number;

    if (method === 'GET' && segments.length === 4 && segments[1] === 'v2.0' && segments[2] === '.well-known' && segments[3] === 'openid-configuration') {
      status = this.openIdConfiguration(segments[0] ?? '', res);
    } else if (method === 'GET' && url.pathname === '/common/discovery/instance') {
      status = this.instanceDiscovery(url, res);
    } else if (method === 'GET' && segments.length === 4 && segments[1] === 'discovery' && segments[2] === 'v2.0' && segments[3] === 'keys') {
      // No signing keys: tokens are opaque to clients and validated only through tokenInfo().
      sendJson(res, 200, { keys: [] });
      status = 200;
    } else if (segments.length === 4 && segments[1] === 'oauth2' && segments[2] === 'v2.0' && segments[3] === 'token') {
      if (method !== 'POST') {
        status = this.sendError(res, req, { status: 405, error: 'invalid_request', code: 900561, message: 'The endpoint only accepts POST requests. Received a GET request.' });
      } else {
        this.tokenRequests++;
        status = await this.token(segments[0] ?? '', req, res);
      }
    } else {
      sendJson(res, 404, { error: 'not_found', error_description: `No route for ${method} ${url.pathname}` });
      status = 404;
    }
    this.opts.log?.(`entra: ${method} ${url.pathname} ${status}`);
  }

  private openIdConfiguration(tenant: string, res: http.ServerResponse): number {
    if (!this.apps.has(tenant)) {
      // Shape of the real answer for an unknown tenant.
      const e = this.errorBody(undefined, { status: 400, error: 'invalid_tenant', code: 90002, message: tenantNotFound(tenant) });
      sendJson(res, 400, e);
      return 400;
    }
    const base = `${this.baseUrl}/${tenant}`;
    sendJson(res, 200, {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      // Same scheme+host+port as the authority: msal-node validates the issuer's origin.
      issuer: `${base}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: 'https://graph.microsoft.com/oidc/userinfo',
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name', 'msgraph_host', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver', 'at_hash', 'c_hash', 'email'],
      kerberos_endpoint: `${base}/kerberos`,
      tenant_region_scope: 'EU',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
      rbac_url: 'https://pas.windows.net',
    });
    return 200;
  }

  // msal-node sends this to login.microsoftonline.com itself; served for other clients that ask us.
  private instanceDiscovery(url: URL, res: http.ServerResponse): number {
    const host = new URL(this.baseUrl).host;
    const authorize = url.searchParams.get('authorization_endpoint');
    let tenant = 'common';
    try {
      if (authorize) tenant = new URL(authorize).pathname.split('/').filter(Boolean)[0] ?? 'common';
    } catch {
      // a malformed authorization_endpoint falls back to 'common'
    }
    sendJson(res, 200, {
      tenant_discovery_endpoint: `${this.baseUrl}/${tenant}/v2.0/.well-known/openid-configuration`,
      'api-version': '1.1',
      metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
    });
    return 200;
  }

  private async token(tenant: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
    const raw = await readBody(req, BODY_LIMIT);
    // Entra parses only form bodies; anything else reads as if no parameter was sent.
    const isForm = (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded');
    const form = new URLSearchParams(isForm ? raw.toString('utf8') : '');
    const missing = (name: string): TokenError => ({
      status: 400,
      error: 'invalid_request',
      code: 900144,
      message: `The request body must contain the following parameter: '${name}'.`,
    });

    const grantType = form.get('grant_type');
    if (!grantType) return this.sendError(res, req, missing('grant_type'));
    const apps = this.apps.get(tenant);
    if (!apps) {
      return this.sendError(res, req, { status: 400, error: 'invalid_request', code: 90002, message: tenantNotFound(tenant) });
    }
    if (grantType !== 'client_credentials') {
      return this.sendError(res, req, {
        status: 400,
        error: 'unsupported_grant_type',
        code: 70003,
        message: `The app requested an unsupported grant type '${grantType}'.`,
      });
    }
    const clientId = form.get('client_id');
    if (!clientId) return this.sendError(res, req, missing('client_id'));
    const app = apps.get(clientId);
    if (!app) {
      return this.sendError(res, req, {
        status: 400,
        error: 'unauthorized_client',
        code: 700016,
        message: `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      });
    }
    const secret = form.get('client_secret');
    if (!secret) {
      return this.sendError(res, req, {
        status: 401,
        error: 'invalid_client',
        code: 7000218,
        message: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      });
    }
    if (secret !== app.clientSecret) {
      return this.sendError(res, req, {
        status: 401,
        error: 'invalid_client',
        code: 7000215,
        message: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
      });
    }
    const scope = form.get('scope');
    if (!scope) return this.sendError(res, req, missing('scope'));
    const resource = this.resourceOf(scope, tenant);
    if (typeof resource !== 'string') return this.sendError(res, req, resource);

    const token = this.issue(app, resource);
    this.tokensIssued++;
    sendJson(
      res,
      200,
      { token_type: 'Bearer', expires_in: this.lifetimeSeconds, ext_expires_in: this.lifetimeSeconds, access_token: token },
      this.commonHeaders(req),
    );
    return 200;
  }

  /** Client credentials need exactly one `<resource>/.default` scope for a known resource. */
  private resourceOf(scope: string, tenant: string): string | TokenError {
    const scopes = scope.split(' ').filter((s) => s !== '');
    const invalid: TokenError = {
      status: 400,
      error: 'invalid_scope',
      code: 70011,
      message: `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`,
    };
    if (scopes.length !== 1) return invalid;
    const only = scopes[0] ?? '';
    if (!only.endsWith('/.default')) {
      return {
        status: 400,
        error: 'invalid_scope',
        code: 1002012,
        message: `The provided value for scope ${only} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      };
    }
    const resource = only.slice(0, -'/.default'.length);
    if (!KNOWN_RESOURCES.includes(resource)) {
      // The real service reports an unknown resource as invalid_resource, not invalid_scope.
      return {
        status: 400,
        error: 'invalid_resource',
        code: 500011,
        message: `The resource principal named ${resource} was not found in the tenant named ${tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
      };
    }
    return resource;
  }

  // Shaped like a v1 access token so clients that peek at it find the usual claims; the
  // signature is random, so only tokenInfo() can vouch for it.
  private issue(app: RegisteredApp, audience: string): string {
    const now = Math.floor(Date.now() / 1000);
    const displayName = app.displayName ?? `app-${app.clientId.slice(0, 8)}`;
    const payload = {
      aud: audience,
      iss: `https://sts.windows.net/${app.tenantId}/`,
      iat: now,
      nbf: now,
      exp: now + this.lifetimeSeconds,
      app_displayname: displayName,
      appid: app.clientId,
      appidacr: '1',
      idtyp: 'app',
      oid: randomUUID(),
      roles: app.roles,
      sub: randomUUID(),
      tid: app.tenantId,
      uti: randomBytes(16).toString('base64url'),
      ver: '1.0',
    };
    const header = { typ: 'JWT', alg: 'RS256', kid: 'threatbridge-sim' };
    const token = [b64(header), b64(payload), randomBytes(64).toString('base64url')].join('.');
    this.tokens.set(token, {
      tenantId: app.tenantId,
      clientId: app.clientId,
      roles: [...app.roles],
      audience,
      displayName,
      expiresAt: Date.now() + this.lifetimeSeconds * 1000,
      generation: this.generation,
    });
    this.pruneExpired();
    return token;
  }

  private pruneExpired(): void {
    if (this.tokens.size < 1000) return;
    const now = Date.now();
    for (const [token, t] of this.tokens) if (t.expiresAt <= now || t.generation !== this.generation) this.tokens.delete(token);
  }

  private commonHeaders(req: http.IncomingMessage): Record<string, string> {
    const headers: Record<string, string> = { 'Cache-Control': 'no-store, no-cache', Pragma: 'no-cache', 'x-ms-request-id': randomUUID() };
    const clientRequestId = req.headers['client-request-id'];
    if (typeof clientRequestId === 'string') headers['client-request-id'] = clientRequestId;
    return headers;
  }

  private errorBody(req: http.IncomingMessage | undefined, e: TokenError): Record<string, unknown> {
    const traceId = randomUUID();
    const header = req?.headers['client-request-id'];
    const correlationId = typeof header === 'string' ? header : randomUUID();
    const timestamp = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    return {
      error: e.error,
      error_description: `AADSTS${e.code}: ${e.message}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_codes: [e.code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${e.code}`,
    };
  }

  private sendError(res: http.ServerResponse, req: http.IncomingMessage, e: TokenError): number {
    sendJson(res, e.status, this.errorBody(req, e), this.commonHeaders(req));
    return e.status;
  }
}

function tenantNotFound(tenant: string): string {
  return `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`;
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
