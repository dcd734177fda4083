import { expect } from 'chai';
import fc from 'fast-check';
import { eventAttributes, flag, int, readAttribute, readEvent, tagNames } from '../../src/sources/misp/model.js';

describe('MISP model readers', () => {
  it('reads string and integer ids and timestamps alike', () => {
    const a = readAttribute({ id: '12', uuid: 'u-1', event_id: '7', type: 'ip-dst', value: '1.2.3.4', timestamp: '1596575200' });
    const b = readAttribute({ id: 12, uuid: 'u-1', event_id: 7, type: 'ip-dst', value: '1.2.3.4', timestamp: 1596575200 });
    expect(a).to.not.equal(null);
    expect(a).to.deep.equal(b);
    expect(a!.id).to.equal('12');
    expect(a!.eventId).to.equal('7');
    expect(a!.timestamp).to.equal(1596575200);
    expect(int('abc')).to.equal(0);
    expect(int('-5')).to.equal(0);
    expect(int(null)).to.equal(0);
  });

  it('reads flags given as true, 1 or "1", and nothing else as set', () => {
    for (const v of [true, 1, '1']) expect(flag(v), String(v)).to.equal(true);
    for (const v of [false, 0, '0', '', null, undefined, 'yes', 2]) expect(flag(v), String(v)).to.equal(false);
    const a = readAttribute({ uuid: 'u', event_id: '1', to_ids: '1', deleted: '0' })!;
    expect(a.toIds).to.equal(true);
    expect(a.deleted).to.equal(false);
    const b = readAttribute({ uuid: 'u', event_id: '1', to_ids: false, deleted: true })!;
    expect(b.toIds).to.equal(false);
    expect(b.deleted).to.equal(true);
  });

  it('reads an attribute without Tag as untagged', () => {
    const a = readAttribute({ uuid: 'u', event_id: '1', type: 'domain', value: 'x.example' })!;
    expect(a.tags).to.deep.equal([]);
    expect(a.inheritedTags).to.deep.equal([]);
  });

  it('splits event tags MISP inlined (inherited) from the attribute\'s own', () => {
    const a = readAttribute({
      uuid: 'u', event_id: '1',
      Tag: [{ name: 'tlp:green', inherited: 1 }, { name: 'malware:x', local: 0 }, { name: 'apt:y', inherited: '1' }, { name: 'own:z', inherited: 0 }],
    })!;
    expect(a.tags).to.deep.equal(['malware:x', 'own:z']);
    expect(a.inheritedTags).to.deep.equal(['tlp:green', 'apt:y']);
  });

  it('builds the value from value1/value2 when value is absent, and prefers value when present', () => {
    expect(readAttribute({ uuid: 'u', event_id: '1', value1: 'evil.exe', value2: 'abc' })!.value).to.equal('evil.exe|abc');
    expect(readAttribute({ uuid: 'u', event_id: '1', value1: '1.2.3.4', value2: '' })!.value).to.equal('1.2.3.4');
    expect(readAttribute({ uuid: 'u', event_id: '1', value: 'v|w', value1: 'other', value2: 'x' })!.value).to.equal('v|w');
  });

  it('takes the event id from the caller when the row lacks one (attributes of a full event)', () => {
    expect(readAttribute({ uuid: 'u' })).to.equal(null);
    expect(readAttribute({ uuid: 'u' }, '9')!.eventId).to.equal('9');
  });

  it('reads the object name and warninglist hits', () => {
    const a = readAttribute({ uuid: 'u', event_id: '1', Object: { name: 'file' }, warnings: [{ name: 'resolvers' }] })!;
    expect(a.objectName).to.equal('file');
    expect(a.warninglistHit).to.equal(true);
    expect(readAttribute({ uuid: 'u', event_id: '1', warnings: [] })!.warninglistHit).to.equal(false);
  });

  it('returns null for malformed rows instead of throwing', () => {
    for (const raw of [null, undefined, 'Event', 42, [], [{ uuid: 'u' }], { uuid: 5 }, { uuid: '', event_id: '1' }, { event_id: '1' }]) {
      expect(readAttribute(raw), JSON.stringify(raw)).to.equal(null);
    }
    for (const raw of [null, '1234', 7, [], {}, { info: 'no id' }]) {
      expect(readEvent(raw), JSON.stringify(raw)).to.equal(null);
    }
  });

  it('reads events with Tag, EventTag and extra tags merged, Orgc name and string/int threat level', () => {
    const e = readEvent(
      { id: 3, uuid: 'e-3', info: 'x', published: '1', publish_timestamp: '1700000000', threat_level_id: 1, Orgc: { name: 'CIRCL' }, Tag: [{ name: 'tlp:amber' }] },
      [{ Tag: { name: 'apt:y' } }, { Tag: { name: 'tlp:amber' } }],
    )!;
    expect(e.id).to.equal('3');
    expect(e.published).to.equal(true);
    expect(e.publishTimestamp).to.equal(1700000000);
    expect(e.threatLevelId).to.equal('1');
    expect(e.orgName).to.equal('CIRCL');
    expect(e.tags).to.deep.equal(['tlp:amber', 'apt:y']);
    expect(readEvent({ id: '3', EventTag: [{ Tag: { name: 'a' } }] })!.tags).to.deep.equal(['a']);
  });

  it('tagNames ignores junk entries', () => {
    expect(tagNames([null, 1, { name: '' }, { name: ' spaced ' }, { Tag: { name: 'nested' } }, { Tag: null }])).to.deep.equal(['spaced', 'nested']);
    expect(tagNames('tlp:red')).to.deep.equal([]);
  });

  it('flattens object attributes of a full event, skipping deleted objects and malformed rows', () => {
    const attrs = eventAttributes({
      id: '5',
      Attribute: [{ uuid: 'a1', type: 'domain', value: 'x.example' }, 'junk', { type: 'no uuid' }],
      Object: [
        { name: 'file', Attribute: [{ uuid: 'o1', type: 'sha256', value: 'f'.repeat(64) }] },
        { name: 'gone', deleted: true, Attribute: [{ uuid: 'o2', type: 'md5', value: 'a'.repeat(32) }] },
        'junk',
        { name: 'empty' },
      ],
    });
    expect(attrs.map((a) => [a.uuid, a.eventId, a.objectName])).to.deep.equal([['a1', '5', null], ['o1', '5', 'file']]);
    expect(eventAttributes({ id: '5', Attribute: 'nope', Object: {} })).to.deep.equal([]);
  });

  it('never throws on arbitrary JSON', () => {
    fc.assert(fc.property(fc.jsonValue(), fc.jsonValue(), (raw, extra) => {
      readAttribute(raw);
      readAttribute(raw, 'fallback');
      readEvent(raw, extra);
      tagNames(raw);
      if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) eventAttributes(raw as Record<string, unknown>);
      readAttribute({ uuid: 'u', event_id: '1', Tag: raw, value: raw, Object: raw, warnings: raw, timestamp: raw });
      readEvent({ id: '1', Tag: raw, EventTag: extra, Orgc: raw, published: raw });
      eventAttributes({ id: raw, Attribute: [raw, extra], Object: [{ Attribute: raw }, raw] });
    }), { numRuns: 500 });
  });
});
