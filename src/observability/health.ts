// One small HTTP port: /healthz (process alive), /readyz (sources connected, store writable),
// /metrics (Prometheus text, when exposed), /status (a read-only HTML page for people).
// It binds 127.0.0.1 unless told otherwise. Bound beyond loopback, /status wants the status token
// (Authorization: Bearer, or once as ?token= which sets a cookie and redirects, so that the token
// does not stay in the address bar or the history); without a token it answers loopback peers only.
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.js';
import { publicText } from './public-text.js';
import { renderStatus, type StatusModel } from './status-page.js';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<string | null>;
}

export interface StatusOptions {
  model: () => Promise<StatusModel>;
  /** Required beyond loopback; undefined: loopback peers only. */
  token?: string | undefined;
  /** Default refresh of the page, seconds. */
  refreshSeconds?: number;
}

const COOKIE = 'tb_status';

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.replace(/^::ffff:/, '');
  return a === '::1' || a === 'localhost' || /^127\./.test(a);
}

/** The cookie holds a digest of the token, never the token. */
const digest = (token: string) => createHash('sha256').update(`threatbridge-status\u0000${token}`).digest('hex');

function same(a: string, b: string): boolean {
  const x = Buffer.from(digest(a));
  const y = Buffer.from(digest(b));
  return timingSafeEqual(x, y);
}

function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export class HealthServer {
  private server: http.Server | null = null;
  private host = '127.0.0.1';

  constructor(
    private readonly metrics: Metrics,
    private readonly checks: ReadinessCheck[],
    private readonly exposeMetrics: boolean,
    private readonly beforeScrape: () => Promise<void> = async () => {},
    private readonly status: StatusOptions | null = null,
  ) {}

  async start(port: number, host: string): Promise<number> {
    this.host = host;
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://health.invalid');
    const path = url.pathname;
    try {
      if (path === '/healthz') return send(res, 200, { status: 'ok' });
      if (path === '/readyz') {
        const problems: Record<string, string> = {};
        for (const c of this.checks) {
          const p = await c.check().catch((e: Error) => e.message);
          // What is wrong, without identifiers (tenant, client, Entra's trace ids): the port may be open to a network.
          if (p) problems[c.name] = publicText(p);
        }
        const ready = Object.keys(problems).length === 0;
        return send(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', problems });
      }
      if (path === '/metrics' && this.exposeMetrics) {
        await this.beforeScrape();
        res.writeHead(200, { 'Content-Type': this.metrics.registry.contentType });
        res.end(await this.metrics.registry.metrics());
        return;
      }
      if (path === '/status' && this.status) return await this.statusPage(req, res, url);
      send(res, 404, { error: 'not found' });
    } catch (err) {
      send(res, 500, { error: publicText((err as Error).message) });
    }
  }

  private async statusPage(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return page(res, 405, 'Read-only: GET only.', { Allow: 'GET, HEAD' });
    const token = this.status!.token;
    const refresh = Math.min(300, Math.max(2, Number.parseInt(url.searchParams.get('refresh') ?? '', 10) || (this.status!.refreshSeconds ?? 10)));
    const given = url.searchParams.get('token');
    if (given !== null) {
      // Swap the token in the address for a cookie, then show the page without it.
      if (!token || !same(given, token)) return page(res, 401, 'Wrong status token.');
      const keep = url.searchParams.has('refresh') ? `?refresh=${refresh}` : '';
      res.writeHead(303, {
        Location: `/status${keep}`,
        'Set-Cookie': `${COOKIE}=${digest(token)}; HttpOnly; SameSite=Strict; Path=/status`,
        'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer',
      });
      res.end();
      return;
    }
    if (!this.allowed(req, token)) {
      return page(res, 401, token
        ? 'This page needs the status token: send "Authorization: Bearer <token>", or open /status?token=<token> once.'
        : 'The health port is bound beyond loopback and no status token is set (connector.status_token, env CONNECTOR_STATUS_TOKEN): the page answers only on this host.',
      token ? { 'WWW-Authenticate': 'Bearer realm="threatbridge-status"' } : {});
    }
    await this.beforeScrape();
    const html = renderStatus(await this.status!.model(), refresh);
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer',
      'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY',
      // No script, no style from elsewhere, no form: a plain document.
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    });
    res.end(req.method === 'HEAD' ? undefined : html);
  }

  /** Loopback binding: anyone who can connect is on this host. Beyond it: the token, or a loopback peer when no token is set. */
  private allowed(req: http.IncomingMessage, token: string | undefined): boolean {
    if (isLoopback(this.host)) return true;
    if (!token) return isLoopback(req.socket.remoteAddress);
    const auth = req.headers.authorization ?? '';
    const bearer = /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
    if (bearer && same(bearer, token)) return true;
    const cookie = cookieValue(req.headers.cookie, COOKIE);
    return cookie !== null && cookie.length === 64 && timingSafeEqual(Buffer.from(cookie), Buffer.from(digest(token)));
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server.closeAllConnections?.();
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

function page(res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(`${text}\n`);
}
