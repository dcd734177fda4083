// STIX patterns: parse with the generated grammar (grammar.peggy), then pull out every observable
// Defender can take from positive equality comparisons. Total: bad input is a rejection, not a throw.
import { parseObservable } from '../../../core/observables.js';
import type { Observable, ObservableType, Rejection } from '../../../core/types.js';
import { parse, SyntaxError as PatternSyntaxError } from './parser.generated.js';

export interface Literal {
  type: 'string' | 'int' | 'float' | 'boolean' | 'timestamp' | 'binary' | 'hex' | 'set';
  value: unknown;
}

export interface ObjectPath {
  objectType: string;
  steps: (string | number)[];
}

export type Comparison =
  | { kind: 'comparison-op'; op: 'AND' | 'OR'; operands: Comparison[] }
  | { kind: 'test'; path: ObjectPath; negated: boolean; operator: string; value: Literal }
  | { kind: 'exists'; path: ObjectPath };

export type PatternAst =
  | { kind: 'observation'; comparison: Comparison }
  | { kind: 'observation-op'; op: 'AND' | 'OR' | 'FOLLOWEDBY'; operands: PatternAst[] }
  | { kind: 'qualified'; expression: PatternAst; qualifiers: unknown[] };

const MAX_PATTERN = 100_000;

export function parsePattern(pattern: unknown): { ok: true; ast: PatternAst } | { ok: false; rejection: Rejection } {
  if (typeof pattern !== 'string' || pattern.trim() === '') {
    return { ok: false, rejection: { code: 'invalid_pattern', detail: 'pattern is missing or empty' } };
  }
  if (pattern.length > MAX_PATTERN) {
    return { ok: false, rejection: { code: 'invalid_pattern', detail: `pattern of ${pattern.length} characters is too long` } };
  }
  try {
    return { ok: true, ast: parse(pattern) as PatternAst };
  } catch (err) {
    const e = err as { message?: string; location?: { start?: { column?: number } } };
    const where = err instanceof PatternSyntaxError && e.location?.start?.column ? ` at column ${e.location.start.column}` : '';
    const snippet = pattern.length > 120 ? `${pattern.slice(0, 117)}...` : pattern;
    return { ok: false, rejection: { code: 'invalid_pattern', detail: `${e.message ?? 'syntax error'}${where}: ${snippet}` } };
  }
}

const HASH_TYPES: Record<string, ObservableType> = { MD5: 'md5', SHA1: 'sha1', SHA256: 'sha256' };

/** Which observable a path holds, or null when Defender cannot use it. */
function observableTypeOf(path: ObjectPath): ObservableType | null {
  const [first, second, ...rest] = path.steps;
  if (rest.length > 0 || typeof first !== 'string') return null;
  const key = (s: unknown) => (typeof s === 'string' ? s.toUpperCase().replace(/-/g, '') : '');
  switch (path.objectType) {
    case 'ipv4-addr': return first === 'value' && second === undefined ? 'ipv4' : null;
    case 'ipv6-addr': return first === 'value' && second === undefined ? 'ipv6' : null;
    case 'domain-name': return first === 'value' && second === undefined ? 'domain' : null;
    case 'hostname': return first === 'value' && second === undefined ? 'hostname' : null;
    case 'url': return first === 'value' && second === undefined ? 'url' : null;
    case 'email-addr': return first === 'value' && second === undefined ? 'email' : null;
    case 'email-message': return first === 'from_ref' && second === 'value' ? 'email' : null;
    case 'file': return first === 'hashes' ? HASH_TYPES[key(second)] ?? null : null;
    case 'x509-certificate': return first === 'hashes' && key(second) === 'SHA1' ? 'cert-sha1' : null;
    default: return null;
  }
}

function pathText(path: ObjectPath): string {
  return `${path.objectType}:${path.steps.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : /^[\w]+$/.test(s) ? `.${s}` : `.'${s}'`)).join('')}`;
}

function collectTests(c: Comparison, out: Extract<Comparison, { kind: 'test' | 'exists' }>[]): void {
  if (c.kind === 'comparison-op') for (const o of c.operands) collectTests(o, out);
  else out.push(c);
}

function collectComparisons(ast: PatternAst, out: Extract<Comparison, { kind: 'test' | 'exists' }>[]): void {
  if (ast.kind === 'observation') collectTests(ast.comparison, out);
  else if (ast.kind === 'observation-op') for (const o of ast.operands) collectComparisons(o, out);
  else collectComparisons(ast.expression, out);
}

export function extractObservables(pattern: unknown):
  | { ok: true; observables: Observable[]; skipped: Rejection[] }
  | { ok: false; rejection: Rejection } {
  const parsed = parsePattern(pattern);
  if (!parsed.ok) return parsed;
  const tests: Extract<Comparison, { kind: 'test' | 'exists' }>[] = [];
  collectComparisons(parsed.ast, tests);
  const observables: Observable[] = [];
  const seen = new Set<string>();
  const skipped: Rejection[] = [];
  for (const t of tests) {
    const where = pathText(t.path);
    if (t.kind === 'exists') { skipped.push({ code: 'unsupported_operator', detail: `EXISTS ${where}` }); continue; }
    const type = observableTypeOf(t.path);
    if (!type) { skipped.push({ code: 'unsupported_path', detail: `${where} is not an observable Defender takes` }); continue; }
    if (t.negated || (t.operator !== '=' && t.operator !== 'IN')) {
      skipped.push({ code: 'unsupported_operator', detail: `${where} ${t.negated ? 'NOT ' : ''}${t.operator} is not an equality` });
      continue;
    }
    const values = t.operator === 'IN' ? (t.value.value as Literal[]) : [t.value];
    for (const v of values) {
      if (v.type !== 'string') { skipped.push({ code: 'invalid_value', detail: `${where} compared to a ${v.type}` }); continue; }
      const result = parseObservable(type, v.value);
      if (!result.ok) { skipped.push(result.rejection); continue; }
      const id = `${result.observable.type}:${result.observable.value}`;
      if (!seen.has(id)) { seen.add(id); observables.push(result.observable); }
    }
  }
  return { ok: true, observables, skipped };
}
