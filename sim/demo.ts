// `npm run demo` (from a clone; simulators are not shipped): the real service, as one child
// process with every flow configured, against the built-in simulators. It streams a realistic
// OpenCTI mix, publishes MISP events, raises a Defender alert and reports machines, then prints
// what reached Defender, Sentinel, DFIR-IRIS and IBM CAR, and says where each number comes from:
// the figures are the service's own metrics and the simulators' state, never assumed.
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CarSimulator } from './car/server.js';
import { defenderAlerts } from './defender/alert-routes.js';
import { assetData } from './defender/asset-routes.js';
import { IrisSimulator } from './iris/server.js';
import { Lab, LAB_TENANT } from './lab.js';
import { makeIndicator, randomIndicatorMix } from './opencti/fixtures.js';
import { ServiceProcess, waitFor } from './service-process.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

/** Sum of a Prometheus counter's samples whose labels contain every `match` pair, by one label's value. */
async function metric(port: number, name: string, match: Record<string, string> = {}, by?: string): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(match).some(([k, v]) => labels[k] !== v)) continue;
    const key = by ? labels[by] ?? '' : '';
    out.set(key, (out.get(key) ?? 0) + Number(m[3]));
  }
  return out;
}
const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const list = (m: Map<string, number>) => [...m].filter(([, v]) => v > 0).map(([k, v]) => `${v} ${k}`).join(', ') || 'none';

function cli(env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  return new Promise((resolve) => execFile(process.execPath, [CLI, ...args], { env }, (_e, stdout) => resolve(stdout)));
}

export async function runDemo({ events, keep = false }: { events: number; keep?: boolean }): Promise<void> {
  const out = (s = '') => process.stdout.write(`${s}\n`);
  out('Starting simulators on loopback: OpenCTI, MISP (REST + ZeroMQ), Entra ID, Defender (indicators, alerts,');
  out('machines), Sentinel (STIX upload), DFIR-IRIS and IBM CAR...');
  const lab = await new Lab({ heartbeatMs: 1000, misp: true, sentinel: true }).start();
  const iris = await new IrisSimulator().start();
  const irisKey = iris.addUser('threatbridge', ['alerts_read', 'alerts_write', 'customers_read'], [1]).apiKey;
  const car = new CarSimulator({ apiKey: 'car-key', password: 'car-demo-password', pollsBeforeComplete: 1 });
  await car.start();
  const alerts = defenderAlerts(lab.defender);
  const assets = assetData(lab.defender);
  const env = lab.env({
    // trace: the service logs why it ignores an event or finds nothing asserted, which the demo tallies below.
    CONNECTOR_LOG_LEVEL: 'trace',
    // The shipped TLP default (the lab lets OpenCTI's TLP:RED fixtures through for the flow tests).
    GUARD_MAX_TLP: '',
    OPENCTI_TARGETS: 'defender,sentinel',
    IRIS_URL: iris.url, IRIS_API_KEY: irisKey, IRIS_CUSTOMER_ID: '1', DEFENDER_ALERTS_INTERVAL: '2',
    CAR_URL: car.url, CAR_API_KEY: 'car-key', CAR_PASSWORD: 'car-demo-password', DEFENDER_ASSETS_INTERVAL: '3',
  });
  const service = new ServiceProcess(env);
  try {
    service.start();
    await service.waitForLog((l) => l.msg === 'stream connected', 30_000);
    // A first start replays what OpenCTI holds up to the connection time; objects created during
    // that replay would be read twice (harmless, but it would blur the counts below).
    await new Promise((r) => setTimeout(r, 3000));
    const port = (await waitFor(() => service.healthPort, 'health port')) as number;
    const settle = async () => {
      await waitFor(async () => total(await metric(port, 'threatbridge_source_events_total', { source: 'opencti' })) >= lab.opencti.eventCount - 50
        && total(await metric(port, 'threatbridge_outbox_pending')) === 0, 'the outbox to drain', 120_000, 500);
      await new Promise((r) => setTimeout(r, 1500));
    };
    const fromOpenCti = () => lab.defender.indicators().filter((i) => String(i.description).includes(lab.opencti.url));

    // --- OpenCTI → Defender and Sentinel -----------------------------------------------------
    const mix = randomIndicatorMix(events, 42);
    // One more: a Block on Google's public resolver, which the guard must never let Defender block.
    const resolver = makeIndicator({ pattern: "[ipv4-addr:value = '8.8.8.8']", score: 95, name: 'demo: a resolver reported as C2' });
    out(`\n== OpenCTI → Defender and Sentinel (OPENCTI_TARGETS=defender,sentinel)`);
    out(`Streaming ${events} random indicators (seed 42) and one Block on 8.8.8.8...`);
    for (const obj of [...mix, resolver]) lab.opencti.create(obj);
    await settle();
    const outcome = await metric(port, 'threatbridge_source_events_total', { source: 'opencti', event: 'create' }, 'outcome');
    const skipped = await metric(port, 'threatbridge_observables_skipped_total', { source: 'opencti' }, 'reason');
    const withheld = await metric(port, 'threatbridge_guard_decisions_total', { source: 'opencti', sink: 'defender', outcome: 'tlp' });
    const ignoredWhy = new Map<string, number>();
    const withdrawnWhy = new Map<string, number>();
    for (const l of service.lines) {
      if (l['source'] !== 'opencti' || l['event'] !== 'create') continue;
      const tally = l.msg === 'event ignored' ? ignoredWhy : l.msg === 'nothing asserted' ? withdrawnWhy : null;
      tally?.set(String(l['reason']), (tally.get(String(l['reason'])) ?? 0) + 1);
    }
    const upserts = await metric(port, 'threatbridge_outbox_enqueued_total', { sink: 'defender', op: 'upsert' });
    const held = fromOpenCti().length;
    out(`The service read ${total(outcome)} create events (the ${mix.length + 1} indicators and ${total(outcome) - mix.length - 1} authors and markings they refer to):`
      + ` ${outcome.get('applied') ?? 0} indicators applied;`
      + ` ${outcome.get('retracted') ?? 0} assert nothing${withdrawnWhy.size ? ` (${list(withdrawnWhy)})` : ' (revoked or already expired when created)'};`
      + ` ${outcome.get('ignored') ?? 0} ignored${ignoredWhy.size ? ` (${list(ignoredWhy)})` : ''};`
      + ` ${outcome.get('dead_letter') ?? 0} dead-lettered (a pattern that does not parse, or nothing in it Defender has a type for: listed at the end).`);
    out(`Values of applied indicators that were not sent: ${list(skipped)}; kept home by the TLP policy (TLP:RED is above guard.max_tlp): ${total(withheld)}.`);
    out(`Defender now holds ${held} indicators from OpenCTI: one per value the other applied indicators assert`
      + ` (an OR pattern gives two values); ${total(upserts)} upserts were queued for it.`);
    // Sentinel is fed by the same stream: what it holds, by STIX type, beside Defender's types.
    const sentinelTypes = new Map<string, number>();
    for (const i of lab.sentinel!.indicators()) {
      const type = /^\[([\w-]+):/.exec(String(i['pattern']))?.[1] ?? 'other';
      sentinelTypes.set(type, (sentinelTypes.get(type) ?? 0) + 1);
    }
    const defenderTypes = new Map<string, number>();
    for (const i of fromOpenCti()) defenderTypes.set(i.indicatorType, (defenderTypes.get(i.indicatorType) ?? 0) + 1);
    out(`Sentinel holds ${lab.sentinel!.indicators().length} STIX indicators from the same stream (${list(sentinelTypes)});`
      + ` Defender's ${held} are ${list(defenderTypes)}. Sentinel has more: Defender has no e-mail type, and takes a certificate`
      + ' only to block it (a certificate scored below 60 is not pushed, doc/mappings.md).');
    const guarded = lab.defender.indicators().find((i) => i.indicatorValue === '8.8.8.8');
    const decisions = JSON.parse(await cli(env, ['decisions', '--json', '--limit', '1000'])) as { decisions: { key: string; sink: string; wanted: string; action: string; reason: string }[] };
    const decision = decisions.decisions.find((d) => d.key === 'ipv4:8.8.8.8' && d.sink === 'defender');
    out(`Guard: 8.8.8.8 (score 95, so Block by score) is in Defender as ${String(guarded?.action)}: ${decision ? `${decision.wanted} → ${decision.action}, "${decision.reason}"` : 'no decision recorded'}.`);

    // Life after creation: lowered scores, deletions and revocations.
    const indicators = mix.filter((o) => o['type'] === 'indicator' && lab.opencti.get(String(o['id'])));
    const gone = [...indicators.slice(5, 10), ...indicators.slice(10, 12)].map((o) => String(o['id']));
    const heldBefore = held;
    const withValues = fromOpenCti().filter((i) => gone.includes(String(i.externalId))).length;
    const owners = new Set(fromOpenCti().filter((i) => gone.includes(String(i.externalId))).map((i) => i.externalId)).size;
    for (const obj of indicators.slice(0, 5)) {
      const ext = structuredClone(obj['extensions'] as Record<string, Record<string, unknown>>);
      for (const e of Object.values(ext)) if ('score' in e) e['score'] = 15;
      lab.opencti.update({ ...obj, extensions: ext });
    }
    for (const obj of indicators.slice(5, 10)) lab.opencti.delete(String(obj['id']));
    for (const obj of indicators.slice(10, 12)) lab.opencti.update({ ...obj, revoked: true });
    await settle();
    out(`Then 5 indicators got score 15 (→ Warn), 5 were deleted and 2 revoked in OpenCTI. Defender holds ${fromOpenCti().length}:`
      + ` ${heldBefore} − ${withValues}, the values the ${owners} of those 7 indicators that were in Defender asserted`
      + ` (the other ${7 - owners} had been ignored or dead-lettered; an OR pattern has two values).`);

    // --- MISP → Defender ----------------------------------------------------------------------
    const misp = lab.misp!;
    out('\n== MISP → Defender (ZeroMQ, with REST catch-up)');
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
    out('Published a TLP:GREEN event with 4 attributes and a TLP:RED one with 1. Defender got 3: the domain, the IP of');
    out('"ip-dst|port" and the SHA-256 of "filename|sha256"; the "text" attribute is no indicator, and the TLP:RED one stays home.');
    misp.softDeleteAttribute(first.uuid);
    await waitFor(() => fromMisp().length === 2, 'the MISP soft delete in Defender', 60_000);
    out(`Soft-deleted the domain in MISP: Defender holds ${fromMisp().length} from MISP.`);
    for (const i of fromMisp()) out(`  ${i.indicatorType.padEnd(22)}${String(i.action).padEnd(19)}${String(i.severity).padEnd(10)}${i.indicatorValue}`);

    // --- Defender alerts → DFIR-IRIS ----------------------------------------------------------
    out('\n== Microsoft Defender alerts → DFIR-IRIS');
    const alert = alerts.add(LAB_TENANT, { title: 'Demo: suspicious PowerShell', severity: 'High', computerDnsName: 'ws-01.contoso.local' });
    await waitFor(() => iris.alertList().some((a) => a.alert_source_ref === alert.id), 'the alert in IRIS', 60_000, 250);
    const created = iris.alertList().find((a) => a.alert_source_ref === alert.id)!;
    out(`Raised 1 High alert in Defender; IRIS holds ${iris.alertList().length} alert: #${created.alert_id} "${created.alert_title}" for customer ${created.alert_customer_id}.`);

    // --- Defender assets → IBM CAR ------------------------------------------------------------
    out('\n== Microsoft Defender assets → IBM CAR');
    const ws = assets.addMachine({ computerDnsName: 'ws-01.contoso.local', ipAddresses: [{ ipAddress: '10.1.0.11', macAddress: '005056AA0001', operationalStatus: 'Up' }] });
    assets.addMachine({ computerDnsName: 'srv-02.contoso.local', osPlatform: 'WindowsServer2022', ipAddresses: [{ ipAddress: '10.1.0.12', macAddress: '005056AA0002', operationalStatus: 'Up' }] });
    assets.logonUsers.set(ws.id, [{ id: 'contoso\\alice', accountName: 'alice', accountDomain: 'contoso', logonTypes: 'Interactive' }]);
    await waitFor(() => car.list('asset').length >= 2 && car.list('user').length >= 1, 'the machines in CAR', 60_000, 250);
    out(`Defender reports 2 machines, one with a logged-on user; CAR holds ${car.list('asset').length} assets, ${car.list('ipaddress').length} IP addresses`
      + ` and ${car.list('user').length} user (one node per machine, address and user, linked by edges).`);

    // --- What was set aside -------------------------------------------------------------------
    const letters = await cli(env, ['dead-letters']);
    out('\n== Dead letters (kept with their reason for `threatbridge replay` once the cause is fixed)');
    out(letters.split('\n').filter(Boolean).slice(0, 12).map((l) => `  ${l}`).join('\n'));
    out(`\nEvery number above is from the service's /metrics, \`threatbridge\` commands or the simulators' state.`);
    if (keep) out(`State directory kept: ${lab.stateDir}`);
  } finally {
    await service.stop();
    await Promise.allSettled([iris.stop(), car.stop(), lab.stop()]);
    // Temporary directories of this run: the state store and the simulators' TLS certificate.
    if (!keep) for (const dir of [lab.stateDir, dirname(lab.caPath)]) rmSync(dir, { recursive: true, force: true });
  }
}

// `node dist/sim/demo.js [--events N] [--keep]`
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf('--events');
  const raw = i >= 0 ? process.argv[i + 1] ?? '' : '200';
  const events = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(events) || events < 20 || events > 20000) {
    process.stderr.write(`--events takes a whole number from 20 to 20000 (got "${raw}")\n`);
    process.exit(64);
  }
  runDemo({ events, keep: process.argv.includes('--keep') }).catch((err: Error) => {
    process.stderr.write(`demo failed: ${err.message}\n`);
    process.exit(1);
  });
}
