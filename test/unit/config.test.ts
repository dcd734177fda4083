import { expect } from 'chai';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/errors.js';
import { configKeys, envName, loadConfig, requireKeys } from '../../src/config/load.js';
import { activeFlows, flowProblems, flowStatuses } from '../../src/config/flows.js';
import { ignoredSettings } from '../../src/service.js';

const base = {
  OPENCTI_URL: 'http://opencti:8080/',
  OPENCTI_TOKEN: 'secret-token-value',
  CONNECTOR_ID: '6d0b5b6a-41d7-4a53-9d7d-6f1b2c3d4e5f',
  CONNECTOR_LIVE_STREAM_ID: 'stream-1',
  MICROSOFT_DEFENDER_INTEL_TENANT_ID: 'tenant',
  MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'client',
  MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 'super-secret-value',
};

/** An empty config file, so a developer's own ./config.yml never leaks into a test. */
function emptyFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'tb-config-')), 'config.yml');
  writeFileSync(file, '');
  return file;
}

function problems(env: Record<string, string>, file?: string): string {
  try {
    loadConfig({ env: { ...base, ...env }, file: file ?? emptyFile() });
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config loading', () => {
  it('maps section.key_name to SECTION_KEY_NAME', () => {
    expect(envName('microsoft_defender_intel.client_id')).to.equal('MICROSOFT_DEFENDER_INTEL_CLIENT_ID');
  });

  it('reads the seed variables with their documented defaults', () => {
    const c = loadConfig({ env: base, file: emptyFile() });
    expect(c.opencti.url).to.equal('http://opencti:8080');
    expect(c.connector.live_stream_listen_delete).to.equal(true);
    expect(c.connector.live_stream_no_dependencies).to.equal(true);
    expect(c.connector.log_level).to.equal('info'); // issue 16: a healthy start and a recovery say so at the default level
    const d = c.microsoft_defender_intel;
    expect(d.login_url).to.equal('https://login.microsoftonline.com');
    expect(d.base_url).to.equal('https://api.securitycenter.microsoft.com');
    expect(d.resource_path).to.equal('/api/indicators');
    expect(d.expire_time).to.equal(30);
    expect(d.default_action).to.equal('Alert');
    expect(d.passive_only).to.equal(false);
    expect(activeFlows(c).map((f) => f.name)).to.deep.equal(['opencti -> defender']);
  });

  it('asks for at least one flow, and for every key of a flow the user started to configure', () => {
    const none = flowProblems(loadConfig({ env: {}, file: emptyFile() }));
    expect(none.noFlow).to.match(/no flow is configured/).and.to.include('opencti.url');
    const partial = flowProblems(loadConfig({ env: { OPENCTI_URL: 'http://opencti:8080' }, file: emptyFile() }));
    expect(partial.noFlow).to.equal(null);
    expect(partial.missingKeys).to.include.members(['opencti.token', 'connector.live_stream_id', 'microsoft_defender_intel.client_secret']);
  });

  it('sends an indicator source only to the sinks in its targets', () => {
    const c = loadConfig({ env: { ...base, OPENCTI_TARGETS: 'defender' }, file: emptyFile() });
    expect(flowStatuses(c).filter((f) => f.wanted).map((f) => f.name)).to.deep.equal(['opencti -> defender']);
    expect(() => loadConfig({ env: { ...base, OPENCTI_TARGETS: 'splunk' }, file: emptyFile() })).to.throw(ConfigError, /opencti\.targets/);
  });

  it('lets the environment win over the YAML file and parses booleans, numbers, lists and maps', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-config-'));
    const file = join(dir, 'config.yml');
    writeFileSync(file, 'microsoft_defender_intel:\n  expire_time: 10\n  passive_only: false\nconnector:\n  log_level: info\n');
    const c = loadConfig({
      env: {
        ...base, MICROSOFT_DEFENDER_INTEL_PASSIVE_ONLY: 'True', CONNECTOR_LOG_LEVEL: 'DEBUG',
        MICROSOFT_DEFENDER_INTEL_RBAC_GROUP_NAMES: 'servers, laptops', MICROSOFT_DEFENDER_INTEL_EXPIRE_TIME_BY_TYPE: 'url=7,ipv4=14',
      },
      file,
    });
    expect(c.microsoft_defender_intel.expire_time).to.equal(10);
    expect(c.microsoft_defender_intel.passive_only).to.equal(true);
    expect(c.connector.log_level).to.equal('debug');
    expect(c.microsoft_defender_intel.rbac_group_names).to.deep.equal(['servers', 'laptops']);
    expect(c.microsoft_defender_intel.expire_time_by_type).to.deep.equal({ url: 7, ipv4: 14 });
  });

  it("takes the official OpenCTI connector's settings unchanged, from the environment and from YAML", () => {
    const official = {
      ...base, CONNECTOR_LOG_LEVEL: 'warning', MICROSOFT_DEFENDER_INTEL_RESOURCE_PATH: 'api/indicators',
      CONNECTOR_SCOPE: 'indicator', CONNECTOR_TYPE: 'STREAM',
    };
    const c = loadConfig({ env: official, file: emptyFile() });
    expect(c.connector.log_level).to.equal('warn');
    expect(c.microsoft_defender_intel.resource_path).to.equal('/api/indicators');
    expect(ignoredSettings(c).map((n) => n.key)).to.deep.equal(['connector.scope', 'connector.type']);
    const dir = mkdtempSync(join(tmpdir(), 'tb-config-'));
    const file = join(dir, 'config.yml');
    writeFileSync(file, 'connector:\n  log_level: warning\n  scope: indicator\n  type: STREAM\nmicrosoft_defender_intel:\n  resource_path: api/indicators\n');
    const y = loadConfig({ env: base, file });
    expect(y.connector.log_level).to.equal('warn');
    expect(y.microsoft_defender_intel.resource_path).to.equal('/api/indicators');
    expect(ignoredSettings(y)).to.have.length(2);
    expect(ignoredSettings(loadConfig({ env: base, file: emptyFile() }))).to.deep.equal([]);
    // Another path would send indicators nowhere Defender documents: start-up says which values work.
    const msg = problems({ MICROSOFT_DEFENDER_INTEL_RESOURCE_PATH: 'api/machines' });
    expect(msg).to.include('microsoft_defender_intel.resource_path').and.include('MICROSOFT_DEFENDER_INTEL_RESOURCE_PATH').and.include('api/indicators');
    expect(loadConfig({ env: { ...base, MICROSOFT_DEFENDER_INTEL_RESOURCE_PATH: '/api/v1.0/indicators/' }, file: emptyFile() })
      .microsoft_defender_intel.resource_path).to.equal('/api/v1.0/indicators');
  });

  it('treats an empty variable as unset (default applies)', () => {
    const c = loadConfig({ env: { ...base, MICROSOFT_DEFENDER_INTEL_EXPIRE_TIME: '' }, file: emptyFile() });
    expect(c.microsoft_defender_intel.expire_time).to.equal(30);
  });

  it('names the key, the variable, the bad value and the fix', () => {
    const msg = problems({ MICROSOFT_DEFENDER_INTEL_EXPIRE_TIME: 'ten' });
    expect(msg).to.include('microsoft_defender_intel.expire_time');
    expect(msg).to.include('MICROSOFT_DEFENDER_INTEL_EXPIRE_TIME');
    expect(msg).to.include('"ten"');
    expect(msg).to.include('days');
  });

  it('stops on an unknown MISP event filter key, naming it, the closest valid key and the valid keys', () => {
    const msg = problems({ MISP_EVENT_FILTERS: '[{"org": "CIRCL"}, {"type_atribute": "ip-dst"}]' });
    expect(msg).to.include('misp.event_filters').and.include('MISP_EVENT_FILTERS');
    expect(msg).to.include('unknown event filter key "type_atribute" (did you mean "type_attribute"?)');
    expect(msg).to.include('valid keys: type_attribute, values, not_values, date_from, date_to, last, eventid, uuid, withAttachments, not_tags, org, category, tags, publish_timestamp, published');
  });

  it('rejects legacy-unknown actions and a "live" stream id', () => {
    expect(problems({ MICROSOFT_DEFENDER_INTEL_ACTION: 'Nuke' })).to.include('microsoft_defender_intel.action');
    expect(problems({ CONNECTOR_LIVE_STREAM_ID: 'live' })).to.include('not "live"');
  });

  it('refuses epoch seconds where milliseconds are expected', () => {
    expect(problems({ CONNECTOR_LIVE_STREAM_START_TIMESTAMP: '1700000000' })).to.include('epoch seconds');
  });

  it('never prints a secret value in an error', () => {
    const msg = problems({ OPENCTI_URL: 'not a url' });
    expect(msg).to.include('opencti.url');
    expect(msg).not.to.include('secret-token-value');
  });

  it('refuses the sample placeholders', () => {
    const c = loadConfig({ env: { ...base, OPENCTI_TOKEN: 'ChangeMe' }, file: emptyFile() });
    expect(flowStatuses(c)[0]!.missing).to.deep.equal(['opencti.token']);
    expect(flowProblems(c).missingKeys).to.deep.equal(['opencti.token']);
    expect(() => requireKeys(c, ['opencti.token'])).to.throw(ConfigError, /placeholder "ChangeMe"/);
  });

  it('reports unknown YAML keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-config-'));
    const file = join(dir, 'config.yml');
    writeFileSync(file, 'microsoft_defender_intel:\n  expire_tme: 10\n');
    expect(problems({}, file)).to.include('microsoft_defender_intel.expire_tme: unknown key');
  });

  it('fails clearly when CONFIG_FILE points nowhere', () => {
    expect(problems({}, '/nonexistent/config.yml')).to.include('file not found');
  });

  it('documents every key in config.yml.sample and doc/configuration.md', () => {
    const sample = readFileSync('config.yml.sample', 'utf8');
    const doc = readFileSync('doc/configuration.md', 'utf8');
    for (const { key, env } of configKeys()) {
      const name = key.split('.')[1]!;
      expect(sample, `config.yml.sample lacks ${key}`).to.match(new RegExp(`^\\s*#?\\s*${name}:`, 'm'));
      expect(doc, `doc/configuration.md lacks ${env}`).to.include(env);
    }
  });
});
