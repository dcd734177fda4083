// Choosing the store engine: postgres needs a URL, the URL is a secret, and a server that cannot
// be reached stops start-up with a message naming the key (never the password).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/load.js';
import { openStore } from '../../src/store/index.js';

const empty = () => { const f = join(mkdtempSync(join(tmpdir(), 'tb-cfg-')), 'config.yml'); writeFileSync(f, ''); return f; };
const load = (env: Record<string, string>) => loadConfig({ env, file: empty() });

describe('store engine configuration', () => {
  it('refuses engine postgres without store.url, naming the key and the variable', () => {
    expect(() => load({ STORE_ENGINE: 'postgres' })).to.throw(ConfigError, /store\.url \[env STORE_URL\]: required when store\.engine is postgres/);
    expect(() => load({ STORE_ENGINE: 'postgres', STORE_URL: 'mysql://h/db' })).to.throw(ConfigError, /must be a postgres:\/\/ connection URL/);
    expect(() => load({ STORE_ENGINE: 'oracle' })).to.throw(ConfigError, /store\.engine/);
    const c = load({ STORE_ENGINE: 'postgres', STORE_URL: 'postgres://tb:pw@db:5432/tb' });
    expect(c.store).to.include({ engine: 'postgres', schema: 'threatbridge', source_lock_retry: 5 });
  });

  it('keeps the URL out of check-config output (summary and --json)', () => {
    const env = { PATH: process.env['PATH'], CONFIG_FILE: '', STORE_ENGINE: 'postgres', STORE_URL: 'postgres://tb:hunter2-secret@db:5432/tb',
      OPENCTI_URL: 'http://opencti:8080', OPENCTI_TOKEN: 'token-value-1', CONNECTOR_ID: '6d0b5b6a-41d7-4a53-9d7d-6f1b2c3d4e5f',
      CONNECTOR_LIVE_STREAM_ID: 's', MICROSOFT_DEFENDER_INTEL_TENANT_ID: 't', MICROSOFT_DEFENDER_INTEL_CLIENT_ID: 'c',
      MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: 'client-secret-value' };
    const json = spawnSync(process.execPath, ['dist/src/cli.js', 'check-config', '--json'], { env, encoding: 'utf8' });
    expect(json.status, json.stderr).to.equal(0);
    expect(json.stdout).to.include('"engine": "postgres"');
    expect(json.stdout + json.stderr).to.not.include('hunter2-secret');
    const summary = spawnSync(process.execPath, ['dist/src/cli.js', 'check-config'], { env, encoding: 'utf8' });
    expect(summary.status, summary.stderr).to.equal(0);
    expect(summary.stdout).to.include('store: postgres');
    expect(summary.stdout + summary.stderr).to.not.include('hunter2-secret');
  });

  it('stops with a clear error when the PostgreSQL server cannot be reached', async function () {
    this.timeout(20_000);
    const c = load({ STORE_ENGINE: 'postgres', STORE_URL: 'postgres://tb:hunter2-secret@127.0.0.1:1/tb?connect_timeout=2' });
    const err = await openStore(c).then(() => null, (e: Error) => e);
    expect(err).to.be.instanceOf(ConfigError);
    expect(err!.message).to.match(/store\.url \[env STORE_URL\]: cannot open the PostgreSQL state store \(.*ECONNREFUSED/);
    expect(err!.message).to.not.include('hunter2-secret');
  });
});
