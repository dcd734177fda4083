// README → `npm run demo`: the demo runs every flow against the simulators, its figures add up,
// it refuses a bad --events and leaves no temporary directory behind.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEMO = fileURLToPath(new URL('../../sim/demo.js', import.meta.url));

describe('the demo (README → npm run demo)', function () {
  this.timeout(300_000);

  it('shows every flow and a guard decision, its numbers add up, and it cleans up after itself', () => {
    // Its own TMPDIR: the demo's directories (state store, TLS certificate) must all be gone after it.
    const tmp = mkdtempSync(join(tmpdir(), 'tb-demo-'));
    const r = spawnSync(process.execPath, [DEMO, '--events', '80'], { env: { PATH: process.env['PATH'], TMPDIR: tmp }, encoding: 'utf8', timeout: 280_000 });
    expect(r.status, r.stderr + r.stdout).to.equal(0);
    const out = r.stdout;
    for (const section of ['== OpenCTI → Defender and Sentinel', '== MISP → Defender', '== Microsoft Defender alerts → DFIR-IRIS', '== Microsoft Defender assets → IBM CAR', '== Dead letters']) {
      expect(out, section).to.include(section);
    }
    expect(out).to.match(/Guard: 8\.8\.8\.8 \(score 95, so Block by score\) is in Defender as Audit: Block → Audit/);
    // The explanation of the removals is arithmetic the reader can check.
    const m = /Defender holds (\d+): (\d+) − (\d+),/.exec(out)!;
    expect(Number(m[1])).to.equal(Number(m[2]) - Number(m[3]));
    const events = /read (\d+) create events \(the (\d+) indicators and (\d+) authors[^:]*: (\d+) indicators applied; (\d+) assert nothing[^;]*; (\d+) ignored[^;]*; (\d+) dead-lettered/.exec(out)!;
    const [, all, ind, deps, applied, retracted, ignored, dead] = events.map(Number);
    expect(all).to.equal(ind! + deps!);
    expect(applied! + retracted! + ignored! + dead!).to.equal(all);
    expect(out).to.match(/IRIS holds 1 alert: #\d+ "Demo: suspicious PowerShell"/);
    expect(out).to.match(/CAR holds 2 assets, 2 IP addresses and 1 user/);
    expect(readdirSync(tmp), 'temporary directories left behind').to.deep.equal([]);
  });

  it('refuses an --events value that is not a whole number', () => {
    const r = spawnSync(process.execPath, [DEMO, '--events', 'abc'], { encoding: 'utf8' });
    expect(r.status).to.equal(64);
    expect(r.stderr).to.include('--events takes a whole number');
    expect(r.stdout).to.equal('');
  });
});
