import { isIPv6 } from 'node:net';
import { expect } from 'chai';
import fc from 'fast-check';
import { expandIpv6, isIpAddress, MAX_VALUE_LENGTH, parseObservable } from '../../src/core/observables.js';
import { OBSERVABLE_TYPES, type ObservableType } from '../../src/core/types.js';

function accepts(type: ObservableType, raw: unknown, expected: string): void {
  expect(parseObservable(type, raw), `${type} ${JSON.stringify(raw)}`).to.deep.equal({
    ok: true,
    observable: { type, value: expected },
  });
}

function rejects(type: ObservableType, raw: unknown, code: string): string {
  const result = parseObservable(type, raw);
  expect(result.ok, `${type} ${JSON.stringify(raw)} should be rejected`).to.equal(false);
  if (result.ok) throw new Error('unreachable');
  expect(result.rejection.code, `${type} ${JSON.stringify(raw)}`).to.equal(code);
  expect(result.rejection.detail).to.be.a('string').that.is.not.empty;
  return result.rejection.detail;
}

/** The WHATWG URL host serialiser implements RFC 5952 compression: an independent oracle. */
function whatwgIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

const HEX = [...'0123456789abcdefABCDEF'];
const hexString = (length: number) => fc.string({ unit: fc.constantFrom(...HEX), minLength: length, maxLength: length });
const plainDomain = fc.domain().filter((d) => !d.split('.').some((l) => l.startsWith('xn--')));

describe('parseObservable', () => {
  describe('ipv4', () => {
    it('accepts dotted quads and trims surrounding whitespace', () => {
      accepts('ipv4', '1.2.3.4', '1.2.3.4');
      accepts('ipv4', '  10.0.0.1\n', '10.0.0.1');
      accepts('ipv4', '0.0.0.0', '0.0.0.0');
      accepts('ipv4', '255.255.255.255', '255.255.255.255');
    });

    it('turns a /32 into the plain address', () => {
      accepts('ipv4', '1.2.3.4/32', '1.2.3.4');
    });

    it('refuses CIDR ranges with cidr_not_supported', () => {
      rejects('ipv4', '1.2.3.0/24', 'cidr_not_supported');
      rejects('ipv4', '10.0.0.0/8', 'cidr_not_supported');
      rejects('ipv4', '0.0.0.0/0', 'cidr_not_supported');
    });

    it('refuses leading zeros as ambiguous (octal) and says so', () => {
      expect(rejects('ipv4', '01.2.3.4', 'invalid_ipv4')).to.match(/leading zeros/);
      rejects('ipv4', '1.2.3.010', 'invalid_ipv4');
    });

    it('refuses malformed addresses, ranges, ports and bad prefixes', () => {
      for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-1', '0x7f.0.0.1', '2130706433', '127.1', '1.2.3.4:80',
        '1.2.3.4-1.2.3.9', '1.2.3[.]4', 'a.b.c.d', '1.2.3.4/33', '1.2.3.4/', '1.2.3.4/x', '::1', '1.2.3.4 5']) {
        rejects('ipv4', bad, 'invalid_ipv4');
      }
    });
  });

  describe('ipv6', () => {
    it('compresses to the RFC 5952 form, lower-case', () => {
      accepts('ipv6', '2001:4860:4860:0000:0000:0000:0000:8888', '2001:4860:4860::8888');
      accepts('ipv6', '2001:DB8::1', '2001:db8::1');
      accepts('ipv6', '2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1');
      accepts('ipv6', '1:0:0:2:0:0:3:4', '1::2:0:0:3:4');
      accepts('ipv6', '1:0:0:1:0:0:0:1', '1:0:0:1::1');
      accepts('ipv6', '1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0');
      accepts('ipv6', '1:2:3:4:5:6:0:0', '1:2:3:4:5:6::');
      accepts('ipv6', '0:0:0:0:0:0:0:0', '::');
      accepts('ipv6', '::1', '::1');
    });

    it('rewrites an embedded dotted quad as hex groups', () => {
      accepts('ipv6', '::ffff:1.2.3.4', '::ffff:102:304');
    });

    it('turns a /128 into the plain address and refuses other prefixes', () => {
      accepts('ipv6', '2001:db8::1/128', '2001:db8::1');
      rejects('ipv6', '2001:db8::/32', 'cidr_not_supported');
      rejects('ipv6', '2001:db8::/129', 'invalid_ipv6');
    });

    it('refuses zone ids, brackets, IPv4 and malformed addresses', () => {
      for (const bad of ['fe80::1%eth0', '[::1]', '1.2.3.4', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::1', ':::', '1:2:3:4:5:6:7']) {
        rejects('ipv6', bad, 'invalid_ipv6');
      }
    });
  });

  describe('expandIpv6', () => {
    it('gives the eight-segment form Defender requires', () => {
      expect(expandIpv6('2001:4860:4860::8888')).to.equal('2001:4860:4860:0:0:0:0:8888');
      expect(expandIpv6('::')).to.equal('0:0:0:0:0:0:0:0');
      expect(expandIpv6('::1')).to.equal('0:0:0:0:0:0:0:1');
      expect(expandIpv6('1::')).to.equal('1:0:0:0:0:0:0:0');
      expect(expandIpv6('2001:DB8:00AB::1')).to.equal('2001:db8:ab:0:0:0:0:1');
      expect(expandIpv6('::ffff:1.2.3.4')).to.equal('0:0:0:0:0:ffff:102:304');
    });

    it('leaves a value that is not an IPv6 address unchanged instead of throwing', () => {
      expect(expandIpv6('1.2.3.4')).to.equal('1.2.3.4');
      expect(expandIpv6('not an ip')).to.equal('not an ip');
    });
  });

  describe('isIpAddress', () => {
    it('tells IPv4, IPv6 and neither apart, strictly', () => {
      expect(isIpAddress('1.2.3.4')).to.equal(4);
      expect(isIpAddress('2001:db8::1')).to.equal(6);
      expect(isIpAddress('::ffff:1.2.3.4')).to.equal(6);
      for (const no of ['01.2.3.4', '1.2.3.4/32', 'fe80::1%eth0', 'evil.com', '', ' 1.2.3.4']) expect(isIpAddress(no), no).to.equal(0);
    });
  });

  describe('domain and hostname', () => {
    it('lower-cases and drops one trailing dot', () => {
      accepts('domain', 'Evil.COM', 'evil.com');
      accepts('domain', 'evil.com.', 'evil.com');
      accepts('domain', ' WWW.Evil.Example.ORG. ', 'www.evil.example.org');
      rejects('domain', 'evil.com..', 'invalid_domain');
    });

    it('converts IDN to punycode (and keeps valid punycode)', () => {
      accepts('domain', 'bücher.de', 'xn--bcher-kva.de');
      accepts('domain', 'BÜCHER.de', 'xn--bcher-kva.de');
      accepts('domain', 'xn--bcher-kva.de', 'xn--bcher-kva.de');
      accepts('domain', 'пример.рф', 'xn--e1afmkfd.xn--p1ai');
      accepts('domain', 'evil。com', 'evil.com');
      rejects('domain', 'xn--zz.com', 'invalid_domain');
    });

    it('refuses a URL, host:port or e-mail put in a domain field', () => {
      expect(rejects('domain', 'http://evil.com/x', 'invalid_domain')).to.match(/URL/);
      rejects('domain', 'evil.com/path', 'invalid_domain');
      rejects('domain', 'evil.com:443', 'invalid_domain');
      rejects('domain', 'bob@evil.com', 'invalid_domain');
      rejects('domain', 'evil .com', 'invalid_domain');
    });

    it('enforces label and total lengths', () => {
      accepts('domain', `${'a'.repeat(63)}.com`, `${'a'.repeat(63)}.com`);
      rejects('domain', `${'a'.repeat(64)}.com`, 'invalid_domain');
      const long = `${Array.from({ length: 4 }, () => 'a'.repeat(61)).join('.')}.com`; // 4*62 + 3 = 251
      accepts('domain', long, long);
      accepts('domain', `a.${long}`, `a.${long}`); // 253
      rejects('domain', `ab.${long}`, 'invalid_domain'); // 254
    });

    it('refuses bad labels, wildcards, IP addresses and numeric TLDs', () => {
      for (const bad of ['-evil.com', 'evil-.com', 'a..b', '.evil.com', '*.evil.com', 'ev!l.com', 'ex%41mple.com', '1.2.3.4', 'evil.123', 'evil.0x7f', '.']) {
        rejects('domain', bad, 'invalid_domain');
      }
    });

    it('needs a dot for a domain but not for a hostname', () => {
      rejects('domain', 'localhost', 'invalid_domain');
      accepts('hostname', 'WORKSTATION-01', 'workstation-01');
      accepts('hostname', 'srv.corp.example', 'srv.corp.example');
      rejects('hostname', 'http://srv/', 'invalid_hostname');
      rejects('hostname', '12345', 'invalid_hostname');
    });

    it('accepts underscores, common in malicious subdomains', () => {
      accepts('domain', 'a_b.evil.com', 'a_b.evil.com');
    });
  });

  describe('url', () => {
    it('keeps the value as given except scheme and host', () => {
      accepts('url', 'HTTP://Evil.COM/Path/A?b=C&d=E#Frag', 'http://evil.com/Path/A?b=C&d=E#Frag');
      accepts('url', 'http://evil.com', 'http://evil.com');
      accepts('url', 'http://evil.com/', 'http://evil.com/');
      accepts('url', 'https://evil.com/a%20b/../c', 'https://evil.com/a%20b/../c');
      accepts('url', 'http://evil.com/it\'s', 'http://evil.com/it\'s');
      accepts('url', 'ftp://files.evil.com/a.exe', 'ftp://files.evil.com/a.exe');
      accepts('url', 'http://user:Pass@Evil.com:8080/x', 'http://user:Pass@evil.com:8080/x');
    });

    it('punycodes an IDN host and leaves the path alone', () => {
      accepts('url', 'http://Bücher.de/ä?q=ü', 'http://xn--bcher-kva.de/ä?q=ü');
    });

    it('accepts IP hosts, canonicalising an IPv6 host', () => {
      accepts('url', 'http://1.2.3.4/x', 'http://1.2.3.4/x');
      accepts('url', 'http://[2001:DB8:0::1]:8080/x', 'http://[2001:db8::1]:8080/x');
      rejects('url', 'http://01.2.3.4/x', 'invalid_url');
      rejects('url', 'http://0x7f.1/', 'invalid_url');
    });

    it('accepts scheme-less values that look like host/path, keeping them scheme-less', () => {
      accepts('url', 'Evil.com/path', 'evil.com/path');
      accepts('url', 'evil.com:8080/x?y', 'evil.com:8080/x?y');
      accepts('url', '1.2.3.4/gate.php', '1.2.3.4/gate.php');
      rejects('url', 'localhost/x', 'invalid_url');
      rejects('url', 'user@evil.com/x', 'invalid_url');
      rejects('url', 'not a url', 'invalid_url');
    });

    it('refuses other schemes with unsupported_scheme, naming the scheme', () => {
      expect(rejects('url', 'mailto:bob@evil.com', 'unsupported_scheme')).to.include('mailto');
      expect(rejects('url', 'javascript:alert(1)', 'unsupported_scheme')).to.include('javascript');
      expect(rejects('url', 'hxxp://evil.com/', 'unsupported_scheme')).to.include('hxxp');
      rejects('url', 'file:///etc/passwd', 'unsupported_scheme');
      rejects('url', 'data:text/html,x', 'unsupported_scheme');
    });

    it('refuses malformed URLs, including characters the WHATWG parser would silently drop', () => {
      for (const bad of ['http:/evil.com', 'http:///evil.com', 'http://', 'http://evil.com:99999/', 'http://evil.com:x/',
        'http://ev\nil.com/', 'http://evil.com/a\tb', 'http://evil.com/a b', 'http://ev%41il.com/', 'http://[::1/']) {
        rejects('url', bad, 'invalid_url');
      }
    });
  });

  describe('hashes', () => {
    const cases: [ObservableType, number][] = [['md5', 32], ['sha1', 40], ['sha256', 64], ['cert-sha1', 40]];
    for (const [type, length] of cases) {
      it(`${type}: lower-case hex of exactly ${length} characters`, () => {
        accepts(type, 'A'.repeat(length), 'a'.repeat(length));
        accepts(type, ` ${'0f'.repeat(length / 2)} `, '0f'.repeat(length / 2));
        expect(rejects(type, 'a'.repeat(length - 1), 'invalid_hash')).to.include(`${length}`);
        rejects(type, 'a'.repeat(length + 1), 'invalid_hash');
        expect(rejects(type, `${'a'.repeat(length - 1)}g`, 'invalid_hash')).to.match(/non-hex/);
        rejects(type, `0x${'a'.repeat(length - 2)}`, 'invalid_hash');
      });
    }
  });

  describe('email', () => {
    it('lower-cases the domain only and punycodes it', () => {
      accepts('email', 'Bob.Smith@Example.COM', 'Bob.Smith@example.com');
      accepts('email', 'first+tag@bücher.de', 'first+tag@xn--bcher-kva.de');
      accepts('email', "o'hara@evil.com", "o'hara@evil.com");
    });

    it('refuses malformed addresses', () => {
      for (const bad of ['bob', '@evil.com', 'bob@', 'bob@localhost', 'a@b@evil.com', '<bob@evil.com>', '"Bob" <bob@evil.com>',
        '.bob@evil.com', 'bob.@evil.com', 'b..ob@evil.com', 'bob@evil..com', `${'a'.repeat(65)}@evil.com`, 'mailto:bob@evil.com']) {
        rejects('email', bad, 'invalid_email');
      }
    });
  });

  describe('any type', () => {
    it('refuses empty values and non-strings with stable codes', () => {
      for (const type of OBSERVABLE_TYPES) {
        rejects(type, '', 'empty_value');
        rejects(type, ' \t\n', 'empty_value');
        rejects(type, 42, 'not_a_string');
        rejects(type, null, 'not_a_string');
        rejects(type, undefined, 'not_a_string');
        rejects(type, { value: '1.2.3.4' }, 'not_a_string');
        rejects(type, ['1.2.3.4'], 'not_a_string');
      }
    });

    it('refuses an unknown type instead of throwing', () => {
      rejects('nope' as ObservableType, 'x', 'unsupported_type');
    });

    it('refuses control characters and lone surrogates', () => {
      rejects('domain', 'evil\u0000.com', 'invalid_domain');
      rejects('url', 'http://evil.com/\u007f', 'invalid_url');
      rejects('domain', 'evil\ud800.com', 'invalid_domain');
      rejects('email', 'bob\udc00@evil.com', 'invalid_email');
      accepts('url', 'http://evil.com/\ud83d\ude00', 'http://evil.com/\ud83d\ude00'); // a well-formed pair is fine
    });

    it('truncates the value in a rejection detail and refuses huge values', () => {
      const huge = `http://evil.com/${'a'.repeat(MAX_VALUE_LENGTH)}`;
      const detail = rejects('url', huge, 'value_too_long');
      expect(detail.length).to.be.lessThan(400);
      expect(detail).to.include('http://evil.com/aaa');
      expect(rejects('ipv4', '999.1.1.1', 'invalid_ipv4')).to.include('999.1.1.1');
    });
  });

  describe('properties', () => {
    const anyInput = fc.oneof(
      fc.anything(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      fc.string({ unit: fc.constantFrom(...'./:@[]%-_0123456789abcdefxX \t\u0000\ud800\udc00ü。'), maxLength: 60 }),
      fc.ipV4Extended(),
      fc.ipV6(),
      fc.webUrl(),
      fc.emailAddress(),
    );
    const anyType = fc.constantFrom<string>(...OBSERVABLE_TYPES, 'bogus', '');

    it('never throws and always returns the declared shape', () => {
      fc.assert(
        fc.property(anyType, anyInput, (type, raw) => {
          const result = parseObservable(type as ObservableType, raw);
          if (result.ok) {
            expect(Object.keys(result)).to.have.members(['ok', 'observable']);
            expect(result.observable.type).to.equal(type);
            expect(result.observable.value).to.be.a('string').that.is.not.empty;
            expect(result.observable.value).to.equal(result.observable.value.trim());
          } else {
            expect(Object.keys(result)).to.have.members(['ok', 'rejection']);
            expect(result.rejection.code).to.match(/^[a-z0-9_]+$/);
            expect(result.rejection.detail).to.be.a('string').that.is.not.empty;
            expect(result.rejection.detail.length).to.be.lessThan(1000);
          }
        }),
        { numRuns: 2000 },
      );
    });

    // Candidate values that are often valid, with the mutations sources produce (case, spaces, dots, /32).
    const candidate = fc.oneof(
      fc.tuple(fc.constant<ObservableType>('ipv4'), fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.ipV4().map((ip) => `${ip}/32`))),
      fc.tuple(fc.constant<ObservableType>('ipv6'), fc.oneof(fc.ipV6(), fc.ipV6().map((ip) => `${ip.toUpperCase()}/128`))),
      fc.tuple(fc.constantFrom<ObservableType>('domain', 'hostname'), fc.oneof(plainDomain, plainDomain.map((d) => `${d.toUpperCase()}.`), fc.constantFrom('bücher.de', 'ПРИМЕР.рф'))),
      fc.tuple(fc.constant<ObservableType>('url'), fc.oneof(fc.webUrl({ withQueryParameters: true, withFragments: true }), plainDomain.map((d) => `${d.toUpperCase()}/Path`))),
      fc.tuple(fc.constant<ObservableType>('email'), fc.emailAddress().map((e) => e.toUpperCase())),
      fc.tuple(fc.constantFrom<ObservableType>('md5', 'sha1', 'sha256', 'cert-sha1'), fc.oneof(hexString(32), hexString(40), hexString(64))),
    ).chain(([type, value]) => fc.tuple(fc.constant(type), fc.constantFrom(value, ` ${value}\n`)));

    it('canonicalisation is idempotent: parse(parse(x).value) equals parse(x)', () => {
      let accepted = 0;
      fc.assert(
        fc.property(candidate, ([type, raw]) => {
          const first = parseObservable(type, raw);
          if (!first.ok) return;
          accepted += 1;
          expect(parseObservable(type, first.observable.value)).to.deep.equal(first);
        }),
        { numRuns: 1000 },
      );
      expect(accepted, 'the generator must mostly produce valid values').to.be.greaterThan(500);
    });

    it('accepts every generated IPv4 address unchanged', () => {
      fc.assert(
        fc.property(fc.ipV4(), (ip) => {
          expect(parseObservable('ipv4', ip)).to.deep.equal({ ok: true, observable: { type: 'ipv4', value: ip } });
          expect(isIpAddress(ip)).to.equal(4);
        }),
      );
    });

    it('accepts an extended IPv4 form only when it already is the strict dotted quad', () => {
      fc.assert(
        fc.property(fc.ipV4Extended(), (ip) => {
          const result = parseObservable('ipv4', ip);
          if (result.ok) expect(result.observable.value).to.equal(ip);
          expect(result.ok).to.equal(/^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/.test(ip) && ip.split('.').every((o) => Number(o) <= 255));
        }),
        { numRuns: 500 },
      );
    });

    it('compresses IPv6 exactly like the WHATWG serialiser, and expansion round-trips', () => {
      fc.assert(
        fc.property(fc.ipV6(), (ip) => {
          const result = parseObservable('ipv6', ip);
          expect(result.ok, ip).to.equal(true);
          if (!result.ok) return;
          const canonical = result.observable.value;
          expect(canonical).to.equal(whatwgIpv6(ip));
          const expanded = expandIpv6(canonical);
          expect(expanded.split(':')).to.have.length(8);
          expect(expanded).to.match(/^(0|[1-9a-f][0-9a-f]{0,3})(:(0|[1-9a-f][0-9a-f]{0,3})){7}$/);
          expect(isIPv6(expanded)).to.equal(true);
          expect(parseObservable('ipv6', expanded)).to.deep.equal(result);
          expect(expandIpv6(ip)).to.equal(expanded);
        }),
        { numRuns: 1000 },
      );
    });

    it('accepts generated domains, URLs and e-mail addresses as given', () => {
      fc.assert(
        fc.property(plainDomain, fc.webUrl({ withQueryParameters: true, withFragments: true }), fc.emailAddress(), (domain, url, email) => {
          accepts('domain', domain, domain);
          accepts('domain', `${domain.toUpperCase()}.`, domain);
          accepts('url', url, url);
          accepts('email', email, email);
        }),
        { numRuns: 500 },
      );
    });

    it('refuses a valid domain or URL once a control character or space is slipped inside', () => {
      const inside = fc.constantFrom('\u0000', '\t', '\n', '\r', ' ', '\u007f', '\u0085', '\u00a0');
      fc.assert(
        fc.property(fc.webUrl(), inside, fc.nat(), (url, ch, at) => {
          const i = 1 + (at % (url.length - 1));
          expect(parseObservable('url', url.slice(0, i) + ch + url.slice(i)).ok).to.equal(false);
        }),
        { numRuns: 500 },
      );
    });

    it('lower-cases hashes of the right length and refuses any other length', () => {
      fc.assert(
        fc.property(fc.constantFrom<[ObservableType, number]>(['md5', 32], ['sha1', 40], ['sha256', 64], ['cert-sha1', 40]), fc.integer({ min: 1, max: 70 }), fc.nat(), ([type, length], size, seed) => {
          const hex = Array.from({ length: size }, (_, i) => HEX[(seed + i * 7) % HEX.length]).join('');
          const result = parseObservable(type, hex);
          if (size === length) expect(result).to.deep.equal({ ok: true, observable: { type, value: hex.toLowerCase() } });
          else expect(result.ok ? 'ok' : result.rejection.code).to.equal('invalid_hash');
        }),
      );
    });
  });
});
