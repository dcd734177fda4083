import { expect } from 'chai';
import fc from 'fast-check';
import { createContext, normaliseEvent } from '../../src/sources/opencti/normalise.js';

const OCTI = 'extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba';
const SCO = 'extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82';
const ctx = () => createContext('http://opencti:8080');

const indicator = (over: Record<string, unknown> = {}) => ({
  id: 'indicator--0f3d4b3e-6c1a-5b7e-9a52-2f6f0c6c1d11', spec_version: '2.1', type: 'indicator', name: 'C2 1.2.3.4',
  description: 'C2 server', pattern: "[ipv4-addr:value = '1.2.3.4']", pattern_type: 'stix', valid_from: '2023-11-14T22:13:20.000Z',
  valid_until: '2099-02-12T22:13:20.000Z', labels: ['c2'], revoked: false,
  object_marking_refs: ['marking-definition--f88d31f6-486f-44da-b317-01333bde0b82'],
  extensions: { [OCTI]: { extension_type: 'property-extension', id: '5b6d2f0e-1c2a-4b9e-8a51-3d0f1e2a7c44', type: 'Indicator', score: 80 } },
  ...over,
});
const body = (type: string, data: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ version: '4', type, scope: 'external', message: 'm', origin: {}, data, ...extra });

describe('OpenCTI normaliser', () => {
  it('turns an indicator create into its observables with score, labels, TLP and a link back', () => {
    const n = normaliseEvent('create', body('create', indicator()), ctx());
    expect(n.rejected).to.equal(null);
    expect(n.changes).to.have.length(1);
    const c = n.changes[0]!;
    expect(c.observable).to.deep.equal({ type: 'ipv4', value: '1.2.3.4' });
    expect(c.score).to.equal(80);
    expect(c.labels).to.deep.equal(['c2']);
    expect(c.tlp).to.equal('TLP:AMBER');
    expect(c.title).to.equal('C2 1.2.3.4');
    expect(c.sourceRef.url).to.equal('http://opencti:8080/dashboard/id/5b6d2f0e-1c2a-4b9e-8a51-3d0f1e2a7c44');
  });

  it('extracts every observable of an OR pattern with quoted hash keys', () => {
    const sha = 'a'.repeat(64);
    const n = normaliseEvent('create', body('create', indicator({ pattern: `[file:hashes.'SHA-256' = '${sha}' OR file:hashes.MD5 = '${'B'.repeat(32)}']` })), ctx());
    expect(n.changes.map((c) => c.observable)).to.deep.equal([{ type: 'sha256', value: sha }, { type: 'md5', value: 'b'.repeat(32) }]);
  });

  it('dispatches on the SSE event name: a filter-exit delete carries type "update"', () => {
    const n = normaliseEvent('delete', body('update', indicator(), { context: { patch: [], reverse_patch: [] } }), ctx());
    expect(n.retractAll).to.equal(true);
  });

  it('reads recovery bodies that have no type', () => {
    const n = normaliseEvent('create', JSON.stringify({ data: indicator(), message: 'm', origin: { referer: 'init-create' }, version: '4' }), ctx());
    expect(n.changes).to.have.length(1);
  });

  it('retracts a revoked indicator', () => {
    expect(normaliseEvent('update', body('update', indicator({ revoked: true })), ctx()).retractAll).to.equal(true);
  });

  it('retracts merged sources', () => {
    const n = normaliseEvent('merge', body('merge', indicator(), { context: { sources: [{ id: 'indicator--old' }] } }), ctx());
    expect(n.alsoRetract).to.deep.equal(['indicator--old']);
    expect(n.changes).to.have.length(1);
  });

  it('rejects malformed JSON, a missing id and invalid patterns with a reason', () => {
    expect(normaliseEvent('create', '{not json', ctx()).rejected?.code).to.equal('malformed_event');
    expect(normaliseEvent('create', body('create', { type: 'indicator' }), ctx()).rejected?.code).to.equal('malformed_event');
    const bad = normaliseEvent('create', body('create', indicator({ pattern: "[ipv4-addr:value = '1.2.3.4'" })), ctx());
    expect(bad.rejected?.code).to.equal('invalid_pattern');
    expect(bad.retractAll).to.equal(true);
  });

  it('dead-letters an indicator with nothing Defender could use, naming why', () => {
    const n = normaliseEvent('create', body('create', indicator({ pattern: "[process:name = 'evil.exe']" })), ctx());
    expect(n.rejected?.code).to.equal('no_supported_observable');
    expect(n.rejected?.detail).to.include('process:name');
  });

  it('ignores non-STIX pattern types and non-indicator objects', () => {
    expect(normaliseEvent('create', body('create', indicator({ pattern_type: 'yara', pattern: 'rule x {}' })), ctx()).ignored).to.include('yara');
    expect(normaliseEvent('create', body('create', { id: 'identity--1', type: 'identity', name: 'ACME' }), ctx()).ignored).to.be.a('string');
  });

  it('accepts observables directly, files by their strongest hash', () => {
    const file = { id: 'file--1', type: 'file', hashes: { MD5: 'c'.repeat(32), 'SHA-256': 'D'.repeat(64) }, extensions: { [SCO]: { score: 55 } } };
    const n = normaliseEvent('create', body('create', file), ctx());
    expect(n.changes.map((c) => [c.observable.type, c.observable.value, c.score])).to.deep.equal([['sha256', 'd'.repeat(64), 55]]);
    const domain = normaliseEvent('create', body('create', { id: 'domain-name--1', type: 'domain-name', value: 'Bücher.Example.' }), ctx());
    expect(domain.changes[0]!.observable).to.deep.equal({ type: 'domain', value: 'xn--bcher-kva.example' });
  });

  it('learns TLP names of custom markings from dependency events', () => {
    const c = ctx();
    normaliseEvent('create', JSON.stringify({ data: { id: 'marking-definition--custom', type: 'marking-definition', name: 'TLP:RED' }, origin: { referer: 'init-dependencies' }, version: '4' }), c);
    const n = normaliseEvent('create', body('create', indicator({ object_marking_refs: ['marking-definition--custom'] })), c);
    expect(n.changes[0]!.tlp).to.equal('TLP:RED');
  });

  it('never throws, whatever arrives', () => {
    fc.assert(fc.property(fc.string(), fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ data: v }))), (name, data) => {
      const n = normaliseEvent(name, data, ctx());
      expect(n).to.have.property('changes').that.is.an('array');
    }), { numRuns: 500 });
  });
});
