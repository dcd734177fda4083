// A newcomer's path through the built CLI, and every maintenance command against the state a real
// run left behind (the service as a process against the simulators). The oracles are the exit
// codes, the simulators' own request logs and fixed texts, not the CLI's code.
import { expect } from 'chai';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../sim/lab.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

function cli(args: string[], env: NodeJS.ProcessEnv, cwd?: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], { env, cwd, encoding: 'utf8', timeout: 60_000 });
}

const realValues = {
  CONNECTOR_ID: '6d0b5b6a-41d7-4a53-9d7d-6f1b2c3d4e5f', OPENCTI_TOKEN: 'newcomer-token-value', CONNECTOR_LIVE_STREAM_ID: 'stream-1',
  MICROSOFT_DEFENDER_INTEL_TENANT_ID: 'tenant', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'client', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 'newcomer-secret-value',
};

describe('a newcomer following the README', function () {
  this.timeout(120_000);
  let dir: string;
  const env = (extra: Record<string, string> = {}) => ({ PATH: process.env['PATH'], ...extra });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tb-newcomer-'));
    copyFileSync(join(REPO, 'config.yml.sample'), join(dir, 'config.yml'));
  });

  it('cp config.yml.sample config.yml && threatbridge check-config: a short summary naming each placeholder, its variable and the fix', () => {
    const r = cli(['check-config'], env(), dir);
    expect(r.status, r.stderr).to.equal(78);
    expect(r.stdout).to.include('BLOCKED  opencti -> defender');
    expect(r.stdout).to.include('connector.id [env CONNECTOR_ID]: still the placeholder UUID');
    expect(r.stdout).to.include('opencti.token [env OPENCTI_TOKEN]: still the placeholder "ChangeMe"');
    expect(r.stdout).to.include('NOT OK: 6 problem(s)');
    expect(r.stdout.split('\n').length).to.be.lessThan(25, 'a summary, not a dump');
    expect(r.stdout + r.stderr).not.to.match(/null|expected object/);
  });

  it('with the values set, check-config passes and --json is for machines', () => {
    const r = cli(['check-config', '--json'], env(realValues), dir);
    expect(r.status, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; flows: { flow: string; active: boolean }[] };
    expect(report.ok).to.equal(true);
    expect(report.flows.filter((f) => f.active).map((f) => f.flow)).to.deep.equal(['opencti -> defender']);
    expect(r.stdout).not.to.include('newcomer-secret-value');
  });

  it('a typo\'d variable stops `run` at once with the closest valid name', () => {
    const { OPENCTI_TOKEN, ...rest } = realValues;
    const r = cli(['run'], env({ ...rest, OPENCTI_TOKN: OPENCTI_TOKEN, STORE_DIR: join(dir, 'data') }), dir);
    expect(r.status).to.equal(78);
    expect(r.stderr).to.include('warning: unknown variable OPENCTI_TOKN — did you mean OPENCTI_TOKEN?');
    expect(r.stderr).to.include('opencti -> defender: opencti.token [env OPENCTI_TOKEN]: still the placeholder "ChangeMe"');
  });

  it('a wrong OPENCTI_URL stops `run` naming the variable; a password in it is refused and never printed', () => {
    const wrong = cli(['run'], env({ ...realValues, OPENCTI_URL: 'opencti:8080' }), dir);
    expect(wrong.status).to.equal(78);
    expect(wrong.stderr).to.include('opencti.url [env OPENCTI_URL]');
    const withPassword = cli(['run'], env({ ...realValues, OPENCTI_URL: 'https://admin:pa55word-in-url@opencti.example.org' }), dir);
    expect(withPassword.status).to.equal(78);
    expect(withPassword.stderr).to.include('opencti.url [env OPENCTI_URL]: must not carry credentials');
    expect(withPassword.stdout + withPassword.stderr).not.to.include('pa55word-in-url');
  });

  it('`npx threatbridge --help` works in the clone and describes every flow', () => {
    const r = spawnSync('npx', ['--no-install', 'threatbridge', '--help'], { cwd: REPO, env: { PATH: process.env['PATH'], HOME: process.env['HOME'] }, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).to.equal(0);
    for (const flow of ['OpenCTI', 'MISP', 'Microsoft Defender indicators', 'Sentinel', 'DFIR-IRIS', 'IBM CAR']) expect(r.stdout, flow).to.include(flow);
  });

  it('STORE_DIR pointing nowhere: status fails and creates nothing', () => {
    const missing = join(dir, 'nonexistent', 'x');
    const r = cli(['status'], env({ ...realValues, STORE_DIR: missing }), dir);
    expect(r.status).to.equal(78);
    expect(r.stderr).to.include('store.dir [env STORE_DIR]: no state store in');
    expect(existsSync(missing)).to.equal(false);
  });
});

describe('maintenance commands on a real run\'s state', function () {
  this.timeout(180_000);
  let lab: Lab;
  let service: ServiceProcess;
  // A hostile object id: terminal escapes that would clear the screen and retitle the window.
  const hostileId = 'indicator--\u001b[2J\u001b]0;owned\u0007\u009b31m';

  before(async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    service = new ServiceProcess(lab.env({ CONNECTOR_LOG_LEVEL: 'debug' }));
    service.start();
    lab.opencti.create(makeIndicator({ pattern: "[ipv4-addr:value = '198.51.100.77']", score: 80 }));
    lab.opencti.create({ ...makeIndicator({ pattern: "[ipv4-addr:value = '1.2.3.4'" }), id: hostileId });
    await waitFor(() => lab.defender.indicators().length === 1, 'the good indicator in Defender', 60_000);
    await waitFor(() => (JSON.parse(cli(['dead-letters', '--json'], lab.env()).stdout || '[]') as unknown[]).length === 1, 'the bad one dead-lettered', 60_000, 500);
  });
  after(async () => {
    await service?.stop().catch(() => undefined);
    await lab?.stop();
  });

  it('dead-letters prints hostile ids escaped, never raw control characters', () => {
    const r = cli(['dead-letters'], lab.env());
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.include('source:opencti');
    expect(r.stdout).to.include('\\u001b[2J');
    expect(r.stdout).not.to.match(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });

  it('status prints a table, --json the same facts', () => {
    const r = cli(['status'], lab.env());
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^FLOW\s+STATE\nopencti -> defender\s+configured$/m);
    expect(r.stdout).to.match(/^defender indicators\s+1 of 15000$/m);
    expect(r.stdout).to.match(/^dead letters\s+1 /m);
    const json = JSON.parse(cli(['status', '--json'], lab.env()).stdout) as { defenderIndicatorsHeld: number; deadLetters: number };
    expect(json).to.include({ defenderIndicatorsHeld: 1, deadLetters: 1 });
  });

  it('refuses unknown ids, sources and values with a non-zero exit, and sends nothing to Defender', () => {
    const calls = lab.defender.requestLog.length;
    const cases: [string[], number, RegExp][] = [
      [['replay', 'abc'], 2, /not a dead-letter id: abc/],
      [['replay', '999999'], 1, /no dead letter waiting for replay with id 999999/],
      [['reset-checkpoint', 'foo'], 2, /unknown source "foo"/],
      [['resume', 'nosuch'], 1, /unknown source "nosuch"/],
      [['dead-letters', '--limit', 'abc'], 1, /--limit <n>.*'abc' is invalid/],
      [['decisions', '--limit', '0'], 1, /is invalid/],
      [['decisions', '--since', 'yesterday'], 2, /neither an ISO time nor a duration/],
      [['indicators', 'list', '--target', 'defender', '--type', 'ipv9'], 1, /'ipv9' is invalid/],
      [['dead-letters', '--sink', 'splunk'], 1, /'splunk' is invalid/],
    ];
    for (const [args, code, message] of cases) {
      const r = cli(args, lab.env());
      expect(r.status, args.join(' ')).to.equal(code);
      expect(r.stderr, args.join(' ')).to.match(message);
    }
    expect(lab.defender.requestLog.length).to.equal(calls, 'no call reached Defender');
  });

  it('reset-checkpoint warns and refuses while the service runs; works once it stopped', async () => {
    const running = cli(['reset-checkpoint', 'opencti'], lab.env());
    expect(running.status).to.equal(1);
    expect(running.stderr).to.include('warning: the service seems to be running');
    expect(JSON.parse(cli(['status', '--json'], lab.env()).stdout).checkpoints.opencti).to.not.equal(null);
    await service.stop();
    const stopped = cli(['reset-checkpoint', 'opencti'], lab.env());
    expect(stopped.status, stopped.stderr).to.equal(0);
    expect(stopped.stdout).to.equal('checkpoint of opencti removed\n');
    expect(JSON.parse(cli(['status', '--json'], lab.env()).stdout).checkpoints.opencti).to.equal(null);
  });

  it('replay prints its report on stdout only; the logs go to stderr', () => {
    const [letter] = JSON.parse(cli(['dead-letters', '--json'], lab.env()).stdout) as { id: number }[];
    const r = cli(['replay', String(letter!.id)], lab.env({ CONNECTOR_LOG_LEVEL: 'debug' }));
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^replayed 1 dead letter\(s\): 0 operation\(s\) queued again, 1 source event\(s\) processed again\n$/);
  });
});
