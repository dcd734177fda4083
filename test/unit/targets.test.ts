// Defender targets (issue 18): the configuration forms, the per-target route filter, and the hub
// building one sink instance per tenant whose router applies each tenant's route. Expected values
// are written out by hand from the route table here, not computed by the code under test.
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/load.js';
import { assertStartable } from '../../src/config/flows.js';
import { configSchema } from '../../src/config/schema.js';
import { resolveSentinelTargets, resolveTargets } from '../../src/config/targets.js';
import type { Claim, IndicatorChange } from '../../src/core/types.js';
import { activeRouter, Hub, routeWarnings } from '../../src/flows/hub.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { targetAccepts } from '../../src/sinks/defender/route.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { PostgresStore } from '../../src/store/postgres.js';
import type { Store } from '../../src/core/store.js';
import { dropSchema, freshSchemaName, requirePostgres, TEST_PG_URL } from '../support/postgres.js';
import { createGuard } from '../../src/guard/index.js';
import { DEFENDER_GATE_ACTIONS } from '../../src/guard/guard.js';
import type { OutboxItem } from '../../src/core/types.js';

const opencti = {
  OPENCTI_URL: 'http://opencti:8080/',
  OPENCTI_TOKEN: 'opencti-token-value',
  CONNECTOR_ID: '6d0b5b6a-41d7-4a53-9d7d-6f1b2c3d4e5f',
  CONNECTOR_LIVE_STREAM_ID: 'stream-1',
};

function emptyFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'tb-targets-')), 'config.yml');
  writeFileSync(file, '');
  return file;
}

const load = (env: Record<string, string>) => loadConfig({ env: { ...opencti, ...env }, file: emptyFile() });

/** What `run` says at start (schema, then the flows' start-up check), with `env` as the process's environment. */
function problems(env: Record<string, string>): string {
  const all = { ...opencti, ...env };
  const saved = { ...process.env };
  Object.assign(process.env, all);
  try {
    assertStartable(load(env));
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  } finally {
    for (const k of Object.keys(all)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  throw new Error('expected a ConfigError');
}

function claim(over: Partial<IndicatorChange> & { type?: IndicatorChange['observable']['type']; value?: string; system?: 'opencti' | 'misp' }): Claim {
  const change: IndicatorChange = {
    observable: { type: over.type ?? 'ipv4', value: over.value ?? '198.51.100.7' },
    score: over.score === undefined ? 80 : over.score, labels: over.labels ?? [], tlp: over.tlp === undefined ? null : over.tlp,
    title: 't', description: '', validFrom: null, validUntil: null, sourceRef: { system: over.system ?? 'opencti', id: 'indicator--1' },
  };
  return { key: `${change.observable.type}:${change.observable.value}`, sourceId: 'indicator--1', change, updatedAt: 1 };
}

describe('Defender targets: configuration', () => {
  it('keeps the single-tenant variables as the target "default" (sink "defender") before the numbered ones', () => {
    const c = load({
      MICROSOFT_DEFENDER_INTEL_TENANT_ID: 'tenant-a', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'shared-app', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 'shared-secret',
      DEFENDER_TARGET_2_NAME: 'fabrikam', DEFENDER_TARGET_2_TENANT_ID: 'tenant-c', DEFENDER_TARGET_2_CLIENT_ID: 'own-app', DEFENDER_TARGET_2_CLIENT_SECRET: 'own-secret',
      DEFENDER_TARGET_1_NAME: 'contoso', DEFENDER_TARGET_1_TENANT_ID: 'tenant-b', DEFENDER_TARGET_1_MIN_SCORE: '50',
      DEFENDER_TARGET_1_TYPES: 'ipv4,domain', DEFENDER_TARGET_1_MAX_TLP: 'green', DEFENDER_TARGET_1_LABELS_EXCLUDE: 'Internal',
      DEFENDER_TARGET_1_ACTION: 'Audit', DEFENDER_TARGET_1_PROTECTED_VALUES: 'contoso.com,10.0.0.0/8',
    });
    const t = resolveTargets(c.microsoft_defender_intel);
    expect(t.map((x) => [x.name, x.sink, x.tenantId, x.clientId, x.clientSecret])).to.deep.equal([
      ['default', 'defender', 'tenant-a', 'shared-app', 'shared-secret'],
      ['contoso', 'defender:contoso', 'tenant-b', 'shared-app', 'shared-secret'],
      ['fabrikam', 'defender:fabrikam', 'tenant-c', 'own-app', 'own-secret'],
    ]);
    const contoso = t[1]!;
    expect(contoso.filter.minScore).to.equal(50);
    expect([...contoso.filter.types!]).to.deep.equal(['ipv4', 'domain']);
    expect(contoso.filter.maxTlp).to.equal('TLP:GREEN');
    expect([...contoso.filter.labelsExclude]).to.deep.equal(['internal']);
    expect(contoso.action).to.equal('Audit');
    expect(contoso.protectedValues).to.deep.equal(['contoso.com', '10.0.0.0/8']);
  });

  it('takes the list as JSON in MICROSOFT_DEFENDER_INTEL_TARGETS, and names a target without a name target<N>', () => {
    const c = load({ MICROSOFT_DEFENDER_INTEL_TARGETS: JSON.stringify([{ name: 'x', tenant_id: 't1', client_id: 'a', client_secret: 's' }]) });
    expect(resolveTargets(c.microsoft_defender_intel).map((t) => t.sink)).to.deep.equal(['defender:x']);
    const n = load({ DEFENDER_TARGET_7_TENANT_ID: 't7', DEFENDER_TARGET_7_CLIENT_ID: 'a', DEFENDER_TARGET_7_CLIENT_SECRET: 's' });
    expect(resolveTargets(n.microsoft_defender_intel).map((t) => t.name)).to.deep.equal(['target7']);
  });

  it('names the numbered variable of a bad value and an unknown key', () => {
    const msg = problems({ DEFENDER_TARGET_3_TENANT_ID: 't', DEFENDER_TARGET_3_CLIENT_ID: 'a', DEFENDER_TARGET_3_CLIENT_SECRET: 's',
      DEFENDER_TARGET_3_MIN_SCORE: 'high', DEFENDER_TARGET_3_TENANTID: 'typo' });
    expect(msg).to.include('DEFENDER_TARGET_3_MIN_SCORE');
    expect(msg).to.include('DEFENDER_TARGET_3_TENANTID');
  });

  it('reports hostile variable names as unknown keys instead of using them (__proto__, constructor)', () => {
    const msg = problems({ DEFENDER_TARGET_1_TENANT_ID: 't', DEFENDER_TARGET_1_CLIENT_ID: 'a', DEFENDER_TARGET_1_CLIENT_SECRET: 's',
      DEFENDER_TARGET_1___PROTO__: '{"polluted":true}', DEFENDER_TARGET_1_CONSTRUCTOR: 'x' });
    expect(msg).to.include('DEFENDER_TARGET_1___PROTO__');
    expect(msg).to.include('DEFENDER_TARGET_1_CONSTRUCTOR');
    expect(({} as Record<string, unknown>)['polluted']).to.equal(undefined);
  });

  it('asks for a target\'s application, naming its own variable and the shared one', () => {
    const msg = problems({ DEFENDER_TARGET_1_TENANT_ID: 't1' });
    expect(msg).to.include('DEFENDER_TARGET_1_CLIENT_ID or the shared MICROSOFT_DEFENDER_INTEL_CLIENT_ID');
    expect(msg).to.include('DEFENDER_TARGET_1_CLIENT_SECRET or the shared MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET');
  });

  it('refuses two targets of one name, and "default" beside the single-tenant keys', () => {
    expect(problems({ DEFENDER_TARGET_1_NAME: 'a', DEFENDER_TARGET_1_TENANT_ID: 't1', DEFENDER_TARGET_2_NAME: 'A', DEFENDER_TARGET_2_TENANT_ID: 't2',
      MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'c', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 's' })).to.include('used twice');
    expect(problems({ MICROSOFT_DEFENDER_INTEL_TENANT_ID: 't0', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'c', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 's',
      DEFENDER_TARGET_1_NAME: 'default', DEFENDER_TARGET_1_TENANT_ID: 't1' })).to.include('DEFENDER_TARGET_1_NAME');
  });

  it('never echoes a target\'s secret in an error', () => {
    const secret = 'target-secret-value-123';
    const bad = problems({ MICROSOFT_DEFENDER_INTEL_TARGETS: `[{"name":"x","tenant_id":"t","client_secret":"${secret}"` });
    expect(bad).to.not.include(secret);
    const wrongType = problems({ MICROSOFT_DEFENDER_INTEL_TARGETS: JSON.stringify([{ name: 'x', tenant_id: 't', client_secret: secret, min_score: 'no' }]) });
    expect(wrongType).to.not.include(secret);
    expect(wrongType).to.include('min_score');
  });
});

describe('Sentinel workspaces as targets', () => {
  it('keeps SENTINEL_WORKSPACE_ID as "default" (sink "sentinel"), adds numbered workspaces with their own application and route', () => {
    const c = load({
      MICROSOFT_DEFENDER_INTEL_TENANT_ID: 'tenant-a', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'shared-app', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 'shared-secret',
      OPENCTI_TARGETS: 'sentinel', SENTINEL_WORKSPACE_ID: 'ws-0',
      SENTINEL_TARGET_1_NAME: 'emea', SENTINEL_TARGET_1_WORKSPACE_ID: 'ws-1', SENTINEL_TARGET_1_CLIENT_ID: 'emea-app', SENTINEL_TARGET_1_CLIENT_SECRET: 'emea-secret',
      SENTINEL_TARGET_1_TYPES: 'url', SENTINEL_TARGET_1_MAX_TLP: 'amber',
    });
    const t = resolveSentinelTargets(c.sentinel);
    expect(t.map((x) => [x.name, x.sink, x.workspaceId, x.clientId ?? null])).to.deep.equal([['default', 'sentinel', 'ws-0', null], ['emea', 'sentinel:emea', 'ws-1', 'emea-app']]);
    expect([...t[1]!.filter.types!]).to.deep.equal(['url']);
    const router = activeRouter(c);
    const decisions = router.route('ipv4:198.51.100.7', [claim({ score: 80 })], Date.now());
    expect(decisions.map((d) => [d.sink, d.op?.op ?? null])).to.deep.equal([['sentinel', 'upsert'], ['sentinel:emea', 'delete']]);
  });

  it('names SENTINEL_TARGET_<N>_* in errors and asks for a workspace', () => {
    const msg = problems({ OPENCTI_TARGETS: 'sentinel', SENTINEL_TARGET_2_NAME: 'x', SENTINEL_TARGET_2_MIN_SCORE: 'many',
      MICROSOFT_DEFENDER_INTEL_TENANT_ID: 't', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'c', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 's' });
    expect(msg).to.include('SENTINEL_TARGET_2_MIN_SCORE');
    expect(msg).to.include('SENTINEL_TARGET_2_WORKSPACE_ID');
  });
});

describe('Defender targets: route filter', () => {
  const [t] = resolveTargets(configSchema.shape.microsoft_defender_intel.parse({ targets: [{
    name: 'r', tenant_id: 't', sources: ['misp'], min_score: 50, types: ['domain', 'url'], max_tlp: 'green', labels_include: ['Phishing', 'c2'], labels_exclude: ['internal'],
  }] }));
  const f = t!.filter;
  const base = { system: 'misp' as const, type: 'domain' as const, value: 'evil.example', score: 60, labels: ['phishing'], tlp: 'TLP:GREEN' };

  it('takes a claim that passes every rule', () => {
    expect(targetAccepts(f, claim(base))).to.equal(true);
    expect(targetAccepts(f, claim({ ...base, tlp: null }))).to.equal(true); // unmarked passes the ceiling
    expect(targetAccepts(f, claim({ ...base, type: 'hostname' }))).to.equal(true); // hostname is a domain to the sinks
  });

  for (const [why, over, ] of [
    ['another source', { system: 'opencti' }],
    ['a score below the minimum', { score: 49 }],
    ['no score under a minimum', { score: null }],
    ['a type not listed', { type: 'ipv4', value: '198.51.100.7' }],
    ['a TLP above the ceiling', { tlp: 'TLP:AMBER' }],
    ['an unknown TLP (ranks as RED)', { tlp: 'TLP:EX:CHR' }],
    ['no included label', { labels: ['malware'] }],
    ['an excluded label, whatever else', { labels: ['c2', 'Internal'] }],
  ] as [string, Record<string, unknown>][]) {
    it(`refuses ${why}`, () => expect(targetAccepts(f, claim({ ...base, ...over }))).to.equal(false));
  }
});

describe('Defender targets: protected values of one tenant', () => {
  it('downgrades a Block on a value one tenant protects in that tenant only; the shared list still applies everywhere', async () => {
    const store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-targets-guard-')));
    try {
      const config = configSchema.parse({ guard: { builtin: false, domains: ['shared.example'] } });
      const guard = createGuard(config, store, createLogger('silent'), new Metrics());
      const own = guard.gate('defender:contoso', DEFENDER_GATE_ACTIONS, undefined, ['contoso.com', '192.0.2.0/24']);
      const other = guard.gate('defender:fabrikam', DEFENDER_GATE_ACTIONS);
      const item = (key: string, n: number): OutboxItem<{ action: string }> => ({ sink: 'x', key, op: 'upsert', payload: { action: 'Block' },
        sourceRef: { system: 'opencti', id: `indicator--${n}` }, seq: n, attempts: 0, enqueuedAt: 0 } as unknown as OutboxItem<{ action: string }>);
      const items = [item('domain:mail.contoso.com', 1), item('ipv4:192.0.2.7', 2), item('domain:www.shared.example', 3), item('domain:evil.example', 4)];
      const actions = async (gate: typeof own) => {
        const out = await gate.screen(items, new Set(), (p) => p.action, (p, action) => ({ ...p, action }));
        return Object.fromEntries(out.send.map((i) => [i.key, i.payload.action]));
      };
      expect(await actions(own)).to.deep.equal({ 'domain:mail.contoso.com': 'Audit', 'ipv4:192.0.2.7': 'Audit', 'domain:www.shared.example': 'Audit', 'domain:evil.example': 'Block' });
      expect(await actions(other)).to.deep.equal({ 'domain:mail.contoso.com': 'Block', 'ipv4:192.0.2.7': 'Block', 'domain:www.shared.example': 'Audit', 'domain:evil.example': 'Block' });
    } finally {
      await store.close();
    }
  });
});

const hubConfig = configSchema.parse({
  opencti: { url: 'http://127.0.0.1:9', token: 'x' },
  connector: { id: '6d0b5b6a-41d7-4a53-9d7d-6f1b2c3d4e5f', live_stream_id: 's' },
  microsoft_defender_intel: {
    tenant_id: 't0', client_id: 'app', client_secret: 'secret',
    targets: [
      { name: 'pilot', tenant_id: 't1', action: 'Audit', min_score: 70 },
      { name: 'mispOnly', tenant_id: 't2', sources: ['misp'] },
    ],
  },
});

/** The upgrade path on a store: single tenant delivered, then a second tenant added. */
async function upgrade(store: Store): Promise<void> {
  const config = hubConfig;
  const legacy = configSchema.parse({ ...config, microsoft_defender_intel: { tenant_id: 't0', client_id: 'app', client_secret: 'secret' } });
  const before = new Hub({ config: legacy, store, log: createLogger('silent'), metrics: new Metrics() });
  const scores = [10, 55, 80];
  await before.pipeline.ingest('opencti', scores.map((score, i) => ({
    normalised: { sourceRef: { system: 'opencti' as const, id: `indicator--${i}` }, changes: [claim({ value: `198.51.100.${i + 1}`, score }).change].map((c) => ({ ...c, sourceRef: { system: 'opencti' as const, id: `indicator--${i}` } })),
      retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: null },
    raw: null, event: 'create', position: String(i), checkpoint: { position: String(i), state: {} },
  })));
  // What the single-tenant service delivered: ids recorded, outbox empty.
  const sent = await store.claimDue('defender', 10, Date.now(), 60_000);
  expect(sent).to.have.length(3);
  await store.ack(sent.map((item, i) => ({ item, externalId: String(100 + i) })));
  const started = async (c: typeof config) => {
    const hub = new Hub({ config: c, store, log: createLogger('silent'), metrics: new Metrics() });
    for (const p of hub.parts().filter((x) => x.name.endsWith('-backfill'))) await p.start();
  };
  const upgraded = configSchema.parse({ ...legacy, microsoft_defender_intel: { ...legacy.microsoft_defender_intel, targets: [{ name: 'added', tenant_id: 't9', min_score: 50 }] } });
  await started(upgraded);
  const due = async (sink: string) => {
    const items = await store.claimDue(sink, 10, Date.now(), 60_000);
    // Delivered: Defender's ids recorded, rows gone.
    await store.ack(items.map((item, i) => ({ item, externalId: `${sink}-${i}` })));
    return items.map((i) => i.key).sort();
  };
  expect(await due('defender'), 'nothing re-sent to the tenant of the upgrade').to.deep.equal([]);
  expect(await store.countSinkIds('defender')).to.equal(3);
  // min_score 50: the indicators scored 55 and 80.
  expect(await due('defender:added')).to.deep.equal(['ipv4:198.51.100.2', 'ipv4:198.51.100.3']);
  // Filled once: a restart queues nothing again.
  await started(upgraded);
  expect(await due('defender:added')).to.deep.equal([]);
  expect(await due('defender')).to.deep.equal([]);
}

describe('Defender targets: upgrade on PostgreSQL', () => {
  let store: PostgresStore;
  let schema: string;
  before(async function () { await requirePostgres(this); });
  beforeEach(async () => { schema = freshSchemaName(); store = await PostgresStore.open({ url: TEST_PG_URL, schema }); });
  afterEach(async () => { await store?.close(); await dropSchema(schema); });
  it('the single-tenant store carries on as "default" without re-sending; a new tenant is filled once', () => upgrade(store));
});

describe('Defender targets: the hub', () => {
  let store: SqliteStore;
  beforeEach(() => { store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-targets-hub-'))); });
  afterEach(async () => { await store.close(); });

  const config = hubConfig;

  it('builds one sink per tenant; each tenant\'s route decides for its own sink', () => {
    const hub = new Hub({ config, store, log: createLogger('silent'), metrics: new Metrics() });
    expect(hub.sinksOf('opencti').map((s) => s.route.sink)).to.deep.equal(['defender', 'defender:pilot', 'defender:mispOnly']);
    const router = activeRouter(config);
    const strong = router.route('ipv4:198.51.100.7', [claim({ score: 80 })], Date.now());
    expect(strong.map((d) => [d.sink, d.op?.op ?? null, (d.op?.payload as { action?: string } | undefined)?.action ?? null])).to.deep.equal([
      ['defender', 'upsert', 'Block'], ['defender:pilot', 'upsert', 'Audit'], ['defender:mispOnly', 'delete', null],
    ]);
    const weak = router.route('ipv4:198.51.100.7', [claim({ score: 40 })], Date.now());
    expect(weak.map((d) => [d.sink, d.op?.op ?? null])).to.deep.equal([['defender', 'upsert'], ['defender:pilot', 'delete'], ['defender:mispOnly', 'delete']]);
  });

  it('upgrade: the single-tenant store carries on as target "default" without re-sending; a new tenant is filled once from the stored claims (SQLite)', () => upgrade(store));

  it('reports a route that can match nothing', () => {
    expect(routeWarnings(config)).to.deep.equal([{ sink: 'defender:mispOnly', warning: 'takes sources misp, but only opencti feed Defender' }]);
  });
});
