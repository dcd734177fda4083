// The shapes OpenCTI and most feeds write, read without the grammar: one observation holding one
// comparison, or a chain of them joined by a single operator (all OR or all AND), each
// `path = 'string'` with a path of one or two keys (`url:value`, `file:name`, `file:hashes.'SHA-256'`,
// `file:hashes.MD5`). The grammar costs several times more per pattern and was the largest part of
// the core path's CPU. The tree built here is exactly the grammar's; anything else (other spacing,
// operators, literals, brackets, comments, qualifiers) is null and goes to the grammar.
// stix-pattern.test.ts holds the two to the same reading, by examples and generated patterns.
// A hand-written scanner, not a regex: one pass, no backtracking, whatever the input.
import type { Comparison, ComparisonExpression, KeyStep, PatternAst } from './ast.js';

const OPEN = 91; // [
const CLOSE = 93; // ]
const COLON = 58;
const DOT = 46;
const EQUALS = 61;
const SPACE = 32;
const QUOTE = 39;
const BACKSLASH = 92;
const ESCAPE = /\\(['\\])/g;

/** `[a-zA-Z_]`: the first character of an object type or a property name. */
const isNameStart = (c: number): boolean => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
/** `[a-zA-Z0-9_]`: the rest of a property name (object types also take `-`). */
const isNamePart = (c: number): boolean => isNameStart(c) || (c >= 48 && c <= 57);

/** The grammar's tree for `pattern`, when it is one of the shapes above; otherwise null. */
export function simplePattern(pattern: string): PatternAst | null {
  if (pattern.charCodeAt(0) !== OPEN || pattern.charCodeAt(pattern.length - 1) !== CLOSE) return null;
  const reader = new Reader(pattern);
  const end = pattern.length - 1;
  const operands: Comparison[] = [];
  let operator: 'AND' | 'OR' | null = null;
  for (;;) {
    const comparison = reader.comparison();
    if (comparison === null) return null;
    operands.push(comparison);
    if (reader.at === end) break;
    const joiner = reader.joiner();
    if (joiner === null || (operator !== null && joiner !== operator)) return null;
    operator = joiner;
  }
  const comparison: ComparisonExpression = operator === null ? operands[0]! : { type: 'comparison-combination', operator, operands };
  return { type: 'pattern', expression: { type: 'observation', comparison } };
}

/** A cursor over the pattern; each read moves past what it read or returns null. */
class Reader {
  at = 1; // past the `[`

  constructor(private readonly text: string) {}

  /** `type:key = 'value'` or `type:key.key = 'value'`, with at most one space either side of `=`. */
  comparison(): Comparison | null {
    const objectType = this.name(true);
    if (objectType === null || !this.skip(COLON)) return null;
    const first = this.name(false);
    if (first === null) return null;
    const steps: KeyStep[] = [{ type: 'key', key: first, quoted: false }];
    if (this.skip(DOT)) {
      const quoted = this.text.charCodeAt(this.at) === QUOTE;
      const key = quoted ? this.string() : this.name(false);
      if (key === null) return null;
      steps.push({ type: 'key', key, quoted });
    }
    this.skip(SPACE);
    if (!this.skip(EQUALS)) return null;
    this.skip(SPACE);
    if (this.text.charCodeAt(this.at) !== QUOTE) return null;
    const value = this.string();
    if (value === null) return null;
    return { type: 'comparison', operator: '=', negated: false, path: { objectType, steps }, value: { type: 'string', value } };
  }

  /** ` OR ` or ` AND `, exactly: the keyword between single spaces. */
  joiner(): 'AND' | 'OR' | null {
    const { text, at } = this;
    if (text.startsWith(' OR ', at)) {
      this.at += 4;
      return 'OR';
    }
    if (text.startsWith(' AND ', at)) {
      this.at += 5;
      return 'AND';
    }
    return null;
  }

  /** An object type (`[a-zA-Z_][a-zA-Z0-9_-]*`) or a property name (no `-`). */
  private name(objectType: boolean): string | null {
    const { text } = this;
    const start = this.at;
    if (!isNameStart(text.charCodeAt(start))) return null;
    let i = start + 1;
    while (isNamePart(text.charCodeAt(i)) || (objectType && text.charCodeAt(i) === 45 /* - */)) i++;
    this.at = i;
    return text.slice(start, i);
  }

  /** `'…'` at the cursor, unescaped (`\'` and `\\` only, as the grammar); null when unterminated or on another escape. */
  private string(): string | null {
    const { text } = this;
    const start = this.at + 1;
    let escaped = false;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        this.at = i + 1;
        const body = text.slice(start, i);
        return escaped ? body.replace(ESCAPE, '$1') : body;
      }
      if (c === BACKSLASH) {
        const next = text.charCodeAt(++i);
        if (next !== QUOTE && next !== BACKSLASH) return null;
        escaped = true;
      }
    }
    return null;
  }

  private skip(c: number): boolean {
    if (this.text.charCodeAt(this.at) !== c) return false;
    this.at++;
    return true;
  }
}
