// The call envelope every client uses, against a real HTTP server on loopback: token renewal on
// 401 (once), Retry-After read once and the pacer paused on 429, failed reads waited out only when
// asked, every call counted and recorded, a call without an answer thrown.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiCaller, bearerToken, fixedHeaders, type CallRecord } from '../../src/net/call.js';
import { HttpError } from '../../src/net/http.js';
import { Pacer } from '../../src/net/pacer.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';

const log = createLogger('silent');

describe('call envelope', () => {
  let server: http.Server;
  let url: string;
  /** What the server answers next, one entry per request; 200 {"ok":true} when empty. */
  let script: { status: number; headers?: Record<string, string> }[];
  let seen: { authorization: string | undefined; key: string | undefined }[];

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({ authorization: req.headers.authorization, key: req.headers['x-api-key'] as string | undefined });
      const next = script.shift() ?? { status: 200 };
      res.writeHead(next.status, { 'Content-Type': 'application/json', ...next.headers });
      res.end(JSON.stringify(next.status === 200 ? { ok: true } : { error: { code: String(next.status) } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => { script = []; seen = []; });

  const tokens = () => {
    const asked: boolean[] = [];
    return { asked, getToken: async (force = false) => { asked.push(force); return force ? 'fresh' : 'cached'; } };
  };
  const caller = (o: Partial<ConstructorParameters<typeof ApiCaller>[0]> = {}) =>
    new ApiCaller({ system: 'test', baseURL: url, timeoutMs: 2000, verifyTls: true, log, ...o });

  it('renews the token once on 401, and only once', async () => {
    const t = tokens();
    script = [{ status: 401 }];
    expect((await caller({ credentials: bearerToken(t) }).call('x', { url: '/a' })).status).to.equal(200);
    expect(seen.map((s) => s.authorization)).to.deep.equal(['Bearer cached', 'Bearer fresh']);
    script = [{ status: 401 }, { status: 401 }, { status: 401 }];
    seen = [];
    expect((await caller({ credentials: bearerToken(t) }).call('x', { url: '/a' })).status).to.equal(401);
    expect(seen).to.have.length(2);
    expect(t.asked).to.deep.equal([false, true, false, true]);
  });

  it('never retries a fixed key, which a 401 will not fix', async () => {
    script = [{ status: 401 }];
    expect((await caller({ credentials: fixedHeaders({ 'X-Api-Key': 'k' }) }).call('x', { url: '/a' })).status).to.equal(401);
    expect(seen).to.deep.equal([{ authorization: undefined, key: 'k' }]);
  });

  it('reads Retry-After once, pauses the pacer for it and counts the throttle, without retrying a sink call', async () => {
    const metrics = new Metrics();
    const pacer = new Pacer({ x: { perMinute: 1000 } });
    script = [{ status: 429, headers: { 'Retry-After': '7' } }];
    const res = await caller({ pacer, metrics: { metrics, label: 'sinkx' } }).call('x', { url: '/a' });
    expect(res.status).to.equal(429);
    expect(res.retryAfterMs).to.equal(7000);
    expect(pacer.pausedMs).to.be.within(6000, 7000);
    expect(seen).to.have.length(1);
    const out = await metrics.registry.metrics();
    expect(out).to.match(/threatbridge_sink_throttled_total\{sink="sinkx"\} 1/);
    expect(out).to.match(/threatbridge_sink_requests_total\{sink="sinkx",endpoint="x",status="429"\} 1/);
  });

  it('a reader that asks waits out 429 and 5xx up to its limit, as told', async () => {
    script = [{ status: 429, headers: { 'Retry-After': '0.2' } }, { status: 503 }];
    const started = Date.now();
    const c = caller({ waitOut: 2, retryAfter: () => 50 });
    expect((await c.call('x', { url: '/a' })).status).to.equal(200);
    expect(Date.now() - started).to.be.at.least(230);
    expect(c.calls).to.deep.equal({ x: 3 });
    script = [{ status: 502 }, { status: 502 }, { status: 502 }];
    expect((await caller({ waitOut: 1, retryAfter: () => 10 }).call('x', { url: '/a' })).status).to.equal(502);
    expect(script).to.have.length(1);
  });

  it('throws a call without an answer, after recording it', async () => {
    const records: CallRecord[] = [];
    const dead = caller({ baseURL: 'http://127.0.0.1:1', record: async (c) => { records.push(c); } });
    const err = await dead.call('x', { url: '/a', method: 'POST', data: { n: 1 } }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(HttpError);
    expect(records.map((r) => [r.endpoint, r.status, r.request.data])).to.deep.equal([['x', 0, { n: 1 }]]);
    expect(records[0]!.error).to.be.a('string');
  });
});
