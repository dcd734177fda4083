// Contract tests of the MISP REST client against MISP's documented request and answer shapes (nock).
import { expect } from 'chai';
import nock from 'nock';
import { createLogger } from '../../src/observability/logger.js';
import { MispAuthError, MispRest } from '../../src/sources/misp/rest.js';

const BASE = 'https://misp.test';
const KEY = 'k'.repeat(40);
const row = (i: number) => ({ id: String(i), uuid: `u-${i}`, event_id: '1', type: 'ip-dst', value: `198.51.100.${i}`, to_ids: true, timestamp: '1700000000' });
const client = (maxAttempts?: number) => new MispRest({ url: BASE, key: KEY, verifyTls: true, timeoutMs: 5000, log: createLogger('silent'), ...(maxAttempts ? { maxAttempts } : {}) });

describe('MISP REST client (restSearch contract)', () => {
  before(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());
  after(() => nock.enableNetConnect());

  it('POSTs JSON with the raw key (no Bearer), returnFormat json, limit and page', async () => {
    const bodies: Record<string, unknown>[] = [];
    const scope = nock(BASE)
      .matchHeader('authorization', KEY)
      .matchHeader('accept', /application\/json/)
      .matchHeader('content-type', /application\/json/)
      .post('/attributes/restSearch', (b) => { bodies.push(b as Record<string, unknown>); return true; })
      .times(2)
      .reply(200, (_uri, b) => ((b as { page: number }).page === 1 ? { response: { Attribute: [row(1)] } } : { response: { Attribute: [] } }));
    const pages: unknown[][] = [];
    for await (const p of client().pages({ to_ids: 1, published: 1, order: 'Attribute.timestamp asc' }, 10)) pages.push(p);
    expect(scope.isDone()).to.equal(true);
    expect(bodies).to.deep.equal([1, 2].map((page) => ({ returnFormat: 'json', to_ids: 1, published: 1, order: 'Attribute.timestamp asc', limit: 10, page })));
    expect(pages).to.deep.equal([[row(1)]]);
  });

  it('pages past a short page until an empty one, counting pages from 1 (MISP gives no total)', async () => {
    const seen: number[] = [];
    nock(BASE).post('/attributes/restSearch').times(4).reply((_uri, b) => {
      const page = (b as { page: number }).page;
      seen.push(page);
      // A short page 2: filters such as warninglists may apply after the limit.
      const rows = page === 1 ? [row(1), row(2)] : page === 2 ? [row(3)] : page === 3 ? [row(4), row(5)] : [];
      return [200, { response: { Attribute: rows } }];
    });
    const pages: unknown[][] = [];
    for await (const p of client().pages({}, 2)) pages.push(p);
    expect(seen).to.deep.equal([1, 2, 3, 4]);
    expect(pages.flat()).to.have.length(5);
    expect(nock.pendingMocks()).to.deep.equal([]);
  });

  it('stops after an empty page when the last full page was exactly the page size', async () => {
    nock(BASE).post('/attributes/restSearch').reply(200, { response: { Attribute: [row(1), row(2)] } });
    nock(BASE).post('/attributes/restSearch').reply(200, { response: [] });
    const pages: unknown[][] = [];
    for await (const p of client().pages({}, 2)) pages.push(p);
    expect(pages).to.deep.equal([[row(1), row(2)]]);
    expect(nock.pendingMocks()).to.deep.equal([]);
  });

  it('reads {"response": []} and {"response": {"Attribute": []}} as empty', async () => {
    nock(BASE).post('/attributes/restSearch').reply(200, { response: [] });
    nock(BASE).post('/attributes/restSearch').reply(200, { response: { Attribute: [] } });
    nock(BASE).post('/attributes/restSearch').reply(200, { response: {} });
    expect(await client().searchAttributes({})).to.deep.equal([]);
    expect(await client().searchAttributes({})).to.deep.equal([]);
    expect(await client().searchAttributes({})).to.deep.equal([]);
  });

  it('403 is a MispAuthError naming misp.key, not retried', async () => {
    const scope = nock(BASE).post('/attributes/restSearch').reply(403, {
      name: 'Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.',
      message: 'Authentication failed.', url: '/attributes/restSearch',
    });
    let err: unknown;
    try { await client().searchAttributes({}); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(MispAuthError);
    expect((err as Error).message).to.contain('misp.key').and.to.contain('403');
    expect((err as Error).message).to.not.contain(KEY);
    expect(scope.isDone()).to.equal(true);
  });

  it('429 waits for X-Rate-Limit-Reset, then succeeds', async () => {
    nock(BASE).post('/attributes/restSearch').reply(429, { message: 'Rate limit exceeded.' },
      { 'X-Rate-Limit-Limit': '10', 'X-Rate-Limit-Remaining': '0', 'X-Rate-Limit-Reset': '1' });
    nock(BASE).post('/attributes/restSearch').reply(200, { response: { Attribute: [row(1)] } });
    const started = Date.now();
    expect(await client().searchAttributes({})).to.deep.equal([row(1)]);
    // a lower bound only: it must not have retried before the window reopened
    expect(Date.now() - started).to.be.at.least(900);
    expect(nock.pendingMocks()).to.deep.equal([]);
  });

  it('5xx is retried until MISP answers', async () => {
    nock(BASE).post('/attributes/restSearch').reply(500, { name: 'An Internal Error Has Occurred.', message: 'An Internal Error Has Occurred.' });
    nock(BASE).post('/attributes/restSearch').reply(503, 'Service Unavailable');
    nock(BASE).post('/attributes/restSearch').reply(200, { response: { Attribute: [row(2)] } });
    expect(await client().searchAttributes({})).to.deep.equal([row(2)]);
    expect(nock.pendingMocks()).to.deep.equal([]);
  });

  it('gives up after maxAttempts of 5xx with a message for the next run', async () => {
    nock(BASE).post('/attributes/restSearch').times(2).reply(502, 'Bad Gateway');
    let err: unknown;
    try { await client(2).searchAttributes({}); } catch (e) { err = e; }
    expect((err as Error).message).to.match(/HTTP 502.*giving up.*2 attempts/);
  });
});
