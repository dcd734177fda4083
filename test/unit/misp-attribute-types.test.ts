import { expect } from 'chai';
import { attributeObservables, SUPPORTED_MISP_TYPES } from '../../src/sources/misp/attribute-types.js';

const SHA256 = 'A'.repeat(64);
const SHA1 = 'b'.repeat(40);
const MD5 = 'c'.repeat(32);

describe('MISP attribute types → observables', () => {
  const single: [string, string, string, string][] = [
    ['ip-src', '203.0.113.7', 'ipv4', '203.0.113.7'],
    ['ip-dst', '198.51.100.1', 'ipv4', '198.51.100.1'],
    ['domain', 'Evil.Example.COM', 'domain', 'evil.example.com'],
    ['hostname', 'www.evil.example', 'hostname', 'www.evil.example'],
    ['url', 'http://evil.example/x?y=1', 'url', 'http://evil.example/x?y=1'],
    ['md5', MD5, 'md5', MD5],
    ['sha1', SHA1, 'sha1', SHA1],
    ['sha256', SHA256, 'sha256', SHA256.toLowerCase()],
    ['x509-fingerprint-sha1', SHA1, 'cert-sha1', SHA1],
    ['email-src', 'bad@evil.example', 'email', 'bad@evil.example'],
    ['email-dst', 'victim@corp.example', 'email', 'victim@corp.example'],
  ];
  for (const [type, value, obsType, canonical] of single) {
    it(`maps ${type} to one ${obsType}`, () => {
      const r = attributeObservables(type, value);
      expect(r.skipped).to.deep.equal([]);
      expect(r.observables).to.deep.equal([{ type: obsType, value: canonical }]);
    });
  }

  it('keeps the address of ip-src|port and ip-dst|port', () => {
    expect(attributeObservables('ip-dst|port', '203.0.113.9|443').observables).to.deep.equal([{ type: 'ipv4', value: '203.0.113.9' }]);
    expect(attributeObservables('ip-src|port', '203.0.113.10|8080').observables).to.deep.equal([{ type: 'ipv4', value: '203.0.113.10' }]);
  });

  it('keeps the host of hostname|port', () => {
    expect(attributeObservables('hostname|port', 'c2.evil.example|8443').observables).to.deep.equal([{ type: 'hostname', value: 'c2.evil.example' }]);
  });

  it('gives two observables for domain|ip', () => {
    const r = attributeObservables('domain|ip', 'evil.example|203.0.113.5');
    expect(r.observables).to.deep.equal([{ type: 'domain', value: 'evil.example' }, { type: 'ipv4', value: '203.0.113.5' }]);
    expect(r.skipped).to.deep.equal([]);
  });

  it('keeps the hash of filename|md5/sha1/sha256, never the file name', () => {
    expect(attributeObservables('filename|sha256', `evil.exe|${SHA256}`).observables).to.deep.equal([{ type: 'sha256', value: SHA256.toLowerCase() }]);
    expect(attributeObservables('filename|sha1', `a.dll|${SHA1}`).observables).to.deep.equal([{ type: 'sha1', value: SHA1 }]);
    expect(attributeObservables('filename|md5', `b.bin|${MD5}`).observables).to.deep.equal([{ type: 'md5', value: MD5 }]);
  });

  it('recognises IPv6 in ip types and in domain|ip', () => {
    expect(attributeObservables('ip-dst', '2001:DB8:0:0:0:0:0:1').observables).to.deep.equal([{ type: 'ipv6', value: '2001:db8::1' }]);
    expect(attributeObservables('domain|ip', 'v6.evil.example|2001:db8::2').observables[1]).to.deep.equal({ type: 'ipv6', value: '2001:db8::2' });
  });

  it('accepts a /32 CIDR as the address and refuses a /24 with a reason', () => {
    expect(attributeObservables('ip-dst', '203.0.113.7/32').observables).to.deep.equal([{ type: 'ipv4', value: '203.0.113.7' }]);
    const r = attributeObservables('ip-src', '177.70.128.0/24');
    expect(r.observables).to.deep.equal([]);
    expect(r.skipped).to.have.length(1);
    expect(r.skipped[0]!.code).to.equal('cidr_not_supported');
  });

  for (const type of ['text', 'comment', 'authentihash', 'link']) {
    it(`skips the unsupported type ${type} with a reason`, () => {
      const r = attributeObservables(type, 'anything');
      expect(r.observables).to.deep.equal([]);
      expect(r.skipped).to.have.length(1);
      expect(r.skipped[0]!.code).to.equal('unsupported_type');
      expect(r.skipped[0]!.detail).to.contain(type);
    });
  }

  it('skips empty parts and keeps the usable one', () => {
    const r = attributeObservables('domain|ip', 'evil.example|');
    expect(r.observables).to.deep.equal([{ type: 'domain', value: 'evil.example' }]);
    expect(r.skipped.map((s) => s.code)).to.deep.equal(['empty_value']);
    expect(attributeObservables('filename|sha256', 'evil.exe|').skipped.map((s) => s.code)).to.deep.equal(['empty_value']);
    expect(attributeObservables('ip-dst', '  ').skipped.map((s) => s.code)).to.deep.equal(['empty_value']);
  });

  it('rejects a value that is not of its type instead of passing it on', () => {
    const r = attributeObservables('ip-dst', 'not-an-ip');
    expect(r.observables).to.deep.equal([]);
    expect(r.skipped).to.have.length(1);
    const h = attributeObservables('sha256', 'xyz');
    expect(h.observables).to.deep.equal([]);
    expect(h.skipped).to.have.length(1);
  });

  it('lists every type it maps as supported (the REST query asks for exactly these)', () => {
    for (const t of ['ip-src', 'ip-dst|port', 'domain|ip', 'filename|sha256', 'hostname|port', 'x509-fingerprint-sha1', 'email-src']) {
      expect(SUPPORTED_MISP_TYPES).to.include(t);
    }
    expect(SUPPORTED_MISP_TYPES).not.to.include('text');
    expect(SUPPORTED_MISP_TYPES).not.to.include('authentihash');
  });
});
