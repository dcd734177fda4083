// The image's entrypoint from what the image holds: `npm pack` the built package, install it clean
// with `npm ci --omit=dev` (as the Dockerfile's deps stage does), then run the Dockerfile's CMD and
// HEALTHCHECK commands: check-config, `run` answering /healthz, and a clean exit on SIGTERM.
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../sim/service-process.js';

/** The JSON array of a Dockerfile exec-form instruction (`CMD [...]`, `HEALTHCHECK ... CMD [...]`). */
function execForm(docker: string, instruction: RegExp): string[] {
  const m = instruction.exec(docker.replace(/\\\n\s*/g, ' '));
  if (!m) throw new Error(`no ${instruction} in the Dockerfile`);
  return JSON.parse(m[1]!) as string[];
}

describe('packaged install (the image\'s entrypoint)', function () {
  this.timeout(600_000);
  const docker = readFileSync('Dockerfile', 'utf8');
  const cmd = execForm(docker, /^CMD (\[.*\])$/m);
  const healthcheck = execForm(docker, /^HEALTHCHECK .*? CMD (\[.*\])$/m);
  let app: string;
  const env = {
    PATH: process.env['PATH'], NODE_ENV: 'production', CONFIG_FILE: '',
    OPENCTI_URL: 'http://127.0.0.1:9', OPENCTI_TOKEN: 'packaged-token-value', CONNECTOR_ID: '6d0b5b6a-41d7-4a53-9d7d-6f1b2c3d4e5f',
    CONNECTOR_LIVE_STREAM_ID: 'stream', CONNECTOR_REGISTER: 'false', CONNECTOR_LOG_LEVEL: 'info', CONNECTOR_METRICS_HOST: '127.0.0.1',
    MICROSOFT_DEFENDER_INTEL_TENANT_ID: 'tenant', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'client', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 'packaged-secret',
  };

  before(() => {
    const work = mkdtempSync(join(tmpdir(), 'tb-pack-'));
    execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { stdio: ['ignore', 'ignore', 'inherit'] });
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
    execFileSync('tar', ['xzf', join(work, tarball), '-C', work]);
    app = join(work, 'package');
    // npm never packs the lock file; the image build copies it next to package.json.
    copyFileSync('package-lock.json', join(app, 'package-lock.json'));
    execFileSync('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] });
  });

  it('holds production dependencies only', () => {
    for (const dev of ['mocha', 'typescript', 'chai', 'nock', 'peggy']) expect(existsSync(join(app, 'node_modules', dev)), dev).to.equal(false);
    expect(existsSync(join(app, 'node_modules', 'better-sqlite3'))).to.equal(true);
    expect(existsSync(join(app, 'dist', 'test'))).to.equal(false);
  });

  it('validates the configuration from environment variables', () => {
    const out = execFileSync(process.execPath, [cmd[1]!, 'check-config', '--json'], { cwd: app, env, encoding: 'utf8' });
    const report = JSON.parse(out) as { flows: { flow: string; active: boolean }[] };
    expect(report.flows.find((f) => f.flow === 'opencti -> defender')?.active).to.equal(true);
    expect(out).to.not.include('packaged-secret');
  });

  it('runs the image CMD: healthy by the image HEALTHCHECK, clean exit on SIGTERM', async () => {
    const state = mkdtempSync(join(tmpdir(), 'tb-pack-state-'));
    const port = String(20000 + Math.floor(Math.random() * 20000));
    const runEnv = { ...env, STORE_DIR: state, CONNECTOR_METRICS_PORT: port };
    expect(cmd.slice(0, 2)).to.deep.equal(['node', 'dist/src/cli.js']);
    const child = spawn(process.execPath, cmd.slice(1), { cwd: app, env: runEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout!.on('data', (c: Buffer) => { log += c.toString(); });
    child.stderr!.on('data', (c: Buffer) => { log += c.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(() => log.includes('ThreatBridge started'), 'the service started', 60_000);
      expect(healthcheck[0]).to.equal('node');
      const probe = () => new Promise<number | null>((resolve) => {
        spawn(process.execPath, healthcheck.slice(1), { env: runEnv, stdio: 'ignore' }).on('exit', (code) => resolve(code));
      });
      await waitFor(async () => (await probe()) === 0, 'the HEALTHCHECK command passes', 30_000);
      child.kill('SIGTERM');
      expect(await exited).to.equal(0);
      expect(log).to.include('"msg":"stopped"');
      expect(await probe()).to.equal(1, 'the HEALTHCHECK fails once the service is gone');
      expect(log).to.not.include('packaged-secret');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
