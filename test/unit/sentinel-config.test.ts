// The `sentinel` section and the OpenCTI → Sentinel flow: targets, credential fallback, refusals.
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/load.js';
import { activeIndicatorSinks, flowStatuses } from '../../src/config/flows.js';
import { SECRET_KEYS } from '../../src/config/schema.js';
import { sentinelCredentials } from '../../src/microsoft/token.js';

const base = {
  OPENCTI_URL: 'http://opencti:8080', OPENCTI_TOKEN: 'tok-value', CONNECTOR_ID: '6d0b5b6a-41d7-4a53-9d7d-6f1b2c3d4e5f',
  CONNECTOR_LIVE_STREAM_ID: 'stream-1', MICROSOFT_DEFENDER_INTEL_TENANT_ID: 'tenant', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'client',
  MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 'shared-secret',
};

function load(env: Record<string, string>) {
  const file = join(mkdtempSync(join(tmpdir(), 'tb-sc-')), 'config.yml');
  writeFileSync(file, '');
  return loadConfig({ env: { ...base, ...env }, file });
}

describe('Sentinel configuration', () => {
  it('has documented defaults and registers its secret', () => {
    const s = load({}).sentinel;
    expect(s).to.deep.include({ host: 'https://api.ti.sentinel.azure.com', api_version: '2024-02-01-preview', scope: 'https://management.azure.com/.default',
      batch_size: 100, requests_per_minute: 95, days_to_expire: 30, verify_cert: true, passive_only: false, source_system: 'ThreatBridge' });
    expect(s.audit_log_dir).to.equal(undefined);
    expect(SECRET_KEYS).to.include('sentinel.client_secret');
  });

  it('is wanted only when a source targets it, and then needs the workspace id', () => {
    expect(flowStatuses(load({})).find((f) => f.sink === 'sentinel')!.wanted).to.equal(false);
    const wanted = flowStatuses(load({ OPENCTI_TARGETS: 'defender,sentinel' })).find((f) => f.sink === 'sentinel')!;
    expect(wanted).to.deep.include({ wanted: true, missing: ['sentinel.workspace_id'] });
    expect([...activeIndicatorSinks(load({ OPENCTI_TARGETS: 'sentinel', SENTINEL_WORKSPACE_ID: '12345678-1234-4234-8234-123456789abc' }))]).to.deep.equal(['sentinel']);
  });

  it('uses its own Entra app where set, else the shared one, and names the key that is missing', () => {
    const shared = load({ SENTINEL_WORKSPACE_ID: 'ws-1' });
    expect(sentinelCredentials(shared)).to.deep.include({ tenantId: 'tenant', clientId: 'client', clientSecret: 'shared-secret', loginUrl: 'https://login.microsoftonline.com' });
    const own = load({ SENTINEL_WORKSPACE_ID: 'ws-1', SENTINEL_CLIENT_ID: 'own', SENTINEL_CLIENT_SECRET: 'own-secret', SENTINEL_LOGIN_URL: 'https://login.microsoftonline.us' });
    expect(sentinelCredentials(own)).to.deep.include({ tenantId: 'tenant', clientId: 'own', clientSecret: 'own-secret', loginUrl: 'https://login.microsoftonline.us' });
    const none = flowStatuses(load({ OPENCTI_TARGETS: 'sentinel', SENTINEL_WORKSPACE_ID: 'ws-1', MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: '' }))
      .find((f) => f.sink === 'sentinel')!;
    expect(none.missing).to.deep.equal(['microsoft_defender_intel.client_secret']);
  });

  it('accepts the script\'s action names in any case and refuses what the API refuses', () => {
    expect(load({ SENTINEL_ACTION: 'Block' }).sentinel.action).to.equal('block');
    for (const [key, value, text] of [
      ['SENTINEL_ACTION', 'deny', 'sentinel.action'],
      ['SENTINEL_SOURCE_SYSTEM', 'Microsoft Sentinel', 'reserved'],
      ['SENTINEL_BATCH_SIZE', '500', 'sentinel.batch_size'],
      ['SENTINEL_REQUESTS_PER_MINUTE', '150', 'sentinel.requests_per_minute'],
      ['SENTINEL_WORKSPACE_ID', 'https://portal.azure.com/x', 'sentinel.workspace_id'],
    ] as const) {
      expect(() => load({ [key]: value }), key).to.throw(ConfigError, text);
    }
  });
});
