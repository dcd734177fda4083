// Issue 13: every normaliser is total on hostile input. A regression test for each case of the
// issue, then seeded property runs of random and hostile payloads through each source's normaliser
// (and the mapper behind it), asserting that nothing throws and that good neighbours survive.
import { expect } from 'chai';
import fc from 'fast-check';
import type { NormalisedEvent } from '../../src/core/types.js';
import { mapToSentinel } from '../../src/sinks/sentinel/mapper.js';
import { normaliseAlert } from '../../src/sources/defender-alerts/normalise.js';
import { readAlert, readMachine, readRows } from '../../src/microsoft/defender/read.js';
import { alertSnapshot, huntedAddresses, machineSnapshot } from '../../src/sources/defender-assets/snapshot.js';
import { mispSection } from '../../src/sources/misp/config.js';
import { EventCache, normaliseZmq, attributeItem, type MispContext } from '../../src/sources/misp/normalise.js';
import { readAttribute } from '../../src/sources/misp/model.js';
import { createContext, normaliseEvent } from '../../src/sources/opencti/normalise.js';

const SEED = 1313;
const NOW = Date.parse('2026-03-10T15:30:00Z');
const HOSTILE_KEYS = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', 'prototype'];
const LONE = '\ud800';

/** Values that break careless code: objects with bad toString, prototype names, lone surrogates, huge numbers. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, undefined, true, 0, -1, NaN, Infinity, 1e308, '', ' ', LONE, `x${LONE}y`, ...HOSTILE_KEYS,
    { toString: 1 }, { toString: null, valueOf: null }, [], [null], { __proto__: null }),
  fc.string(), fc.integer(), fc.double(),
  fc.array(fc.constantFrom<unknown>(...HOSTILE_KEYS, 1, null, { toString: 1 }), { maxLength: 3 }),
);
const anyJson = fc.oneof(fc.jsonValue({ maxDepth: 3 }), hostileValue);
/** An object with the fields a normaliser reads set to hostile values, and some random extra ones. */
const hostileRecord = (fields: string[]) =>
  fc.tuple(fc.record(Object.fromEntries(fields.map((f) => [f, hostileValue])), { requiredKeys: [] }), fc.dictionary(fc.string(), anyJson, { maxKeys: 3 }))
    .map(([known, extra]) => ({ ...extra, ...known }));

const OCTI = 'http://opencti:8080';
const sse = (data: unknown) => JSON.stringify({ data });
const expectEvent = (n: NormalisedEvent) => {
  expect(n).to.include.all.keys(['sourceRef', 'changes', 'retractAll', 'alsoRetract', 'skipped', 'rejected', 'ignored']);
  expect(() => JSON.stringify(n)).not.to.throw();
};

function mispCtx(): MispContext {
  return { policy: { ...mispSection.parse({ published_only: false }), url: 'https://misp.example' }, events: new EventCache(), now: () => NOW };
}
const attr = (o: Record<string, unknown>) => ({
  id: '66', event_id: '7', object_id: '0', category: 'Network activity', type: 'ip-dst', value: '203.0.113.7',
  to_ids: true, timestamp: '1773000000', deleted: false, comment: '', ...o,
});

describe('hostile input: normalisers are total', () => {
  describe('the cases of issue 13', () => {
    it('OpenCTI: an id with a lone surrogate is one rejection, not a throw in encodeURIComponent', () => {
      for (const data of [
        { id: `indicator--${LONE}`, type: 'indicator', pattern: "[ipv4-addr:value = '198.51.100.1']" },
        { id: 'indicator--0b7c', type: 'indicator', pattern: "[ipv4-addr:value = '198.51.100.1']", extensions: { 'extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba': { id: `x${LONE}` } } },
      ]) {
        const n = normaliseEvent('create', sse(data), createContext(OCTI));
        expect(n.rejected).to.deep.equal({ code: 'malformed_event', detail: 'id is not well-formed Unicode (lone surrogate)' });
      }
    });

    it('OpenCTI: a type that is an object is one rejection, not a throw in String()', () => {
      const n = normaliseEvent('create', sse({ id: 'x--1', type: { toString: 1 }, value: '198.51.100.1' }), createContext(OCTI));
      expect(n.rejected).to.deep.equal({ code: 'malformed_event', detail: 'type is an object, not a STIX type name' });
      expect(normaliseEvent('update', sse({ id: 'x--1', type: 'x-unknown', value: '198.51.100.1' }), createContext(OCTI)).ignored)
        .to.equal('type "x-unknown" is neither an indicator nor a supported observable');
    });

    it('OpenCTI: object_marking_refs ["__proto__"] or ["constructor"] give no TLP, and the Sentinel mapper maps the change', () => {
      for (const ref of ['__proto__', 'constructor', 'toString']) {
        const n = normaliseEvent('create', sse({ id: 'indicator--1', type: 'indicator', pattern: "[ipv4-addr:value = '198.51.100.1']", object_marking_refs: [ref] }), createContext(OCTI));
        expect(n.changes).to.have.length(1);
        const change = n.changes[0]!;
        expect(change.tlp, ref).to.equal(null);
        const mapped = mapToSentinel('ipv4|198.51.100.1', change, { sink: 'sentinel', passiveOnly: false, daysToExpire: 30, minScore: 0, labels: [] }, NOW);
        expect(mapped.kind).to.equal('upsert');
      }
      // A real TLP marking still counts.
      const red = normaliseEvent('create', sse({ id: 'indicator--2', type: 'indicator', pattern: "[ipv4-addr:value = '198.51.100.2']",
        object_marking_refs: ['__proto__', 'marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed'] }), createContext(OCTI));
      expect(red.changes[0]?.tlp).to.equal('TLP:RED');
    });

    it('MISP: an attribute type constructor, __proto__ or toString is skipped alone; its valid neighbours arrive (ZeroMQ and REST paths)', () => {
      const ctx = mispCtx();
      const attributes = [
        attr({ uuid: 'good-1', value: '203.0.113.1' }),
        ...['constructor', '__proto__', 'toString'].map((type, i) => attr({ uuid: `bad-${i}`, type, value: `x${i}` })),
        attr({ uuid: 'good-2', type: 'domain', value: 'evil.example' }),
      ];
      const body = JSON.stringify({ Event: { id: '7', uuid: 'e-7', info: 'x', published: true, threat_level_id: 'constructor', Attribute: attributes } });
      const { items } = normaliseZmq('misp_json', body, ctx);
      const byId = new Map(items.map((i) => [i.normalised.sourceRef?.id ?? i.event, i.normalised]));
      expect(byId.get('misp:7:good-1')?.changes.map((c) => c.observable.value)).to.deep.equal(['203.0.113.1']);
      expect(byId.get('misp:7:good-2')?.changes.map((c) => c.observable.value)).to.deep.equal(['evil.example']);
      for (let i = 0; i < 3; i++) expect(byId.get(`misp:7:bad-${i}`)?.skipped.map((s) => s.code)).to.deep.equal(['unsupported_type']);
      // The REST path reads the same rows through readAttribute + attributeItem.
      for (const row of attributes) {
        const a = readAttribute(row)!;
        expect(() => attributeItem(a, null, ctx, 'rest.attribute')).not.to.throw();
      }
    });

    it('MISP: a random action or topic never becomes an event name', () => {
      const ctx = mispCtx();
      const { items } = normaliseZmq('misp_json_attribute', JSON.stringify({ Attribute: attr({ uuid: 'a' }), action: 'random-9f3e' }), ctx);
      expect(items.map((i) => i.event)).to.deep.equal(['attribute.other']);
      expect(normaliseZmq('misp_jsonZZZ', '{}', ctx).items.map((i) => i.event)).to.deep.equal(['other']);
    });
  });

  describe('seeded property runs', () => {
    it('OpenCTI: any stream event normalises without a throw, to a well-formed result', () => {
      const data = hostileRecord(['id', 'type', 'pattern', 'pattern_type', 'name', 'description', 'labels', 'object_marking_refs', 'value', 'hashes',
        'revoked', 'valid_from', 'valid_until', 'x_opencti_score', 'extensions', 'definition']);
      fc.assert(fc.property(fc.constantFrom('create', 'update', 'delete', 'merge', 'sync', 'x'), fc.oneof(data.map(sse), fc.string(), anyJson.map((v) => JSON.stringify(v) ?? '')), (name, raw) => {
        const n = normaliseEvent(name, raw, createContext(OCTI));
        expectEvent(n);
        for (const c of n.changes) {
          expect(mapToSentinel(`${c.observable.type}|${c.observable.value}`, c, { sink: 'sentinel', passiveOnly: false, daysToExpire: 30, minScore: 0, labels: [] }, NOW).kind)
            .to.be.oneOf(['upsert', 'skip']);
        }
      }), { seed: SEED, numRuns: 1500 });
    });

    it('MISP: any ZeroMQ message normalises without a throw, and a good attribute beside hostile ones arrives', () => {
      const hostileAttr = hostileRecord(['uuid', 'event_id', 'type', 'value', 'value1', 'value2', 'to_ids', 'deleted', 'timestamp', 'Tag', 'Object', 'first_seen', 'last_seen']);
      const event = fc.tuple(hostileRecord(['id', 'uuid', 'info', 'published', 'threat_level_id', 'Tag', 'EventTag', 'Orgc']), fc.array(hostileAttr, { maxLength: 5 }));
      fc.assert(fc.property(event, fc.string(), (([header, attrs], action) => {
        const good = attr({ uuid: 'good', event_id: '7', value: '203.0.113.9' });
        const body = { Event: { ...header, id: '7', published: true, Attribute: [...attrs, good] }, action };
        const { items } = normaliseZmq('misp_json', JSON.stringify(body), mispCtx());
        for (const i of items) expectEvent(i.normalised);
        expect(items.find((i) => i.normalised.sourceRef?.id === 'misp:7:good')?.normalised.changes.map((c) => c.observable.value)).to.deep.equal(['203.0.113.9']);
      })), { seed: SEED, numRuns: 500 });
      fc.assert(fc.property(fc.string(), fc.oneof(anyJson.map((v) => JSON.stringify(v) ?? ''), fc.string()), (topic, payload) => {
        for (const t of [topic, 'misp_json_attribute', 'misp_json_event', 'misp_json']) {
          for (const i of normaliseZmq(t, payload, mispCtx()).items) expectEvent(i.normalised);
        }
      }), { seed: SEED, numRuns: 1000 });
    });

    it('Defender alerts: 3,000 alerts of unexpected shape normalise without a throw', () => {
      const alert = hostileRecord(['id', 'lastUpdateTime', 'title', 'severity', 'status', 'incidentId', 'machineId', 'computerDnsName', 'evidence', 'comments',
        'relatedUser', 'mitreTechniques', 'recommendedActions', 'alertCreationTime', 'classification']);
      fc.assert(fc.property(fc.oneof(alert, anyJson), (raw) => {
        const n = normaliseAlert(raw, 'tenant', 'https://security.microsoft.com');
        expect(n).to.satisfy((r: object) => 'change' in r || 'rejected' in r);
      }), { seed: SEED, numRuns: 3000 });
      // With an id and a time, whatever else it holds, the alert is read.
      fc.assert(fc.property(alert, (raw) => {
        const n = normaliseAlert({ ...raw, id: 'da1', lastUpdateTime: '2026-03-10T10:00:00Z' }, 'tenant', 'https://security.microsoft.com');
        expect('change' in n).to.equal(true);
      }), { seed: SEED, numRuns: 500 });
    });

    it('Defender machines: 3,000 machines of unexpected shape are read and built into snapshots without a throw', () => {
      const machine = hostileRecord(['id', 'computerDnsName', 'osPlatform', 'version', 'lastIpAddress', 'lastExternalIpAddress', 'healthStatus', 'riskScore',
        'deviceValue', 'machineTags', 'ipAddresses', 'lastSeen']);
      const rows = fc.sample(fc.oneof(machine, machine.map((m) => ({ ...m, id: 'm-1' })), anyJson), { seed: SEED, numRuns: 3000 });
      const read = readRows(rows, readMachine);
      expect(read.rows.length + read.unreadable).to.equal(3000);
      expect(read.rows.length).to.be.greaterThan(500);
      for (const m of read.rows) {
        expect(() => machineSnapshot(m, { users: [], vulnerabilities: [], vulnerabilityDetails: new Map(), hunted: [] })).not.to.throw();
      }
      for (const a of readRows(fc.sample(fc.oneof(hostileRecord(['id', 'machineId', 'severity', 'title', 'status']), anyJson), { seed: SEED, numRuns: 500 }), readAlert).rows) {
        expect(() => alertSnapshot(a)).not.to.throw();
      }
      expect(() => huntedAddresses([null, 1, { DeviceId: 'm', IPAddresses: [{ IPAddress: 42 }, null, '10.0.0.1'], MacAddress: { toString: 1 } }] as never)).not.to.throw();
    });
  });

  it('a machine with one field of the wrong type keeps its other fields', () => {
    const m = readMachine({ id: 'm-1', computerDnsName: { toString: 1 }, osPlatform: 'Windows11', ipAddresses: [{ ipAddress: 42 }, { ipAddress: '10.0.0.5', macAddress: '00-0C-29-89-79-42', operationalStatus: 'Up' }] });
    expect(m).to.not.equal(null);
    const s = machineSnapshot(m!, { users: null, vulnerabilities: null, vulnerabilityDetails: new Map() });
    expect(s.asset).to.deep.equal({ external_id: 'm-1', name: 'm-1', description: 'Windows11' });
    expect(s.addresses).to.deep.equal([{ ip: '10.0.0.5', mac: '00:0c:29:89:79:42', publicIp: false }]);
    expect(readMachine({ id: { toString: 1 } })).to.equal(null);
  });
});

