import { expect } from 'chai';
import { evaluate, ODataError, parseFilter, parseQuery, queryWithSkip, runQuery, type EntitySchema } from '../../sim/defender/odata.js';

const SCHEMA: EntitySchema = {
  typeName: 'Thing',
  fields: {
    name: 'string',
    kind: { enum: ['Alpha', 'Beta', 'Gamma'] },
    when: 'datetime',
    size: 'number',
    flag: 'boolean',
  },
};

const rows = [
  { name: "O'Brien", kind: 'Alpha', when: '2024-01-01T00:00:00Z', size: 1, flag: true },
  { name: 'smith', kind: 'Beta', when: '2024-06-01T12:00:00.1234567Z', size: 5, flag: false },
  { name: 'Smith', kind: 'Gamma', when: null, size: 10, flag: false },
  { name: 'jones', kind: 'Beta', when: '2025-01-01T00:00:00Z', size: 20, flag: true },
];

const names = (filter: string): string[] => {
  const node = parseFilter(filter, SCHEMA);
  return rows.filter((r) => evaluate(node, r)).map((r) => r.name);
};

const q = (query: string, maxTop = 100) => parseQuery(new URLSearchParams(query), SCHEMA, { maxTop });

describe('sim: OData subset', () => {
  it('compares strings case-sensitively with eq/ne', () => {
    expect(names("name eq 'smith'")).to.deep.equal(['smith']);
    expect(names("name ne 'smith'")).to.deep.equal(["O'Brien", 'Smith', 'jones']);
  });

  it("unescapes doubled quotes inside literals", () => {
    expect(names("name eq 'O''Brien'")).to.deep.equal(["O'Brien"]);
  });

  it('compares unquoted datetimes, including date-only literals and 7-digit fractions in data', () => {
    expect(names('when ge 2024-06-01T00:00:00Z')).to.deep.equal(['smith', 'jones']);
    expect(names('when lt 2024-06-01Z')).to.deep.equal(["O'Brien"]);
    expect(names('when gt 2024-06-01T12:00:00.122Z')).to.deep.equal(['smith', 'jones']);
    expect(names('when gt 2024-06-01T12:00:01Z')).to.deep.equal(['jones']);
    expect(names('when le 2024-01-01T00:00:00Z')).to.deep.equal(["O'Brien"]);
  });

  it('treats null with OData semantics', () => {
    expect(names('when eq null')).to.deep.equal(['Smith']);
    expect(names('when ne null')).to.have.length(3);
    expect(names('when gt 2000-01-01T00:00:00Z')).not.to.include('Smith');
  });

  it('combines with and/AND/or, parentheses and not', () => {
    expect(names("kind eq 'Beta' and size gt 5")).to.deep.equal(['jones']);
    expect(names("kind eq 'Beta' AND size gt 5")).to.deep.equal(['jones']);
    expect(names("size lt 2 or (kind eq 'Beta' and flag eq true)")).to.deep.equal(["O'Brien", 'jones']);
    expect(names("not (kind eq 'Beta')")).to.deep.equal(["O'Brien", 'Smith']);
  });

  it('supports in (...) and startswith', () => {
    expect(names("kind in ('Alpha','Gamma')")).to.deep.equal(["O'Brien", 'Smith']);
    expect(names("startswith(name,'S')")).to.deep.equal(['Smith']);
  });

  it('resolves property, enum and keyword names case-insensitively', () => {
    expect(names("KIND EQ 'beta'")).to.deep.equal(['smith', 'jones']);
  });

  it('rejects malformed or ill-typed filters with ODataError', () => {
    const bad = [
      "name eq 'unterminated",
      "nosuch eq 'x'",
      "when ge '2024-01-01T00:00:00Z'", // quoted datetime: incompatible types
      'name eq 5',
      "kind eq 'Delta'",
      "kind gt 'Alpha'",
      "name eq 'a' and",
      "name eq 'a' 'b'",
      'name like x',
      '',
      "name eq 'a' ; drop",
    ];
    for (const f of bad) expect(() => parseFilter(f, SCHEMA), f).to.throw(ODataError);
  });

  it('parses $top/$skip/$count/$orderby and decodes + as space', () => {
    const parsed = q("$filter=name+eq+'smith'&$top=10&$skip=2&$count=true&$orderby=size desc&api-version=1");
    expect(parsed.top).to.equal(10);
    expect(parsed.skip).to.equal(2);
    expect(parsed.count).to.equal(true);
    expect(parsed.orderBy).to.deep.equal([{ field: 'size', desc: true }]);
    expect(parsed.filter).to.deep.include({ type: 'compare', field: 'name', op: 'eq' });
  });

  it('enforces the $top ceiling and rejects bad options', () => {
    expect(q('$top=100').top).to.equal(100);
    expect(() => q('$top=101')).to.throw(ODataError, /limit of '100'/);
    for (const bad of ['$top=-1', '$top=abc', '$skip=1.5', '$count=maybe', '$select=name', '$expand=x', '$top=1&$top=2', '$orderby=nosuch']) {
      expect(() => q(bad), bad).to.throw(ODataError);
    }
  });

  it('pages with nextSkip and counts matches before paging', () => {
    const all = Array.from({ length: 25 }, (_, i) => ({ name: `n${i}`, kind: 'Alpha', when: null, size: i, flag: false }));
    const first = runQuery(all, q('$top=10'), SCHEMA, 1000);
    expect(first.page.map((r) => r.size)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(first.total).to.equal(25);
    expect(first.nextSkip).to.equal(10);
    const last = runQuery(all, q('$top=10&$skip=20'), SCHEMA, 1000);
    expect(last.page).to.have.length(5);
    expect(last.nextSkip).to.equal(null);
    const serverPaged = runQuery(all, q(''), SCHEMA, 7);
    expect(serverPaged.page).to.have.length(7);
    expect(serverPaged.nextSkip).to.equal(7);
    const filtered = runQuery(all, q('$filter=size ge 20&$top=3'), SCHEMA, 1000);
    expect(filtered.total).to.equal(5);
    expect(filtered.page.map((r) => r.size)).to.deep.equal([20, 21, 22]);
  });

  it('orders with nulls first and keeps ties stable', () => {
    const sorted = runQuery(rows, q('$orderby=when asc'), SCHEMA, 100).page.map((r) => r.name);
    expect(sorted).to.deep.equal(['Smith', "O'Brien", 'smith', 'jones']);
    const byKindDesc = runQuery(rows, q('$orderby=kind desc'), SCHEMA, 100).page.map((r) => r.name);
    expect(byKindDesc).to.deep.equal(['Smith', 'smith', 'jones', "O'Brien"]);
  });

  it('builds next-page query strings that keep the filter and a literal $skip', () => {
    const params = new URLSearchParams([['$filter', "name eq 'a&b'"], ['$top', '5'], ['$skip', '0']]);
    const qs = queryWithSkip(params, 5);
    expect(qs).to.equal("$filter=name%20eq%20'a%26b'&$top=5&$skip=5");
    const round = new URLSearchParams(qs);
    expect(round.get('$filter')).to.equal("name eq 'a&b'");
    expect(queryWithSkip(new URLSearchParams('$top=5'), 10)).to.equal('$top=5&$skip=10');
  });
});
