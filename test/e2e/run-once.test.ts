// End-to-end: `threatbridge run --once` for every flow, as the scripts' cron use: the built CLI reads
// each source once (the OpenCTI stream until caught up, a MISP sync, one assets run), delivers to
// the simulators, prints one summary line per flow and exits 0, 1 (something failed) or 3 (a sink
// refused our set-up). Assertions are on the simulators' state and on the printed lines.
import { expect } from 'chai';
import { CarSimulator } from '../../sim/car/server.js';
import { assetData } from '../../sim/defender/asset-routes.js';
import { Lab } from '../../sim/lab.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';
import { ServiceProcess } from '../../sim/service-process.js';

type Indicator = { indicatorValue: string; action: string };

describe('run --once end to end', function () {
  this.timeout(120_000);
  let lab: Lab;

  afterEach(async () => {
    await lab?.stop();
  });

  const once = async (env: NodeJS.ProcessEnv): Promise<{ code: number | null; lines: string[] }> => {
    const p = new ServiceProcess(env);
    p.start(['run', '--once']);
    const code = await p.waitForExit(90_000);
    return { code, lines: p.lines.map((l) => l.msg ?? '') };
  };
  const summary = (lines: string[], flow: string) => lines.find((l) => l.startsWith(`${flow}:`));
  const values = () => (lab.defender.indicators() as Indicator[]).map((i) => i.indicatorValue).sort();
  const indicator = (value: string, score = 70) =>
    makeIndicator({ pattern: `[domain-name:value = '${value}']`, score, markings: ['TLP:GREEN'], labels: [] });

  it('OpenCTI: reads the stream until caught up, delivers, and exits 1 when an event was dead-lettered, then 0', async () => {
    lab = await new Lab({ heartbeatMs: 500 }).start();
    const a = indicator('once-a.example.net');
    lab.opencti.create(a);
    lab.opencti.create(indicator('once-b.example.net'));
    lab.opencti.create(makeIndicator({ pattern: "[ipv4-addr:value = '1.2.3.4'", score: 70 }));
    const first = await once(lab.env());
    expect(first.code).to.equal(1);
    expect(summary(first.lines, 'opencti -> defender')).to.equal('opencti -> defender: processed 2, created 2, updated 0, failed 1');
    expect(values()).to.deep.equal(['once-a.example.net', 'once-b.example.net']);
    expect(lab.opencti.connectors.size, 'a one-shot run does not register in OpenCTI').to.equal(0);

    // The next run resumes where the first stopped: only the new events.
    lab.opencti.create(indicator('once-c.example.net'));
    lab.opencti.update(indicator('once-a.example.net', 20));
    const second = await once(lab.env());
    expect(second.code).to.equal(0);
    expect(summary(second.lines, 'opencti -> defender')).to.equal('opencti -> defender: processed 2, created 1, updated 1, failed 0');
    expect(values()).to.deep.equal(['once-a.example.net', 'once-b.example.net', 'once-c.example.net']);
    const third = await once(lab.env());
    expect(summary(third.lines, 'opencti -> defender')).to.equal('opencti -> defender: processed 0, created 0, updated 0, failed 0');
    expect(third.code).to.equal(0);
  });

  it('exits 3 naming the sink when it refuses our set-up (no Sentinel Contributor role on the workspace)', async () => {
    lab = await new Lab({ heartbeatMs: 500, sentinel: true }).start();
    lab.opencti.create(indicator('refused.example.net'));
    const workspace = '12121212-3434-4565-8787-909090909090';
    lab.sentinel!.grantContributor(workspace, 'someone-else');
    const r = await once(lab.env({ OPENCTI_TARGETS: 'sentinel', SENTINEL_WORKSPACE_ID: workspace }));
    expect(r.code, r.lines.join('\n')).to.equal(3);
    expect(summary(r.lines, 'opencti -> sentinel')).to.equal('opencti -> sentinel: processed 1, created 0, updated 0, failed 1');
    expect(r.lines.find((l) => l.startsWith('  set-up refused by sentinel:'))).to.include('Microsoft Sentinel Contributor');
    expect(lab.sentinel!.indicators()).to.deep.equal([]);
  });

  it('MISP: one sync (full on the first run, then a catch-up) delivers what was published', async () => {
    lab = await new Lab({ misp: true }).start();
    const misp = lab.misp!;
    const env = lab.env({ OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', MISP_ZMQ_URL: '' });
    const ev = misp.createEvent({ info: 'Once', tags: ['tlp:green'] });
    misp.addAttribute(ev, { type: 'domain', value: 'misp-once.example.org' });
    misp.addAttribute(ev, { type: 'ip-dst', value: '203.0.113.77' });
    misp.publish(ev);
    const first = await once(env);
    expect(first.code).to.equal(0);
    expect(summary(first.lines, 'misp -> defender')).to.equal('misp -> defender: processed 2, created 2, updated 0, failed 0');
    expect(first.lines).to.include('  fullSync 1, catchUp 0, deleted 0, deadLettered 0, waitingForRetry 0, readFailures 0');
    expect(values()).to.deep.equal(['203.0.113.77', 'misp-once.example.org']);

    const gone = misp.addAttribute(ev, { type: 'domain', value: 'misp-later.example.org' });
    misp.publish(ev);
    misp.hardDeleteAttribute(gone.uuid);
    misp.addAttribute(ev, { type: 'domain', value: 'misp-third.example.org' });
    misp.publish(ev);
    const second = await once(env);
    expect(second.code).to.equal(0);
    expect(second.lines.some((l) => l.startsWith('  fullSync 0, catchUp 1'))).to.equal(true);
    expect(values()).to.deep.equal(['203.0.113.77', 'misp-once.example.org', 'misp-third.example.org']);
  });

  it('Defender assets: one run imports the estate into CAR and writes the save point', async () => {
    lab = await new Lab().start();
    const car = new CarSimulator({ apiKey: 'car-key', password: 'car-password-value', pollsBeforeComplete: 1 });
    await car.start();
    try {
      const data = assetData(lab.defender);
      const m = data.addMachine({ computerDnsName: 'once1.corp.example', ipAddresses: [{ ipAddress: '10.2.0.1', macAddress: '005056AB0001', operationalStatus: 'Up' }] });
      data.addMachine({ computerDnsName: 'once2.corp.example', ipAddresses: [{ ipAddress: '10.2.0.2', macAddress: '005056AB0002', operationalStatus: 'Up' }] });
      const env = lab.env({ OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', CAR_URL: car.url, CAR_API_KEY: 'car-key', CAR_PASSWORD: 'car-password-value' });
      const r = await once(env);
      expect(r.code).to.equal(0);
      const line = summary(r.lines, 'defender_assets -> car');
      expect(line).to.match(/^defender_assets -> car: processed \d+, created \d+, updated \d+, failed 0$/);
      expect(car.node('asset', m.id)).to.include({ name: 'once1.corp.example' });
      expect(car.list('asset').map((a) => a['name']).sort()).to.deep.equal(['once1.corp.example', 'once2.corp.example']);
      expect(car.modelState('Microsoft-Windows-Defender-ATP'), 'save point written').to.be.a('string');
    } finally {
      await car.stop();
    }
  });
});
