// End to end (issue 18): one OpenCTI stream into three Defender tenants with different routes, the
// built service as a child process. Each tenant must hold exactly what its route selects, through a
// kill -9, one tenant's outage and another's revoked credentials. The oracle is computed here from
// the seed indicators and the route table below, not by the service's code.
import { expect } from 'chai';
import { Lab, LAB_CLIENT, LAB_SECRET, LAB_WORKSPACE } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { makeIndicator, OCTI_EXT, type StixObject } from '../../sim/opencti/fixtures.js';
import { runCli } from '../support/cli.js';
import { rng } from '../support/random.js';

const TENANT = { alpha: 'aaaa0001-0000-4000-8000-000000000001', beta: 'bbbb0002-0000-4000-8000-000000000002', gamma: 'cccc0003-0000-4000-8000-000000000003' };
const BETA_APP = 'beb00000-0000-4000-8000-0000000000be';
const BETA_SECRET = 'beta-own-secret-value';

type Kind = 'ipv4' | 'domain' | 'url' | 'sha256';
interface Spec { kind: Kind; value: string; score: number; labels: string[]; tlp: string }

// The route table, as an operator would write it, and as the oracle reads it.
const TLP = ['CLEAR', 'GREEN', 'AMBER', 'AMBER+STRICT', 'RED'];
const ROUTES = {
  alpha: { min: 50, types: ['ipv4', 'domain'] as Kind[], exclude: ['internal'], include: [] as string[], maxTlp: null as string | null, audit: false },
  beta: { min: null as number | null, types: null as Kind[] | null, exclude: [] as string[], include: ['phishing', 'c2'], maxTlp: 'GREEN', audit: true },
  gamma: { min: 20, types: ['sha256', 'url'] as Kind[], exclude: [] as string[], include: [] as string[], maxTlp: 'AMBER', audit: false },
};
type Name = keyof typeof ROUTES;
const NAMES: Name[] = ['alpha', 'beta', 'gamma'];

const ENV = {
  // No single-tenant target: three numbered ones. alpha and gamma share the lab's multi-tenant app.
  MICROSOFT_DEFENDER_INTEL_TENANT_ID: '',
  DEFENDER_TARGET_1_NAME: 'alpha', DEFENDER_TARGET_1_TENANT_ID: TENANT.alpha,
  DEFENDER_TARGET_1_MIN_SCORE: '50', DEFENDER_TARGET_1_TYPES: 'ipv4,domain', DEFENDER_TARGET_1_LABELS_EXCLUDE: 'internal',
  DEFENDER_TARGET_2_NAME: 'beta', DEFENDER_TARGET_2_TENANT_ID: TENANT.beta, DEFENDER_TARGET_2_CLIENT_ID: BETA_APP, DEFENDER_TARGET_2_CLIENT_SECRET: BETA_SECRET,
  DEFENDER_TARGET_2_MAX_TLP: 'green', DEFENDER_TARGET_2_LABELS_INCLUDE: 'phishing,c2', DEFENDER_TARGET_2_ACTION: 'Audit',
  DEFENDER_TARGET_3_NAME: 'gamma', DEFENDER_TARGET_3_TENANT_ID: TENANT.gamma,
  DEFENDER_TARGET_3_MIN_SCORE: '20', DEFENDER_TARGET_3_TYPES: 'sha256,url', DEFENDER_TARGET_3_MAX_TLP: 'amber',
  // One breaker hour would stop the Blocks of this run; the guard's own tests cover it.
  GUARD_BREAKER_MAX_BLOCKS_PER_HOUR: '0', GUARD_WITHDRAWAL_BREAKER_PERCENT: '0',
  MICROSOFT_DEFENDER_INTEL_RECONCILE_INTERVAL: '0',
};

/** Defender's action for a score under the default policy (doc/mappings.md): ≥60 Block, 30–59 Audit, 1–29 Warn, 0 Audit. */
const actionOf = (score: number) => (score >= 60 ? 'Block' : score >= 30 ? 'Audit' : score >= 1 ? 'Warn' : 'Audit');

function selects(name: Name, s: Spec): boolean {
  const r = ROUTES[name];
  if (r.min !== null && s.score < r.min) return false;
  if (r.types && !r.types.includes(s.kind)) return false;
  if (r.maxTlp && TLP.indexOf(s.tlp) > TLP.indexOf(r.maxTlp)) return false;
  if (r.include.length && !s.labels.some((l) => r.include.includes(l))) return false;
  return !s.labels.some((l) => r.exclude.includes(l));
}

/** What each tenant must hold: value → action. */
function oracle(live: Iterable<Spec>): Record<Name, Map<string, string>> {
  const out = { alpha: new Map(), beta: new Map(), gamma: new Map() } as Record<Name, Map<string, string>>;
  for (const s of live) for (const n of NAMES) if (selects(n, s)) out[n].set(s.value, ROUTES[n].audit ? 'Audit' : actionOf(s.score));
  return out;
}


/** Stream ids are `<ms>-<seq>`. */
function atOrAfter(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am > bm || (am === bm && as >= bs);
}

const KINDS: Kind[] = ['ipv4', 'domain', 'url', 'sha256'];
const LABELS = ['phishing', 'c2', 'internal', 'malware'];
const rand = rng(18);
const pick = <T>(list: readonly T[]) => list[Math.floor(rand() * list.length)]!;

function spec(i: number): Spec {
  const kind = KINDS[i % 4]!;
  const value = kind === 'ipv4' ? `185.220.${(i >> 8) & 255}.${i & 255}`
    : kind === 'domain' ? `d${i}.threat-tenants.net`
    : kind === 'url' ? `http://u${i}.bad-tenants.net/p/${i}`
    : (i.toString(16) + 'c'.repeat(64)).slice(0, 64);
  const labels = [...new Set([pick(LABELS), pick(LABELS)])].slice(0, Math.floor(rand() * 3));
  return { kind, value, score: Math.floor(rand() * 101), labels, tlp: pick(TLP) };
}

const PATTERN: Record<Kind, (v: string) => string> = {
  ipv4: (v) => `[ipv4-addr:value = '${v}']`,
  domain: (v) => `[domain-name:value = '${v}']`,
  url: (v) => `[url:value = '${v}']`,
  sha256: (v) => `[file:hashes.'SHA-256' = '${v}']`,
};

describe('Many tenants end to end: three routes, kill -9, one outage, one revoked application', function () {
  this.timeout(600_000);
  let lab: Lab;
  let service: ServiceProcess;
  const live = new Map<string, { spec: Spec; object: StixObject }>();

  after(async () => {
    await service?.stop().catch(() => undefined);
    await lab?.stop();
  });

  const start = () => {
    service = new ServiceProcess(lab.env(ENV));
    service.start();
  };
  let lastEvent = '';
  const create = (i: number) => {
    const s = spec(i);
    const object = makeIndicator({ pattern: PATTERN[s.kind](s.value), score: s.score, labels: s.labels, markings: [`TLP:${s.tlp}`], validUntil: null, detection: true });
    lastEvent = lab.opencti.create(object);
    live.set(object.id, { spec: s, object });
  };
  /** A new score: the object may enter or leave a route (the service must add or remove it there). */
  const rescore = (id: string, score: number) => {
    const entry = live.get(id)!;
    const object = structuredClone(entry.object) as StixObject & { extensions: Record<string, Record<string, unknown>> };
    object.extensions[OCTI_EXT]!['score'] = score;
    lastEvent = lab.opencti.update(object);
    live.set(id, { spec: { ...entry.spec, score }, object });
  };
  const remove = (id: string) => {
    lastEvent = lab.opencti.delete(id);
    live.delete(id);
  };
  const held = (name: Name) => new Map(lab.defender.indicators(TENANT[name]).map((i) => [String(i.indicatorValue), String(i.action)]));
  const same = (a: Map<string, string>, b: Map<string, string>) => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
  const converged = (names: Name[]) => {
    const want = oracle([...live.values()].map((l) => l.spec));
    return names.every((n) => same(held(n), want[n]));
  };
  const diff = (name: Name) => {
    const want = oracle([...live.values()].map((l) => l.spec))[name];
    const got = held(name);
    return {
      missing: [...want].filter(([k, v]) => got.get(k) !== v).slice(0, 5),
      extra: [...got].filter(([k]) => !want.has(k)).slice(0, 5),
    };
  };
  const waitConverged = async (names: Name[], what: string, ms = 90_000) => {
    try {
      await waitFor(() => converged(names), what, ms, 200);
    } catch (err) {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(Object.fromEntries(names.map((n) => [n, diff(n)])))}`);
    }
  };

  it('each tenant holds exactly what its route selects, whatever happens to the others', async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    lab.entra.registerApp({ tenantId: TENANT.alpha, clientId: LAB_CLIENT, clientSecret: LAB_SECRET, roles: ['Ti.ReadWrite.All'] });
    lab.entra.registerApp({ tenantId: TENANT.gamma, clientId: LAB_CLIENT, clientSecret: LAB_SECRET, roles: ['Ti.ReadWrite.All'] });
    lab.entra.registerApp({ tenantId: TENANT.beta, clientId: BETA_APP, clientSecret: BETA_SECRET, roles: ['Ti.ReadWrite.All'] });
    start();

    // 1. A first batch reaches each tenant as its route says.
    for (let i = 0; i < 80; i++) create(i);
    await waitConverged(NAMES, 'first batch in all three tenants');
    const want = oracle([...live.values()].map((l) => l.spec));
    // The routes really differ: each tenant holds something, and not the same things.
    for (const n of NAMES) expect(want[n].size, `${n} selects something`).to.be.greaterThan(5);
    expect([...held('beta').values()].every((a) => a === 'Audit'), 'the pilot tenant gets Audit only').to.equal(true);

    // 2. kill -9 while a second batch is on its way.
    for (let i = 80; i < 160; i++) create(i);
    await waitFor(() => NAMES.some((n) => held(n).size > want[n].size), 'second batch under way', 30_000, 20);
    await service.kill9();
    start();
    await waitConverged(NAMES, 'second batch after kill -9');

    // 3. alpha's Defender is down: beta and gamma keep their pace; the stream's checkpoint is not held back.
    lab.defender.setTenantDown(TENANT.alpha, true);
    const ids = [...live.keys()];
    for (let i = 160; i < 220; i++) create(i);
    for (const id of ids.slice(0, 20)) rescore(id, 100 - live.get(id)!.spec.score);
    for (const id of ids.slice(20, 30)) remove(id);
    await waitConverged(['beta', 'gamma'], 'beta and gamma while alpha is down');
    expect(converged(['alpha']), 'alpha cannot have the new state yet').to.equal(false);
    let status: { checkpoints: { opencti: { position: string } | null }; outbox: { sink: string; pending: number }[] } | null = null;
    try {
      await waitFor(async () => {
        status = JSON.parse(await runCli(lab, ['status', '--json'], ENV));
        // At or past the last event (heartbeats move it on): nothing of the stream waits for alpha.
        return atOrAfter(status!.checkpoints.opencti?.position ?? '0-0', lastEvent) && (status!.outbox.find((o) => o.sink === 'defender:alpha')?.pending ?? 0) > 0;
      }, 'checkpoint at the last event while alpha\'s queue waits', 30_000, 500);
    } catch (err) {
      throw new Error(`${(err as Error).message}: last event ${lastEvent}, status ${JSON.stringify(status)}`);
    }

    // 4. beta's application secret is revoked: beta waits for its set-up, alpha (back) and gamma converge.
    lab.entra.revokeApp(TENANT.beta, BETA_APP);
    lab.defender.setTenantDown(TENANT.alpha, false);
    for (let i = 220; i < 280; i++) create(i);
    await waitConverged(['alpha', 'gamma'], 'alpha after its outage and gamma while beta is refused', 120_000);
    await service.waitForLog((l) => l['sink'] === 'defender:beta' && l.msg === 'the sink refuses our set-up; delivery waits until it is fixed', 60_000);
    expect(converged(['beta']), 'beta cannot have the new state').to.equal(false);
    const ready = await fetch(`http://127.0.0.1:${service.healthPort}/readyz`);
    const problems = ((await ready.json()) as { problems: Record<string, string> }).problems;
    expect(Object.entries(problems).find(([k]) => k.includes('defender:beta'))?.[1] ?? '').to.include('AADSTS7000215');
    expect(Object.keys(problems).some((k) => k.includes('defender:alpha') || k.includes('defender:gamma'))).to.equal(false);

    // 5. The secret is put back: beta catches up once its set-up wait is over.
    lab.entra.revokeApp(TENANT.beta, BETA_APP, BETA_SECRET);
    await waitConverged(NAMES, 'beta after its secret is fixed', 240_000);

    // Metrics carry the target; nothing was dead-lettered.
    const metrics = await (await fetch(`http://127.0.0.1:${service.healthPort}/metrics`)).text();
    for (const n of NAMES) expect(metrics).to.include(`sink="defender:${n}"`);
    expect(JSON.parse(await runCli(lab, ['dead-letters', '--json'], ENV))).to.deep.equal([]);
    // The target's own secret never reaches a log line, nor check-config's output.
    const everything = JSON.stringify(service.lines) + service.stderr.join('');
    expect(everything).to.not.include(BETA_SECRET);
    const checked = await runCli(lab, ['check-config'], ENV);
    expect(checked).to.include('defender:beta');
    expect(checked).to.not.include(BETA_SECRET);
    // Each tenant's import calls went to its own tenant with its own application.
    const imports = lab.defender.requestLog.filter((r) => r.endpoint === 'indicators.import' && r.status === 200);
    expect(new Set(imports.filter((r) => r.tenantId === TENANT.beta).map((r) => r.clientId))).to.deep.equal(new Set([BETA_APP]));
    expect(new Set(imports.filter((r) => r.tenantId === TENANT.alpha).map((r) => r.clientId))).to.deep.equal(new Set([LAB_CLIENT]));
  });
});

describe('Many Sentinel workspaces end to end: two routes, kill -9', function () {
  this.timeout(180_000);
  let lab: Lab;
  let service: ServiceProcess;
  after(async () => {
    await service?.stop().catch(() => undefined);
    await lab?.stop();
  });

  it('each workspace holds exactly what its route selects; the single workspace of SENTINEL_WORKSPACE_ID carries on as "default"', async () => {
    lab = await new Lab({ heartbeatMs: 500, sentinel: true }).start();
    const EMEA = '77777777-6666-4555-8444-333333333333';
    const EMEA_APP = 'e0e00000-0000-4000-8000-0000000000e0';
    lab.entra.registerApp({ tenantId: TENANT.gamma, clientId: EMEA_APP, clientSecret: 'emea-own-secret', roles: [] });
    lab.sentinel!.grantContributor(EMEA, EMEA_APP);
    const env = {
      OPENCTI_TARGETS: 'sentinel',
      SENTINEL_TARGET_1_NAME: 'emea', SENTINEL_TARGET_1_WORKSPACE_ID: EMEA, SENTINEL_TARGET_1_TENANT_ID: TENANT.gamma,
      SENTINEL_TARGET_1_CLIENT_ID: EMEA_APP, SENTINEL_TARGET_1_CLIENT_SECRET: 'emea-own-secret',
      SENTINEL_TARGET_1_MIN_SCORE: '50', SENTINEL_TARGET_1_LABELS_EXCLUDE: 'internal',
      GUARD_BREAKER_MAX_BLOCKS_PER_HOUR: '0',
    };
    service = new ServiceProcess(lab.env(env));
    service.start();
    // Oracle: the default workspace takes everything; emea a score of 50 or more without "internal".
    const specs = Array.from({ length: 40 }, (_, i) => ({ value: `192.0.2.${i + 1}`, score: (i * 37) % 101, labels: i % 3 === 0 ? ['internal'] : ['c2'] }));
    const patterns = (ws: string) => new Set((lab.sentinel!.indicators(ws) as { pattern: string; revoked?: boolean }[]).filter((o) => !o.revoked).map((o) => o.pattern));
    const want = (emea: boolean) => new Set(specs.filter((s) => !emea || (s.score >= 50 && !s.labels.includes('internal'))).map((s) => `[ipv4-addr:value = '${s.value}']`));
    const same = (a: Set<string>, b: Set<string>) => a.size === b.size && [...a].every((x) => b.has(x));
    specs.slice(0, 20).forEach((s) => lab.opencti.create(makeIndicator({ pattern: `[ipv4-addr:value = '${s.value}']`, score: s.score, labels: s.labels, validUntil: null, detection: true })));
    await waitFor(() => patterns(LAB_WORKSPACE).size >= 5, 'first uploads', 30_000, 20);
    await service.kill9();
    service = new ServiceProcess(lab.env(env));
    service.start();
    specs.slice(20).forEach((s) => lab.opencti.create(makeIndicator({ pattern: `[ipv4-addr:value = '${s.value}']`, score: s.score, labels: s.labels, validUntil: null, detection: true })));
    await waitFor(() => same(patterns(LAB_WORKSPACE), want(false)) && same(patterns(EMEA), want(true)), 'both workspaces hold what their routes select', 90_000, 200);
    expect(want(true).size, 'the emea route selects some, not all').to.be.within(5, 30);
    const metrics = await (await fetch(`http://127.0.0.1:${service.healthPort}/metrics`)).text();
    expect(metrics).to.include('sink="sentinel:emea"');
  });
});
