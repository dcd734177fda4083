// The README and the docs tell the same story: command names, source names and the measured
// figures appear the same way everywhere they are quoted.
import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';

const readme = readFileSync('README.md', 'utf8');
const docs = readdirSync('doc').filter((f) => f.endsWith('.md')).map((f) => [f, readFileSync(`doc/${f}`, 'utf8')] as const);

describe('docs agree with each other', () => {
  it('every `threatbridge reset-checkpoint <source>` in doc/ names a source the README lists', () => {
    const row = readme.split('\n').find((l) => l.startsWith('| `threatbridge reset-checkpoint '))!;
    const listed = /reset-checkpoint ([^ `]+)/.exec(row)![1]!.split('\\|').map((s) => s.replace(/\[.*\]$/, ''));
    expect(listed).to.include.members(['opencti', 'misp', 'defender_alerts', 'defender_assets']);
    for (const [file, text] of docs) {
      for (const m of text.matchAll(/threatbridge reset-checkpoint ([a-z_]+)/g)) expect(listed, `${file}: ${m[0]}`).to.include(m[1]);
    }
  });

  it('the core-path throughput and the service RSS are quoted in doc/operations.md as measured in the README', () => {
    const ops = docs.find(([f]) => f === 'operations.md')![1];
    const core = /core path: parse → map → route → outbox[^|]*\| ([\d,–]+) events\/s/.exec(readme)!;
    expect(ops).to.include(`${core[1]} events/s on one thread`);
    const rss = /reading a 200,000-event live stream[^|]*\| ([\d–]+ MiB)/.exec(readme)!;
    expect(ops).to.include(`${rss[1]} peak RSS`);
  });

  it('the compose service name in doc/operations.md is the one in docker-compose.yml', () => {
    const compose = readFileSync('docker-compose.yml', 'utf8');
    const ops = docs.find(([f]) => f === 'operations.md')![1];
    for (const m of ops.matchAll(/docker compose (?:logs -f|exec|pull|up -d) ([a-z-]+)/g)) expect(compose, m[0]).to.match(new RegExp(`^  ${m[1]}:$`, 'm'));
  });
});
