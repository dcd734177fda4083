import { expect } from 'chai';
import { mispSection } from '../../src/sources/misp/config.js';
import type { MispAttribute, MispEvent } from '../../src/sources/misp/model.js';
import { clampExpiry, decideAttribute, type MispPolicy } from '../../src/sources/misp/policy.js';
import { TlpPolicy } from '../../src/guard/tlp.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-03-10T15:30:00Z');
const TODAY = Date.parse('2026-03-10T00:00:00Z');

// Most cases count expiry from today; the default (valid_from: the attribute's timestamp) has its own tests.
const policy = (o: Record<string, unknown> = {}): MispPolicy => ({ ...mispSection.parse({ expire_from: 'now', ...o }), url: 'https://misp.example' });
const attr = (o: Partial<MispAttribute> = {}): MispAttribute => ({
  id: '1', uuid: 'u1', eventId: '7', type: 'ip-dst', category: 'Network activity', value: '203.0.113.7', toIds: true, deleted: false,
  timestamp: 1_770_000_000, comment: '', firstSeen: null, lastSeen: null, objectName: null, inObject: false, tags: [], inheritedTags: [], warninglistHit: false, ...o,
});
const event = (o: Partial<MispEvent> = {}): MispEvent => ({
  id: '7', uuid: 'e7', info: 'Campaign X', date: '2026-01-15', published: true, publishTimestamp: 0, threatLevelId: '4', orgName: 'CIRCL', distribution: '1', tags: [], ...o,
});
const passes = (a: MispAttribute, e: MispEvent | null, p: MispPolicy, now = NOW) => {
  const d = decideAttribute(a, e, p, now);
  return d.excluded === null && d.changes.length > 0;
};
const hints = (a: MispAttribute, e: MispEvent | null, p: MispPolicy) => {
  const d = decideAttribute(a, e, p, NOW);
  expect(d.excluded, d.excluded ?? '').to.equal(null);
  return d.changes[0]!.hints!;
};
const until = (a: MispAttribute, e: MispEvent | null, p: MispPolicy, now = NOW) => {
  const d = decideAttribute(a, e, p, now);
  expect(d.excluded, d.excluded ?? '').to.equal(null);
  return Date.parse(d.changes[0]!.validUntil!);
};

describe('MISP policy: decideAttribute', () => {
  it('turns a plain attribute into a change keyed by event and uuid, linking back to the event', () => {
    const d = decideAttribute(attr({ comment: 'C2', objectName: 'ip-port' }), event(), policy(), NOW);
    expect(d.excluded).to.equal(null);
    expect(d.changes).to.have.length(1);
    const c = d.changes[0]!;
    expect(c.observable).to.deep.equal({ type: 'ipv4', value: '203.0.113.7' });
    expect(c.sourceRef).to.deep.equal({ system: 'misp', id: 'misp:7:u1', url: 'https://misp.example/events/view/7' });
    expect(c.title).to.equal('Campaign X');
    expect(c.description).to.contain('C2').and.to.contain('(was part of ip-port object)').and.to.contain('Campaign X');
    expect(c.hints?.ownExpiry).to.equal(true);
  });

  it('excludes deleted, non-IDS (when required) and warninglisted attributes', () => {
    expect(decideAttribute(attr({ deleted: true }), event(), policy(), NOW).excluded).to.match(/deleted/);
    expect(decideAttribute(attr({ toIds: false }), event(), policy(), NOW).excluded).to.match(/IDS/);
    expect(passes(attr({ toIds: false }), event(), policy({ to_ids_only: false }))).to.equal(true);
    expect(decideAttribute(attr({ warninglistHit: true }), event(), policy(), NOW).excluded).to.match(/warninglist/);
    expect(passes(attr({ warninglistHit: true }), event(), policy({ enforce_warninglist: false }))).to.equal(true);
  });

  it('excludes events published before the publish_timestamp window', () => {
    const p = policy({ publish_timestamp: '2d' });
    expect(decideAttribute(attr(), event({ publishTimestamp: Math.floor((NOW - 3 * DAY) / 1000) }), p, NOW).excluded).to.match(/2d window/);
    expect(passes(attr(), event({ publishTimestamp: Math.floor((NOW - 1 * DAY) / 1000) }), p)).to.equal(true);
    // without the window the old event passes
    expect(passes(attr(), event({ publishTimestamp: Math.floor((NOW - 30 * DAY) / 1000) }), policy())).to.equal(true);
  });

  it('applies tags_exclude and tags_include case-insensitively on attribute and event tags', () => {
    const ex = policy({ tags_exclude: ['Feed:Noisy'] });
    expect(decideAttribute(attr({ tags: ['feed:noisy'] }), event(), ex, NOW).excluded).to.match(/excluded/);
    expect(decideAttribute(attr(), event({ tags: ['FEED:NOISY'] }), ex, NOW).excluded).to.match(/excluded/);
    expect(decideAttribute(attr({ inheritedTags: ['feed:noisy'] }), null, ex, NOW).excluded).to.match(/excluded/);
    expect(passes(attr({ tags: ['feed:good'] }), event(), ex)).to.equal(true);

    const inc = policy({ tags_include: ['Workflow:State="complete"'] });
    expect(decideAttribute(attr(), event(), inc, NOW).excluded).to.match(/tags_include/);
    expect(passes(attr(), event({ tags: ['workflow:state="complete"'] }), inc)).to.equal(true);
    expect(passes(attr({ tags: ['WORKFLOW:STATE="COMPLETE"'] }), event(), inc)).to.equal(true);
    // exclusion wins over inclusion
    const both = policy({ tags_include: ['a'], tags_exclude: ['b'] });
    expect(passes(attr({ tags: ['a', 'b'] }), event(), both)).to.equal(false);
  });

  it('event_filters: every field of a filter must match (AND), any filter may (OR), a list value is an OR', () => {
    const p = policy({ event_filters: [{ tags: ['apt:a', 'apt:b'], type: 'Domain' }, { org: 'CIRCL', threat_level_id: ['1', '2'] }] });
    // filter 1: tag matches but type does not; filter 2: org matches but threat level does not
    expect(decideAttribute(attr({ tags: ['apt:a'] }), event({ threatLevelId: '3' }), p, NOW).excluded).to.match(/event filter/);
    // filter 1 fully matches (second tag of the list, case-insensitive)
    expect(passes(attr({ type: 'domain', value: 'evil.example', tags: ['APT:B'] }), event({ threatLevelId: '3' }), p)).to.equal(true);
    // filter 2 fully matches (second threat level of the list)
    expect(passes(attr(), event({ threatLevelId: '2' }), p)).to.equal(true);
    expect(passes(attr(), event({ threatLevelId: '2', orgName: 'Other' }), p)).to.equal(false);
    // without the event header org-based filters cannot match
    expect(passes(attr(), null, p)).to.equal(false);
    // an unknown key is refused at start-up (see config.test for the message), never read as "matches nothing"
    expect(mispSection.safeParse({ event_filters: [{ colour: 'red' }] }).success).to.equal(false);
    // info is a substring match
    expect(passes(attr(), event({ info: 'Big Campaign X wave' }), policy({ event_filters: [{ info: 'campaign x' }] }))).to.equal(true);
  });

  it('event_filters: every key MISP2Sentinel\'s misp_event_filters supports', () => {
    const only = (f: Record<string, unknown>, a = attr(), e: MispEvent | null = event()) => passes(a, e, policy({ event_filters: [f] }));
    const published = NOW / 1000 - 3600; // an hour ago
    const cases: [Record<string, unknown>, boolean][] = [
      [{ type_attribute: ['domain', 'ip-dst'] }, true], [{ type_attribute: 'url' }, false],
      [{ values: ['203.0.113.7'] }, true], [{ values: '203.0.113.8' }, false],
      [{ not_values: ['203.0.113.7'] }, false], [{ not_values: ['203.0.113.8'] }, true],
      [{ date_from: '2026-01-15' }, true], [{ date_from: '2026-01-16' }, false],
      [{ date_to: '2026-01-15' }, true], [{ date_to: '2026-01-14' }, false],
      [{ eventid: ['7', '8'] }, true], [{ eventid: 9 }, false],
      [{ uuid: 'E7' }, true], [{ uuid: 'e8' }, false],
      [{ withAttachments: true }, true],
      [{ not_tags: ['apt:z'] }, true], [{ not_tags: ['tlp:green'] }, false],
      [{ org: 'circl' }, true], [{ org: 'Other' }, false],
      [{ category: 'Network activity' }, true], [{ category: 'Payload delivery' }, false],
      [{ tags: ['tlp:green', 'x'] }, true], [{ tags: 'x' }, false],
      [{ published: true }, true], [{ published: false }, false],
    ];
    for (const [f, expected] of cases) expect(only(f, attr({ tags: ['tlp:green'] })), JSON.stringify(f)).to.equal(expected);
    for (const key of ['last', 'publish_timestamp']) {
      expect(only({ [key]: '2h' }, attr(), event({ publishTimestamp: published })), `${key} inside`).to.equal(true);
      expect(only({ [key]: '30m' }, attr(), event({ publishTimestamp: published })), `${key} outside`).to.equal(false);
    }
    // Event keys need the event header: without it they cannot match.
    expect(only({ date_from: '2000-01-01' }, attr(), null)).to.equal(false);
  });

  it('vetted mode: events with a vetted tag only pass attributes carrying a vetting tag', () => {
    const p = policy({ vetted_event_tags: ['curation:source="MISP-TEST"'] });
    const vettedEvent = event({ tags: ['curation:source="misp-test"'] });
    expect(decideAttribute(attr(), vettedEvent, p, NOW).excluded).to.match(/vetted/);
    expect(passes(attr({ tags: ['course-of-action:active="deny"'] }), vettedEvent, p)).to.equal(true);
    // the vetting tag must be the attribute's own, not inherited from the event
    expect(passes(attr({ inheritedTags: ['course-of-action:active="deny"'] }), vettedEvent, p)).to.equal(false);
    // other events are unaffected
    expect(passes(attr(), event(), p)).to.equal(true);
  });

  it('rules: the first match wins, and a skip rule keeps an attribute in MISP', () => {
    const p = policy({ rules: [
      { tag: 'tlp:red', action: 'skip' },
      { type: 'ip-dst', action: 'Audit', severity: 'Low' },
      { tag: 'apt:x', action: 'Block', severity: 'High' },
    ] });
    expect(decideAttribute(attr({ tags: ['tlp:red'] }), event(), p, NOW).excluded).to.match(/keeps it in MISP/);
    expect(hints(attr({ tags: ['apt:x'] }), event(), p)).to.include({ action: 'Audit', severity: 'Low' });
    expect(hints(attr({ type: 'domain', value: 'x.example', tags: ['apt:x'] }), event(), p)).to.include({ action: 'Block', severity: 'High' });
    expect(passes(attr({ tags: ['apt:x', 'tlp:red'] }), event(), p)).to.equal(false);
  });

  it('TLP:RED stays in MISP by default, whatever the user rules say; only guard.max_tlp loosens it', () => {
    const screen = (a: MispAttribute, e: MispEvent, p: MispPolicy, max: Record<string, string> = {}) => {
      const d = decideAttribute(a, e, p, NOW);
      const normalised = { sourceRef: d.changes[0]!.sourceRef, changes: d.changes, retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: null };
      return new TlpPolicy(max).screen(normalised, 'misp', NOW);
    };
    for (const p of [policy(), policy({ rules: [{ tag: 'apt:x', action: 'Block' }] }), policy({ rules: [{ tag: 'tlp:red', action: 'Block' }] })]) {
      const fromEvent = screen(attr({ tags: ['apt:x'] }), event({ tags: ['TLP:RED'] }), p);
      expect(fromEvent.event.changes, 'event tag').to.deep.equal([]);
      expect(fromEvent.withheld[0]).to.include({ outcome: 'tlp', source: 'misp', key: 'ipv4:203.0.113.7' });
      expect(screen(attr({ tags: ['tlp:red'] }), event(), p).event.changes, 'attribute tag').to.deep.equal([]);
    }
    expect(screen(attr(), event({ tags: ['tlp:amber+strict'] }), policy()).event.changes, 'AMBER+STRICT leaves by default').to.have.length(1);
    expect(screen(attr(), event({ tags: ['tlp:amber+strict'] }), policy(), { misp: 'TLP:AMBER' }).event.changes, 'unless the maximum is AMBER').to.deep.equal([]);
    expect(screen(attr(), event({ tags: ['tlp:red'] }), policy(), { misp: 'TLP:RED' }).event.changes, 'explicitly loosened').to.have.length(1);
    expect(screen(attr(), event({ tags: ['tlp:ex:chr'] }), policy()).event.changes, 'an unknown marking ranks as RED').to.deep.equal([]);
  });

  it('action from course-of-action tags, unless a rule decides or it is turned off', () => {
    expect(hints(attr({ tags: ['course-of-action:active="deny"'] }), event(), policy()).action).to.equal('Block');
    expect(hints(attr(), event({ tags: ['coa:disrupt'] }), policy()).action).to.equal('Block');
    expect(hints(attr({ tags: ['course-of-action:passive="detect"'] }), event(), policy()).action).to.equal('Audit');
    expect(hints(attr({ tags: ['coa:discover'] }), event(), policy()).action).to.equal('Audit');
    expect(hints(attr(), event(), policy()).action).to.equal(undefined);
    expect(hints(attr(), event(), policy({ action: 'Warn' })).action).to.equal('Warn');
    expect(hints(attr({ tags: ['coa:deny'] }), event(), policy({ action_from_tags: false, action: 'Warn' })).action).to.equal('Warn');
    expect(hints(attr({ tags: ['coa:deny'] }), event(), policy({ rules: [{ tag: 'coa:deny', action: 'Audit' }] })).action).to.equal('Audit');
  });

  it('severity from the event threat level, then misp:threat-level tags, then the configured default', () => {
    expect(hints(attr(), event({ threatLevelId: '1' }), policy()).severity).to.equal('High');
    expect(hints(attr(), event({ threatLevelId: '2' }), policy()).severity).to.equal('Medium');
    expect(hints(attr(), event({ threatLevelId: '3' }), policy()).severity).to.equal('Low');
    expect(hints(attr({ tags: ['misp:threat-level="medium-risk"'] }), event({ threatLevelId: '4' }), policy()).severity).to.equal('Medium');
    expect(hints(attr(), event({ threatLevelId: '4', tags: ['misp:threat-level="high-risk"'] }), policy()).severity).to.equal('High');
    expect(hints(attr(), event({ threatLevelId: '4' }), policy({ severity: 'Informational' })).severity).to.equal('Informational');
    expect(hints(attr(), event({ threatLevelId: '4' }), policy()).severity).to.equal(undefined);
  });

  it('TLP from the attribute, else the event; tlp:white reads as TLP:CLEAR; TLP tags are not labels', () => {
    const own = decideAttribute(attr({ tags: ['tlp:amber', 'apt:x'] }), event({ tags: ['tlp:green'] }), policy(), NOW).changes[0]!;
    expect(own.tlp).to.equal('TLP:AMBER');
    expect(own.labels).to.include('apt:x').and.not.to.include('tlp:amber').and.not.to.include('tlp:green');
    expect(decideAttribute(attr(), event({ tags: ['tlp:green'] }), policy(), NOW).changes[0]!.tlp).to.equal('TLP:GREEN');
    expect(decideAttribute(attr({ inheritedTags: ['tlp:white'] }), null, policy(), NOW).changes[0]!.tlp).to.equal('TLP:CLEAR');
    expect(decideAttribute(attr(), event(), policy(), NOW).changes[0]!.tlp).to.equal(null);
  });

  it('expiry per observable type, counted from the start of today', () => {
    const p = policy();
    expect(until(attr(), event(), p)).to.equal(TODAY + 90 * DAY);
    expect(until(attr({ type: 'domain', value: 'x.example' }), event(), p)).to.equal(TODAY + 300 * DAY);
    expect(until(attr({ type: 'url', value: 'http://x.example/a' }), event(), p)).to.equal(TODAY + 365 * DAY);
    expect(until(attr({ type: 'sha256', value: 'a'.repeat(64) }), event(), p)).to.equal(TODAY + 36500 * DAY);
    // a type without its own days gets expire_days
    expect(until(attr({ type: 'email-src', value: 'a@x.example' }), event(), p)).to.equal(TODAY + 50 * DAY);
    expect(until(attr(), event(), policy({ expire_days_by_type: { ipv4: 10 }, expire_days: 20 }))).to.equal(TODAY + 10 * DAY);
    expect(until(attr({ type: 'domain', value: 'x.example' }), event(), policy({ expire_days_by_type: { ipv4: 10 }, expire_days: 20 }))).to.equal(TODAY + 20 * DAY);
  });

  it('TLP:CLEAR shortens expiry to tlp_clear_expire_days but never lengthens it', () => {
    expect(until(attr({ type: 'sha256', value: 'a'.repeat(64) }), event({ tags: ['tlp:clear'] }), policy())).to.equal(TODAY + 7 * DAY);
    expect(until(attr(), event({ tags: ['tlp:white'] }), policy({ tlp_clear_expire_days: 30 }))).to.equal(TODAY + 30 * DAY);
    expect(until(attr(), event({ tags: ['tlp:white'] }), policy({ tlp_clear_expire_days: 30, expire_days_by_type: { ipv4: 5 } }))).to.equal(TODAY + 5 * DAY);
  });

  it('expire_from first_seen counts from first_seen, sets validFrom, and excludes what already expired', () => {
    const p = policy({ expire_from: 'first_seen' });
    const firstSeen = '2026-03-01T12:00:00.000Z';
    const d = decideAttribute(attr({ firstSeen }), event(), p, NOW);
    expect(Date.parse(d.changes[0]!.validUntil!)).to.equal(Date.parse(firstSeen) + 90 * DAY);
    expect(d.changes[0]!.validFrom).to.equal(firstSeen);
    const old = decideAttribute(attr({ firstSeen: '2025-11-01T00:00:00Z' }), event(), p, NOW);
    expect(old.excluded).to.match(/^expired on 2026-01-30/);
    expect(old.changes).to.deep.equal([]);
    // with expire_from now, first_seen only gives validFrom
    expect(until(attr({ firstSeen: '2025-11-01T00:00:00Z' }), event(), policy())).to.equal(TODAY + 90 * DAY);
    // an unparsable first_seen falls back to today
    expect(until(attr({ firstSeen: 'garbage' }), event(), p)).to.equal(TODAY + 90 * DAY);
  });

  it('use_last_seen counts from last_seen, and excludes an attribute whose window has passed', () => {
    const p = policy({ use_last_seen: true, expire_days_by_type: { ipv4: 10 } });
    expect(until(attr({ lastSeen: '2026-03-05T00:00:00Z' }), event(), p)).to.equal(Date.parse('2026-03-15T00:00:00Z'));
    expect(decideAttribute(attr({ lastSeen: '2026-02-01T00:00:00Z' }), event(), p, NOW).excluded).to.match(/^expired/);
    expect(until(attr({ lastSeen: '2026-02-01T00:00:00Z' }), event(), policy({ expire_days_by_type: { ipv4: 10 } }))).to.equal(TODAY + 10 * DAY);
  });

  it('is stable within a day: the same attribute decided twice the same day gives identical changes', () => {
    const a = attr({ tags: ['tlp:green', 'apt:x'] });
    const first = decideAttribute(a, event({ threatLevelId: '1' }), policy(), Date.parse('2026-03-10T00:00:01Z'));
    const later = decideAttribute(a, event({ threatLevelId: '1' }), policy(), Date.parse('2026-03-10T23:59:59Z'));
    expect(later).to.deep.equal(first);
    const nextDay = decideAttribute(a, event({ threatLevelId: '1' }), policy(), Date.parse('2026-03-11T00:00:01Z'));
    expect(nextDay.changes[0]!.validUntil).to.not.equal(first.changes[0]!.validUntil);
  });

  it('gives one change per observable of composite types and passes skipped parts on', () => {
    const d = decideAttribute(attr({ type: 'domain|ip', value: 'evil.example|203.0.113.5' }), event(), policy(), NOW);
    expect(d.changes.map((c) => c.observable.type)).to.deep.equal(['domain', 'ipv4']);
    expect(d.changes.map((c) => c.validUntil)).to.deep.equal([new Date(TODAY + 300 * DAY).toISOString(), new Date(TODAY + 90 * DAY).toISOString()]);
    const s = decideAttribute(attr({ type: 'text', value: 'hello' }), event(), policy(), NOW);
    expect(s.excluded).to.equal(null);
    expect(s.changes).to.deep.equal([]);
    expect(s.skipped.map((x) => x.code)).to.deep.equal(['unsupported_type']);
  });

  it('expire_from defaults to valid_from: the days count from the attribute\'s timestamp, as MISP2Defender\'s days_to_expire_start', () => {
    const p = { ...mispSection.parse({}), url: 'https://misp.example' };
    expect(p.expire_from).to.equal('valid_from');
    const ts = Math.floor((NOW - 10 * DAY) / 1000); // changed ten days ago
    const d = decideAttribute(attr({ timestamp: ts }), event(), p, NOW);
    expect(Date.parse(d.changes[0]!.validUntil!)).to.equal(ts * 1000 + 90 * DAY); // ipv4: 90 days
    // Already past its days: not pushed (and withdrawn if it was).
    expect(decideAttribute(attr({ timestamp: Math.floor((NOW - 91 * DAY) / 1000) }), event(), p, NOW).excluded).to.match(/^expired on /);
    // current_date is MISP2Defender's name for now.
    const today = decideAttribute(attr({ timestamp: ts }), event(), { ...p, expire_from: 'current_date' }, NOW);
    expect(Date.parse(today.changes[0]!.validUntil!)).to.equal(TODAY + 90 * DAY);
  });

  it('cuts expiry over 100 years (MISP2Defender\'s 99999 days) to 36500 days with a warning naming the key, instead of refusing it', () => {
    const parsed = mispSection.parse({ expire_days: 99999, expire_days_by_type: { sha256: 99999, ipv4: 90 }, expire_from: 'now' });
    const { policy: p, warnings } = clampExpiry({ ...parsed, url: 'https://misp.example' });
    expect(warnings).to.have.length(2);
    expect(warnings.join('\n')).to.include('misp.expire_days = 99999').and.include('misp.expire_days_by_type.sha256 = 99999');
    expect(p.expire_days_by_type.ipv4).to.equal(90);
    const d = decideAttribute(attr({ type: 'sha256', value: 'a'.repeat(64) }), event(), p, NOW);
    expect(Date.parse(d.changes[0]!.validUntil!)).to.equal(TODAY + 36500 * DAY);
    // decideAttribute cuts too, whoever built the policy.
    const raw = decideAttribute(attr({ type: 'sha256', value: 'a'.repeat(64) }), event(), { ...parsed, url: 'x' }, NOW);
    expect(Date.parse(raw.changes[0]!.validUntil!)).to.equal(TODAY + 36500 * DAY);
  });

  it('severity_override replaces the event threat level; a misp:threat-level tag or a rule still wins', () => {
    const p = policy({ severity_override: 'Low' });
    expect(hints(attr(), event({ threatLevelId: '1' }), p).severity).to.equal('Low');
    expect(hints(attr({ tags: ['misp:threat-level="high-risk"'] }), event({ threatLevelId: '3' }), p).severity).to.equal('High');
    expect(hints(attr({ tags: ['misp:threat-level="no-risk"'] }), event({ threatLevelId: '1' }), p).severity).to.equal('Informational');
    expect(hints(attr({ tags: ['x'] }), event({ threatLevelId: '1' }), policy({ severity_override: 'Low', rules: [{ tag: 'x', action: 'Audit', severity: 'Medium' }] })).severity).to.equal('Medium');
    // Without the override the threat level decides, as before.
    expect(hints(attr(), event({ threatLevelId: '1' }), policy({ severity: 'Low' })).severity).to.equal('High');
  });

  it('flatten_attributes off leaves attributes of MISP objects in MISP', () => {
    expect(passes(attr({ inObject: true, objectName: 'file' }), event(), policy())).to.equal(true);
    expect(decideAttribute(attr({ inObject: true, objectName: 'file' }), event(), policy({ flatten_attributes: false }), NOW).excluded).to.match(/flatten_attributes/);
    expect(passes(attr(), event(), policy({ flatten_attributes: false }))).to.equal(true);
  });

  it('event_filters takes MISP2Defender\'s single mapping, with its paging and warninglist keys', () => {
    const p = policy({ event_filters: { published: true, tags: ['workflow:state="complete"'], enforceWarninglist: true, publish_timestamp: '2d', limit: 100, eventid: ['7'], date_from: '2026-01-01', date_to: '2026-02-01', last: '3d' } });
    expect(p.event_filters).to.have.length(1);
    const ok = event({ publishTimestamp: Math.floor((NOW - DAY) / 1000), date: '2026-01-15', tags: ['workflow:state="complete"'] });
    expect(passes(attr(), ok, p)).to.equal(true);
    expect(passes(attr({ eventId: '8' }), { ...ok, id: '8' }, p)).to.equal(false); // eventid
    expect(passes(attr(), { ...ok, date: '2026-02-02' }, p)).to.equal(false); // date_to
    expect(passes(attr(), { ...ok, date: '2025-12-31' }, p)).to.equal(false); // date_from
    expect(passes(attr(), { ...ok, publishTimestamp: Math.floor((NOW - 4 * DAY) / 1000) }, p)).to.equal(false); // last
  });
});
