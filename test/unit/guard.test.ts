// The guard's matcher and verdicts: domains (IDN, mixed case, subdomains, parents), CIDR edges,
// IPv6, URLs with ports and paths, hashes, special addresses, and the list file reload.
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseObservable } from '../../src/core/observables.js';
import type { Observable, ObservableType } from '../../src/core/types.js';
import { specialAddress } from '../../src/guard/addresses.js';
import { DEFENDER_GATE_ACTIONS, guardVerdict, publicSuffix, type GuardPolicy } from '../../src/guard/guard.js';
import { fileHashes, ProtectedList } from '../../src/guard/list.js';
import { ProtectedValues } from '../../src/guard/protected-values.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';

const obs = (type: ObservableType, raw: string): Observable => {
  const p = parseObservable(type, raw);
  if (!p.ok) throw new Error(`bad test value ${raw}: ${p.rejection.detail}`);
  return p.observable;
};
const list = (...values: string[]) => new ProtectedValues(values.map((value) => ({ value, origin: 'test' })));

describe('guard: protected values', () => {
  it('matches domains in any case and IDN form, their subdomains and their parents', () => {
    const p = list('Bücher.Example', 'Contoso.COM');
    expect(p.match(obs('domain', 'contoso.com'))?.entry).to.equal('Contoso.COM');
    expect(p.match(obs('domain', 'MAIL.Contoso.com'))).to.not.equal(null);
    expect(p.match(obs('domain', 'xn--bcher-kva.example'))).to.not.equal(null);
    expect(p.match(obs('domain', 'shop.BÜCHER.example'))).to.not.equal(null);
    // A Block on a parent covers the protected subdomain in Defender.
    expect(list('update.contoso.com').match(obs('domain', 'contoso.com'))).to.not.equal(null);
    expect(p.match(obs('domain', 'notcontoso.com'))).to.equal(null);
    expect(p.match(obs('domain', 'contoso.com.evil.net'))).to.equal(null);
  });

  it('matches IPv4 CIDR ranges exactly at their edges', () => {
    const p = list('203.0.113.0/25', '198.51.100.7');
    expect(p.match(obs('ipv4', '203.0.113.0'))).to.not.equal(null);
    expect(p.match(obs('ipv4', '203.0.113.127'))).to.not.equal(null);
    expect(p.match(obs('ipv4', '203.0.113.128'))).to.equal(null);
    expect(p.match(obs('ipv4', '203.0.112.255'))).to.equal(null);
    expect(p.match(obs('ipv4', '198.51.100.7'))).to.not.equal(null);
    expect(p.match(obs('ipv4', '198.51.100.8'))).to.equal(null);
    expect(list('0.0.0.0/0').match(obs('ipv4', '8.8.8.8'))).to.not.equal(null);
  });

  it('matches IPv6 in any notation, ranges at their edges, and keeps v4 and v6 apart', () => {
    const p = list('2001:DB8:1::/48', '2606:4700:4700:0:0:0:0:1111');
    expect(p.match(obs('ipv6', '2001:db8:1:ffff:ffff:ffff:ffff:ffff'))).to.not.equal(null);
    expect(p.match(obs('ipv6', '2001:db8:2::'))).to.equal(null);
    expect(p.match(obs('ipv6', '2606:4700:4700::1111'))).to.not.equal(null);
    expect(list('::/0').match(obs('ipv4', '1.2.3.4'))).to.equal(null);
    // IPv4-mapped IPv6 is the IPv4 address.
    expect(list('192.0.2.0/24').match(obs('ipv6', '::ffff:192.0.2.9'))).to.not.equal(null);
  });

  it('protects URLs by host, by port when the entry names one, and by path', () => {
    const p = list('https://portal.example.org:8443/app', 'files.example.net');
    expect(p.match(obs('url', 'https://portal.example.org:8443/app/login?x=1'))).to.not.equal(null);
    expect(p.match(obs('url', 'https://PORTAL.example.org:8443/app'))).to.not.equal(null);
    expect(p.match(obs('url', 'https://portal.example.org:9443/app/login'))).to.equal(null);
    expect(p.match(obs('url', 'https://portal.example.org:8443/application'))).to.equal(null);
    expect(p.match(obs('url', 'https://portal.example.org:8443/other'))).to.equal(null);
    // A URL on a protected host, any port or path; a URL indicator covering the protected path.
    expect(p.match(obs('url', 'http://files.example.net:8080/x/y'))).to.not.equal(null);
    expect(p.match(obs('url', 'https://portal.example.org:8443/'))).to.not.equal(null);
    const plain = list('http://intranet.example.com/hr');
    expect(plain.match(obs('url', 'intranet.example.com:80/hr/pay'))).to.not.equal(null);
    expect(plain.match(obs('url', 'http://intranet.example.com:81/hr'))).to.not.equal(null, 'no port in the entry: any port');
    expect(list('[2001:db8::1]').match(obs('url', 'http://[2001:db8::1]:8080/a'))).to.not.equal(null);
  });

  it('matches hashes in any case, including the hashes of a named file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-guard-'));
    writeFileSync(join(dir, 'agent.exe'), 'our own agent');
    const [md5, sha1, sha256] = fileHashes(join(dir, 'agent.exe'));
    const p = list(md5!.toUpperCase(), sha1!, sha256!);
    expect(p.match(obs('md5', md5!))).to.not.equal(null);
    expect(p.match(obs('sha1', sha1!.toUpperCase()))).to.not.equal(null);
    expect(p.match(obs('sha256', sha256!))).to.not.equal(null);
    expect(p.match(obs('sha256', 'ab'.repeat(32)))).to.equal(null);
  });

  it('reports entries it cannot read instead of ignoring them', () => {
    expect(list('not a domain!', 'http://').invalid.map((i) => i.entry)).to.deep.equal(['not a domain!', 'http://']);
  });

  it('knows private, loopback, link-local and reserved addresses, and leaves public ones', () => {
    for (const ip of ['10.1.2.3', '172.31.255.255', '192.168.0.1', '127.0.0.1', '169.254.10.10', '100.64.0.1', '240.0.0.1', '::1', 'fe80::1', 'fd00::5']) {
      expect(specialAddress(ip), ip).to.be.a('string');
    }
    for (const ip of ['172.32.0.1', '8.8.4.5', '2a00:1450::1', '198.51.100.7']) expect(specialAddress(ip), ip).to.equal(null);
  });
});

describe('guard: verdicts', () => {
  const policy = (over: Partial<GuardPolicy> = {}): GuardPolicy => ({
    enabled: true, protectedValues: new ProtectedList(configSchema.parse({}).guard, createLogger('silent')).current,
    onProtected: 'audit', specialAddresses: 'audit', paused: new Set(), actions: DEFENDER_GATE_ACTIONS, ...over,
  });
  const ref = { system: 'opencti' as const, id: 'indicator--1' };

  it('downgrades enforcing actions on built-in values and private addresses, leaves others alone', () => {
    expect(guardVerdict(obs('ipv4', '8.8.8.8'), 'Block', ref, policy())).to.include({ outcome: 'downgrade', action: 'Audit' });
    expect(guardVerdict(obs('domain', 'WindowsUpdate.com'), 'Warn', ref, policy()).reason).to.include('windowsupdate.com');
    expect(guardVerdict(obs('ipv4', '10.0.0.1'), 'Block', ref, policy({ specialAddresses: 'skip' }))).to.include({ outcome: 'skip', action: null });
    expect(guardVerdict(obs('ipv4', '8.8.8.8'), 'Audit', ref, policy())).to.include({ outcome: 'allow', action: 'Audit' });
    expect(guardVerdict(obs('url', 'http://192.168.1.10:8080/admin'), 'Block', ref, policy()).outcome).to.equal('downgrade');
    expect(guardVerdict(obs('url', 'http://[fe80::1]/x'), 'Block', ref, policy()).outcome).to.equal('downgrade');
    expect(guardVerdict(obs('hostname', 'printer.local'), 'Block', ref, policy()).outcome).to.equal('downgrade');
    expect(guardVerdict(obs('url', 'http://203.0.113.9/x'), 'Block', ref, policy()).outcome).to.equal('allow');
    expect(guardVerdict(obs('ipv4', '203.0.113.5'), 'Block', ref, policy())).to.include({ outcome: 'allow', action: 'Block' });
    expect(guardVerdict(obs('ipv4', '8.8.8.8'), 'Block', ref, policy({ enabled: false })).outcome).to.equal('allow');
    expect(guardVerdict(obs('ipv4', '203.0.113.5'), 'Block', ref, policy({ paused: new Set(['opencti']) })).outcome).to.equal('breaker');
    expect(guardVerdict(obs('ipv4', '203.0.113.5'), 'Block', { system: 'misp', id: 'x' }, policy({ paused: new Set(['opencti']) })).outcome).to.equal('allow');
  });

  it('never blocks a bare public suffix (Public Suffix List, ICANN and private sections), a registrable domain under one still goes', () => {
    for (const [type, value] of [['domain', 'co.uk'], ['domain', 'CO.JP'], ['domain', 'github.io'], ['hostname', 'com.au'], ['url', 'http://co.uk/x']] as const) {
      const v = guardVerdict(obs(type, value), 'Block', ref, policy());
      expect(v, value).to.include({ outcome: 'downgrade', action: 'Audit' });
      expect(v.reason, value).to.include('public suffix');
    }
    expect(guardVerdict(obs('domain', 'co.uk'), 'Block', ref, policy({ onProtected: 'skip' })).outcome).to.equal('skip');
    for (const value of ['evil.co.uk', 'evil-project.github.io', 'bad.example.com.au']) {
      expect(guardVerdict(obs('domain', value), 'Block', ref, policy()).outcome, value).to.equal('allow');
    }
    expect(publicSuffix(obs('ipv4', '203.0.113.5'))).to.equal(null);
  });

  it('protects the Microsoft 365 apex domains and connectivity-test hosts, subdomains included', () => {
    for (const d of ['sharepoint.com', 'contoso.sharepoint.com', 'outlook.com', 'outlook.office365.com', 'live.com', 'contoso.onmicrosoft.com',
      'www.msftconnecttest.com', 'dns.msftncsi.com', 'teams.cloud.microsoft']) {
      expect(guardVerdict(obs('domain', d), 'Block', ref, policy()).outcome, d).to.equal('downgrade');
    }
  });

  it('judges an IPv6 address that embeds an IPv4 one as that IPv4 address (mapped, compatible, NAT64, 6to4, Teredo)', () => {
    // Teredo 2001:0:4136:e378:8000:63bf:f5ff:fffe carries client ~f5ff:fffe = 10.0.0.1.
    for (const v6 of ['64:ff9b::8.8.8.8', '::ffff:8.8.8.8', '2002:808:808::1']) {
      expect(guardVerdict(obs('ipv6', v6), 'Block', ref, policy()).reason, v6).to.include('8.8.8.8');
    }
    for (const v6 of ['::10.0.0.1', '2002:a00:1::1', '64:ff9b::192.168.1.1', '2001:0:4136:e378:8000:63bf:f5ff:fffe', '::ffff:127.0.0.1']) {
      expect(guardVerdict(obs('ipv6', v6), 'Block', ref, policy()).outcome, v6).to.equal('downgrade');
      expect(specialAddress(v6), v6).to.be.a('string');
    }
    // Public IPv4 behind the same prefixes, and ordinary IPv6 next to them, still go as Block.
    for (const v6 of ['64:ff9b::203.0.113.7', '2002:cb00:7107::1', '2001:0:4136:e378:8000:63bf:34ff:8ef8', '2001:4861::1', '::1:0:0:1']) {
      expect(guardVerdict(obs('ipv6', v6), 'Block', ref, policy()).outcome, v6).to.equal('allow');
    }
    // A protected CIDR written in IPv6 (6to4 range) still works as a range, and an embedded form as its address.
    const p = list('2002::/16', '64:ff9b::198.51.100.1');
    expect(p.match(obs('ipv6', '2002:cb00:7107::1'))).to.equal(null, '6to4 is judged as its IPv4 address');
    expect(p.match(obs('ipv4', '198.51.100.1'))?.entry).to.equal('64:ff9b::198.51.100.1');
  });

  it('speaks each sink\'s vocabulary: Sentinel block becomes alert, alert and allow pass', () => {
    const sentinel = policy({ actions: { enforcing: new Set(['block']), safe: 'alert' } });
    expect(guardVerdict(obs('ipv4', '8.8.8.8'), 'block', ref, sentinel)).to.include({ outcome: 'downgrade', action: 'alert' });
    expect(guardVerdict(obs('domain', 'login.microsoftonline.com'), 'block', ref, sentinel)).to.include({ outcome: 'downgrade', action: 'alert' });
    expect(guardVerdict(obs('ipv4', '10.1.2.3'), 'block', ref, sentinel)).to.include({ outcome: 'downgrade', action: 'alert' });
    expect(guardVerdict(obs('ipv4', '8.8.8.8'), 'alert', ref, sentinel).outcome).to.equal('allow');
    expect(guardVerdict(obs('ipv4', '203.0.113.5'), 'block', ref, sentinel).outcome).to.equal('allow');
  });

  it('refuses a URL that parsers read with different hosts, so mapper and guard judge the same host', () => {
    for (const raw of ['http://evil.example\\@microsoft.com/', 'https://evil.example\\@login.microsoftonline.com/x']) {
      const r = parseObservable('url', raw);
      expect(r.ok, raw).to.equal(false);
      if (!r.ok) expect(r.rejection.detail).to.include('ambiguous URL');
    }
    // A plain user part is read the same way by both: accepted, and judged on its real host.
    const u = obs('url', 'http://user@microsoft.com/x');
    expect(guardVerdict(u, 'Block', ref, policy()).outcome).to.equal('downgrade');
  });

  it('stops start-up on a missing or bad list file and on bad config entries, naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-guard-'));
    const bad = join(dir, 'bad.txt');
    writeFileSync(bad, 'example.org\nno such thing!\n');
    const make = (guard: Record<string, unknown>) => () => new ProtectedList(configSchema.parse({ guard }).guard, createLogger('silent'));
    expect(make({ list_file: join(dir, 'missing.txt') })).to.throw(/guard\.list_file.*ENOENT/);
    expect(make({ list_file: bad })).to.throw(/guard\.list_file.*no such thing!/);
    expect(make({ domains: ['ok.example', 'bad domain'] })).to.throw(/guard\.domains.*bad domain/);
    expect(make({ files: [join(dir, 'nope.exe')] })).to.throw(/guard\.files/);
  });

  it('reloads the list file on change and keeps the last good list when the file is bad', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-guard-'));
    const file = join(dir, 'protected.txt');
    writeFileSync(file, '# ours\nexample.org\n');
    const g = configSchema.parse({ guard: { list_file: file, builtin: false } }).guard;
    const l = new ProtectedList(g, createLogger('silent'));
    expect(l.current.match(obs('domain', 'www.example.org'))).to.not.equal(null);
    l.watch(20);
    try {
      // The watcher's first look may come after a write: keep touching the file until it reloads.
      const deadline = Date.now() + 10_000;
      for (let n = 0; l.generation < 1 && Date.now() < deadline; n++) {
        writeFileSync(file, `example.org\n10.9.0.0/16 # lab ${n}\n`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(l.current.match(obs('ipv4', '10.9.8.7'))).to.not.equal(null);
      writeFileSync(file, 'example.org\nthis is not valid\n');
      expect(l.reload()).to.equal(false);
      expect(l.current.match(obs('ipv4', '10.9.8.7')), 'last good list kept').to.not.equal(null);
    } finally {
      l.unwatch();
    }
  });
});
