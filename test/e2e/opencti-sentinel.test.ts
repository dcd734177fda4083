// End-to-end: the built service as a child process feeding Sentinel (and Defender, per
// `opencti.targets`) from the OpenCTI simulator, against the Entra and Sentinel upload simulators.
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, LAB_SECRET, LAB_TENANT, LAB_WORKSPACE } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';

type Stix = { id: string; pattern: string; labels: string[]; revoked?: boolean; confidence?: number; valid_until: string;
  object_marking_refs?: string[]; external_references: { source_name: string; external_id?: string; url?: string }[] };

describe('OpenCTI → Sentinel end to end', function () {
  this.timeout(120_000);
  let lab: Lab;
  let service: ServiceProcess;

  beforeEach(async () => {
    lab = await new Lab({ heartbeatMs: 500, sentinel: true }).start();
  });
  afterEach(async () => {
    await service?.stop().catch(() => undefined);
    await lab.stop();
  });

  const stix = () => lab.sentinel!.indicators(LAB_WORKSPACE) as unknown as Stix[];
  const byPattern = () => new Map(stix().map((o) => [o.pattern, o]));
  const start = (env: Record<string, string> = {}) => {
    service = new ServiceProcess(lab.env(env));
    service.start();
    return service;
  };

  it('feeds Defender and Sentinel from one stream, one STIX object per observable, revoking on delete', async () => {
    const auditDir = mkdtempSync(join(tmpdir(), 'tb-e2e-audit-'));
    start({ OPENCTI_TARGETS: 'defender,sentinel', SENTINEL_AUDIT_LOG_DIR: auditDir, SENTINEL_LABELS: 'from-octi' });
    const ip = makeIndicator({ pattern: "[ipv4-addr:value = '198.51.100.7']", score: 85, labels: ['c2'], markings: ['TLP:AMBER'] });
    const hashes = makeIndicator({ pattern: `[file:hashes.'SHA-256' = '${'ab'.repeat(32)}' OR file:hashes.MD5 = '${'cd'.repeat(16)}']`, score: 20 });
    const quoted = makeIndicator({ pattern: "[url:value = 'http://evil.example.org/a\\'b']", score: 50 });
    for (const i of [ip, hashes, quoted]) lab.opencti.create(i);

    await waitFor(() => stix().length === 4 && lab.defender.indicators().length === 4, 'four objects in Sentinel and four in Defender');
    const p = byPattern();
    const ipObj = p.get("[ipv4-addr:value = '198.51.100.7']")!;
    expect(ipObj.labels).to.include.members(['opencti', 'from-octi', 'c2', 'action:block']);
    expect(ipObj.confidence).to.equal(85);
    expect(ipObj.object_marking_refs).to.deep.equal(['marking-definition--f88d31f6-486f-44da-b317-01333bde0b82']);
    expect(ipObj.external_references[0]).to.include({ source_name: 'opencti', external_id: ip.id });
    // One OpenCTI indicator, two observables: two objects, two ids, both pointing back to it.
    const sha = p.get(`[file:hashes.'SHA-256' = '${'ab'.repeat(32)}']`)!;
    const md5 = p.get(`[file:hashes.MD5 = '${'cd'.repeat(16)}']`)!;
    expect(sha.id).to.not.equal(md5.id);
    expect([sha, md5].map((o) => o.external_references[0]!.external_id)).to.deep.equal([hashes.id, hashes.id]);
    expect(p.has("[url:value = 'http://evil.example.org/a\\'b']")).to.equal(true);

    lab.opencti.delete(ip.id);
    await waitFor(() => byPattern().get("[ipv4-addr:value = '198.51.100.7']")?.revoked === true
      && !lab.defender.indicators().some((i) => (i as { indicatorValue: string }).indicatorValue === '198.51.100.7'), 'revoked in Sentinel, deleted in Defender');
    expect(stix().filter((o) => o.id === ipObj.id)).to.have.length(1);
    expect(Date.parse(byPattern().get("[ipv4-addr:value = '198.51.100.7']")!.valid_until)).to.be.at.most(Date.now());

    const listed = JSON.parse(await runCli(lab, ['indicators', 'list', '--target', 'sentinel', '--json'])) as { origin: string; indicators: { type: string; value: string; id: string }[] };
    expect(listed.origin).to.include('state store');
    expect(listed.indicators.map((i) => i.value).sort()).to.deep.equal(['ab'.repeat(32), 'cd'.repeat(16), "http://evil.example.org/a'b"].sort());
    const md5Only = JSON.parse(await runCli(lab, ['indicators', 'list', '--target', 'sentinel', '--type', 'md5', '--json'])) as { indicators: { id: string }[] };
    expect(md5Only.indicators.map((i) => i.id)).to.deep.equal([md5.id]);
    const defender = await runCli(lab, ['indicators', 'list', '--target', 'defender', '--value', 'evil.example']);
    expect(defender).to.match(/^# 1 indicator\(s\) in defender; source: Defender API/).and.include("Url\thttp://evil.example.org/a'b");
    const files256 = JSON.parse(await runCli(lab, ['indicators', 'list', '--target', 'defender', '--type', 'sha256', '--json'])) as { indicators: { value: string }[] };
    expect(files256.indicators.map((i) => i.value)).to.deep.equal(['ab'.repeat(32)]);

    const files = readdirSync(auditDir);
    expect(files.length).to.equal(1);
    const audit = readFileSync(join(auditDir, files[0]!), 'utf8');
    expect(audit).to.include('"outcome":"OK"').and.not.include(LAB_SECRET).and.not.match(/Bearer\s+\w/);
  });

  it('sends only to Sentinel when the source targets only Sentinel, and converges after kill -9 without duplicates', async () => {
    let killedAt = 0;
    start({ OPENCTI_TARGETS: 'sentinel', PIPELINE_BATCH_SIZE: '50' });
    await waitFor(() => lab.opencti.connections > 0, 'stream connected');
    for (let i = 0; i < 300; i++) {
      lab.opencti.create(makeIndicator({ pattern: `[domain-name:value = 'k${i}.example.net']`, score: 70 }));
      if (i === 150) {
        await waitFor(() => stix().length > 0, 'some uploaded before the crash');
        killedAt = Date.now();
        await service.kill9();
      }
    }
    start({ OPENCTI_TARGETS: 'sentinel', PIPELINE_BATCH_SIZE: '50' });
    await waitFor(() => stix().length === 300, 'all 300 in Sentinel after restart', 60_000);
    expect(new Set(stix().map((o) => o.id)).size).to.equal(300);
    // Sentinel's store is keyed by id and hides a second upload: count what was SENT. Only the answers
    // the kill may have cut off can be sent again.
    expect(lab.sentinel!.sends.repeats({ interruptions: [killedAt] }).map((s) => s.key), 'objects sent again unchanged').to.deep.equal([]);
    expect(lab.defender.indicators()).to.have.length(0);
    expect(lab.sentinel!.requestLog.every((r) => r.objects <= 100)).to.equal(true);
  });

  it('keeps each object\'s first created through a lost answer, a crash, later versions and revocation (counted from what Sentinel received)', async () => {
    const env = { OPENCTI_TARGETS: 'sentinel', CONNECTOR_LOG_LEVEL: 'debug', SENTINEL_REQUEST_TIMEOUT: '600' };
    const sent = () => lab.sentinel!.sends.sends.map((s) => JSON.parse(s.content) as Stix & { created: string; modified: string });
    // The first upload lands in Sentinel but its answer never comes back.
    lab.sentinel!.loseAnswers(1);
    start(env);
    const version = (i: number, score: number) => makeIndicator({ pattern: `[domain-name:value = 'created${i}.example.net']`, score, markings: ['TLP:GREEN'], labels: [] });
    const indicators = Array.from({ length: 5 }, (_, i) => version(i, 30));
    for (const i of indicators) lab.opencti.create(i);
    await waitFor(() => sent().length === 5, 'the five objects received, answer lost');
    const first = new Map(sent().map((o) => [o.id, o.created]));
    // Later versions arrive while the upload is unconfirmed; the service dies before any answer.
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 5; i++) lab.opencti.update(version(i, 90));
    await service.waitForLog((l) => l.msg === 'routing decision' && String(l['decision']).includes('score 90'));
    await new Promise((r) => setTimeout(r, 1500)); // the batch commits (pipeline.batch_ms 200)
    await service.kill9();

    start(env);
    await waitFor(() => stix().length === 5 && stix().every((o) => o.confidence === 90), 'the later versions uploaded after the restart', 60_000);
    // Revocation: its first answer is lost too, and the service dies again before learning the outcome.
    lab.sentinel!.loseAnswers(1);
    for (const i of indicators) lab.opencti.delete(i.id);
    await waitFor(() => sent().filter((o) => o.revoked).length >= 5, 'revocations received, answer lost', 60_000);
    await service.kill9();
    start(env);
    await waitFor(() => sent().filter((o) => o.revoked).length >= 10, 'revocations sent again after the restart', 60_000);

    const createdById = new Map<string, Set<string>>();
    for (const o of sent()) createdById.set(o.id, (createdById.get(o.id) ?? new Set()).add(o.created));
    expect(createdById.size).to.equal(5);
    for (const [id, created] of createdById) expect([...created], `created values sent for ${id}`).to.deep.equal([first.get(id)]);
    for (const o of sent()) expect(Date.parse(o.modified)).to.be.above(Date.parse(o.created));
    expect(sent().length, 'versions received: lost upload, later version, lost revocation, retried revocation').to.be.at.least(20);
  });

  it('uses its own Entra app when configured, rides out 500 and 429, audits the errors and never logs a secret', async () => {
    const ownSecret = 'sentinel-own-app-secret-value';
    const ownClient = 'bbbbbbbb-cccc-4ddd-8eee-ffffffffffff';
    const workspace = '77777777-6666-4555-8444-333333333333';
    lab.entra.registerApp({ tenantId: LAB_TENANT, clientId: ownClient, clientSecret: ownSecret, roles: [] });
    // Only the Sentinel app holds the Contributor role here: the shared Defender app would get 403.
    lab.sentinel!.grantContributor(workspace, ownClient);
    const auditDir = mkdtempSync(join(tmpdir(), 'tb-e2e-audit-'));
    lab.sentinel!.failNext(1, 500);
    lab.sentinel!.failNext(1, 429, { retryAfter: 1 });
    start({ OPENCTI_TARGETS: 'sentinel', SENTINEL_WORKSPACE_ID: workspace, SENTINEL_CLIENT_ID: ownClient, SENTINEL_CLIENT_SECRET: ownSecret,
      SENTINEL_AUDIT_LOG_DIR: auditDir, CONNECTOR_LOG_LEVEL: 'debug' });
    for (let i = 0; i < 5; i++) lab.opencti.create(makeIndicator({ pattern: `[url:value = 'http://own${i}.example.com/x']`, score: 55 }));
    await waitFor(() => lab.sentinel!.indicators(workspace).length === 5, 'five objects in the Sentinel app\'s workspace', 60_000);
    const statuses = lab.sentinel!.requestLog.filter((r) => r.workspaceId === workspace).map((r) => r.status);
    expect(statuses.slice(0, 2)).to.deep.equal([500, 429]);
    const audit = readdirSync(auditDir).map((f) => readFileSync(join(auditDir, f), 'utf8')).join('');
    const errors = audit.split('\n').filter((l) => l.includes('"outcome":"ERROR"')).map((l) => (JSON.parse(l) as { status: number }).status);
    expect(errors).to.deep.equal([500, 429]);
    const everything = audit + JSON.stringify(service.lines) + service.stderr.join('');
    expect(everything).to.not.include(ownSecret).and.not.include(LAB_SECRET);
  });

  it('stops at start-up naming the missing workspace id', async () => {
    start({ OPENCTI_TARGETS: 'sentinel', SENTINEL_WORKSPACE_ID: '' });
    expect(await service.waitForExit()).to.equal(78);
    expect(service.stderr.join('')).to.include('sentinel.workspace_id [env SENTINEL_WORKSPACE_ID]');
  });
});

async function runCli(lab: Lab, args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [cli, ...args], { env: lab.env() }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))));
}
