// Client-credentials tokens from Entra ID through @azure/msal-node. msal caches and refreshes;
// the authority host is a known authority so sovereign clouds and simulators need no discovery.
// msal's HTTP goes through our helper so the per-system TLS setting and timeouts apply to it too.
import { ConfidentialClientApplication, LogLevel, type INetworkModule, type NetworkRequestOptions } from '@azure/msal-node';
import { createHttpClient, HttpError, type HttpClient } from '../../net/http.js';
import type { Logger } from '../../observability/logger.js';

export interface TokenProviderOptions {
  loginUrl: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  scope: string;
  verifyTls: boolean;
  timeoutMs: number;
  log: Logger;
}

export class TokenError extends Error {
  readonly code = 'token_failed';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenError';
  }
}

function networkModule(http: HttpClient): INetworkModule {
  const call = async <T>(method: 'GET' | 'POST', url: string, options?: NetworkRequestOptions) => {
    const res = await http.request<T>({ method, url, headers: options?.headers, data: options?.body, responseType: 'json', transformResponse: [(d: string) => { try { return JSON.parse(d); } catch { return d; } }] });
    return { status: res.status, headers: res.headers, body: res.data };
  };
  return {
    sendGetRequestAsync: (url, options) => call('GET', url, options),
    sendPostRequestAsync: (url, options) => call('POST', url, options),
  };
}

export class TokenProvider {
  private readonly app: ConfidentialClientApplication;

  constructor(private readonly options: TokenProviderOptions) {
    const authority = `${options.loginUrl.replace(/\/+$/, '')}/${options.tenantId}`;
    const http = createHttpClient({ system: 'entra', timeoutMs: options.timeoutMs, verifyTls: options.verifyTls });
    this.app = new ConfidentialClientApplication({
      auth: {
        clientId: options.clientId,
        clientSecret: options.clientSecret,
        authority,
        knownAuthorities: [new URL(options.loginUrl).host],
      },
      system: {
        networkClient: networkModule(http),
        loggerOptions: {
          piiLoggingEnabled: false,
          logLevel: LogLevel.Warning,
          loggerCallback: (_level, message) => options.log.debug({ system: 'entra' }, message),
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
      // msal's message carries AADSTS codes and trace ids, never the secret.
      const first = (e.errorMessage ?? e.message ?? 'unknown error').split('\n')[0];
      throw new TokenError(`Entra ID token request failed for client ${this.options.clientId} in tenant ${this.options.tenantId}: ${e.errorCode ?? ''} ${first}`.trim(), { cause: err });
    }
  }
}
