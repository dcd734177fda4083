import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClaimSet } from '../../src/core/claims.js';
import { Pipeline, type IngestItem } from '../../src/core/pipeline.js';
import { Router } from '../../src/core/router.js';
import type { IndicatorChange, NormalisedEvent } from '../../src/core/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { DefenderRoute } from '../../src/sinks/defender/route.js';
import type { DefenderMapping } from '../../src/sinks/defender/mapper.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { mispSection } from '../../src/sources/misp/config.js';
import { EventCache, normaliseZmq, type MispContext } from '../../src/sources/misp/normalise.js';

const mapping: DefenderMapping = {
  expireDays: 30, expireDaysByType: {}, defaultAction: 'Alert', passiveOnly: false, minScore: 0, application: 'ThreatBridge', rbacGroupNames: [], tags: [],
};

const change = (sourceId: string, value: string, title = 'Campaign X'): IndicatorChange => ({
  observable: { type: 'ipv4', value }, score: null, labels: [], tlp: null, title, description: '', validFrom: null,
  validUntil: '2099-01-01T00:00:00.000Z', sourceRef: { system: 'misp', id: sourceId }, hints: { ownExpiry: true },
});
const blank = (): NormalisedEvent => ({ sourceRef: null, changes: [], retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: null });
const assert = (sourceId: string, value: string, title?: string): IngestItem => ({
  normalised: { ...blank(), sourceRef: { system: 'misp', id: sourceId }, changes: [change(sourceId, value, title)] },
  raw: null, event: 'test', checkpoint: null, position: sourceId,
});
const group = (prefix: string, keep: string[], onlyClaimedBefore?: number): IngestItem => ({
  normalised: { ...blank(), retractGroup: onlyClaimedBefore === undefined ? { prefix, keep } : { prefix, keep, onlyClaimedBefore } },
  raw: null, event: 'group', checkpoint: null, position: prefix,
});
const nextMs = async () => { const t = Date.now(); while (Date.now() <= t) await new Promise((r) => setImmediate(r)); return Date.now(); };

describe('MISP claims: group retraction and re-assertions through the SQLite store', () => {
  let store: SqliteStore;
  let pipeline: Pipeline;
  beforeEach(() => {
    store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-misp-claims-')));
    pipeline = new Pipeline(store, new Router([new DefenderRoute('defender', mapping)]), createLogger('silent'), new Metrics());
  });
  afterEach(async () => { await store.close(); });

  const ops = (r: { ops: { key: string; op: string }[] }) => r.ops.map((o) => `${o.op} ${o.key}`).sort();

  it('withdraws the group members not kept, and nothing outside the prefix', async () => {
    await pipeline.ingest('misp', [
      assert('misp:1:a', '198.51.100.1'), assert('misp:1:b', '198.51.100.2'), assert('misp:1:c', '198.51.100.3'),
      assert('misp:10:d', '198.51.100.4'), assert('misp:2:e', '198.51.100.5'),
    ]);
    const r = await pipeline.ingest('misp', [group('misp:1:', ['misp:1:a', 'misp:1:c'])]);
    expect(ops(r)).to.deep.equal(['delete ipv4:198.51.100.2']);
    const left = await store.loadClaims([], [], ['misp:']);
    expect(left.map((c) => c.sourceId).sort()).to.deep.equal(['misp:10:d', 'misp:1:a', 'misp:1:c', 'misp:2:e']);
  });

  it('an empty keep withdraws the whole event', async () => {
    await pipeline.ingest('misp', [assert('misp:3:a', '198.51.100.6'), assert('misp:3:b', '198.51.100.7'), assert('misp:4:a', '198.51.100.8')]);
    const r = await pipeline.ingest('misp', [group('misp:3:', [])]);
    expect(ops(r)).to.deep.equal(['delete ipv4:198.51.100.6', 'delete ipv4:198.51.100.7']);
  });

  it('keeps an observable another source object still claims', async () => {
    await pipeline.ingest('misp', [assert('misp:5:a', '198.51.100.9'), assert('misp:6:a', '198.51.100.9')]);
    const r = await pipeline.ingest('misp', [group('misp:5:', [])]);
    expect(r.ops.filter((o) => o.op === 'delete')).to.deep.equal([]);
    expect((await store.loadClaims(['ipv4:198.51.100.9'], [])).map((c) => c.sourceId)).to.deep.equal(['misp:6:a']);
  });

  it('honours onlyClaimedBefore: claims made after it stay', async () => {
    await pipeline.ingest('misp', [assert('misp:7:old', '198.51.100.10')]);
    await nextMs();
    const fullSyncStarted = await nextMs();
    await nextMs();
    await pipeline.ingest('misp', [assert('misp:7:new', '198.51.100.11')]);
    const r = await pipeline.ingest('misp', [group('misp:', [], fullSyncStarted)]);
    expect(ops(r)).to.deep.equal(['delete ipv4:198.51.100.10']);
    expect((await store.loadClaims([], [], ['misp:7:'])).map((c) => c.sourceId)).to.deep.equal(['misp:7:new']);
  });

  it('an identical re-assertion produces no sink operation; a changed one does', async () => {
    const first = await pipeline.ingest('misp', [assert('misp:8:a', '198.51.100.12')]);
    expect(ops(first)).to.deep.equal(['upsert ipv4:198.51.100.12']);
    const same = await pipeline.ingest('misp', [assert('misp:8:a', '198.51.100.12')]);
    expect(same.ops).to.deep.equal([]);
    const changed = await pipeline.ingest('misp', [assert('misp:8:a', '198.51.100.12', 'Campaign Y')]);
    expect(ops(changed)).to.deep.equal(['upsert ipv4:198.51.100.12']);
    expect((changed.ops[0]!.payload as { title: string }).title).to.contain('Campaign Y');
  });

  it('ClaimSet: sourcesWithPrefix filters by prefix and by claim time', () => {
    const set = new ClaimSet([
      { key: 'ipv4:1.1.1.1', sourceId: 'misp:1:a', change: change('misp:1:a', '1.1.1.1'), updatedAt: 100 },
      { key: 'ipv4:1.1.1.2', sourceId: 'misp:1:b', change: change('misp:1:b', '1.1.1.2'), updatedAt: 300 },
      { key: 'ipv4:1.1.1.3', sourceId: 'misp:12:c', change: change('misp:12:c', '1.1.1.3'), updatedAt: 100 },
    ]);
    expect(set.sourcesWithPrefix('misp:1:').sort()).to.deep.equal(['misp:1:a', 'misp:1:b']);
    expect(set.sourcesWithPrefix('misp:1:', 200)).to.deep.equal(['misp:1:a']);
    set.retract('misp:1:a');
    expect(set.sourcesWithPrefix('misp:1:')).to.deep.equal(['misp:1:b']);
    // an identical replace records nothing
    const before = set.changes().upserts.length;
    set.replace('misp:1:b', [change('misp:1:b', '1.1.1.2')], 400);
    expect(set.changes().upserts.length).to.equal(before);
  });

  it('misp_json re-published: unchanged attributes give no operation, a removed one (object attribute included) is deleted', async () => {
    // One clock reading for the whole test: re-publishing across midnight would legitimately move expiry.
    const at = Date.now();
    const ctx: MispContext = { policy: { ...mispSection.parse({}), url: 'https://misp.example' }, events: new EventCache(), now: () => at };
    // Changed an hour ago: expiry counts from the attribute's timestamp (expire_from valid_from).
    const a = (uuid: string, type: string, value: string) => ({ uuid, type, value, to_ids: true, timestamp: String(Math.floor(at / 1000) - 3600) });
    const publish = (attrs: object[], objectAttrs: object[]) => {
      const body = { Event: { id: '42', uuid: 'e-42', info: 'Campaign', published: false, threat_level_id: '2', Tag: [{ name: 'tlp:green' }],
        Attribute: attrs, Object: objectAttrs.length ? [{ name: 'file', Attribute: objectAttrs }] : [] } };
      return normaliseZmq('misp_json', JSON.stringify(body), ctx).items.map((i): IngestItem =>
        ({ normalised: i.normalised, raw: null, event: i.event, checkpoint: null, position: i.event }));
    };
    const ip = a('a-1', 'ip-dst', '198.51.100.20');
    const dom = a('a-2', 'domain', 'evil.example');
    const file = a('o-1', 'sha256', 'd'.repeat(64));
    const first = await pipeline.ingest('misp', publish([ip, dom], [file]));
    expect(ops(first)).to.deep.equal(['upsert domain:evil.example', 'upsert ipv4:198.51.100.20', `upsert sha256:${'d'.repeat(64)}`]);
    const again = await pipeline.ingest('misp', publish([ip, dom], [file]));
    expect(again.ops).to.deep.equal([]);
    const fewer = await pipeline.ingest('misp', publish([ip], [file]));
    expect(ops(fewer)).to.deep.equal(['delete domain:evil.example']);
    const noObject = await pipeline.ingest('misp', publish([ip], []));
    expect(ops(noObject)).to.deep.equal([`delete sha256:${'d'.repeat(64)}`]);
  });
});
