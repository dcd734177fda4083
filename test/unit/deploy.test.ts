// The deployment files stay consistent with the code: compose references resolve, the service's
// variables are keys the configuration knows, the replicas profile shares one PostgreSQL store,
// and the Dockerfile passes a linter (dockerfile-utils, every rule an error) and the house rules.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { validate, ValidationSeverity } from 'dockerfile-utils';
import { parse } from 'yaml';
import { configKeys } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';

interface ComposeService {
  profiles?: string[]; depends_on?: Record<string, unknown>; environment?: string[] | Record<string, string>; volumes?: string[];
  ports?: string[]; deploy?: { replicas?: number }; stop_grace_period?: string; restart?: string; image?: string; mem_limit?: string;
}

describe('deployment files', () => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as {
    services: Record<string, ComposeService>;
    volumes: Record<string, unknown>;
  };
  const known = new Set(configKeys().map((k) => k.env));
  const envOf = (s: ComposeService) => new Map((s.environment as string[]).map((e) => [e.split('=')[0]!, e.slice(e.indexOf('=') + 1)]));
  const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)?.[1] ?? NaN);
  const defaultShutdown = configSchema.parse({}).connector.shutdown_timeout;

  it('compose: every dependency and named volume exists', () => {
    const names = Object.keys(compose.services);
    for (const [name, service] of Object.entries(compose.services)) {
      for (const dep of Object.keys(service.depends_on ?? {})) expect(names, `${name} depends on ${dep}`).to.include(dep);
      for (const v of service.volumes ?? []) expect(Object.keys(compose.volumes)).to.include(v.split(':')[0]);
      expect(service.restart, `${name} restarts`).to.equal('always');
    }
  });

  it('compose: ThreatBridge waits for a healthy OpenCTI, keeps its state on a volume and uses known variables', () => {
    const tb = compose.services['connector-threatbridge']!;
    expect(tb.depends_on).to.deep.equal({ opencti: { condition: 'service_healthy' } });
    expect(tb.volumes).to.deep.equal(['threatbridge-data:/data']);
    for (const entry of tb.environment as string[]) expect(known, entry).to.include(entry.split('=')[0]);
    expect(envOf(tb).has('STORE_ENGINE')).to.equal(false, 'the single connector keeps the embedded store');
    // Docker kills after the grace period: it must outlast the flush on SIGTERM.
    expect(seconds(tb.stop_grace_period!)).to.be.greaterThan(defaultShutdown);
  });

  it('compose: the replicas profile runs two connectors on one PostgreSQL store', () => {
    const profiled = Object.entries(compose.services).filter(([, s]) => s.profiles).map(([n]) => n).sort();
    expect(profiled).to.deep.equal(['connector-threatbridge-replica', 'postgres']);
    const db = compose.services['postgres']!;
    const replica = compose.services['connector-threatbridge-replica']!;
    expect(db.profiles).to.deep.equal(['replicas']);
    expect(replica.profiles).to.deep.equal(['replicas']);
    expect(replica.deploy?.replicas).to.equal(2);
    expect(replica.ports, 'replicas cannot share a host port').to.equal(undefined);
    expect(replica.depends_on).to.deep.include({ postgres: { condition: 'service_healthy' }, opencti: { condition: 'service_healthy' } });
    const env = envOf(replica);
    for (const name of env.keys()) expect(known, name).to.include(name);
    expect(env.get('STORE_ENGINE')).to.equal('postgres');
    const dbEnv = db.environment as Record<string, string>;
    const url = new URL(env.get('STORE_URL')!.replace(/\$\{THREATBRIDGE_DB_PASSWORD[^}]*\}/, 'pw'));
    expect([url.protocol, url.hostname, url.port, url.username, url.pathname]).to.deep.equal(
      ['postgres:', 'postgres', '5432', dbEnv['POSTGRES_USER'], `/${dbEnv['POSTGRES_DB']}`]);
    expect(env.get('STORE_URL')).to.include('${THREATBRIDGE_DB_PASSWORD:?', 'the password comes from .env, not the file');
    expect(dbEnv['POSTGRES_PASSWORD']).to.match(/^\$\{THREATBRIDGE_DB_PASSWORD:\?/);
    expect(seconds(replica.stop_grace_period!)).to.be.greaterThan(defaultShutdown);
    // Everything else the single connector is told, the replicas are told too.
    const single = envOf(compose.services['connector-threatbridge']!);
    for (const [k, v] of single) expect(env.get(k), k).to.equal(v);
  });

  it('compose: named like OpenCTI\'s connectors, every .env variable guarded, a health key of its own, a memory limit as documented', () => {
    const text = readFileSync('docker-compose.yml', 'utf8');
    // Every ${VAR} the file takes from .env stops compose with a message when it is missing.
    const refs = [...text.matchAll(/\$\{([A-Z_]+)([^}]*)\}/g)];
    expect(refs.length).to.be.greaterThan(10);
    for (const [ref, , rest] of refs) expect(rest, ref).to.match(/^:\?./);
    const opencti = (compose.services['opencti']!.environment as string[]).find((e) => e.startsWith('APP__HEALTH_ACCESS_KEY='))!;
    expect(opencti).not.to.include('OPENCTI_ADMIN_TOKEN', 'the health key is sent in URLs: not the admin token');
    for (const name of ['connector-threatbridge', 'connector-threatbridge-replica']) {
      const limit = compose.services[name]!.mem_limit;
      expect(limit, name).to.equal('512m');
    }
    expect(readFileSync('doc/operations.md', 'utf8')).to.include('limit of 512 MiB');
    expect(Object.keys(compose.services).filter((n) => n.includes('threatbridge') && !n.startsWith('connector-'))).to.deep.equal([]);
  });

  const docker = readFileSync('Dockerfile', 'utf8');
  const stages = docker.split(/^(?=FROM )/m).filter((s) => s.startsWith('FROM '));
  const runtime = stages.at(-1)!;

  it('Dockerfile: passes the linter with every rule as an error', () => {
    const all = ValidationSeverity.ERROR;
    const problems = validate(docker, {
      deprecatedMaintainer: all, directiveCasing: all, emptyContinuationLine: all, instructionCasing: all,
      instructionCmdMultiple: all, instructionEntrypointMultiple: all, instructionHealthcheckMultiple: all,
      instructionJSONInSingleQuotes: all, instructionWorkdirRelative: all,
    });
    expect(problems.map((p) => `line ${p.range.start.line + 1}: ${p.message}`)).to.deep.equal([]);
    // The linter finds what it should (a check that this test can fail).
    expect(validate('FROM node:20\nCMD [\'node\']\nCMD ["node"]\nUSER\n', { instructionCmdMultiple: all, instructionJSONInSingleQuotes: all }))
      .to.have.length.greaterThan(1);
  });

  it('Dockerfile: multi-stage, production dependencies from `npm ci --omit=dev`, pinned slim base images on the current Node LTS', () => {
    expect(stages.length).to.be.greaterThanOrEqual(2);
    // Node 24 is the LTS line since October 2025 (Node 20 ended in April 2026); package.json keeps >= 20.12.
    for (const s of stages.filter((x) => /^FROM node:/.test(x))) expect(s).to.match(/^FROM node:24-/);
    const names = stages.map((s) => /^FROM \S+ AS (\w+)/.exec(s)?.[1]);
    // Each stage starts from a pinned slim Node image or from an earlier stage.
    stages.forEach((s, i) => {
      const base = s.split(' ')[1]!;
      if (!names.slice(0, i).includes(base)) expect(base).to.match(/^node:\d+-[a-z]+-slim$/);
    });
    const deps = stages.find((s) => /^RUN npm ci --omit=dev\b/m.test(s));
    expect(deps, 'a stage installs production dependencies only').to.not.equal(undefined);
    const depsName = /^FROM \S+ AS (\w+)/.exec(deps!)![1];
    expect(runtime).to.match(new RegExp(`^COPY --from=${depsName} .*/app/node_modules \\./node_modules$`, 'm'));
    expect(runtime).to.not.match(/^RUN npm /m, 'no install in the runtime stage');
    expect(runtime).to.match(/^COPY --from=\w+ .*\/app\/dist\/src \.\/dist\/src$/m);
    for (const s of stages.filter((x) => x.includes('apt-get install'))) expect(s).to.include('rm -rf /var/lib/apt/lists/*');
  });

  it('Dockerfile: non-root, state volume, health check on /healthz, tini as init, exec-form CMD of the CLI', () => {
    const lines = runtime.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(at(/^USER node$/)).to.be.greaterThan(0);
    expect(at(/^USER node$/)).to.be.lessThan(at(/^CMD /));
    expect(runtime).to.match(/^VOLUME \["\/data"\]$/m);
    expect(runtime).to.match(/^ENV .*STORE_DIR=\/data/m);
    expect(runtime).to.match(/^HEALTHCHECK .*\\\n\s+CMD \[.*\/healthz/m);
    expect(runtime).to.match(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
    expect(runtime).to.match(/^CMD \["node", "dist\/src\/cli.js", "run"\]$/m);
    expect(runtime).to.not.match(/^ENV .*(SECRET|TOKEN|PASSWORD)/m);
  });

  it('.dockerignore keeps state, secrets and local builds out of the image context', () => {
    const ignored = readFileSync('.dockerignore', 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', 'dist', 'data', 'config.yml', '.env', '.git']) expect(ignored, p).to.include(p);
  });
});
