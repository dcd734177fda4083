// The shipped sample loads, check-config and run share one validation per flow, typos get the
// closest valid name, URLs with credentials are refused, and doc/configuration.md is what the
// schema generates. The oracle is the sample file and fixed literals, not the code's own lists.
import { expect } from 'chai';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { activeFlows, startupProblems } from '../../src/config/flows.js';
import { renderConfigDoc } from '../../src/config/doc.js';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfigReport } from '../../src/config/load.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'tb-sample-'));

/** config.yml.sample copied as a newcomer does (`cp config.yml.sample config.yml`). */
function sampleCopy(): string {
  const file = join(tmp(), 'config.yml');
  copyFileSync('config.yml.sample', file);
  return file;
}

function yamlFile(text: string): string {
  const file = join(tmp(), 'config.yml');
  writeFileSync(file, text);
  return file;
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const realValues = {
  CONNECTOR_ID: '6d0b5b6a-41d7-4a53-9d7d-6f1b2c3d4e5f',
  OPENCTI_TOKEN: 'token-of-the-connector-user',
  CONNECTOR_LIVE_STREAM_ID: 'b5a2c4d6-stream',
  MICROSOFT_DEFENDER_INTEL_TENANT_ID: 'tenant-guid',
  MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'client-guid',
  MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 'client-secret-value',
};

describe('config.yml.sample as shipped', () => {
  it('loads: sections whose keys are all commented out are empty, not null errors', () => {
    const { config } = loadConfigReport({ env: {}, file: sampleCopy() });
    expect(config.pipeline.batch_size).to.equal(500);
    expect(config.limits.pattern_depth).to.equal(32);
    expect(config.store.dir).to.equal('./data');
  });

  it('refuses its placeholders per key, naming the variable and the fix, and nothing else', () => {
    const { config } = loadConfigReport({ env: {}, file: sampleCopy() });
    const problems = startupProblems(config);
    expect(problems.find((p) => p.includes('connector.id'))).to.match(/^opencti -> defender: connector\.id \[env CONNECTOR_ID\]: still the placeholder UUID.*uuidgen/);
    for (const env of ['OPENCTI_TOKEN', 'CONNECTOR_LIVE_STREAM_ID', 'MICROSOFT_DEFENDER_INTEL_TENANT_ID', 'MICROSOFT_DEFENDER_INTEL_CLIENT_ID', 'MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET']) {
      expect(problems.filter((p) => p.includes(`[env ${env}]`) && p.includes('placeholder "ChangeMe"')), env).to.have.length(1);
    }
    expect(problems).to.have.length(6);
    expect(problems.join('\n')).not.to.match(/null|expected object/);
  });

  it('starts the OpenCTI → Defender flow once the placeholders are replaced by variables', () => {
    const { config, warnings } = loadConfigReport({ env: realValues, file: sampleCopy() });
    expect(startupProblems(config)).to.deep.equal([]);
    expect(activeFlows(config).map((f) => f.name)).to.deep.equal(['opencti -> defender']);
    expect(warnings).to.deep.equal([]);
  });

  it('keeps each flow\'s missing keys to itself', () => {
    const { config } = loadConfigReport({ env: { ...realValues, MISP_URL: 'https://misp.example.org' }, file: sampleCopy() });
    expect(startupProblems(config)).to.deep.equal([
      'misp -> defender: misp.key [env MISP_KEY]: required; set it in config.yml or the environment',
    ]);
  });
});

describe('typos and credentials', () => {
  it('warns about an unknown variable under our prefixes with the closest valid name', () => {
    const { warnings } = loadConfigReport({ env: { ...realValues, OPENCTI_TOKN: 'x', MISP_VERIFY_CRT: 'false', CAR_NOTHING_LIKE_ANY_KEY_AT_ALL: '1', PATH: '/bin' }, file: sampleCopy() });
    expect(warnings).to.deep.equal([
      'unknown variable CAR_NOTHING_LIKE_ANY_KEY_AT_ALL (ignored)',
      'unknown variable MISP_VERIFY_CRT — did you mean MISP_VERIFY_CERT? (ignored)',
      'unknown variable OPENCTI_TOKN — did you mean OPENCTI_TOKEN? (ignored)',
    ]);
  });

  it('stops on an unknown YAML key or section with the closest valid name', () => {
    const msg = configError(() => loadConfigReport({ env: {}, file: yamlFile('microsoft_defender_intel:\n  expire_tme: 10\nopnecti:\n  url: http://x\n') }));
    expect(msg).to.include('microsoft_defender_intel.expire_tme: unknown key — did you mean microsoft_defender_intel.expire_time?');
    expect(msg).to.include('opnecti: unknown key — did you mean opencti?');
  });

  it('refuses a URL carrying credentials, naming the variable, never printing the password', () => {
    const msg = configError(() => loadConfigReport({ env: { ...realValues, OPENCTI_URL: 'https://admin:hunter22@opencti.example.org' }, file: sampleCopy() }));
    expect(msg).to.include('opencti.url [env OPENCTI_URL]: must not carry credentials');
    expect(msg).not.to.include('hunter22');
    expect(msg).not.to.include('admin:');
  });

  it('a key left empty in YAML means the default', () => {
    const { config } = loadConfigReport({ env: realValues, file: yamlFile('opencti:\n  url: http://opencti:8080\n  ssl_verify:\npipeline:\n') });
    expect(config.opencti.ssl_verify).to.equal(true);
  });
});

/** Five-word phrases a paragraph says twice (the hand-written page had such a bad merge). */
function repeatedPhrases(text: string): string[] {
  const found = new Set<string>();
  for (const paragraph of text.split(/\n\s*\n/)) {
    const words = paragraph.toLowerCase().split(/\s+/).filter(Boolean);
    const seen = new Set<string>();
    for (let i = 0; i + 5 <= words.length; i++) {
      const phrase = words.slice(i, i + 5).join(' ');
      if (seen.has(phrase)) found.add(phrase);
      seen.add(phrase);
    }
  }
  return [...found];
}

describe('doc/configuration.md', () => {
  it('is what `npm run docs:config` generates from the schema (regenerate it when this fails)', () => {
    expect(readFileSync('doc/configuration.md', 'utf8')).to.equal(renderConfigDoc());
  });

  it('has a header row on every table and marks every secret', () => {
    const doc = renderConfigDoc();
    const lines = doc.split('\n');
    lines.forEach((line, i) => {
      if (line.startsWith('|') && !lines[i - 1]!.startsWith('|')) expect(lines[i + 1], `table at line ${i + 1}`).to.match(/^\|(---\|)+$/);
    });
    for (const env of ['OPENCTI_TOKEN', 'MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET', 'MISP_KEY', 'MISP_ZMQ_PASSWORD', 'MISP_ZMQ_CURVE_SECRET_KEY',
      'OTX_API_KEY', 'SENTINEL_CLIENT_SECRET', 'IRIS_API_KEY', 'DEFENDER_ALERTS_TENANT_CLIENT_SECRETS', 'CAR_API_KEY', 'CAR_PASSWORD', 'CAR_TOKEN', 'STORE_URL']) {
      expect(lines.find((l) => l.includes(`\`${env}\``)), env).to.include('*secret*');
    }
    // The hand-written page had a sentence repeated on the next line (a bad merge); prose only,
    // as table rows rightly share phrases.
    expect(repeatedPhrases(lines.filter((l) => !l.startsWith('|')).join('\n'))).to.deep.equal([]);
    expect(repeatedPhrases('A flow you started to\n`x`) is set and more; B → C when it is\nset. A flow you started to\nconfigure'), 'the check finds the old garble')
      .to.deep.equal(['a flow you started to']);
  });
});
