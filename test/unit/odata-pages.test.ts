import { expect } from 'chai';
import { ODataLinkError, odataPages } from '../../src/net/odata-pages.js';

/** A server holding `n` rows, paging by $top/$skip, with or without nextLink. */
function server(n: number, withLinks: boolean) {
  const asked: string[] = [];
  const fetchPage = async (url: string) => {
    asked.push(url);
    const u = new URL(url, 'http://x');
    const top = Number(u.searchParams.get('$top'));
    const skip = Number(u.searchParams.get('$skip') ?? 0);
    const rows = Array.from({ length: Math.max(0, Math.min(top, n - skip)) }, (_, i) => skip + i);
    const more = skip + rows.length < n;
    return { rows, nextLink: withLinks && more ? `/api/x?$top=${top}&$skip=${skip + rows.length}` : null };
  };
  return { asked, fetchPage };
}

const collect = async (pages: AsyncGenerator<number[]>) => { const out: number[] = []; for await (const p of pages) out.push(...p); return out; };

describe('OData paging', () => {
  it('follows nextLink', async () => {
    const s = server(25, true);
    expect(await collect(odataPages('/api/x?$top=10', 10, s.fetchPage, { apiBase: 'http://x' }))).to.have.length(25);
    expect(s.asked).to.deep.equal(['/api/x?$top=10', '/api/x?$top=10&$skip=10', '/api/x?$top=10&$skip=20']);
  });

  it('asks for $skip when a full page comes back without a nextLink, until a short page', async () => {
    const s = server(25, false);
    const rows = await collect(odataPages('/api/x?$top=10', 10, s.fetchPage, { apiBase: 'http://x' }));
    expect(rows).to.deep.equal(Array.from({ length: 25 }, (_, i) => i));
    expect(s.asked).to.have.length(3);
  });

  it('stops after one call when the first page is short', async () => {
    const s = server(3, false);
    expect(await collect(odataPages('/api/x?$top=10', 10, s.fetchPage, { apiBase: 'http://x' }))).to.have.length(3);
    expect(s.asked).to.have.length(1);
  });

  it('follows a nextLink only on the configured API host: another host, a scheme-relative link or a non-string stops the read', async () => {
    const apiBase = 'https://api.securitycenter.microsoft.com';
    const pagesWith = (nextLink: unknown) => {
      const asked: string[] = [];
      return { asked, fetchPage: async (url: string) => { asked.push(url); return { rows: [asked.length], nextLink: asked.length === 1 ? nextLink : null }; } };
    };
    const same = pagesWith(`${apiBase}/api/x?$skiptoken=2`);
    expect(await collect(odataPages('/api/x', 1, same.fetchPage, { apiBase }))).to.deep.equal([1, 2]);
    expect(same.asked).to.deep.equal(['/api/x', `${apiBase}/api/x?$skiptoken=2`]);
    for (const link of ['https://collector.example/steal?$skiptoken=2', '//collector.example/steal', 'http://api.securitycenter.microsoft.com/api/x', { href: '/api/x' }, 42]) {
      const s = pagesWith(link);
      let error: unknown = null;
      try {
        await collect(odataPages('/api/x', 1, s.fetchPage, { apiBase }));
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(link)).to.be.instanceOf(ODataLinkError);
      expect(s.asked, JSON.stringify(link)).to.deep.equal(['/api/x']);
    }
  });
});
