import { expect } from 'chai';
import { mispSection } from '../../src/sources/misp/config.js';
import { TlpPolicy } from '../../src/guard/tlp.js';
import { EventCache, normaliseZmq, type MispContext } from '../../src/sources/misp/normalise.js';

const NOW = Date.parse('2026-03-10T15:30:00Z');
const SHA = 'e'.repeat(64);

function ctxWith(o: Record<string, unknown> = {}): MispContext {
  return { policy: { ...mispSection.parse(o), url: 'https://misp.example' }, events: new EventCache(), now: () => NOW };
}

const header = (o: Record<string, unknown> = {}) => ({
  id: '7', uuid: 'e-7', info: 'Campaign X', published: false, threat_level_id: '1', publish_timestamp: '0', orgc_id: '1', distribution: '1', ...o,
});
const eventTag = (name: string) => ({ id: '1', event_id: '7', tag_id: '1', local: false, Tag: { id: '1', name, colour: '#fff', exportable: true } });
const attrRow = (o: Record<string, unknown> = {}) => ({
  id: '66', event_id: '7', object_id: '0', category: 'Network activity', type: 'ip-dst', value1: '203.0.113.7', value2: '', value: '203.0.113.7',
  to_ids: true, uuid: 'a-1', timestamp: '1773000000', deleted: false, comment: '', first_seen: null, last_seen: null, ...o,
});

/** Announce the event the way MISP does before attribute messages arrive. */
function announce(ctx: MispContext, tags: string[] = [], o: Record<string, unknown> = {}) {
  return normaliseZmq('misp_json_event', JSON.stringify({ Event: header(o), Orgc: { id: '1', name: 'CIRCL' }, EventTag: tags.map(eventTag), action: 'add' }), ctx);
}

describe('MISP ZeroMQ normalisation', () => {
  it('misp_json: one item per attribute (object attributes included) and a group retraction keeping all of them', () => {
    const ctx = ctxWith();
    const body = {
      Event: {
        ...header({ published: false }), Tag: [{ name: 'tlp:green' }],
        Attribute: [
          { ...attrRow(), value1: undefined, value2: undefined },
          { ...attrRow({ uuid: 'a-2', type: 'domain', value: 'evil.example', to_ids: false }) },
        ],
        Object: [{ name: 'file', Attribute: [{ uuid: 'o-1', type: 'sha256', value: SHA, to_ids: true, timestamp: '1773000000' }] }],
      },
    };
    const { items, catchUp } = normaliseZmq('misp_json', JSON.stringify(body), ctx);
    expect(catchUp).to.equal(false);
    expect(items).to.have.length(4);
    const [ip, dom, file, group] = items.map((i) => i.normalised);
    expect(ip!.sourceRef?.id).to.equal('misp:7:a-1');
    expect(ip!.changes.map((c) => c.observable)).to.deep.equal([{ type: 'ipv4', value: '203.0.113.7' }]);
    // the payload says published:false (serialised before saving): publishing still counts
    expect(ip!.ignored).to.equal(null);
    expect(ip!.changes[0]!.tlp).to.equal('TLP:GREEN');
    expect(ip!.changes[0]!.hints?.severity).to.equal('High');
    // IDS flag off: it asserts nothing (and withdraws what it asserted)
    expect(dom!.sourceRef?.id).to.equal('misp:7:a-2');
    expect(dom!.retractAll).to.equal(true);
    expect(file!.sourceRef?.id).to.equal('misp:7:o-1');
    expect(file!.changes[0]!.description).to.contain('(was part of file object)');
    expect(group!.retractGroup).to.deep.equal({ prefix: 'misp:7:', keep: ['misp:7:a-1', 'misp:7:a-2', 'misp:7:o-1'] });
    expect(items[3]!.event).to.equal('publish.removed-attributes');
    // the event header is cached for later attribute messages
    expect(ctx.events.get('7')?.tags).to.deep.equal(['tlp:green']);
  });

  it('misp_json without an Event object is rejected', () => {
    const { items } = normaliseZmq('misp_json', JSON.stringify({ Event: 'x' }), ctxWith());
    expect(items[0]!.normalised.rejected?.code).to.equal('malformed_event');
  });

  it('misp_json_event delete: the whole event is withdrawn (group retraction, nothing kept)', () => {
    const ctx = ctxWith();
    announce(ctx);
    expect(ctx.events.get('7')).to.not.equal(undefined);
    const { items } = normaliseZmq('misp_json_event', JSON.stringify({ Event: header(), action: 'delete' }), ctx);
    expect(items).to.have.length(1);
    expect(items[0]!.normalised.retractGroup).to.deep.equal({ prefix: 'misp:7:', keep: [] });
    expect(items[0]!.event).to.equal('event.delete');
    expect(ctx.events.get('7')).to.equal(undefined);
  });

  it('misp_json_event with a scalar Event (add_from_connected_server) is ignored, not rejected', () => {
    const { items, catchUp } = normaliseZmq('misp_json_event', JSON.stringify({ Event: '1234', Server: '2', action: 'add_from_connected_server' }), ctxWith());
    expect(items[0]!.normalised.ignored).to.be.a('string');
    expect(items[0]!.normalised.rejected).to.equal(null);
    expect(catchUp).to.equal(false);
  });

  it('misp_json_event edit with changed tags asks for a catch-up; unchanged tags do not', () => {
    const ctx = ctxWith();
    expect(announce(ctx, ['tlp:green']).catchUp).to.equal(false);
    expect(announce(ctx, ['tlp:green']).catchUp).to.equal(false);
    expect(announce(ctx, ['tlp:red']).catchUp).to.equal(true);
  });

  it('misp_json_attribute soft-delete with a sanitised value still retracts by uuid', () => {
    const ctx = ctxWith();
    const msg = { Attribute: attrRow({ category: 'Other', type: 'comment', value: 'deleted', value1: 'deleted', to_ids: false, deleted: true }), Event: header(), action: 'soft-delete' };
    const { items } = normaliseZmq('misp_json_attribute', JSON.stringify(msg), ctx);
    expect(items[0]!.normalised.sourceRef?.id).to.equal('misp:7:a-1');
    expect(items[0]!.normalised.retractAll).to.equal(true);
    expect(items[0]!.event).to.equal('attribute.soft-delete');
  });

  it('misp_json_attribute hard delete without Event retracts by uuid', () => {
    const { items, catchUp } = normaliseZmq('misp_json_attribute', JSON.stringify({ Attribute: attrRow(), action: 'delete' }), ctxWith());
    expect(items[0]!.normalised.sourceRef?.id).to.equal('misp:7:a-1');
    expect(items[0]!.normalised.retractAll).to.equal(true);
    expect(catchUp).to.equal(false);
  });

  it('misp_json_attribute add on an unpublished event waits for the publish when published_only', () => {
    const ctx = ctxWith();
    announce(ctx);
    const msg = JSON.stringify({ Attribute: attrRow(), Event: header({ published: false }), action: 'add' });
    const waiting = normaliseZmq('misp_json_attribute', msg, ctx).items[0]!.normalised;
    expect(waiting.ignored).to.match(/published/);
    expect(waiting.changes).to.deep.equal([]);
    expect(waiting.retractAll).to.equal(false);

    const open = ctxWith({ published_only: false });
    announce(open);
    const now = normaliseZmq('misp_json_attribute', msg, open).items[0]!.normalised;
    expect(now.ignored).to.equal(null);
    expect(now.changes.map((c) => c.observable.value)).to.deep.equal(['203.0.113.7']);
  });

  it('misp_json_attribute add on a published, cached event applies the event tags (tlp:red stays in MISP)', () => {
    const ctx = ctxWith();
    announce(ctx, ['tlp:green'], { published: true });
    const msg = (o: Record<string, unknown>) => JSON.stringify({ Attribute: attrRow(o), Event: header({ published: true }), action: 'add' });
    const ok = normaliseZmq('misp_json_attribute', msg({}), ctx).items[0]!.normalised;
    expect(ok.changes[0]!.tlp).to.equal('TLP:GREEN');
    const red = ctxWith();
    announce(red, ['tlp:red'], { published: true });
    const redEvent = normaliseZmq('misp_json_attribute', msg({}), red).items[0]!.normalised;
    expect(redEvent.changes[0]!.tlp, 'the cached event tags apply').to.equal('TLP:RED');
    // The TLP policy, in front of routing for every source, keeps it in MISP.
    const held = new TlpPolicy({}).screen(redEvent, 'misp', NOW);
    expect(held.event.changes).to.deep.equal([]);
    expect(held.withheld.map((d) => d.outcome)).to.deep.equal(['tlp']);
  });

  it('misp_json_attribute edit without its Tag (MISP#2592) asks for a catch-up instead of deciding without the tags', () => {
    const ctx = ctxWith({ published_only: false, vetted_event_tags: ['feed:osint'], vetted_attribute_tags: ['vetted'] });
    announce(ctx, ['feed:osint'], { published: true });
    const { Tag: _dropped, ...untagged } = { ...attrRow(), Tag: undefined } as Record<string, unknown>;
    const { items, catchUp } = normaliseZmq('misp_json_attribute', JSON.stringify({ Attribute: untagged, Event: header({ published: true }), action: 'edit' }), ctx);
    expect(catchUp).to.equal(true);
    expect(items[0]!.normalised.retractAll, 'a vetted attribute is not withdrawn for want of its tags').to.equal(false);
    expect(items[0]!.normalised.ignored).to.match(/without the attribute's tags/);
  });

  it('misp_json_attribute add for an event whose tags are unknown asks for a catch-up instead of guessing', () => {
    const { items, catchUp } = normaliseZmq('misp_json_attribute', JSON.stringify({ Attribute: attrRow(), Event: header({ published: true }), action: 'add' }), ctxWith());
    expect(catchUp).to.equal(true);
    expect(items[0]!.normalised.ignored).to.match(/tags unknown/);
    expect(items[0]!.normalised.changes).to.deep.equal([]);
  });

  it('misp_json_attribute without uuid is rejected as malformed', () => {
    const { items } = normaliseZmq('misp_json_attribute', JSON.stringify({ Attribute: { id: '1' }, action: 'add' }), ctxWith());
    expect(items[0]!.normalised.rejected?.code).to.equal('malformed_attribute');
  });

  it('misp_json_self yields nothing', () => {
    expect(normaliseZmq('misp_json_self', JSON.stringify({ status: 'alive', uptime: 10 }), ctxWith())).to.deep.equal({ items: [], catchUp: false });
    expect(normaliseZmq('misp_json_self', 'not even json', ctxWith())).to.deep.equal({ items: [], catchUp: false });
  });

  it('malformed JSON is rejected with malformed_json, and a non-object with malformed_message', () => {
    const bad = normaliseZmq('misp_json_attribute', '{"Attribute": {', ctxWith()).items[0]!.normalised;
    expect(bad.rejected?.code).to.equal('malformed_json');
    expect(bad.rejected?.detail).to.contain('misp_json_attribute');
    expect(normaliseZmq('misp_json', '[1,2]', ctxWith()).items[0]!.normalised.rejected?.code).to.equal('malformed_message');
  });

  it('tag and object removals ask for a catch-up; other topics are ignored', () => {
    expect(normaliseZmq('misp_json_tag', JSON.stringify({ Tag: { name: 'x' }, action: 'attached to event' }), ctxWith()).catchUp).to.equal(true);
    expect(normaliseZmq('misp_json_object', JSON.stringify({ Object: {}, action: 'soft-delete' }), ctxWith()).catchUp).to.equal(true);
    const s = normaliseZmq('misp_json_sighting', JSON.stringify({ Sighting: {}, action: 'add' }), ctxWith());
    expect(s.catchUp).to.equal(false);
    expect(s.items[0]!.normalised.ignored).to.be.a('string');
  });

  it('published_only: an attribute changed at or after the event\'s last publish waits, though its message says published (MISP unpublishes after it)', () => {
    const ctx = ctxWith();
    announce(ctx, [], { published: true, publish_timestamp: '1773000100' });
    const add = (ts: string) => normaliseZmq('misp_json_attribute', JSON.stringify({
      Attribute: attrRow({ uuid: `a-${ts}`, timestamp: ts }), Event: header({ published: true }), action: 'add' }), ctx).items[0]!.normalised;
    expect(add('1773000000').changes).to.have.length(1); // before the publish: published
    expect(add('1773000200').ignored).to.equal('waiting for the event to be published');
    expect(add('1773000100').ignored, 'same second as the publish').to.equal('waiting for the event to be published');
    // A publish (misp_json, serialised before MISP saves the new publish_timestamp) publishes all it carries, up to its timestamp.
    normaliseZmq('misp_json', JSON.stringify({ Event: { ...header({ published: false, publish_timestamp: '1773000100', timestamp: '1773000300' }), Attribute: [] } }), ctx);
    expect(add('1773000250').changes).to.have.length(1);
    expect(add('1773000300').ignored).to.equal('waiting for the event to be published');
    // published_only off: pushed at once.
    const off = ctxWith({ published_only: false });
    announce(off, [], { published: true, publish_timestamp: '1773000100' });
    expect(normaliseZmq('misp_json_attribute', JSON.stringify({ Attribute: attrRow({ timestamp: '1773000200' }), Event: header({ published: true }), action: 'add' }), off).items[0]!.normalised.changes).to.have.length(1);
  });
});
