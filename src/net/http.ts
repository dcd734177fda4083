// The one HTTP helper every client uses: per-system TLS setting, timeout, typed errors that carry
// no headers or bodies with secrets, and HTTP statuses returned (not thrown) so that callers
// decide with the pure retry policy.
import axios, { type AxiosInstance, type AxiosRequestConfig } from 'axios';
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../observability/logger.js';

export interface HttpResponse<T = unknown> {
  status: number;
  headers: Record<string, string>;
  data: T;
}

/** A call that produced no HTTP answer (network, DNS, TLS, timeout) or an answer we could not use. */
export class HttpError extends Error {
  constructor(
    readonly code: 'network' | 'timeout' | 'tls' | 'http',
    readonly system: string,
    readonly method: string,
    readonly url: string,
    message: string,
    readonly status = 0,
    options?: { cause?: unknown },
  ) {
    super(`${system} ${method} ${url}: ${message}`, options);
    this.name = 'HttpError';
  }
}

export interface HttpClientOptions {
  system: string;
  baseURL?: string;
  timeoutMs: number;
  verifyTls: boolean;
  userAgent?: string;
  log?: Logger;
}

export interface HttpClient {
  readonly system: string;
  request<T = unknown>(config: AxiosRequestConfig & { url: string }): Promise<HttpResponse<T>>;
}

/** Path and query without credentials, for logs and errors. */
export function safeUrl(url: string, baseURL?: string): string {
  try {
    const u = new URL(url, baseURL);
    for (const k of [...u.searchParams.keys()]) if (/key|token|secret|password|sig/i.test(k)) u.searchParams.set(k, 'REDACTED');
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url.split('?')[0] ?? url;
  }
}

const TLS_CODES = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']);

export function createHttpClient(options: HttpClientOptions): HttpClient {
  const instance: AxiosInstance = axios.create({
    baseURL: options.baseURL,
    timeout: options.timeoutMs,
    validateStatus: () => true,
    maxRedirects: 0,
    httpAgent: new http.Agent({ keepAlive: true }),
    httpsAgent: new https.Agent({ keepAlive: true, rejectUnauthorized: options.verifyTls }),
    headers: options.userAgent ? { 'User-Agent': options.userAgent } : {},
    // Keep big bodies out of memory surprises but allow 10,000-row listings.
    maxContentLength: 256 * 1024 * 1024,
    proxy: false,
  });
  return {
    system: options.system,
    async request<T>(config: AxiosRequestConfig & { url: string }): Promise<HttpResponse<T>> {
      const method = (config.method ?? 'GET').toUpperCase();
      const where = safeUrl(config.url, options.baseURL);
      try {
        const res = await instance.request<T>(config);
        options.log?.debug({ system: options.system, method, url: where, status: res.status }, 'http call');
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers ?? {})) if (v !== undefined && v !== null) headers[k.toLowerCase()] = String(v);
        return { status: res.status, headers, data: res.data };
      } catch (err) {
        const e = err as { code?: string; message?: string };
        const code = e.code === 'ECONNABORTED' || e.code === 'ETIMEDOUT' ? 'timeout' : TLS_CODES.has(e.code ?? '') ? 'tls' : 'network';
        const hint = code === 'tls' ? ' (TLS verification failed: trust the CA with NODE_EXTRA_CA_CERTS, or set this system\'s ssl_verify=false)' : '';
        throw new HttpError(code, options.system, method, where, `${e.code ?? ''} ${e.message ?? 'request failed'}${hint}`.trim(), 0);
      }
    },
  };
}
