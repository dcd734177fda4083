// STIX 2.1 patterns: parse with the generated grammar (grammar.peggy → parser.generated.js), or the
// fast path for the common shapes (fast-path.ts), then pull out every observable Defender can take.
// Total: bad input is a rejection, never a throw.
import { DEFAULT_LIMITS } from '../../../config/limits.js';
import { parseObservable, quoteValue } from '../../../core/observables.js';
import type { Observable, ObservableType, Rejection } from '../../../core/types.js';
import type { Comparison, ComparisonExpression, Literal, ObjectPath, ObservationExpression, PatternAst } from './ast.js';
import { simplePattern } from './fast-path.js';
import { parse, SyntaxError as PeggySyntaxError } from './parser.generated.js';

export type * from './ast.js';
export { simplePattern } from './fast-path.js';

export type ParsePatternResult = { ok: true; ast: PatternAst } | { ok: false; rejection: Rejection };
export type ExtractResult =
  | { ok: true; observables: Observable[]; skipped: Rejection[] }
  | { ok: false; rejection: Rejection };

/** Size limits checked before parsing (config `limits.pattern_chars`, `limits.pattern_depth`). */
export interface PatternLimits {
  maxChars: number;
  maxDepth: number;
}

/**
 * Real patterns are a few hundred characters with two or three levels of nesting; a 16 KiB
 * pattern parses in about 15 ms, a 1 MB one in 250-450 ms of event loop, so the length bounds
 * the time one pattern can hold `/healthz` up.
 */
export const DEFAULT_PATTERN_LIMITS: PatternLimits = { maxChars: DEFAULT_LIMITS.pattern_chars, maxDepth: DEFAULT_LIMITS.pattern_depth };

const invalid = (detail: string): { ok: false; rejection: Rejection } => ({
  ok: false,
  rejection: { code: 'invalid_pattern', detail },
});

const tooLarge = (detail: string): { ok: false; rejection: Rejection } => ({ ok: false, rejection: { code: 'pattern_too_large', detail } });

/** Deepest nesting of brackets and parentheses outside quoted strings: one linear pass, no parse. */
export function nestingDepth(pattern: string): number {
  let depth = 0;
  let max = 0;
  let quoted = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charCodeAt(i);
    if (quoted) {
      if (c === 92 /* \ */) i++;
      else if (c === 39 /* ' */) quoted = false;
    } else if (c === 39) quoted = true;
    else if (c === 40 /* ( */ || c === 91 /* [ */) max = Math.max(max, ++depth);
    else if (c === 41 /* ) */ || c === 93 /* ] */) depth--;
  }
  return max;
}

/** Parses a STIX 2.1 pattern into a typed AST, or a rejection (`invalid_pattern`, `pattern_too_large`). Never throws. */
export function parsePattern(pattern: unknown, limits: PatternLimits = DEFAULT_PATTERN_LIMITS): ParsePatternResult {
  if (typeof pattern !== 'string') return invalid(`pattern must be a string, got ${pattern === null ? 'null' : typeof pattern}`);
  if (pattern.trim() === '') return invalid('pattern is empty');
  if (pattern.length > limits.maxChars) {
    return tooLarge(`pattern is ${pattern.length} characters long (limits.pattern_chars ${limits.maxChars})`);
  }
  const depth = nestingDepth(pattern);
  if (depth > limits.maxDepth) return tooLarge(`pattern nests ${depth} levels deep (limits.pattern_depth ${limits.maxDepth})`);
  const simple = simplePattern(pattern);
  if (simple) return { ok: true, ast: simple };
  try {
    // The generated parser is untyped; ast.ts is the contract it is tested against.
    const ast: PatternAst = parse(pattern);
    return { ok: true, ast };
  } catch (error) {
    return invalid(describeParseError(error, pattern));
  }
}

function describeParseError(error: unknown, pattern: string): string {
  if (error instanceof PeggySyntaxError) {
    const { line, column } = error.location.start;
    const where = line > 1 ? `line ${line}, column ${column}` : `column ${column}`;
    return `${where}: ${error.message} Pattern: ${quoteValue(pattern)}`;
  }
  // Deep nesting overflows the recursive-descent parser's stack; that is the input's fault.
  if (error instanceof RangeError) return `pattern is nested too deeply to parse: ${quoteValue(pattern)}`;
  const message = error instanceof Error ? error.message : 'unknown error';
  return `could not parse pattern (${message}): ${quoteValue(pattern)}`;
}

/**
 * Every observable Defender can take from the pattern's positive equality comparisons (`=` and
 * each member of `IN (…)`), validated and canonicalised, de-duplicated, in source order. Anything
 * else (negations, other operators, paths Defender has no type for, invalid values) becomes a
 * `skipped` entry saying why. Only an unparseable pattern is an error.
 */
export function extractObservables(pattern: unknown, limits: PatternLimits = DEFAULT_PATTERN_LIMITS): ExtractResult {
  const parsed = parsePattern(pattern, limits);
  if (!parsed.ok) return parsed;
  const observables: Observable[] = [];
  const skipped: Rejection[] = [];
  const seen = new Set<string>();
  for (const comparison of comparisonsOf(parsed.ast)) {
    for (const outcome of evaluate(comparison)) {
      if (!outcome.ok) {
        skipped.push(outcome.rejection);
        continue;
      }
      const key = `${outcome.observable.type}\u0000${outcome.observable.value}`;
      if (seen.has(key)) continue;
      seen.add(key);
      observables.push(outcome.observable);
    }
  }
  return { ok: true, observables, skipped };
}

/** The comparisons of a pattern in source order. Iterative: input depth must not cost stack. */
export function comparisonsOf(ast: PatternAst): Comparison[] {
  const out: Comparison[] = [];
  const stack: (ObservationExpression | ComparisonExpression)[] = [ast.expression];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === undefined) break;
    switch (node.type) {
      case 'comparison':
        out.push(node);
        break;
      case 'observation':
        stack.push(node.comparison);
        break;
      case 'qualified':
        stack.push(node.expression);
        break;
      case 'observation-combination':
      case 'comparison-combination':
        // Reversed so that the first operand is popped first.
        for (let i = node.operands.length - 1; i >= 0; i -= 1) {
          const operand = node.operands[i];
          if (operand !== undefined) stack.push(operand);
        }
        break;
    }
  }
  return out;
}

/** Where `ip` means "IPv4 or IPv6, whichever the value is" (network-traffic refs). */
type Target = ObservableType | 'ip';

type Outcome = { ok: true; observable: Observable } | { ok: false; rejection: Rejection };

// The path is written out (formatObjectPath) only for a skip: most comparisons give an observable.
function evaluate(comparison: Comparison): Outcome[] {
  const { path } = comparison;
  const target = targetOf(path);
  if (target === null) {
    return [skip('unsupported_path', `${formatObjectPath(path)}: Defender has no indicator type for this path`)];
  }
  if (comparison.negated || comparison.operator === '!=') {
    const op = `${comparison.negated ? 'NOT ' : ''}${comparison.operator}`;
    return [skip('negated_comparison', `${formatObjectPath(path)} ${op}: a negated comparison asserts no indicator`)];
  }
  if (comparison.operator === '=') return [valueOf(target, path, comparison.value)];
  if (comparison.operator === 'IN') return comparison.values.map((v) => valueOf(target, path, v));
  return [skip('unsupported_operator', `${formatObjectPath(path)} ${comparison.operator}: only = and IN comparisons give indicators`)];
}

function valueOf(target: Target, path: ObjectPath, literal: Literal): Outcome {
  if (literal.type !== 'string') {
    return skip('unsupported_literal', `${formatObjectPath(path)}: compared to a ${literal.type} literal, expected a string`);
  }
  const type: ObservableType = target === 'ip' ? (literal.value.includes(':') ? 'ipv6' : 'ipv4') : target;
  const result = parseObservable(type, literal.value);
  if (result.ok) return result;
  return skip(result.rejection.code, `${formatObjectPath(path)}: ${result.rejection.detail}`);
}

const skip = (code: string, detail: string): Outcome => ({ ok: false, rejection: { code, detail } });

// Maps: object types and hash names come from the pattern, so `constructor` must find nothing.
const VALUE_PATHS = new Map<string, ObservableType>([
  ['ipv4-addr', 'ipv4'],
  ['ipv6-addr', 'ipv6'],
  ['domain-name', 'domain'],
  ['hostname', 'hostname'], // OpenCTI custom SCO
  ['url', 'url'],
  ['email-addr', 'email'],
]);

const FILE_HASHES = new Map<string, ObservableType>([['MD5', 'md5'], ['SHA1', 'sha1'], ['SHA256', 'sha256']]);

/** Which observable a path holds, or null when Defender cannot use it. */
function targetOf(path: ObjectPath): Target | null {
  const keys: string[] = [];
  for (const step of path.steps) {
    if (step.type !== 'key') return null;
    keys.push(step.key);
  }
  // Object types are lower-case in STIX; OpenCTI's display names (IPv4-Addr) are tolerated.
  const objectType = path.objectType.toLowerCase();
  const [first, second] = keys;
  if (keys.length === 1 && first === 'value') return VALUE_PATHS.get(objectType) ?? null;
  if (keys.length !== 2 || second === undefined) return null;
  if (first === 'hashes') return hashTarget(objectType, second);
  if (second !== 'value') return null;
  if (objectType === 'email-message' && first === 'from_ref') return 'email';
  if (objectType === 'network-traffic' && (first === 'dst_ref' || first === 'src_ref')) return 'ip';
  return null;
}

/** Hash keys compare case-insensitively and with or without the dash (`'SHA-256'`, `SHA256`, `sha256`). */
function hashTarget(objectType: string, key: string): ObservableType | null {
  const algorithm = key.toUpperCase().replace(/-/g, '');
  if (objectType === 'file') return FILE_HASHES.get(algorithm) ?? null;
  if (objectType === 'x509-certificate' && algorithm === 'SHA1') return 'cert-sha1';
  return null;
}

/** An object path in STIX syntax, as written (quoted keys stay quoted). */
export function formatObjectPath(path: ObjectPath): string {
  const steps = path.steps.map((step, i) => {
    if (step.type === 'index') return `[${step.index}]`;
    const key = step.quoted ? `'${step.key.replace(/[\\']/g, (c) => `\\${c}`)}'` : step.key;
    return i === 0 ? key : `.${key}`;
  });
  return `${path.objectType}:${steps.join('')}`;
}
