// End-to-end (issue 17): an indicator pushed from OpenCTI and one from MISP reach the simulated
// Defender; Defender raises CustomTI alerts on each; the built service writes a sighting back to
// the platform that asserted the indicator. The oracle is what the OpenCTI and MISP simulators
// received and hold, counted across an outage of both platforms, a kill -9 and a restart.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { defenderAlerts } from '../../sim/defender/alert-routes.js';
import { customTiAlert, evidence, type AlertStore } from '../../sim/defender/alerts.js';
import type { Indicator } from '../../sim/defender/indicators.js';
import { Lab, LAB_CLIENT, LAB_SECRET, LAB_TENANT } from '../../sim/lab.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli.js');
const OCTI_IP = '203.0.113.77';
const MISP_DOMAIN = 'sightings-c2.example.org';

describe('Defender hits → sightings in OpenCTI and MISP end to end', function () {
  this.timeout(240_000);
  let lab: Lab;
  let alerts: AlertStore;
  let service: ServiceProcess | undefined;

  beforeEach(async () => {
    lab = await new Lab({ misp: true, mispHeartbeatMs: 500 }).start();
    lab.entra.registerApp({ tenantId: LAB_TENANT, clientId: LAB_CLIENT, clientSecret: LAB_SECRET, roles: ['Ti.ReadWrite.All', 'Alert.Read.All'] });
    alerts = defenderAlerts(lab.defender);
  });
  afterEach(async () => {
    await service?.stop().catch(() => undefined);
    service = undefined;
    await lab.stop();
  });

  const env = () => lab.env({
    DEFENDER_ALERTS_INTERVAL: '1', DEFENDER_ALERTS_OVERLAP_SECONDS: '60', MISP_CATCHUP_INTERVAL: '30',
    SIGHTINGS_OPENCTI_ENABLED: 'true', SIGHTINGS_MISP_ENABLED: 'true',
  });
  const run = () => {
    service = new ServiceProcess(env());
    service.start();
    return service;
  };
  const polls = () => service!.lines.filter((l) => l.msg === 'Defender alerts polled').length;
  const waitPolls = async (n: number) => { const target = polls() + n; await waitFor(() => polls() >= target, `${n} more polls`, 30_000); };
  const held = (value: string) => (lab.defender.indicators() as Indicator[]).find((i) => i.indicatorValue === value);
  const octiAdds = () => lab.opencti.sightings.calls.filter((c) => c.field === 'stixSightingRelationshipAdd' && c.error === null).length;
  const mispAdds = () => lab.misp!.requests.filter((r) => r.path === '/sightings/add' && r.status === 200).length;

  it('sights each alert exactly once per platform across an outage, kill -9 and a restart; a second alert updates the count; the sighting does not come back to Defender', async () => {
    const indicator = makeIndicator({ observableType: 'ipv4-addr', value: OCTI_IP, score: 80, markings: ['TLP:GREEN'] });
    lab.opencti.create(indicator);
    const misp = lab.misp!;
    const ev = misp.createEvent({ info: 'C2 infrastructure', tags: ['tlp:green'] });
    const attr = misp.addAttribute(ev, { type: 'domain', value: MISP_DOMAIN });
    misp.publish(ev);
    run();
    await waitFor(() => held(OCTI_IP) && held(MISP_DOMAIN), 'both indicators in Defender', 60_000);
    const octiInDefender = structuredClone(held(OCTI_IP)!);

    // Both platforms down while the alerts arrive: nothing is lost, the work waits.
    lab.opencti.setDown(503, 'Service Unavailable', { graphql: true });
    misp.setRestDown(true);
    const a1 = alerts.add(LAB_TENANT, customTiAlert(held(OCTI_IP)!, { computerDnsName: 'ws-07.contoso.local' }));
    const a2 = alerts.add(LAB_TENANT, customTiAlert({ ...held(MISP_DOMAIN)!, indicatorValue: `https://${MISP_DOMAIN}/gate.php` , indicatorType: 'Url' }));
    // A crafted alert (an object where its id belongs): one dead letter, its neighbours go on.
    alerts.add(LAB_TENANT, { ...customTiAlert(held(OCTI_IP)!), id: { $ne: 1, __proto__: { polluted: true } } as never });
    // Hostile evidence on a well-formed alert: read, matched to nothing, no crash.
    const odd = alerts.add(LAB_TENANT, {
      ...customTiAlert(held(OCTI_IP)!), title: 'no such indicator title',
      evidence: ['x', 7, JSON.parse('{"__proto__":{"polluted":true},"entityType":"Ip","ipAddress":{"toString":"203.0.113.77"}}'),
        evidence({ entityType: 'Url', url: `http://${'a'.repeat(200_000)}.example/` }), evidence({ entityType: 'File', sha1: 'Z'.repeat(40) })] as never,
    });
    await waitPolls(3);
    expect(octiAdds()).to.equal(0);
    expect(mispAdds()).to.equal(0);
    await service!.kill9();
    run();
    await waitPolls(2);
    lab.opencti.setDown(null);
    misp.setRestDown(false);

    await waitFor(() => lab.opencti.sightings.of(indicator.id).length === 1 && misp.sightings.of(attr.uuid).length === 1, 'one sighting in each platform', 60_000);
    const s = lab.opencti.sightings.of(indicator.id)[0]!;
    expect(s.attribute_count).to.equal(1);
    expect(s.first_seen).to.equal(a1.firstEventTime);
    const where = [...lab.opencti.sightings.identities.values()];
    expect(where).to.have.length(1);
    expect(where[0]!.name).to.equal(`Microsoft Defender for Endpoint (${LAB_TENANT})`);
    expect(s.toId).to.equal(where[0]!.standard_id);
    expect(s.references.map((r) => lab.opencti.sightings.references.get(r)!.url)).to.deep.equal([`https://security.microsoft.com/alerts/${a1.id}`]);
    const m = misp.sightings.of(attr.uuid)[0]!;
    expect(m).to.include({ source: `Microsoft Defender (ThreatBridge) alert ${a2.id}`, type: '0' });
    expect(Number(m.date_sighting)).to.equal(Math.floor(Date.parse(a2.lastEventTime) / 1000));

    // Restart, re-polls of the overlap window, an update of the first alert: still one each.
    await service!.stop();
    run();
    await waitPolls(3);
    alerts.update(LAB_TENANT, a1.id, { lastEventTime: new Date(Date.parse(a1.lastEventTime) + 60_000).toISOString(), status: 'InProgress' });
    alerts.update(LAB_TENANT, a2.id, { status: 'InProgress' });
    await waitFor(() => lab.opencti.sightings.of(indicator.id)[0]!.last_seen !== a1.lastEventTime, 'last_seen follows the alert', 30_000);
    await waitPolls(2);
    expect(lab.opencti.sightings.of(indicator.id)).to.have.length(1);
    expect(lab.opencti.sightings.of(indicator.id)[0]!.attribute_count).to.equal(1);
    expect(misp.sightings.of(attr.uuid)).to.have.length(1);
    expect(octiAdds()).to.equal(1);
    expect(mispAdds()).to.equal(1);

    // A second alert on each indicator: the OpenCTI sighting counts 2, MISP holds a second sighting.
    const b1 = alerts.add(LAB_TENANT, customTiAlert(held(OCTI_IP)!, { computerDnsName: 'ws-08.contoso.local' }));
    const b2 = alerts.add(LAB_TENANT, customTiAlert(held(MISP_DOMAIN)!));
    await waitFor(() => lab.opencti.sightings.of(indicator.id)[0]!.attribute_count === 2 && misp.sightings.of(attr.uuid).length === 2, 'second alerts counted', 30_000);
    await waitPolls(3);
    expect(lab.opencti.sightings.of(indicator.id)).to.have.length(1);
    expect(lab.opencti.sightings.of(indicator.id)[0]!.attribute_count).to.equal(2);
    expect(lab.opencti.sightings.references.size).to.equal(2);
    expect([...lab.opencti.sightings.references.values()].some((r) => r.url?.includes(odd.id))).to.equal(false);
    expect(misp.sightings.of(attr.uuid).map((x) => x.source).sort()).to.deep.equal([a2.id, b2.id].map((id) => `Microsoft Defender (ThreatBridge) alert ${id}`).sort());
    expect(octiAdds()).to.equal(1);
    expect(mispAdds()).to.equal(2);

    // No loop: the sighting events on the OpenCTI stream left the Defender indicator as it was.
    expect(held(OCTI_IP)).to.deep.equal(octiInDefender);
    // The crafted alert is one dead letter; metrics and the hits command show the hits.
    const metrics = await fetch(`http://127.0.0.1:${service!.healthPort}/metrics`).then((r) => r.text());
    expect(metrics).to.match(/threatbridge_indicator_hits_total\{platform="opencti",matched_by="evidence"\} [1-9]/);
    expect(metrics).to.match(/threatbridge_indicator_hits_total\{platform="misp",matched_by="evidence"\} [1-9]/);
    await service!.stop();
    const letters = JSON.parse((await promisify(execFile)(process.execPath, [CLI, 'dead-letters', '--json'], { env: env() })).stdout) as { sink: string }[];
    expect(letters.filter((d) => d.sink.startsWith('source:defender_alerts'))).to.have.length(1);
    const hits = JSON.parse((await promisify(execFile)(process.execPath, [CLI, 'hits', '--json'], { env: env() })).stdout) as { hits: { sink: string; reason: string }[] };
    for (const id of [a1.id, a2.id, b1.id, b2.id]) expect(hits.hits.some((h) => h.reason.includes(id)), id).to.equal(true);
  });
});
