// Client-credentials tokens from Entra ID through @azure/msal-node. msal caches and refreshes;
// the authority host is a known authority and its endpoints are given (the documented
// `/{tenant}/oauth2/v2.0/token`), so sovereign clouds and simulators need no discovery.
// msal's HTTP goes through our helper so the per-system TLS setting and timeouts apply to it too.
import { ConfidentialClientApplication, LogLevel, type INetworkModule, type NetworkRequestOptions } from '@azure/msal-node';
import type { Config } from '../config/schema.js';
import { createHttpClient, HttpError, type HttpClient } from '../net/http.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

export const DEFENDER_SCOPE = 'https://api.securitycenter.microsoft.com/.default';

export interface TokenProviderOptions {
  loginUrl: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  scope: string;
  verifyTls: boolean;
  timeoutMs: number;
  log: Logger;
  /** Token calls counted as threatbridge_sink_requests_total{sink="entra", endpoint="token"}. */
  metrics?: Metrics;
}

export class TokenError extends Error {
  readonly code = 'token_failed';
  /** Entra ID answered and refused the application (wrong or revoked secret, unknown app or tenant): a set-up problem, not an outage. */
  readonly refused: boolean;
  /**
   * `message` says what is wrong without identifiers (it reaches /readyz and the status page);
   * `detail` names the tenant, the client and Entra's answer, for the logs (errorFields).
   */
  constructor(message: string, options?: { cause?: unknown; detail?: string; refused?: boolean }) {
    super(message, options);
    this.name = 'TokenError';
    if (options?.detail) this.detail = options.detail;
    this.refused = options?.refused ?? false;
  }
  readonly detail?: string;
}

/** OAuth error codes that mean the credentials or the tenant are wrong (RFC 6749 §5.2), not that Entra ID is away. */
const REFUSED_CODES = new Set(['invalid_client', 'unauthorized_client', 'invalid_grant', 'invalid_scope', 'invalid_request', 'invalid_resource']);

function networkModule(http: HttpClient, plainHttpOrigin: string | null, metrics?: Metrics): INetworkModule {
  // msal insists on https; a plain-http login URL (a loopback simulator) is reached as configured.
  const asMsal = plainHttpOrigin ? `https://${new URL(plainHttpOrigin).host}` : null;
  const target = (url: string) => (asMsal && url.startsWith(`${asMsal}/`) ? `${plainHttpOrigin}${url.slice(asMsal.length)}` : url);
  const call = async <T>(method: 'GET' | 'POST', msalUrl: string, options?: NetworkRequestOptions) => {
    const url = target(msalUrl);
    const end = metrics?.sinkLatency.startTimer({ sink: 'entra', endpoint: 'token' });
    let res;
    try {
      res = await http.request<T>({ method, url, headers: options?.headers, data: options?.body, responseType: 'json', transformResponse: [(d: string) => { try { return JSON.parse(d); } catch { return d; } }] });
    } catch (err) {
      metrics?.sinkRequests.inc({ sink: 'entra', endpoint: 'token', status: 'error' });
      throw err;
    } finally {
      end?.();
    }
    metrics?.sinkRequests.inc({ sink: 'entra', endpoint: 'token', status: String(res.status) });
    if (res.status === 429) metrics?.sinkThrottled.inc({ sink: 'entra' });
    // msal reads the body as an object: an empty or non-JSON answer (a proxy's error page) becomes
    // an error it can report with the status and the start of the text.
    const body = typeof res.data === 'object' && res.data !== null ? res.data
      : { error: 'invalid_response', error_description: `HTTP ${res.status} from ${new URL(url).host}: ${String(res.data ?? '').slice(0, 200) || 'empty body'}` };
    return { status: res.status, headers: res.headers, body: body as T };
  };
  return {
    sendGetRequestAsync: (url, options) => call('GET', url, options),
    sendPostRequestAsync: (url, options) => call('POST', url, options),
  };
}

export class TokenProvider {
  private readonly app: ConfidentialClientApplication;

  constructor(private readonly options: TokenProviderOptions) {
    const login = new URL(options.loginUrl);
    const plainHttp = login.protocol === 'http:';
    if (plainHttp) options.log.warn({ system: 'entra', loginUrl: login.origin }, 'login_url is plain http: the client secret and tokens travel unencrypted (only for a local simulator)');
    const authority = `https://${login.host}${login.pathname.replace(/\/+$/, '')}/${options.tenantId}`;
    const http = createHttpClient({ system: 'entra', timeoutMs: options.timeoutMs, verifyTls: options.verifyTls });
    this.app = new ConfidentialClientApplication({
      auth: {
        clientId: options.clientId,
        clientSecret: options.clientSecret,
        authority,
        knownAuthorities: [login.host],
        // The documented endpoints, given rather than discovered: no instance discovery and no
        // openid-configuration round trip, so only the token endpoint has to answer.
        authorityMetadata: JSON.stringify({
          token_endpoint: `${authority}/oauth2/v2.0/token`,
          authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${authority}/oauth2/v2.0/logout`,
          issuer: `${authority}/v2.0`,
          jwks_uri: `${authority}/discovery/v2.0/keys`,
        }),
      },
      system: {
        networkClient: networkModule(http, plainHttp ? login.origin : null, options.metrics),
        loggerOptions: {
          piiLoggingEnabled: false,
          logLevel: LogLevel.Warning,
          loggerCallback: (level, message) => msalLine(options.log, level, message),
        },
      },
    });
  }

  /** A bearer token; `forceRefresh` after a 401 bypasses msal's cache once. */
  async getToken(forceRefresh = false): Promise<string> {
    try {
      const result = await this.app.acquireTokenByClientCredential({ scopes: [this.options.scope], skipCache: forceRefresh });
      if (!result?.accessToken) throw new TokenError('Entra ID returned no access token');
      return result.accessToken;
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if (err instanceof HttpError) throw new TokenError(`cannot reach Entra ID: ${err.message}`, { cause: err });
      const e = err as { errorCode?: string; errorMessage?: string; message?: string };
      // The message reaches /readyz and the status page: what is wrong, without the tenant, the
      // client or Entra's text (trace and correlation ids). Logs get those from the cause and fields.
      // msal's message carries AADSTS codes and trace ids, never the secret.
      const first = (e.errorMessage ?? e.message ?? 'unknown error').split('\n')[0];
      throw new TokenError(tokenProblem(e.errorCode, e.errorMessage ?? e.message ?? ''), {
        cause: err, detail: `client ${this.options.clientId} in tenant ${this.options.tenantId}: ${e.errorCode ?? ''} ${first}`.trim(),
        refused: REFUSED_CODES.has(e.errorCode ?? '') || /AADSTS\d+/.test(first ?? ''),
      });
    }
  }
}

/** What a failed token request means, in words without identifiers (OAuth error codes are a closed set). */
export function tokenProblem(errorCode: string | undefined, text: string): string {
  const aadsts = /AADSTS(\d+)/.exec(text)?.[1];
  const http = /\bHTTP (\d{3})\b/.exec(text)?.[1];
  const code = /^[a-z_]{1,40}$/.test(errorCode ?? '') ? errorCode! : 'unknown_error';
  const hint = aadsts === '90002' || aadsts === '90023' ? 'the tenant id is not known to Entra ID'
    : aadsts === '700016' ? 'the client id is not known in this tenant'
      : aadsts === '7000215' || aadsts === '7000222' || code === 'invalid_client' ? 'the client secret is wrong or expired'
        : code === 'unauthorized_client' ? 'the application may not use client credentials here'
          : code === 'invalid_scope' || aadsts === '500011' ? 'the API (scope) is not available to the application'
            : code === 'invalid_response' && http ? `HTTP ${http} instead of a token answer (a proxy or an outage?)`
              : 'see the log for details';
  return `Entra ID token request refused (${code}${aadsts ? `, AADSTS${aadsts}` : ''}): ${hint}`;
}

/**
 * msal's own log lines ("[date] : [correlation] : @azure/msal-node@v : Warning - text") as
 * structured lines: its warnings are expected in the client-credentials flow ("No client info in
 * response": there is no user) and its errors come back to us as a TokenError we log ourselves, so
 * they go to debug and trace rather than repeating at warn.
 */
export function msalLine(log: Logger, level: LogLevel, message: string): void {
  const m = /^\[([^\]]*)\]\s*:\s*(?:\[([^\]]*)\]\s*:\s*)?(\S+)\s*:\s*(\w+)\s*-\s*([\s\S]*)$/.exec(message);
  const text = (m ? m[5]! : message).trim();
  const fields = { system: 'entra', msalLevel: LogLevel[level] ?? String(level), ...(m?.[2] ? { correlationId: m[2] } : {}) };
  if (level === LogLevel.Error) log.debug(fields, `msal: ${text}`);
  else log.trace(fields, `msal: ${text}`);
}

/** An Entra application in one tenant. */
export interface EntraApp {
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

/** The Entra credentials the Sentinel sink uses: its own where set, else the shared Defender app's. */
export function sentinelCredentials(config: Config): EntraApp & { loginUrl: string } {
  const s = config.sentinel;
  const d = config.microsoft_defender_intel;
  return {
    tenantId: (s.tenant_id ?? d.tenant_id)!,
    clientId: (s.client_id ?? d.client_id)!,
    clientSecret: (s.client_secret ?? d.client_secret)!,
    loginUrl: s.login_url ?? d.login_url,
  };
}

/**
 * Tokens for a Microsoft API from configuration: Defender's (the configured app, or `app` for
 * another tenant of the alerts flow) or Sentinel's (its own credentials where set, else Defender's).
 */
export function microsoftTokens(config: Config, api: 'defender' | 'sentinel', log: Logger, app?: Partial<EntraApp>, metrics?: Metrics): TokenProvider {
  const counted = metrics ? { metrics } : {};
  if (api === 'sentinel') {
    const s = config.sentinel;
    // A workspace target's own application, key by key over Sentinel's (else Defender's) credentials.
    const shared = sentinelCredentials(config);
    const own = { tenantId: app?.tenantId ?? shared.tenantId, clientId: app?.clientId ?? shared.clientId, clientSecret: app?.clientSecret ?? shared.clientSecret };
    return new TokenProvider({ ...shared, ...own, scope: s.scope, verifyTls: s.verify_cert, timeoutMs: s.request_timeout * 1000, log, ...counted });
  }
  const d = config.microsoft_defender_intel;
  return new TokenProvider({
    loginUrl: d.login_url, tenantId: app?.tenantId ?? d.tenant_id!, clientId: app?.clientId ?? d.client_id!, clientSecret: app?.clientSecret ?? d.client_secret!,
    scope: d.scope ?? DEFENDER_SCOPE, verifyTls: d.ssl_verify, timeoutMs: d.request_timeout * 1000, log, ...counted,
  });
}
