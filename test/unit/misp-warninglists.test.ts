// MISP warninglist checks: the /warninglists/checkValue contract (as PyMISP's values_in_warninglist
// sends it: a JSON list of values; MISP answers hits only, keyed by value), hostile answers, and
// the answer cache that refreshes after misp.warninglist_refresh.
import { expect } from 'chai';
import nock from 'nock';
import { createLogger } from '../../src/observability/logger.js';
import { MispRest } from '../../src/sources/misp/rest.js';
import { WarninglistCheck } from '../../src/sources/misp/warninglists.js';

const BASE = 'https://misp.test';
const KEY = 'k'.repeat(40);
const client = () => new MispRest({ url: BASE, key: KEY, verifyTls: true, timeoutMs: 5000, log: createLogger('silent'), maxAttempts: 1 });

describe('MISP warninglists (checkValue contract and cache)', () => {
  before(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());
  after(() => nock.enableNetConnect());

  it('POSTs the values as a JSON list with the raw key and reads hits keyed by value', async () => {
    let body: unknown;
    nock(BASE).matchHeader('authorization', KEY).post('/warninglists/checkValue', (b) => { body = b; return true; })
      .reply(200, { '8.8.4.4': [{ id: '12', name: 'List of known IPv4 public DNS resolvers', matched: '8.8.4.4' }] });
    const hits = await client().checkWarninglists(['8.8.4.4', '198.51.100.1']);
    expect(body).to.deep.equal(['8.8.4.4', '198.51.100.1']);
    expect([...hits]).to.deep.equal([['8.8.4.4', 'List of known IPv4 public DNS resolvers']]);
  });

  it('reads no hits from [] (MISP\'s empty answer) and from hostile answers, without throwing', async () => {
    const answers: unknown[] = [
      [], 'text', null, 42, { '198.51.100.1': [] }, { '198.51.100.1': 'yes' }, { '198.51.100.1': {} },
      JSON.parse('{"__proto__": [{"name": "x"}], "constructor": [{"name": "y"}]}'), { other: [{ name: 'z' }] },
    ];
    for (const answer of answers) {
      nock(BASE).post('/warninglists/checkValue').reply(200, answer as nock.Body);
      const hits = await client().checkWarninglists(['198.51.100.1']);
      expect(hits.size, JSON.stringify(answer)).to.equal(0);
    }
    // A hit whose entries are junk still counts as a hit (the value is on a list), with a generic name.
    nock(BASE).post('/warninglists/checkValue').reply(200, '{"__proto__": [1], "a.example": [{"name": {"no": 1}}]}', { 'Content-Type': 'application/json' });
    const hits = await client().checkWarninglists(['__proto__', 'a.example']);
    expect([...hits]).to.deep.equal([['__proto__', 'a MISP warninglist'], ['a.example', 'a MISP warninglist']]);
  });

  it('throws when MISP cannot answer (the caller holds its items), and asks again for values it could not check', async () => {
    nock(BASE).post('/warninglists/checkValue').reply(500, { name: 'An Internal Error Has Occurred.' });
    const check = new WarninglistCheck(client(), 60_000);
    let failed = false;
    await check.hits(['8.8.4.4']).catch(() => { failed = true; });
    expect(failed).to.equal(true);
    nock(BASE).post('/warninglists/checkValue').reply(200, { '8.8.4.4': [{ name: 'dns' }] });
    expect([...(await check.hits(['8.8.4.4']))]).to.deep.equal([['8.8.4.4', 'dns']]);
  });

  it('reuses answers until they are older than the refresh, asks only for unknown values, in chunks of 1,000', async () => {
    let now = 1_000_000;
    const asked: string[][] = [];
    const rest = { checkWarninglists: async (values: string[]) => { asked.push(values); return new Map(values.filter((v) => v.startsWith('hit')).map((v) => [v, 'list'])); } };
    const check = new WarninglistCheck(rest, 60_000, 200_000, () => now);
    expect([...(await check.hits(['hit-1', 'ok-1', 'ok-1']))].map(([v]) => v)).to.deep.equal(['hit-1']);
    expect(asked).to.deep.equal([['hit-1', 'ok-1']]);
    expect([...(await check.hits(['hit-1', 'ok-1', 'ok-2']))].map(([v]) => v)).to.deep.equal(['hit-1']);
    expect(asked[1]).to.deep.equal(['ok-2']);
    now += 60_001; // past the refresh: asked again
    await check.hits(['hit-1']);
    expect(asked[2]).to.deep.equal(['hit-1']);
    const many = Array.from({ length: 2500 }, (_, i) => `v-${i}`);
    await check.hits(many);
    expect(asked.slice(3).map((a) => a.length)).to.deep.equal([1000, 1000, 500]);
  });
});
