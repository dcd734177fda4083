// One small HTTP port: /healthz (process alive), /readyz (sources connected, store writable),
// /metrics (Prometheus text, when exposed).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.js';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<string | null>;
}

export class HealthServer {
  private server: http.Server | null = null;

  constructor(
    private readonly metrics: Metrics,
    private readonly checks: ReadinessCheck[],
    private readonly exposeMetrics: boolean,
    private readonly beforeScrape: () => Promise<void> = async () => {},
  ) {}

  async start(port: number, host: string): Promise<number> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (path === '/healthz') return send(res, 200, { status: 'ok' });
      if (path === '/readyz') {
        const problems: Record<string, string> = {};
        for (const c of this.checks) {
          const p = await c.check().catch((e: Error) => e.message);
          if (p) problems[c.name] = p;
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
      send(res, 404, { error: 'not found' });
    } catch (err) {
      send(res, 500, { error: (err as Error).message });
    }
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
