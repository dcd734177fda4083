// The deployment files stay consistent with the code: compose references resolve, the service's
// variables are keys the configuration knows, and the image runs the CLI as a non-root user.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { configKeys } from '../../src/config/load.js';

describe('deployment files', () => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as {
    services: Record<string, { depends_on?: Record<string, unknown>; environment?: string[]; volumes?: string[] }>;
    volumes: Record<string, unknown>;
  };

  it('compose: every dependency and named volume exists', () => {
    const names = Object.keys(compose.services);
    for (const [name, service] of Object.entries(compose.services)) {
      for (const dep of Object.keys(service.depends_on ?? {})) expect(names, `${name} depends on ${dep}`).to.include(dep);
      for (const v of service.volumes ?? []) expect(Object.keys(compose.volumes)).to.include(v.split(':')[0]);
    }
  });

  it('compose: ThreatBridge waits for a healthy OpenCTI, keeps its state on a volume and uses known variables', () => {
    const tb = compose.services['threatbridge']!;
    expect(tb.depends_on).to.deep.equal({ opencti: { condition: 'service_healthy' } });
    expect(tb.volumes).to.deep.equal(['threatbridge-data:/data']);
    const known = new Set(configKeys().map((k) => k.env));
    for (const entry of tb.environment ?? []) expect(known, entry).to.include(entry.split('=')[0]);
  });

  it('Dockerfile: non-root, state volume, health check, exec-form CMD of the CLI', () => {
    const docker = readFileSync('Dockerfile', 'utf8');
    expect(docker).to.match(/^USER node$/m);
    expect(docker).to.match(/^VOLUME \["\/data"\]$/m);
    expect(docker).to.match(/^HEALTHCHECK .*\n?.*\/healthz/m);
    expect(docker).to.match(/^CMD \["node", "dist\/src\/cli.js", "run"\]$/m);
    expect(docker).to.include('npm prune --omit=dev');
  });
});
