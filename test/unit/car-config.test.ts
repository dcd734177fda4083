// Configuration of the Defender assets → CAR flow: when it is wanted, what it requires, how its
// keys read from the environment.
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { activeFlows, flowProblems } from '../../src/config/flows.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { registerConfigSecrets } from '../../src/service.js';

const file = () => { const f = join(mkdtempSync(join(tmpdir(), 'tb-carcfg-')), 'config.yml'); writeFileSync(f, ''); return f; };
const load = (env: Record<string, string>) => loadConfig({ env, file: file() });
const ms = { MICROSOFT_DEFENDER_INTEL_TENANT_ID: 't', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'c', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 's' };

describe('Defender assets → CAR configuration', () => {
  it('is wanted once car.url is set and names every missing key', () => {
    const c = load({ CAR_URL: 'https://car.example/api/car/v2' });
    expect(flowProblems(c).missingKeys).to.include.members(['car.api_key', 'car.password', 'microsoft_defender_intel.tenant_id', 'microsoft_defender_intel.client_secret']);
    expect(activeFlows(c)).to.deep.equal([]);
  });

  it('accepts a car-token instead of api key and password', () => {
    const c = load({ ...ms, CAR_URL: 'https://car.example/api/car/v2/', CAR_TOKEN: 'tok' });
    expect(flowProblems(c)).to.deep.equal({ missingKeys: [], noFlow: null });
    expect(activeFlows(c).map((f) => f.name)).to.deep.equal(['defender_assets -> car']);
    expect(c.car.url).to.equal('https://car.example/api/car/v2');
  });

  it('reads the poller options from the environment with the seed defaults', () => {
    const defaults = load({});
    expect(defaults.defender_assets).to.include({ interval: 300, inactive_days: 15, include_alerts: true, include_vulnerabilities: true });
    expect(defaults.car.source).to.equal('Microsoft-Windows-Defender-ATP');
    const c = load({ DEFENDER_ASSETS_INACTIVE_DAYS: '30', DEFENDER_ASSETS_INCLUDE_ALERTS: 'false', DEFENDER_ASSETS_INCLUDE_VULNERABILITIES: 'no' });
    expect(c.defender_assets).to.include({ inactive_days: 30, include_alerts: false, include_vulnerabilities: false });
  });

  it('keeps CAR credentials out of logs', () => {
    const secrets = { CAR_API_KEY: 'car-api-key-7f3a', CAR_PASSWORD: 'car-password-9b2c', CAR_TOKEN: 'car-token-4d1e' };
    registerConfigSecrets(load({ ...ms, CAR_URL: 'https://car.example/api/car/v2', ...secrets }));
    const lines: string[] = [];
    const log = createLogger('info', { write: (line: string) => { lines.push(line); } });
    // As a client error would carry them: in the message text and in a field whose name says nothing.
    for (const value of Object.values(secrets)) log.warn({ detail: `CAR said: bad credentials ${value}` }, `request to CAR failed with ${value}`);
    const out = lines.join('');
    expect(lines).to.have.length(3);
    for (const value of Object.values(secrets)) expect(out).to.not.include(value);
    expect(out.match(/\[REDACTED\]/g)).to.have.length(6);
  });
});
