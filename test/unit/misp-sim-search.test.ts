// The MISP simulator's /attributes/restSearch: the end-to-end tests rely on it matching MISP.
import { expect } from 'chai';
import { MispData } from '../../sim/misp/data.js';
import { searchAttributes } from '../../sim/misp/rest-search.js';

const NOW = 1_800_000_000;

function fixture() {
  const data = new MispData();
  let clock = NOW - 10 * 86400;
  data.clock = () => clock;
  const e1 = data.createEvent({ info: 'published one', tags: ['tlp:green'] });
  const a1 = data.addAttribute(e1.id, { type: 'ip-dst', value: '198.51.100.1' }); // NOW-10d
  clock = NOW - 3 * 86400;
  const a2 = data.addAttribute(e1.id, { type: 'domain', value: 'evil.example', tags: ['apt:x'] }); // NOW-3d
  clock = NOW - 3600;
  const a3 = data.addAttribute(e1.id, { type: 'ip-dst', value: '8.8.8.8', to_ids: false }); // NOW-1h
  data.publish(e1.id);
  const e2 = data.createEvent({ info: 'draft', tags: ['tlp:red'] });
  const a4 = data.addAttribute(e2.id, { type: 'url', value: 'http://x.example/a' });
  const a5 = data.addAttribute(e2.id, { type: 'md5', value: 'a'.repeat(32) });
  data.softDeleteAttribute(a5.uuid);
  data.warninglist.add('8.8.8.8');
  return { data, e1, e2, a1, a2, a3, a4, a5 };
}
const ids = (rows: Record<string, unknown>[]) => rows.map((r) => r['uuid']);

describe('MISP simulator restSearch', () => {
  it('deleted: omitted → live only, 1 → only soft-deleted, [0,1] → both', () => {
    const f = fixture();
    expect(ids(searchAttributes(f.data, {}, NOW))).to.deep.equal([f.a1.uuid, f.a2.uuid, f.a3.uuid, f.a4.uuid]);
    expect(ids(searchAttributes(f.data, { deleted: 1 }, NOW))).to.deep.equal([f.a5.uuid]);
    expect(ids(searchAttributes(f.data, { deleted: true }, NOW))).to.deep.equal([f.a5.uuid]);
    expect(ids(searchAttributes(f.data, { deleted: [0, 1] }, NOW))).to.have.length(5);
  });

  it('to_ids and published filter, [0,1] meaning both', () => {
    const f = fixture();
    expect(ids(searchAttributes(f.data, { to_ids: 1 }, NOW))).to.not.include(f.a3.uuid);
    expect(ids(searchAttributes(f.data, { to_ids: 0 }, NOW))).to.deep.equal([f.a3.uuid]);
    expect(ids(searchAttributes(f.data, { to_ids: [0, 1] }, NOW))).to.have.length(4);
    expect(ids(searchAttributes(f.data, { published: 1 }, NOW))).to.deep.equal([f.a1.uuid, f.a2.uuid, f.a3.uuid]);
    expect(ids(searchAttributes(f.data, { published: 0 }, NOW))).to.deep.equal([f.a4.uuid]);
    expect(ids(searchAttributes(f.data, { published: [true, false] }, NOW))).to.have.length(4);
  });

  it('timestamp: relative windows, absolute epoch strings, and nothing for an invalid value', () => {
    const f = fixture();
    expect(ids(searchAttributes(f.data, { timestamp: '5d' }, NOW))).to.deep.equal([f.a2.uuid, f.a3.uuid, f.a4.uuid]);
    expect(ids(searchAttributes(f.data, { timestamp: '2h' }, NOW))).to.deep.equal([f.a3.uuid, f.a4.uuid]);
    expect(ids(searchAttributes(f.data, { timestamp: String(NOW - 3 * 86400) }, NOW))).to.deep.equal([f.a2.uuid, f.a3.uuid, f.a4.uuid]);
    expect(ids(searchAttributes(f.data, { timestamp: NOW - 3 * 86400 + 1 }, NOW))).to.deep.equal([f.a3.uuid, f.a4.uuid]);
    expect(searchAttributes(f.data, { timestamp: 'not a time' }, NOW)).to.deep.equal([]);
  });

  it('tags: OR list, NOT with !, the {OR, NOT} form, case-insensitive, on event or attribute tags', () => {
    const f = fixture();
    expect(ids(searchAttributes(f.data, { tags: ['APT:X'] }, NOW))).to.deep.equal([f.a2.uuid]);
    expect(ids(searchAttributes(f.data, { tags: 'tlp:green' }, NOW))).to.deep.equal([f.a1.uuid, f.a2.uuid, f.a3.uuid]);
    expect(ids(searchAttributes(f.data, { tags: ['tlp:green', 'tlp:red'] }, NOW))).to.have.length(4);
    expect(ids(searchAttributes(f.data, { tags: ['!tlp:red'] }, NOW))).to.deep.equal([f.a1.uuid, f.a2.uuid, f.a3.uuid]);
    expect(ids(searchAttributes(f.data, { tags: ['tlp:green', '!apt:x'] }, NOW))).to.deep.equal([f.a1.uuid, f.a3.uuid]);
    expect(ids(searchAttributes(f.data, { tags: { OR: ['tlp:green'], NOT: ['apt:x'] } }, NOW))).to.deep.equal([f.a1.uuid, f.a3.uuid]);
    // an unknown positive tag yields nothing
    expect(searchAttributes(f.data, { tags: ['no:such-tag'] }, NOW)).to.deep.equal([]);
  });

  it('enforceWarninglist drops warninglist hits', () => {
    const f = fixture();
    expect(ids(searchAttributes(f.data, { enforceWarninglist: 1 }, NOW))).to.not.include(f.a3.uuid);
    expect(ids(searchAttributes(f.data, { enforceWarninglist: 0 }, NOW))).to.include(f.a3.uuid);
  });

  it('includeEventTags appends the event tags marked inherited; rows carry MISP shapes', () => {
    const f = fixture();
    const [plain] = searchAttributes(f.data, { uuid: f.a2.uuid, tags: ['apt:x'] }, NOW);
    expect((plain!['Tag'] as { name: string }[]).map((t) => t.name)).to.deep.equal(['apt:x']);
    const [withEvent] = searchAttributes(f.data, { tags: ['apt:x'], includeEventTags: 1 }, NOW);
    const tags = withEvent!['Tag'] as { name: string; inherited?: number }[];
    expect(tags.map((t) => [t.name, t.inherited ?? 0])).to.deep.equal([['apt:x', 0], ['tlp:green', 1]]);
    // no Tag key at all on an untagged attribute without event tags
    const [untagged] = searchAttributes(f.data, { timestamp: String(NOW - 10 * 86400), to_ids: 1, published: 1, limit: 1 }, NOW);
    expect(untagged).to.not.have.property('Tag');
    expect(untagged!['id']).to.be.a('string');
    expect(untagged!['timestamp']).to.be.a('string');
    expect(untagged!['to_ids']).to.equal(true);
    expect(untagged!['Event']).to.include({ id: f.e1.id, info: 'published one' });
    expect(searchAttributes(f.data, { includeEventUuid: 1, limit: 1 }, NOW)[0]!['event_uuid']).to.equal(f.e1.uuid);
  });

  it('order by timestamp asc/desc with limit and page; a page past the end is empty', () => {
    const f = fixture();
    f.data.clock = () => NOW - 7 * 86400;
    f.data.editAttribute(f.a3.uuid, { comment: 'older now' }); // a3 moves to NOW-7d
    const asc = { deleted: [0, 1], order: 'Attribute.timestamp asc' };
    const all = ids(searchAttributes(f.data, asc, NOW));
    expect(all[0]).to.equal(f.a1.uuid);
    expect(all[1]).to.equal(f.a3.uuid);
    const paged = [1, 2, 3].flatMap((page) => ids(searchAttributes(f.data, { ...asc, limit: 2, page }, NOW)));
    expect(paged).to.deep.equal(all);
    expect(searchAttributes(f.data, { ...asc, limit: 2, page: 4 }, NOW)).to.deep.equal([]);
    // limit without page is page 1
    expect(ids(searchAttributes(f.data, { ...asc, limit: 2 }, NOW))).to.deep.equal(all.slice(0, 2));
    const desc = ids(searchAttributes(f.data, { deleted: [0, 1], order: 'Attribute.timestamp desc' }, NOW));
    expect(desc[desc.length - 1]).to.equal(f.a1.uuid);
  });
});
