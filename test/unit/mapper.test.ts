import { expect } from 'chai';
import { actionForScore, mapToDefender, resolveAction, type DefenderMapping } from '../../src/sinks/defender/mapper.js';
import type { IndicatorChange, ObservableType } from '../../src/core/types.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');
const DAY = 86_400_000;

const mapping = (over: Partial<DefenderMapping> = {}): DefenderMapping => ({
  expireDays: 30, expireDaysByType: {}, defaultAction: 'Alert', passiveOnly: false, minScore: 0,
  application: 'ThreatBridge', rbacGroupNames: [], tags: [], ...over,
});

const change = (type: ObservableType, value: string, score: number | null, over: Partial<IndicatorChange> = {}): IndicatorChange => ({
  observable: { type, value }, score, labels: ['c2'], tlp: 'TLP:AMBER', title: 'Evil', description: 'C2 server',
  validFrom: null, validUntil: null, sourceRef: { system: 'opencti', id: 'indicator--1', url: 'http://octi/dashboard/id/1' }, ...over,
});

function upsert(c: IndicatorChange, m = mapping()) {
  const r = mapToDefender(c, m, NOW);
  if (r.kind !== 'upsert') throw new Error(`expected upsert, got ${r.kind}: ${r.reason}`);
  return r.body;
}

describe('Defender mapping', () => {
  it('maps score bands to current action names and severities', () => {
    const cases: [number, string, string][] = [
      [100, 'Block', 'High'], [60, 'Block', 'High'], [59, 'Audit', 'Medium'], [30, 'Audit', 'Medium'],
      [29, 'Warn', 'Low'], [1, 'Warn', 'Low'], [0, 'Audit', 'Informational'],
    ];
    for (const [score, action, severity] of cases) {
      const b = upsert(change('ipv4', '1.2.3.4', score));
      expect([score, b.action, b.severity]).to.deep.equal([score, action, severity]);
    }
  });

  it('always asks for an alert with Audit (Defender rejects Audit without it)', () => {
    for (const score of [0, 45]) expect(upsert(change('domain', 'evil.com', score)).generateAlert).to.equal(true);
    // Even when the source's config turns alerts off, which it does for the other actions.
    const quiet = { hints: { generateAlert: false } };
    expect(upsert(change('domain', 'evil.com', 45, quiet))).to.include({ action: 'Audit', generateAlert: true });
    expect(upsert(change('domain', 'evil.com', 90, quiet))).to.include({ action: 'Block', generateAlert: false });
  });

  it('never asks for an alert with Allowed (Defender does not alert on it)', () => {
    const b = upsert(change('domain', 'partner.example', 90), mapping({ action: 'Allowed' }));
    expect([b.action, b.generateAlert]).to.deep.equal(['Allowed', false]);
  });

  it('lets the configured action override the score, translating legacy names per type', () => {
    expect(upsert(change('ipv4', '1.2.3.4', 90), mapping({ action: 'Alert' })).action).to.equal('Audit');
    expect(upsert(change('sha256', 'a'.repeat(64), 10), mapping({ action: 'AlertAndBlock' })).action).to.equal('BlockAndRemediate');
    expect(upsert(change('url', 'http://x.com/a', 10), mapping({ action: 'AlertAndBlock' })).action).to.equal('Block');
  });

  it('sends everything as Audit in passive-only mode', () => {
    expect(upsert(change('ipv4', '1.2.3.4', 95), mapping({ passiveOnly: true })).action).to.equal('Audit');
  });

  it('uses default_action when the source gives no score', () => {
    expect(upsert(change('ipv4', '1.2.3.4', null)).action).to.equal('Audit');
    expect(upsert(change('ipv4', '1.2.3.4', null), mapping({ defaultAction: 'Block' })).action).to.equal('Block');
  });

  it('never sends an action a type does not take', () => {
    expect(resolveAction('Warn', 'CertificateThumbprint')).to.equal(null);
    expect(resolveAction('Block', 'CertificateThumbprint')).to.equal('BlockAndRemediate');
    expect(resolveAction('BlockAndRemediate', 'IpAddress')).to.equal('Block');
    const r = mapToDefender(change('cert-sha1', 'b'.repeat(40), 40), mapping(), NOW);
    expect(r.kind).to.equal('delete');
    expect(r.reason).to.include('CertificateThumbprint');
    expect(upsert(change('cert-sha1', 'b'.repeat(40), 80)).action).to.equal('BlockAndRemediate');
  });

  it('expires at the earlier of valid_until and now + expire days (per type when set)', () => {
    expect(upsert(change('ipv4', '1.2.3.4', 80)).expirationTime).to.equal('2026-01-31T00:00:00Z');
    expect(upsert(change('url', 'http://a.com/', 80), mapping({ expireDaysByType: { url: 7 } })).expirationTime).to.equal('2026-01-08T00:00:00Z');
    const soon = new Date(NOW + 2 * DAY).toISOString();
    expect(upsert(change('ipv4', '1.2.3.4', 80, { validUntil: soon })).expirationTime).to.equal('2026-01-03T00:00:00Z');
  });

  it('removes what is already expired or scored below the floor', () => {
    expect(mapToDefender(change('ipv4', '1.2.3.4', 80, { validUntil: '2025-12-31T00:00:00Z' }), mapping(), NOW).kind).to.equal('delete');
    expect(mapToDefender(change('ipv4', '1.2.3.4', 10), mapping({ minScore: 20 }), NOW).kind).to.equal('delete');
  });

  it('has no Defender type for email', () => {
    expect(mapToDefender(change('email', 'a@b.com', 80), mapping(), NOW).kind).to.equal('unsupported');
  });

  it('writes IPv6 with all eight segments', () => {
    expect(upsert(change('ipv6', '2001:db8::1', 80)).indicatorValue).to.equal('2001:db8:0:0:0:0:0:1');
  });

  it('carries title, tags, TLP, a link back and the source id', () => {
    const b = upsert(change('domain', 'evil.com', 80), mapping({ tags: ['team-a'], rbacGroupNames: ['servers'], recommendedActions: 'isolate' }));
    expect(b.title).to.equal('Evil');
    expect(b.description).to.include('C2 server').and.include('Tags: opencti, team-a, c2').and.include('TLP:AMBER')
      .and.include('http://octi/dashboard/id/1');
    expect(b.externalId).to.equal('indicator--1');
    expect(b.rbacGroupNames).to.deep.equal(['servers']);
    expect(b.recommendedActions).to.equal('isolate');
    expect(b.application).to.equal('ThreatBridge');
  });

  it('keeps the score bands of the issue at their edges', () => {
    expect([60, 59, 30, 29, 1, 0].map(actionForScore)).to.deep.equal(['Block', 'Alert', 'Alert', 'Warn', 'Warn', 'Audit']);
  });
});
