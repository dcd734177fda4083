// `npm run demo` (from a clone; simulators are not shipped): the real service, as a child process, against the built-in simulators.
// Streams a realistic mix (creates, updates, deletes, revocations, bad patterns) and prints what
// reached Defender and what was dead-lettered.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Lab } from './lab.js';
import { randomIndicatorMix } from './opencti/fixtures.js';
import { ServiceProcess, waitFor } from './service-process.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

export async function runDemo({ events }: { events: number }): Promise<void> {
  const out = (s = '') => process.stdout.write(`${s}\n`);
  out('Starting simulators (OpenCTI live stream, MISP REST + ZeroMQ, Entra ID over HTTPS, Defender indicators API)...');
  const lab = await new Lab({ heartbeatMs: 1000, misp: true }).start();
  // The shipped TLP default (the lab lets OpenCTI's TLP:RED fixtures through for the flow tests).
  const service = new ServiceProcess(lab.env({ CONNECTOR_LOG_LEVEL: 'info', GUARD_MAX_TLP: '' }));
  try {
    service.start();
    await service.waitForLog((l) => l.msg === 'stream connected', 20_000);
    out(`ThreatBridge is connected to ${lab.opencti.url}; streaming ${events} indicators...`);

    const port = (await waitFor(() => service.healthPort, 'health port')) as number;
    const settle = async () => {
      await waitFor(async () => (await metric(port, 'threatbridge_source_events_total')) >= lab.opencti.eventCount - 50
        && (await metric(port, 'threatbridge_outbox_pending')) === 0, 'the outbox to drain', 120_000, 500);
      await new Promise((r) => setTimeout(r, 1500));
    };

    const mix = randomIndicatorMix(events, 42);
    for (const obj of mix) lab.opencti.create(obj);
    await settle();
    out(`After the creates, Defender holds ${lab.defender.indicators().length} indicators.`);

    // Life after creation: lowered scores, deletions and revocations.
    const indicators = mix.filter((o) => o['type'] === 'indicator' && lab.opencti.get(String(o['id'])));
    for (const obj of indicators.slice(0, 5)) {
      const ext = structuredClone(obj['extensions'] as Record<string, Record<string, unknown>>);
      for (const e of Object.values(ext)) if ('score' in e) e['score'] = 15;
      lab.opencti.update({ ...obj, extensions: ext });
    }
    for (const obj of indicators.slice(5, 10)) lab.opencti.delete(String(obj['id']));
    for (const obj of indicators.slice(10, 12)) lab.opencti.update({ ...obj, revoked: true });
    out('Updated 5 (score 15 → Warn), deleted 5 and revoked 2 indicators in OpenCTI...');
    await settle();

    // MISP: one published event over ZeroMQ, a TLP:RED one that must never leave, then a soft delete.
    const misp = lab.misp!;
    const ev = misp.createEvent({ info: 'Demo: phishing campaign', tags: ['tlp:green'], threat_level_id: '1' });
    const first = misp.addAttribute(ev, { type: 'domain', value: 'login-demo-bank.example', tags: ['course-of-action:active="deny"'] });
    misp.addAttribute(ev, { type: 'ip-dst|port', value: '203.0.113.50|8443' });
    misp.addAttribute(ev, { type: 'filename|sha256', value: `invoice.pdf.exe|${'5e'.repeat(32)}` });
    misp.addAttribute(ev, { type: 'text', value: 'not an indicator' });
    const red = misp.createEvent({ info: 'Demo: partner-only intelligence', tags: ['tlp:red'] });
    misp.addAttribute(red, { type: 'domain', value: 'partner-only.example' });
    misp.publish(ev);
    misp.publish(red);
    const fromMisp = () => lab.defender.indicators().filter((i) => String(i.description).includes(misp.url));
    await waitFor(() => fromMisp().length === 3, 'the MISP event in Defender', 60_000);
    misp.softDeleteAttribute(first.uuid);
    await waitFor(() => fromMisp().length === 2, 'the MISP soft delete in Defender', 60_000);
    out(`MISP published 2 events (one TLP:RED, kept in MISP by the default rule); ${fromMisp().length} of their attributes are in Defender after a soft delete:`);
    for (const i of fromMisp()) out(`  ${i.indicatorType.padEnd(22)}${String(i.action).padEnd(19)}${String(i.severity).padEnd(15)}${String(i.expirationTime).padEnd(22)}${i.indicatorValue}`);

    const held = lab.defender.indicators();
    const byType = new Map<string, number>();
    const byAction = new Map<string, number>();
    for (const i of held) {
      byType.set(i.indicatorType, (byType.get(i.indicatorType) ?? 0) + 1);
      byAction.set(i.action, (byAction.get(i.action) ?? 0) + 1);
    }
    out();
    out(`Defender now holds ${held.length} indicators (import calls: ${lab.defender.requestLog.filter((r) => r.endpoint === 'indicators.import').length}, BatchDelete calls: ${lab.defender.requestLog.filter((r) => r.endpoint === 'indicators.batchDelete').length})`);
    out(`  by type:   ${[...byType].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    out(`  by action: ${[...byAction].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    out();
    out('A sample:');
    out(`  ${'type'.padEnd(22)}${'action'.padEnd(19)}${'severity'.padEnd(15)}${'expires'.padEnd(22)}value`);
    for (const i of held.slice(0, 12)) {
      out(`  ${i.indicatorType.padEnd(22)}${String(i.action).padEnd(19)}${String(i.severity).padEnd(15)}${String(i.expirationTime).padEnd(22)}${i.indicatorValue}`);
    }
    const letters = await new Promise<string>((resolve) =>
      execFile(process.execPath, [CLI, 'dead-letters'], { env: lab.env() }, (_e, stdout) => resolve(stdout)));
    out();
    out('Dead letters (kept for `threatbridge replay` once their cause is fixed):');
    out(letters.split('\n').filter(Boolean).slice(0, 16).map((l) => `  ${l}`).join('\n'));
    out();
    out(`State directory of this run: ${lab.stateDir}`);
  } finally {
    await service.stop();
    await lab.stop();
  }
}

// `node dist/sim/demo.js [--events N]`
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf('--events');
  const events = i >= 0 ? Number(process.argv[i + 1]) : 200;
  if (!Number.isInteger(events) || events < 1) {
    process.stderr.write('--events takes a whole number of at least 1\n');
    process.exit(64);
  }
  runDemo({ events }).catch((err: Error) => {
    process.stderr.write(`demo failed: ${err.message}\n`);
    process.exit(1);
  });
}
