// MISP ZeroMQ over CURVE: the simulator's publisher encrypts with its server key pair (as a CURVE
// relay in front of MISP does); the service connects with the server's public key and its own pair.
import { expect } from 'chai';
import { curveKeyPair } from 'zeromq';
import { Lab } from '../../sim/lab.js';
import { ServiceProcess, waitFor } from '../../sim/service-process.js';

describe('MISP ZeroMQ over CURVE end to end', function () {
  this.timeout(90_000);
  let lab: Lab;
  let service: ServiceProcess | undefined;

  beforeEach(async () => {
    lab = await new Lab({ misp: true, mispHeartbeatMs: 500, mispCurve: true }).start();
  });
  afterEach(async () => {
    await service?.stop().catch(() => undefined);
    service = undefined;
    await lab.stop();
  });

  const start = (env: Record<string, string> = {}) => {
    // A catch-up interval far beyond the test: what arrives came over ZeroMQ.
    service = new ServiceProcess(lab.env({ OPENCTI_URL: '', CONNECTOR_LIVE_STREAM_ID: '', MISP_CATCHUP_INTERVAL: '3600', MISP_PUBLISHED_ONLY: 'false', ...env }));
    service.start();
    return service;
  };
  const held = () => new Set((lab.defender.indicators() as { indicatorValue: string }[]).map((i) => i.indicatorValue));

  it('receives the feed encrypted with the configured keys', async () => {
    start();
    await service!.waitForLog((l) => l.msg === 'ZeroMQ feed connected', 30_000);
    await service!.waitForLog((l) => typeof l.msg === 'string' && /^MISP (full|catch-up) done$/.test(l.msg), 30_000);
    const ev = lab.misp!.createEvent({ info: 'Over CURVE', tags: ['tlp:green'] });
    lab.misp!.addAttribute(ev, { type: 'domain', value: 'over-curve.example' });
    await waitFor(() => held().has('over-curve.example'), 'the attribute sent over CURVE in Defender', 30_000);
  });

  it('never connects to a CURVE publisher with the wrong server key, and says why', async () => {
    start({ MISP_ZMQ_CURVE_SERVER_KEY: curveKeyPair().publicKey });
    await service!.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('MISP full done'), 30_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 3000));
    expect(service!.lines.some((l) => l.msg === 'ZeroMQ feed connected')).to.equal(false);
    const line = service!.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('ZeroMQ handshake failed'));
    expect(line?.msg).to.include('misp.zmq_curve_server_key');
    expect(JSON.stringify(service!.lines)).not.to.include(lab.curve!.client.secretKey);
  });
});
