// The Sentinel mapping: deterministic ids, escaped patterns, the script's options, revocation,
// and every mapped object accepted by the upload API's documented schema checks.
import { expect } from 'chai';
import fc from 'fast-check';
import type { IndicatorChange, ObservableType } from '../../src/core/types.js';
import { validate } from '../../sim/sentinel.js';
import { mapToSentinel, parseRecord, revokedVersion, type SentinelMapping, type StixIndicator } from '../../src/sinks/sentinel/mapper.js';
import { SentinelRoute } from '../../src/sinks/sentinel/route.js';
import { indicatorIdFor, patternFor, uuidv5 } from '../../src/sinks/sentinel/stix.js';
import { parsePattern } from '../../src/sources/opencti/stix-pattern/index.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const mapping: SentinelMapping = { sink: 'sentinel', passiveOnly: false, daysToExpire: 30, minScore: 0, labels: ['feed-x'] };

function change(over: Partial<IndicatorChange> = {}): IndicatorChange {
  return {
    observable: { type: 'ipv4', value: '198.51.100.7' }, score: 80, labels: ['c2'], tlp: 'TLP:AMBER', title: 'C2 server',
    description: 'seen beaconing', validFrom: '2026-02-01T00:00:00Z', validUntil: null,
    sourceRef: { system: 'opencti', id: 'indicator--0b7c3c5e-0000-4000-8000-000000000001', url: 'https://octi/dashboard/id/x' }, ...over,
  };
}

function upsert(key: string, c: IndicatorChange, m = mapping): StixIndicator {
  const r = mapToSentinel(key, c, m, NOW);
  if (r.kind !== 'upsert') throw new Error(`expected upsert, got ${r.reason}`);
  return r.object;
}

/** The string literal of a single-comparison pattern, as the STIX grammar reads it back. */
function literalOf(pattern: string): string {
  const parsed = parsePattern(pattern);
  if (!parsed.ok) throw new Error(parsed.rejection.detail);
  const obs = parsed.ast.expression as { comparison: { value: { value: string } } };
  return obs.comparison.value.value;
}

describe('Sentinel mapping', () => {
  it('takes a source\'s wanted action (a MISP rule or course-of-action tag) and own expiry; passive_only and a forced action still win', () => {
    const misp = (action: string, validUntil: string | null = null) => change({ score: null, validUntil,
      sourceRef: { system: 'misp', id: 'misp:7:u1', url: 'https://misp/events/view/7' }, hints: { action, ownExpiry: true } });
    const actionOf = (c: IndicatorChange, m = mapping) => upsert('ipv4:198.51.100.7', c, m).labels.find((l) => l.startsWith('action:'));
    expect(actionOf(misp('Block'))).to.equal('action:block');
    expect(actionOf(misp('BlockAndRemediate'))).to.equal('action:block');
    expect(actionOf(misp('Audit'))).to.equal('action:alert');
    expect(actionOf(misp('Allowed'))).to.equal('action:allow');
    expect(actionOf(misp('Nonsense'))).to.equal('action:alert'); // no score: alert, as before
    expect(actionOf(misp('Block'), { ...mapping, passiveOnly: true })).to.equal('action:alert');
    expect(actionOf(misp('Block'), { ...mapping, action: 'alert' })).to.equal('action:alert');
    // 200 days from MISP replaces the sink's 30; without ownExpiry the sink's days cap it.
    const far = new Date(NOW + 200 * 86_400_000).toISOString();
    expect(Date.parse(upsert('k', misp('Block', far)).valid_until)).to.equal(NOW + 200 * 86_400_000);
    expect(Date.parse(upsert('k', change({ validUntil: far })).valid_until)).to.equal(NOW + 30 * 86_400_000);
  });

  it('maps a claim to a complete STIX 2.1 indicator', () => {
    const o = upsert('ipv4:198.51.100.7', change());
    expect(o).to.deep.include({
      type: 'indicator', spec_version: '2.1', pattern: "[ipv4-addr:value = '198.51.100.7']", pattern_type: 'stix',
      valid_from: '2026-02-01T00:00:00.000Z', valid_until: '2026-03-31T12:00:00.000Z', confidence: 80, name: 'C2 server',
      object_marking_refs: ['marking-definition--f88d31f6-486f-44da-b317-01333bde0b82'],
    });
    expect(o.labels).to.deep.equal(['opencti', 'feed-x', 'c2', 'action:block']);
    expect(o.external_references).to.deep.equal([{ source_name: 'opencti', external_id: change().sourceRef.id, url: 'https://octi/dashboard/id/x' }]);
    expect(validate(o)).to.deep.equal([]);
  });

  it('gives one id per (sink, key), whatever source asserts it, and different ids to different keys', () => {
    const a = upsert('ipv4:198.51.100.7', change());
    const b = upsert('ipv4:198.51.100.7', change({ sourceRef: { system: 'misp', id: '4cf76d64-4855-4b6a-9b7e-2f0c8d1a0a11' } }));
    const c = upsert('ipv4:198.51.100.8', change({ observable: { type: 'ipv4', value: '198.51.100.8' } }));
    expect(a.id).to.equal(b.id).and.not.equal(c.id);
    expect(indicatorIdFor('sentinel', 'ipv4:1.2.3.4')).to.not.equal(indicatorIdFor('other-workspace', 'ipv4:1.2.3.4'));
    expect(a.id).to.match(/^indicator--[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // RFC 4122 appendix test vector (DNS namespace, "www.example.com").
    expect(uuidv5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).to.equal('2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });

  it('builds the pattern path of every observable type', () => {
    const cases: [ObservableType, string, string][] = [
      ['ipv6', '2001:db8::1', "[ipv6-addr:value = '2001:db8::1']"],
      ['domain', 'evil.example', "[domain-name:value = 'evil.example']"],
      ['hostname', 'a.evil.example', "[domain-name:value = 'a.evil.example']"],
      ['url', 'http://x.example/a', "[url:value = 'http://x.example/a']"],
      ['md5', 'cd'.repeat(16), `[file:hashes.MD5 = '${'cd'.repeat(16)}']`],
      ['sha1', 'ab'.repeat(20), `[file:hashes.'SHA-1' = '${'ab'.repeat(20)}']`],
      ['sha256', 'ef'.repeat(32), `[file:hashes.'SHA-256' = '${'ef'.repeat(32)}']`],
      ['email', 'bad@evil.example', "[email-addr:value = 'bad@evil.example']"],
      ['cert-sha1', '12'.repeat(20), `[x509-certificate:hashes.'SHA-1' = '${'12'.repeat(20)}']`],
    ];
    for (const [type, value, pattern] of cases) {
      expect(patternFor({ type, value })).to.equal(pattern);
      expect(parsePattern(pattern).ok, pattern).to.equal(true);
    }
  });

  it('escapes quotes and backslashes so the pattern reads back the exact value', () => {
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 60 }), (tail) => {
      const value = `http://x.example/${tail}`;
      const pattern = patternFor({ type: 'url', value });
      expect(literalOf(pattern)).to.equal(value);
    }), { numRuns: 300 });
    expect(patternFor({ type: 'url', value: "http://x.example/a'b\\c" })).to.equal("[url:value = 'http://x.example/a\\'b\\\\c']");
  });

  it('maps the script options: action, passive_only, days_to_expire, min_score', () => {
    expect(upsert('k:v', change({ score: 40 })).labels).to.include('action:alert');
    expect(upsert('k:v', change({ score: 40 }), { ...mapping, action: 'allow' }).labels).to.include('action:allow');
    const passive = upsert('k:v', change(), { ...mapping, action: 'block', passiveOnly: true });
    expect(passive.labels).to.include.members(['action:alert', 'passive-only']).and.not.include('action:block');
    expect(upsert('k:v', change(), { ...mapping, daysToExpire: 7 }).valid_until).to.equal('2026-03-08T12:00:00.000Z');
    expect(upsert('k:v', change({ validUntil: '2026-03-02T00:00:00Z' })).valid_until).to.equal('2026-03-02T00:00:00.000Z');
    expect(mapToSentinel('k:v', change({ score: 10 }), { ...mapping, minScore: 50 }, NOW)).to.deep.include({ kind: 'delete' });
    expect(mapToSentinel('k:v', change({ validUntil: '2026-01-01T00:00:00Z' }), mapping, NOW)).to.deep.include({ kind: 'delete' });
  });

  it('keeps valid_from before valid_until and omits what the source does not give', () => {
    const o = upsert('k:v', change({ validFrom: '2027-01-01T00:00:00Z', score: null, tlp: null, description: '' }));
    expect(Date.parse(o.valid_from)).to.be.below(Date.parse(o.valid_until));
    expect(o).to.not.have.any.keys('confidence', 'object_marking_refs', 'description');
    expect(validate(o)).to.deep.equal([]);
  });

  it('revokes with the same id and created, a later modified and valid_until now', () => {
    const o = upsert('domain:evil.example', change({ observable: { type: 'domain', value: 'evil.example' } }));
    const record = parseRecord(JSON.stringify({ id: o.id, created: o.created, valid_from: o.valid_from }))!;
    const r = revokedVersion('domain:evil.example', record, 'deleted in OpenCTI', NOW + 5000);
    expect(r).to.deep.include({ id: o.id, created: o.created, revoked: true, pattern: "[domain-name:value = 'evil.example']", valid_until: new Date(NOW + 5000).toISOString() });
    expect(Date.parse(r.modified)).to.be.above(Date.parse(o.modified));
    expect(validate(r)).to.deep.equal([]);
    expect(parseRecord('not json')).to.equal(null);
  });

  it('routes a key nobody claims to a revocation', () => {
    const route = new SentinelRoute(mapping);
    expect(route.route('ipv4:1.2.3.4', null, NOW).op).to.deep.include({ op: 'delete', key: 'ipv4:1.2.3.4' });
  });
});

describe('Sentinel upload simulator schema checks', () => {
  it('reports missing required properties and bad values the way the API documents', () => {
    expect(validate({ type: 'indicator', created: '2026-01-01T00:00:00Z', modified: '2026-01-01T00:00:00Z', pattern: "[ipv4-addr:value = '1.2.3.4']", pattern_type: 'stix', valid_from: '2026-01-01T00:00:00Z' }))
      .to.deep.equal(['Error for Property=id: Required property is missing. Actual value: NULL.']);
    const good = upsert('ipv4:198.51.100.7', change());
    expect(validate({ ...good, pattern: "[ipv4-addr:value = '1.2.3.4'" })[0]).to.match(/^Error for Property=pattern: Invalid STIX pattern/);
    expect(validate({ ...good, valid_until: good.valid_from })[0]).to.match(/^Error for Property=valid_until/);
    expect(validate({ ...good, confidence: 101 })[0]).to.match(/^Error for Property=confidence/);
    expect(validate({ ...good, type: 'malware' })).to.have.length.above(0);
  });
});
