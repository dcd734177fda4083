// Plumbing shared by the simulators: an HTTP(S) server bound to the loopback interface only,
// a bounded body reader and a JSON writer. No routing here; each simulator routes itself.

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface TlsMaterial {
  key: string;
  cert: string;
}

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;

export class LoopbackServer {
  private readonly server: http.Server;
  private boundPort = 0;

  constructor(
    handler: RequestHandler,
    private readonly opts: {
      tls?: TlsMaterial | undefined;
      port?: number | undefined;
      onError?: (err: unknown, req: http.IncomingMessage) => void;
      /** How this system answers its own bug; default a JSON 500 in Microsoft's error shape. */
      onFailure?: (res: http.ServerResponse) => void;
    },
  ) {
    const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      handler(req, res).catch((err: unknown) => {
        opts.onError?.(err, req);
        if (res.headersSent || res.destroyed) res.destroy();
        else if (opts.onFailure) opts.onFailure(res);
        else sendJson(res, 500, { error: { code: 'InternalServerError', message: '' } });
      });
    };
    this.server = opts.tls ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, listener) : http.createServer(listener);
  }

  get tls(): boolean {
    return this.opts.tls !== undefined;
  }

  /** The bound port; 0 before start(). */
  get port(): number {
    return this.boundPort;
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 0, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.boundPort = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      // Keep-alive sockets would otherwise hold close() open until clients let go.
      this.server.closeAllConnections();
    });
  }
}

export class BodyTooLargeError extends Error {}

export async function readBody(req: http.IncomingMessage, limitBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limitBytes) throw new BodyTooLargeError(`body larger than ${limitBytes} bytes`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

export function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  contentType = 'application/json; charset=utf-8',
): void {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
