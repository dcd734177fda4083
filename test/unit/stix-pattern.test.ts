import { expect } from 'chai';
import fc from 'fast-check';
import type { Observable, ObservableType } from '../../src/core/types.js';
import {
  comparisonsOf,
  extractObservables,
  formatObjectPath,
  parsePattern,
  simplePattern,
  type Comparison,
  type ComparisonExpression,
  type ObservationExpression,
  type PatternAst,
} from '../../src/sources/opencti/stix-pattern/index.js';

import { parse as grammarParse } from '../../src/sources/opencti/stix-pattern/parser.generated.js';

const SHA256 = 'f1'.repeat(32);
const MD5 = 'd41d8cd98f00b204e9800998ecf8427e';
const SHA1 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';

function ast(pattern: string): PatternAst {
  const result = parsePattern(pattern);
  if (!result.ok) throw new Error(`expected ${pattern} to parse: ${result.rejection.detail}`);
  return result.ast;
}

function only(pattern: string): Comparison {
  const comparisons = comparisonsOf(ast(pattern));
  expect(comparisons).to.have.length(1);
  const [first] = comparisons;
  if (!first) throw new Error('unreachable');
  return first;
}

function extract(pattern: string): { observables: Observable[]; skipped: { code: string; detail: string }[] } {
  const result = extractObservables(pattern);
  if (!result.ok) throw new Error(`expected ${pattern} to be usable: ${result.rejection.detail}`);
  return { observables: result.observables, skipped: result.skipped };
}

const obs = (type: ObservableType, value: string): Observable => ({ type, value });

/** Operator structure of an observation tree, e.g. `FOLLOWEDBY(OR(AND(0,1),2),3)`; leaves by their string value. */
function shape(node: ObservationExpression | ComparisonExpression): string {
  switch (node.type) {
    case 'observation':
      return shape(node.comparison);
    case 'qualified':
      return `Q(${shape(node.expression)})`;
    case 'observation-combination':
    case 'comparison-combination':
      return `${node.operator}(${node.operands.map(shape).join(',')})`;
    case 'comparison':
      return node.operator === '=' && node.value.type === 'string' ? node.value.value : '?';
  }
}

describe('STIX pattern parser', () => {
  describe('AST', () => {
    it('parses a single comparison into a typed tree', () => {
      expect(ast("[ipv4-addr:value = '1.2.3.4']")).to.deep.equal({
        type: 'pattern',
        expression: {
          type: 'observation',
          comparison: {
            type: 'comparison',
            operator: '=',
            negated: false,
            path: { objectType: 'ipv4-addr', steps: [{ type: 'key', key: 'value', quoted: false }] },
            value: { type: 'string', value: '1.2.3.4' },
          },
        },
      });
    });

    it('reads quoted keys, index steps and wildcards in object paths', () => {
      const path = only("[file:extensions.'windows-pebinary-ext'.sections[0].'name' = 'x']").path;
      expect(path).to.deep.equal({
        objectType: 'file',
        steps: [
          { type: 'key', key: 'extensions', quoted: false },
          { type: 'key', key: 'windows-pebinary-ext', quoted: true },
          { type: 'key', key: 'sections', quoted: false },
          { type: 'index', index: 0 },
          { type: 'key', key: 'name', quoted: true },
        ],
      });
      expect(formatObjectPath(path)).to.equal("file:extensions.'windows-pebinary-ext'.sections[0].'name'");
      expect(formatObjectPath(only("[email-message:to_refs[*].value = 'a@b.c']").path)).to.equal('email-message:to_refs[*].value');
      expect(only("[x:list[-1] = 'a']").path.steps[1]).to.deep.equal({ type: 'index', index: -1 });
    });

    it('reads every literal type', () => {
      const values = (pattern: string) => {
        const c = only(pattern);
        return c.operator === 'IN' ? c.values : c.operator === 'EXISTS' ? [] : [c.value];
      };
      expect(values("[x:y IN ('a\\'b\\\\c', 5, -3, +7, 0, 1.5, -.25, true, false)]")).to.deep.equal([
        { type: 'string', value: "a'b\\c" },
        { type: 'integer', value: 5 },
        { type: 'integer', value: -3 },
        { type: 'integer', value: 7 },
        { type: 'integer', value: 0 },
        { type: 'float', value: 1.5 },
        { type: 'float', value: -0.25 },
        { type: 'boolean', value: true },
        { type: 'boolean', value: false },
      ]);
      expect(values("[x:y = t'2020-02-29T23:59:60.123Z']")).to.deep.equal([{ type: 'timestamp', value: '2020-02-29T23:59:60.123Z' }]);
      expect(values("[x:y = b'SGVsbG8=']")).to.deep.equal([{ type: 'binary', value: 'SGVsbG8=' }]);
      expect(values("[x:y = h'0aFF']")).to.deep.equal([{ type: 'hex', value: '0aFF' }]);
      expect(values("[x:y IN ()]")).to.deep.equal([]);
    });

    it('reads every operator; == is =, <> is !=, NOT goes before the operator', () => {
      const op = (text: string) => {
        const c = only(`[x:y ${text}]`);
        return `${c.negated ? 'NOT ' : ''}${c.operator}`;
      };
      expect(op("= 'a'")).to.equal('=');
      expect(op("== 'a'")).to.equal('=');
      expect(op("!= 'a'")).to.equal('!=');
      expect(op("<> 'a'")).to.equal('!=');
      expect(op('> 1')).to.equal('>');
      expect(op('< 1')).to.equal('<');
      expect(op('>= 1')).to.equal('>=');
      expect(op('<= 1')).to.equal('<=');
      expect(op("IN ('a')")).to.equal('IN');
      expect(op("LIKE 'a%'")).to.equal('LIKE');
      expect(op("MATCHES '^a'")).to.equal('MATCHES');
      expect(op("ISSUBSET '10.0.0.0/8'")).to.equal('ISSUBSET');
      expect(op("ISSUPERSET '10.0.0.0/8'")).to.equal('ISSUPERSET');
      expect(op("NOT = 'a'")).to.equal('NOT =');
      expect(op("NOT IN ('a')")).to.equal('NOT IN');
      expect(op("NOT LIKE 'a'")).to.equal('NOT LIKE');
      expect(only('[EXISTS x:y]')).to.include({ operator: 'EXISTS', negated: false });
    });

    it('binds AND tighter than OR tighter than FOLLOWEDBY between observations', () => {
      const p = "[a:v = '0'] AND [a:v = '1'] OR [a:v = '2'] FOLLOWEDBY [a:v = '3'] OR [a:v = '4'] AND [a:v = '5']";
      expect(shape(ast(p).expression)).to.equal('FOLLOWEDBY(OR(AND(0,1),2),OR(3,AND(4,5)))');
    });

    it('binds AND tighter than OR inside brackets, and parentheses override both', () => {
      expect(shape(ast("[a:v = '0' OR a:v = '1' AND a:v = '2']").expression)).to.equal('OR(0,AND(1,2))');
      expect(shape(ast("[(a:v = '0' OR a:v = '1') AND a:v = '2']").expression)).to.equal('AND(OR(0,1),2)');
      expect(shape(ast("([a:v = '0'] FOLLOWEDBY [a:v = '1']) AND [a:v = '2']").expression)).to.equal('AND(FOLLOWEDBY(0,1),2)');
      expect(shape(ast("(((([a:v = '0']))))").expression)).to.equal('0');
      expect(shape(ast("[((a:v = '0'))]").expression)).to.equal('0');
    });

    it('applies qualifiers to the observation before them, innermost first', () => {
      const tree = ast("[a:v = '0'] REPEATS 5 TIMES WITHIN 10.5 SECONDS AND [a:v = '1'] START t'2020-01-01T00:00:00Z' STOP t'2021-01-01T00:00:00Z'");
      expect(shape(tree.expression)).to.equal('AND(Q(Q(0)),Q(1))');
      const combination = tree.expression;
      if (combination.type !== 'observation-combination') throw new Error('expected AND');
      const [first, second] = combination.operands;
      expect(first).to.deep.include({ qualifier: { type: 'within', seconds: 10.5 } });
      expect(first?.type === 'qualified' && first.expression).to.deep.include({ qualifier: { type: 'repeats', times: 5 } });
      expect(second).to.deep.include({ qualifier: { type: 'start-stop', start: '2020-01-01T00:00:00Z', stop: '2021-01-01T00:00:00Z' } });
      expect(shape(ast("([a:v = '0'] OR [a:v = '1']) WITHIN 5 SECONDS").expression)).to.equal('Q(OR(0,1))');
    });

    it('tolerates any whitespace and comments between tokens, and none where tokens are clear', () => {
      const spaced = "\n\t[ ipv4-addr : value\u00a0=\u2003'1.2.3.4' /* c2 */ ]\r\n AND // next\n [url:value='http://a.com/'] ";
      expect(shape(ast(spaced).expression)).to.equal('AND(1.2.3.4,http://a.com/)');
      expect(shape(ast("[a:v='0']AND[a:v='1']OR([a:v='2'])").expression)).to.equal('OR(AND(0,1),2)');
    });

    it('treats keywords as case-sensitive whole words', () => {
      expect(parsePattern("[a:v = '0'] and [a:v = '1']").ok).to.equal(false);
      expect(parsePattern("[a:v = '0' or a:v = '1']").ok).to.equal(false);
      expect(parsePattern("[a:v like '0']").ok).to.equal(false);
      expect(parsePattern("[a:v = TRUE]").ok).to.equal(false);
      // A word that merely starts with a keyword is an identifier.
      expect(only("[ANDROID:ORx = 'a']").path.objectType).to.equal('ANDROID');
    });
  });

  describe('invalid patterns', () => {
    const invalid: [string, unknown][] = [
      ['empty', ''],
      ['blank', '   \n'],
      ['unbalanced open bracket', "[ipv4-addr:value = '1.2.3.4'"],
      ['unbalanced close bracket', "ipv4-addr:value = '1.2.3.4']"],
      ['extra bracket', "[ipv4-addr:value = '1.2.3.4']]"],
      ['unbalanced parenthesis', "([ipv4-addr:value = '1.2.3.4']"],
      ['missing closing quote', "[ipv4-addr:value = '1.2.3.4]"],
      ['missing quotes', '[ipv4-addr:value = 1.2.3.4]'],
      ['double quotes', '[ipv4-addr:value = "1.2.3.4"]'],
      ['bad operator', "[ipv4-addr:value ~ '1.2.3.4']"],
      ['prefix NOT', "[NOT ipv4-addr:value = '1.2.3.4']"],
      ['empty observation', '[]'],
      ['missing property', "[ipv4-addr = '1.2.3.4']"],
      ['dangling AND', "[ipv4-addr:value = '1.2.3.4'] AND"],
      ['comparison outside brackets', "[a:v = '1'] AND a:v = '2'"],
      ['unquoted hyphenated key', "[file:hashes.SHA-256 = 'aa']"],
      ['unknown escape', "[a:v = 'a\\d']"],
      ['leading zero integer', '[a:v = 05]'],
      ['LIKE with a number', '[a:v LIKE 5]'],
      ['ordering with a boolean', '[a:v > true]'],
      ['bad timestamp month', "[a:v = t'2020-13-01T00:00:00Z']"],
      ['timestamp without Z', "[a:v = t'2020-01-01T00:00:00']"],
      ['WITHIN without SECONDS', "[a:v = '1'] WITHIN 5"],
      ['negative REPEATS', "[a:v = '1'] REPEATS -1 TIMES"],
      ['START without STOP', "[a:v = '1'] START t'2020-01-01T00:00:00Z'"],
      ['odd hex', "[a:v = h'abc']"],
      ['bad base64', "[a:v = b'abc']"],
      ['unterminated comment', "[a:v = '1'] /* x"],
      ['number', 42],
      ['null', null],
      ['object', { pattern: "[a:v = '1']" }],
    ];
    for (const [name, pattern] of invalid) {
      it(`rejects ${name} with invalid_pattern`, () => {
        const result = parsePattern(pattern);
        expect(result.ok).to.equal(false);
        if (result.ok) return;
        expect(result.rejection.code).to.equal('invalid_pattern');
        expect(result.rejection.detail).to.be.a('string').that.is.not.empty;
        expect(extractObservables(pattern)).to.deep.equal(result);
      });
    }

    it('names the column and what was expected', () => {
      const result = parsePattern("[ipv4-addr:value ~ '1.2.3.4']");
      expect(result.ok).to.equal(false);
      if (result.ok) return;
      expect(result.rejection.detail).to.match(/^column 18: Expected .* but "~" found\./);
      expect(result.rejection.detail).to.include("[ipv4-addr:value ~ '1.2.3.4']");
    });

    it('names the line of a multi-line pattern', () => {
      const result = parsePattern("[a:v = '1']\nAND\n[a:v ~ '2']");
      expect(!result.ok && result.rejection.detail).to.match(/^line 3, column 6:/);
    });

    it('turns pathological nesting and size into a rejection, not a crash', () => {
      const pathological = ['('.repeat(50_000), `${'['.repeat(20_000)}`, `${'('.repeat(5_000)}[a:v = '1']${')'.repeat(5_000)}`, `[a:v = '${'x'.repeat(1_100_000)}']`];
      // The parser itself, with the limits out of the way (the 1.1 MB one is only a size case).
      for (const p of pathological.slice(0, 3)) {
        const result = parsePattern(p, { maxChars: 2_000_000, maxDepth: 1_000_000 });
        expect(result.ok).to.equal(false);
        if (!result.ok) {
          expect(result.rejection.code).to.equal('invalid_pattern');
          expect(result.rejection.detail.length).to.be.lessThan(1000);
        }
      }
      // With the default limits they never reach it.
      for (const p of pathological) {
        const result = parsePattern(p);
        expect(result.ok).to.equal(false);
        if (!result.ok) expect(result.rejection.code).to.equal('pattern_too_large');
      }
    });

    it('rejects a pattern over limits.pattern_chars or limits.pattern_depth unparsed, and passes one at the limit', () => {
      const limits = { maxChars: 300, maxDepth: 4 };
      const atDepth = `((([ipv4-addr:value = '198.51.100.1'])))`;
      expect(parsePattern(atDepth, limits).ok).to.equal(true);
      const deeper = `(((([ipv4-addr:value = '198.51.100.1']))))`;
      const r = parsePattern(deeper, limits);
      expect(r.ok ? null : r.rejection).to.deep.equal({ code: 'pattern_too_large', detail: 'pattern nests 5 levels deep (limits.pattern_depth 4)' });
      // Brackets inside a quoted value are not nesting.
      expect(parsePattern(`[url:value = '${'(['.repeat(50)}']`, limits).ok).to.equal(true);
      const long = `[ipv4-addr:value = '198.51.100.1'${' '.repeat(300)}]`;
      const l = parsePattern(long, limits);
      expect(l.ok ? null : l.rejection.code).to.equal('pattern_too_large');
      expect(parsePattern(long.slice(0, 299) + ']', limits).ok).to.equal(true);
    });
  });

  describe('extractObservables', () => {
    it('takes the observable of a simple OpenCTI pattern', () => {
      expect(extractObservables("[ipv4-addr:value = '1.2.3.4']")).to.deep.equal({
        ok: true,
        observables: [obs('ipv4', '1.2.3.4')],
        skipped: [],
      });
    });

    it('takes every hash of an OR pattern, with quoted, unquoted, upper and lower-case keys', () => {
      expect(extract(`[file:hashes.'SHA-256' = '${SHA256.toUpperCase()}' OR file:hashes.MD5 = '${MD5}']`).observables)
        .to.deep.equal([obs('sha256', SHA256), obs('md5', MD5)]);
      const keys = ["'SHA-1'", 'SHA1', "'sha1'", 'sha1', "'Sha-1'"];
      for (const key of keys) expect(extract(`[file:hashes.${key} = '${SHA1}']`).observables, key).to.deep.equal([obs('sha1', SHA1)]);
      for (const key of ["'SHA-256'", 'SHA256', "'sha-256'", 'sha256']) {
        expect(extract(`[file:hashes.${key} = '${SHA256}']`).observables, key).to.deep.equal([obs('sha256', SHA256)]);
      }
      for (const key of ['MD5', "'md5'", "'MD5'"]) expect(extract(`[file:hashes.${key} = '${MD5}']`).observables, key).to.deep.equal([obs('md5', MD5)]);
      expect(extract(`[x509-certificate:hashes.'SHA-1' = '${SHA1}']`).observables).to.deep.equal([obs('cert-sha1', SHA1)]);
      expect(extract(`[x509-certificate:hashes.SHA1 = '${SHA1}']`).observables).to.deep.equal([obs('cert-sha1', SHA1)]);
    });

    it('takes observables from every observation of a compound pattern, in order', () => {
      expect(extract("[domain-name:value = 'Evil.com'] AND [url:value = 'http://evil.com/a?b=c&d=e']").observables).to.deep.equal([
        obs('domain', 'evil.com'),
        obs('url', 'http://evil.com/a?b=c&d=e'),
      ]);
      const p = "([hostname:value = 'WS01'] FOLLOWEDBY ([email-addr:value = 'a@evil.com'] OR [email-message:from_ref.value = 'b@Evil.com'])) REPEATS 2 TIMES WITHIN 60 SECONDS START t'2020-01-01T00:00:00Z' STOP t'2020-02-01T00:00:00Z'";
      expect(extract(p).observables).to.deep.equal([obs('hostname', 'ws01'), obs('email', 'a@evil.com'), obs('email', 'b@evil.com')]);
    });

    it('takes each member of an IN list and reports the invalid ones', () => {
      const { observables, skipped } = extract("[ipv4-addr:value IN ('1.2.3.4', '5.6.7.8/32', '10.0.0.0/8', '1.2.3.4', 'nope')]");
      expect(observables).to.deep.equal([obs('ipv4', '1.2.3.4'), obs('ipv4', '5.6.7.8')]);
      expect(skipped.map((s) => s.code)).to.deep.equal(['cidr_not_supported', 'invalid_ipv4']);
      expect(skipped[0]?.detail).to.include('ipv4-addr:value').and.include('10.0.0.0/8');
    });

    it('unescapes quotes and backslashes in URLs', () => {
      expect(extract("[url:value = 'http://evil.com/it\\'s/a\\\\b']").observables).to.deep.equal([obs('url', "http://evil.com/it's/a\\b")]);
    });

    it('maps IPv6 and network-traffic refs to the right IP type', () => {
      const p = "[ipv6-addr:value = '2001:DB8:0:0:0:0:0:1'] OR [network-traffic:dst_ref.value = '1.2.3.4' AND network-traffic:src_ref.value = '2001:db8::2' AND network-traffic:dst_ref.type = 'ipv4-addr']";
      const { observables, skipped } = extract(p);
      expect(observables).to.deep.equal([obs('ipv6', '2001:db8::1'), obs('ipv4', '1.2.3.4'), obs('ipv6', '2001:db8::2')]);
      expect(skipped).to.have.length(1);
      expect(skipped[0]).to.deep.include({ code: 'unsupported_path' });
      expect(skipped[0]?.detail).to.include('network-traffic:dst_ref.type');
      expect(extract("[network-traffic:dst_ref.value = 'evil.com']").skipped.map((s) => s.code)).to.deep.equal(['invalid_ipv4']);
    });

    it('accepts OpenCTI display-case object types', () => {
      expect(extract("[IPv4-Addr:value = '1.2.3.4']").observables).to.deep.equal([obs('ipv4', '1.2.3.4')]);
    });

    it('de-duplicates observables that canonicalise to the same value', () => {
      const p = `[domain-name:value = 'evil.com' OR domain-name:value = 'EVIL.com.'] AND [file:hashes.MD5 = '${MD5.toUpperCase()}' OR file:hashes.'md5' = '${MD5}']`;
      expect(extract(p).observables).to.deep.equal([obs('domain', 'evil.com'), obs('md5', MD5)]);
    });

    it('skips negated comparisons, other operators and unsupported paths, naming path and operator', () => {
      const p = [
        "[ipv4-addr:value NOT = '1.2.3.4'",
        "ipv4-addr:value != '5.6.7.8'",
        "domain-name:value NOT IN ('a.com')",
        "url:value LIKE 'http://evil.com/%'",
        "url:value MATCHES '^http'",
        "ipv4-addr:value ISSUBSET '10.0.0.0/8'",
        'EXISTS file:hashes.MD5',
        "file:name = 'evil.exe'",
        "windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Run'",
        "process:name = 'evil.exe'",
        `file:hashes.'SHA-512' = '${'a'.repeat(128)}'`,
        'file:size > 100',
        "ipv4-addr:value = 5",
        "url:value = 'http://good.example/']",
      ].join(' OR ');
      const { observables, skipped } = extract(p);
      expect(observables).to.deep.equal([obs('url', 'http://good.example/')]);
      expect(skipped.map((s) => s.code)).to.deep.equal([
        'negated_comparison', 'negated_comparison', 'negated_comparison',
        'unsupported_operator', 'unsupported_operator', 'unsupported_operator', 'unsupported_operator',
        'unsupported_path', 'unsupported_path', 'unsupported_path', 'unsupported_path', 'unsupported_path',
        'unsupported_literal',
      ]);
      const details = skipped.map((s) => s.detail);
      expect(details[0]).to.include('ipv4-addr:value NOT =');
      expect(details[1]).to.include('ipv4-addr:value !=');
      expect(details[2]).to.include('domain-name:value NOT IN');
      expect(details[3]).to.include('url:value LIKE');
      expect(details[6]).to.include('file:hashes.MD5 EXISTS');
      expect(details[7]).to.include('file:name');
      expect(details[8]).to.include('windows-registry-key:key');
      expect(details[10]).to.include("file:hashes.'SHA-512'");
      expect(details[12]).to.include('integer');
    });

    it('returns ok with no observables and the reasons when nothing is usable', () => {
      expect(extractObservables("[file:name = 'evil.exe'] AND [process:pid > 4]")).to.deep.equal({
        ok: true,
        observables: [],
        skipped: [
          { code: 'unsupported_path', detail: 'file:name: Defender has no indicator type for this path' },
          { code: 'unsupported_path', detail: 'process:pid: Defender has no indicator type for this path' },
        ],
      });
    });
  });

  describe('properties', () => {
    const anyInput = fc.oneof(
      fc.anything(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      fc.string({ unit: fc.constantFrom(...'[]()\'\\:.=<>!*, \tANDORNOTINLIKEFOLLOWEDBY0123456789-+thbxy'), maxLength: 80 }),
    );

    function expectShape(result: ReturnType<typeof extractObservables>): void {
      if (result.ok) {
        expect(Object.keys(result)).to.have.members(['ok', 'observables', 'skipped']);
        for (const o of result.observables) expect(o.value).to.be.a('string');
        for (const s of result.skipped) expect(s.code).to.match(/^[a-z0-9_]+$/);
      } else {
        expect(Object.keys(result)).to.have.members(['ok', 'rejection']);
        expect(result.rejection.code).to.equal('invalid_pattern');
        expect(result.rejection.detail).to.be.a('string').that.is.not.empty;
      }
    }

    it('never throws on arbitrary input and always returns the declared shape', () => {
      fc.assert(
        fc.property(anyInput, (input) => {
          const parsed = parsePattern(input);
          expect(parsed.ok === true || parsed.rejection.code === 'invalid_pattern').to.equal(true);
          expectShape(extractObservables(input));
        }),
        { numRuns: 2000 },
      );
    });

    it('never throws on mutations of a valid pattern', () => {
      const base = `[ipv4-addr:value = '1.2.3.4' OR file:hashes.'SHA-256' = '${SHA256}'] AND ([url:value IN ('http://a.com/x\\'y', 'b.com')] FOLLOWEDBY [domain-name:value NOT LIKE 'x%']) WITHIN 5 SECONDS`;
      const edit = fc.record({ at: fc.nat(), length: fc.nat({ max: 5 }), insert: fc.string({ unit: 'binary', maxLength: 4 }) });
      fc.assert(
        fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
          let p = base;
          for (const e of edits) {
            const at = e.at % (p.length + 1);
            p = p.slice(0, at) + e.insert + p.slice(at + e.length);
          }
          expectShape(extractObservables(p));
        }),
        { numRuns: 2000 },
      );
    });

    // ----- Generated well-formed patterns -----

    interface Piece {
      text: string;
      /** Canonical observables the piece asserts, in order. */
      expected: Observable[];
      /** Comparisons that must show up as exactly one skipped entry each. */
      noise: number;
      comparisons: number;
    }

    const escape = (s: string) => s.replace(/[\\']/g, (c) => `\\${c}`);
    const str = (s: string) => `'${escape(s)}'`;
    const ws = fc.constantFrom(' ', '  ', '\t', '\n', ' /* x */ ', '');
    const sep = fc.constantFrom(' ', '\n', '\t ', ' // c\n');
    const caseMix = (s: string, mask: number) => [...s].map((c, i) => ((mask >> (i % 30)) & 1 ? c.toUpperCase() : c)).join('');
    const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), minLength: length, maxLength: length });
    const plainDomain = fc.domain().filter((d) => !d.split('.').some((l) => l.startsWith('xn--')));

    /** [path text, raw value, canonical observable] */
    type Value = [string, string, Observable];

    const ipv6Value = fc.tuple(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), fc.boolean(), fc.boolean())
      .map(([groups, pad, upper]) => {
        const text = groups.map((g) => (pad ? g.toString(16).padStart(4, '0') : g.toString(16))).join(':');
        // The WHATWG host serialiser (RFC 5952) is the oracle for the canonical form.
        return [upper ? text.toUpperCase() : text, new URL(`http://[${text}]/`).hostname.slice(1, -1)] as const;
      });

    const hashPaths: Record<'md5' | 'sha1' | 'sha256', string[]> = {
      md5: ['MD5', "'MD5'", 'md5', "'md5'"],
      sha1: ['SHA1', "'SHA-1'", "'sha-1'", 'sha1', "'SHA1'"],
      sha256: ['SHA256', "'SHA-256'", "'sha-256'", 'Sha256'],
    };
    const hashValue = (type: 'md5' | 'sha1' | 'sha256', length: number, objectType = 'file', as: ObservableType = type) =>
      fc.tuple(fc.constantFrom(...hashPaths[type]), hex(length)).map(([key, h]): Value => [`${objectType}:hashes.${key}`, h, obs(as, h.toLowerCase())]);

    const urlValue = fc.oneof(
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
      fc.tuple(plainDomain, fc.string({ unit: fc.constantFrom(...'abcXYZ019-._~!$&\'()*+,;=:@%/\\'), maxLength: 20 }))
        .map(([d, path]) => `https://${d}/${path}`),
    ).map((u): Value => ['url:value', u, obs('url', u)]);

    const positive: fc.Arbitrary<Value> = fc.oneof(
      fc.ipV4().map((ip): Value => ['ipv4-addr:value', ip, obs('ipv4', ip)]),
      ipv6Value.map(([raw, canonical]): Value => ['ipv6-addr:value', raw, obs('ipv6', canonical)]),
      fc.tuple(plainDomain, fc.nat(), fc.boolean()).map(([d, mask, dot]): Value => ['domain-name:value', `${caseMix(d, mask)}${dot ? '.' : ''}`, obs('domain', d)]),
      fc.tuple(plainDomain, fc.nat()).map(([d, mask]): Value => ['hostname:value', caseMix(d, mask), obs('hostname', d)]),
      urlValue,
      fc.tuple(fc.emailAddress(), fc.constantFrom('email-addr:value', 'email-message:from_ref.value')).map(([e, path]): Value => {
        const at = e.lastIndexOf('@');
        return [path, `${e.slice(0, at)}@${e.slice(at + 1).toUpperCase()}`, obs('email', e)];
      }),
      hashValue('md5', 32),
      hashValue('sha1', 40),
      hashValue('sha256', 64),
      fc.tuple(fc.constantFrom("'SHA-1'", 'SHA1'), hex(40)).map(([key, h]): Value => [`x509-certificate:hashes.${key}`, h, obs('cert-sha1', h.toLowerCase())]),
      fc.tuple(fc.constantFrom('dst_ref', 'src_ref'), fc.oneof(fc.ipV4().map((ip) => [ip, obs('ipv4', ip)] as const), ipv6Value.map(([raw, c]) => [raw, obs('ipv6', c)] as const)))
        .map(([ref, [raw, o]]): Value => [`network-traffic:${ref}.value`, raw, o]),
    );

    const equality: fc.Arbitrary<Piece> = fc.tuple(positive, fc.constantFrom('=', '=='), ws, ws).map(([[path, raw, o], op, a, b]) => ({
      text: `${path}${a}${op}${b}${str(raw)}`,
      expected: [o],
      noise: 0,
      comparisons: 1,
    }));

    // IN takes a list of values of one path.
    const inList: fc.Arbitrary<Piece> = positive.chain(([path, raw, o]) =>
      fc.array(positive.filter(([p]) => p === path), { maxLength: 3 }).map((more) => ({
        text: `${path} IN (${[raw, ...more.map(([, r]) => r)].map(str).join(', ')})`,
        expected: [o, ...more.map(([, , m]) => m)],
        noise: 0,
        comparisons: 1,
      })),
    );

    const noiseText = fc.oneof(
      positive.map(([path, raw]) => `${path} NOT = ${str(raw)}`),
      positive.map(([path, raw]) => `${path} != ${str(raw)}`),
      positive.map(([path, raw]) => `${path} NOT IN (${str(raw)})`),
      positive.map(([path, raw]) => `${path} LIKE ${str(raw)}`),
      positive.map(([path, raw]) => `${path} MATCHES ${str(`^${raw}`)}`),
      positive.map(([path]) => `EXISTS ${path}`),
      positive.map(([path]) => `${path} = 42`),
      fc.string({ maxLength: 20 }).map((s) => `file:name = ${str(s)}`),
      fc.string({ maxLength: 20 }).map((s) => `windows-registry-key:key = ${str(s)}`),
      hex(128).map((h) => `file:hashes.'SHA-512' = ${str(h)}`),
      fc.integer().map((n) => `process:pid > ${n}`),
      fc.constant(`file:created >= t'2020-01-01T00:00:00Z'`),
      fc.constant(`file:hashes.MD5 = 'not-a-hash'`),
      fc.constant(`ipv4-addr:value = '10.0.0.0/8'`),
    ).map((text): Piece => ({ text, expected: [], noise: 1, comparisons: 1 }));

    const combine = (parts: Piece[], op: string, gap: string, paren: boolean): Piece => {
      const text = parts.map((p) => p.text).join(`${gap}${op}${gap}`);
      return {
        text: paren ? `(${text})` : text,
        expected: parts.flatMap((p) => p.expected),
        noise: parts.reduce((n, p) => n + p.noise, 0),
        comparisons: parts.reduce((n, p) => n + p.comparisons, 0),
      };
    };

    const comparisonTree = fc.letrec<{ node: Piece; combo: Piece }>((tie) => ({
      node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, equality, inList, noiseText, tie('combo')),
      combo: fc.tuple(fc.array(tie('node'), { minLength: 2, maxLength: 3 }), fc.constantFrom('AND', 'OR'), sep, fc.boolean())
        .map(([parts, op, gap, paren]) => combine(parts, op, gap, paren)),
    })).node;

    const timestamp = fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2999-12-31T23:59:59Z'), noInvalidDate: true })
      .map((d) => `t'${d.toISOString()}'`);
    const qualifier = fc.oneof(
      fc.nat({ max: 100_000 }).map((n) => `WITHIN ${n} SECONDS`),
      fc.nat({ max: 1000 }).map((n) => `REPEATS ${n} TIMES`),
      fc.tuple(timestamp, timestamp).map(([a, b]) => `START ${a} STOP ${b}`),
    );

    const observation = fc.tuple(comparisonTree, ws, ws, fc.array(qualifier, { maxLength: 2 })).map(([c, a, b, qs]): Piece => ({
      ...c,
      text: `[${a}${c.text}${b}]${qs.map((q) => ` ${q}`).join('')}`,
    }));

    const observationTree = fc.letrec<{ node: Piece; combo: Piece }>((tie) => ({
      node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, observation, tie('combo')),
      combo: fc.tuple(fc.array(tie('node'), { minLength: 2, maxLength: 3 }), fc.constantFrom('AND', 'OR', 'FOLLOWEDBY'), sep, fc.boolean(), fc.array(qualifier, { maxLength: 1 }))
        .map(([parts, op, gap, paren, qs]) => {
          const combined = combine(parts, op, gap, paren || qs.length > 0);
          return { ...combined, text: `${combined.text}${qs.map((q) => ` ${q}`).join('')}` };
        }),
    })).node;

    const dedupe = (list: Observable[]) => {
      const seen = new Set<string>();
      return list.filter((o) => {
        const key = `${o.type} ${o.value}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
    };

    it('parses generated well-formed patterns and extracts exactly their positive equality observables', () => {
      fc.assert(
        fc.property(observationTree, ws, ws, (piece, lead, trail) => {
          const pattern = `${lead}${piece.text}${trail}`;
          const parsed = parsePattern(pattern);
          if (!parsed.ok) expect.fail(`${pattern}\n${parsed.rejection.detail}`);
          expect(comparisonsOf(parsed.ast)).to.have.length(piece.comparisons);
          const result = extractObservables(pattern);
          if (!result.ok) throw new Error('unreachable');
          expect(result.observables, pattern).to.deep.equal(dedupe(piece.expected));
          expect(result.skipped, pattern).to.have.length(piece.noise);
        }),
        { numRuns: 500 },
      );
    });

    it('gives operator chains the precedence AND > OR > FOLLOWEDBY', () => {
      /** Expected n-ary structure by splitting at the loosest operator first. */
      const expectedShape = (ops: string[], lo: number, hi: number, levels: string[]): string => {
        const [op, ...tighter] = levels;
        if (op === undefined) return String(lo);
        const cuts = [lo - 1];
        for (let k = lo; k < hi; k += 1) if (ops[k] === op) cuts.push(k);
        cuts.push(hi);
        if (cuts.length === 2) return expectedShape(ops, lo, hi, tighter);
        const parts = cuts.slice(1).map((end, i) => expectedShape(ops, (cuts[i] ?? 0) + 1, end, tighter));
        return `${op}(${parts.join(',')})`;
      };
      fc.assert(
        fc.property(fc.array(fc.constantFrom('AND', 'OR', 'FOLLOWEDBY'), { minLength: 1, maxLength: 8 }), fc.boolean(), (ops, inside) => {
          const n = ops.length + 1;
          if (inside) {
            const cmpOps = ops.map((o) => (o === 'FOLLOWEDBY' ? 'AND' : o));
            const text = `[${Array.from({ length: n }, (_, i) => `a:v = '${i}'`).map((c, i) => (i === 0 ? c : `${cmpOps[i - 1]} ${c}`)).join(' ')}]`;
            expect(shape(ast(text).expression), text).to.equal(expectedShape(cmpOps, 0, n - 1, ['OR', 'AND']));
          } else {
            const text = Array.from({ length: n }, (_, i) => `[a:v = '${i}']`).map((c, i) => (i === 0 ? c : `${ops[i - 1]} ${c}`)).join(' ');
            expect(shape(ast(text).expression), text).to.equal(expectedShape(ops, 0, n - 1, ['FOLLOWEDBY', 'OR', 'AND']));
          }
        }),
        { numRuns: 500 },
      );
    });

    it('round-trips string escapes for any content', () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
          const c = only(`[x:y = ${str(s)}]`);
          expect(c.operator === '=' && c.value).to.deep.equal({ type: 'string', value: s });
        }),
        { numRuns: 500 },
      );
    });
  });

  describe('the fast path for one observation of `path = \'string\'` comparisons', () => {
    /** The grammar's reading, or the error it throws (as text). */
    const grammar = (p: string): unknown => { try { return grammarParse(p); } catch (e) { return `error: ${(e as Error).message}`; } };

    it('reads the shapes OpenCTI writes as the grammar does, and leaves everything else to the grammar', () => {
      const taken = ["[ipv4-addr:value = '198.51.100.7']", "[domain-name:value='bad.example.org']", "[url:value = 'http://x/a\\'b\\\\c']",
        "[IPv4-Addr:value = '']", "[x_custom-1:value = 'é ✓ \n']", "[file:hashes.MD5 = 'x']", "[ipv4-addr:value = 'a' OR ipv4-addr:value = 'b']",
        `[file:hashes.'SHA-256' = '${SHA256}' OR file:hashes.MD5 = '${MD5}']`, `[file:hashes.'SHA-256'='${SHA256}' OR file:hashes.'SHA-1'= '${SHA1}' OR file:hashes.MD5 ='${MD5}']`,
        "[file:name = 'a b.exe' AND file:hashes.MD5 = 'x']", "[x509-certificate:hashes.'SHA-1' = 'x']", "[file:hashes.'a\\'b\\\\' = 'x']",
        "[network-traffic:dst_ref.value = '1.2.3.4' AND network-traffic:src_ref.value = '::1']", "[url:value = ' OR ] AND \\' ' OR url:value = '[x]']",
        "[EXISTS:value = 'x' OR OR:AND = 'y']"];
      for (const p of taken) {
        expect(simplePattern(p), p).to.not.equal(null);
        expect(simplePattern(p), p).to.deep.equal(grammar(p));
      }
      // Escapes are undone like the grammar does: \' is a quote, \\ a backslash.
      expect(((simplePattern("[url:value = 'a\\'b\\\\c']")!.expression as { comparison: Comparison }).comparison as { value: { value: string } }).value.value)
        .to.equal("a'b\\c");
      // One n-ary node per chain, operands in source order.
      expect(shape(simplePattern("[a:value = '1' OR a:value = '2' OR a:value = '3']")!.expression)).to.equal('OR(1,2,3)');
      expect(shape(simplePattern("[a:value = '1' AND a:value = '2']")!.expression)).to.equal('AND(1,2)');
      const left = ["[ipv4-addr:value == '1.2.3.4']", "[ipv4-addr:value = '1.2.3.4'] ", " [ipv4-addr:value = '1.2.3.4']", "[ipv4-addr:value  = '1.2.3.4']",
        "[ipv4-addr:value = 'it's']", "[ipv4-addr:value = 'a\\']",
        "[ipv4-addr:value = 'a'] WITHIN 5 SECONDS", "[ipv4-addr:value != 'a']", "[1pv4:value = 'a']", "[ipv4-addr:'value' = 'a']",
        // Chains: mixed operators, other spacing, other operators or literals, anything outside one [ ].
        "[a:value = '1' OR a:value = '2' AND a:value = '3']", "[a:value = '1' AND a:value = '2' OR a:value = '3']", "[(a:value = '1' OR a:value = '2')]",
        "[a:value = '1'] OR [a:value = '2']", "[a:value = '1'  OR a:value = '2']", "[a:value = '1'\tOR a:value = '2']", "[a:value = '1' OR\na:value = '2']",
        "[a:value = '1'OR a:value = '2']", "[a:value = '1' or a:value = '2']", "[a:value = '1' OR]", "[a:value = '1' OR ]", "[a:value = '1' OR a:value != '2']",
        "[a:value = '1' OR a:value IN ('2')]", "[a:value = '1' OR a:value = 2]", "[a:value = '1' OR NOT a:value = '2']", "[a:value = '1' /* c */]",
        "[a:value = '1' OR a:value = '2'] WITHIN 5 SECONDS", "[a:b.c.d = '1']", "[a:b[0] = '1']", "[a:val-ue = '1']", "[file:hashes.'MD5 = '1']",
        "[a:value = 'x\\n']", "[file:hashes. MD5 = '1']", "[file:hashes.MD5 = '1' OR file:hashes.'SHA-256' = '2' OR ]", "[]", "[ ]", "", "[a:value = '1' OR OR a:value = '2']"];
      for (const p of left) expect(simplePattern(p), p).to.equal(null);
    });

    it('reads generated chains as the grammar does, and takes every chain written in its shape', () => {
      const escape = (s: string) => s.replace(/[\\']/g, (c) => `\\${c}`);
      const text = fc.string({ unit: fc.oneof(fc.constantFrom("'", '\\', ']', '[', ' OR ', ' AND ', ' ', '\t', '\n', '.', ':', '='), fc.string({ maxLength: 1, unit: 'binary' })), maxLength: 12 });
      const objectType = fc.oneof(fc.constantFrom('ipv4-addr', 'domain-name', 'url', 'file', 'IPv4-Addr', '_x', 'OR', 'AND'), fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_-]{0,8}$/));
      const hashName = fc.oneof(fc.constantFrom('SHA-256', 'SHA-1', 'MD5', 'SHA256', "a'b", 'a\\b', 'A B'), text);
      /** [path as written, in the fast path's shape]: a few near misses that only the grammar may read. */
      const path = fc.oneof(
        { arbitrary: objectType.map((t) => [`${t}:value`, true] as const), weight: 3 },
        { arbitrary: hashName.map((h) => [`file:hashes.'${escape(h)}'`, true] as const), weight: 3 },
        { arbitrary: fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,6}$/).map((h) => [`file:hashes.${h}`, true] as const), weight: 3 },
        { arbitrary: fc.constant(['file:name', true] as const), weight: 1 },
        { arbitrary: fc.constantFrom(['file:hashes.MD5.x', false], ["file:'name'", false], ['file :name', false], ['file:hashes.[0]', false], ['file:hashes[0]', false]), weight: 1 },
      );
      const valueText = fc.oneof({ arbitrary: text.map((v) => [`'${escape(v)}'`, true] as const), weight: 8 }, text.map((v) => [`'${v}'`, !/[\\']/.test(v)] as const),
        fc.constantFrom(['1', false], ["t'2020-01-01T00:00:00Z'", false], ["h'00'", false], ['true', false]));
      const space = fc.oneof({ arbitrary: fc.constantFrom(['', true], [' ', true]), weight: 6 },
        { arbitrary: fc.constantFrom(['  ', false], ['\t', false], ['\n', false], [' /* c */ ', false], ['\u00a0', false]), weight: 1 });
      const comparison = fc.tuple(path, space, fc.oneof({ arbitrary: fc.constant(['=', true] as const), weight: 6 }, { arbitrary: fc.constantFrom(['==', false], ['!=', false]), weight: 1 }), space, valueText)
        .map((parts) => [parts.map(([t]) => t).join(''), parts.every(([, inShape]) => inShape)] as const);
      const joiner = fc.oneof({ arbitrary: fc.constantFrom([' OR ', 'OR'], [' AND ', 'AND']), weight: 6 },
        { arbitrary: fc.constantFrom(['  OR ', null], ['\tOR ', null], [' OR\n', null], [' or ', null], ['OR ', null], [' FOLLOWEDBY ', null]), weight: 1 });
      const chain = fc.tuple(fc.array(comparison, { minLength: 1, maxLength: 5 }), joiner, fc.oneof(fc.constant(true), fc.boolean()), fc.array(joiner, { minLength: 4, maxLength: 4 }),
        fc.oneof({ arbitrary: fc.constant(['[', ']', true] as const), weight: 6 }, { arbitrary: fc.constantFrom(['[ ', ']', false], ['[', ' ]', false], ['[', '] WITHIN 5 SECONDS', false], ['([', '])', false]), weight: 1 }))
        .map(([comparisons, one, same, each, [open, close, bracketed]]) => {
          const joiners = comparisons.slice(1).map((_, i) => (same ? one : each[i]!));
          const body = comparisons.map(([c], i) => (i === 0 ? c : `${joiners[i - 1]![0]}${c}`)).join('');
          const operators = new Set(joiners.map(([, op]) => op));
          const inShape = bracketed && comparisons.every(([, ok]) => ok) && !operators.has(null) && operators.size <= 1;
          return { pattern: `${open}${body}${close}`, inShape, chained: comparisons.length > 1 };
        });
      let chainsTaken = 0;
      fc.assert(fc.property(chain, ({ pattern, inShape, chained }) => {
        const fast = simplePattern(pattern);
        if (inShape) expect(fast, pattern).to.not.equal(null);
        if (fast === null) return;
        if (chained) chainsTaken++;
        expect(fast, pattern).to.deep.equal(grammar(pattern));
      }), { numRuns: 3000, seed: 7 });
      expect(chainsTaken, 'the generator reaches the fast path with chains often').to.be.greaterThan(150);
    });

    it('gives up on a hostile 16 KiB pattern in linear time', () => {
      const kib16 = 16 * 1024;
      const hostile = [`[${"a:value = 'x' OR ".repeat(kib16 / 17)}]`, `[a:value = '${"\\'".repeat(kib16 / 2)}]`, `[a:value = '${'\\'.repeat(kib16 + 1)}']`,
        `[${'a'.repeat(kib16)}]`, `[a:value = '${"' OR a:value = '".repeat(kib16 / 16)}]`];
      for (const p of hostile) {
        const started = performance.now();
        const fast = simplePattern(p);
        const ms = performance.now() - started;
        expect(ms, p.slice(0, 40)).to.be.lessThan(50);
        expect(fast, p.slice(0, 40)).to.equal(null);
      }
      // And reads a long chain it takes in linear time too.
      const chain = `[${Array.from({ length: 800 }, (_, i) => `a:value = '${i}'`).join(' OR ')}]`;
      const started = performance.now();
      const fast = simplePattern(chain);
      expect(performance.now() - started).to.be.lessThan(50);
      expect(fast).to.deep.equal(grammar(chain));
    });

    it('never reads a pattern differently from the grammar (random patterns around its shape)', () => {
      const piece = fc.constantFrom('[', ']', "'", '\\', ' ', '=', '==', ':', 'value', 'ipv4-addr', 'url', '_', '-', 'a', '1', 'é', '\n', '/*c*/', 'OR', '.');
      /** Mostly the valid piece, sometimes one of the near misses. */
      const mostly = (valid: string, ...misses: string[]) => fc.oneof({ arbitrary: fc.constant(valid), weight: 6 }, { arbitrary: fc.constantFrom(...misses), weight: 1 });
      const near = fc.tuple(mostly('[', ' [', '[ ', '(['), fc.oneof(fc.constantFrom('ipv4-addr', 'domain-name', 'url', 'IPv4-Addr', '_x'), fc.stringMatching(/^[a-zA-Z0-9_-]{0,12}$/)),
        mostly(':value', ': value', ':Value', ":'value'", ':value.x'), mostly(' = ', '=', ' =', '= ', '  =  ', ' == ', ' != '), mostly("'", '', 't'),
        fc.array(fc.oneof({ arbitrary: fc.string({ maxLength: 4 }), weight: 4 }, { arbitrary: piece, weight: 1 }), { maxLength: 8 }).map((a) => a.join('')),
        mostly("'", ''), mostly(']', '] ', ']]', '', "] OR [url:value = 'x']")).map((parts) => parts.join(''));
      let taken = 0;
      fc.assert(fc.property(fc.oneof(near, fc.array(piece, { maxLength: 12 }).map((a) => a.join(''))), (p) => {
        const fast = simplePattern(p);
        if (fast === null) return;
        taken++;
        expect(fast, p).to.deep.equal(grammar(p));
      }), { numRuns: 4000, seed: 12 });
      expect(taken, "the generator reaches the fast path often").to.be.greaterThan(300);
    });
  });
});
