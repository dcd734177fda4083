// The OData subset the Defender API documents, as a pure parser + evaluator:
// $filter (eq ne gt ge lt le, in (...), and/or/not, parentheses, startswith), $top, $skip,
// $count, $orderby. Anything outside it is an ODataError, which the server turns into 400.
//
// Case rules follow what Defender is seen to accept: keywords (`AND`) and property/enum names
// resolve case-insensitively; string values compare case-sensitively, as in OData.

export type FieldKind = 'string' | 'datetime' | 'number' | 'boolean' | { enum: readonly string[] };

export interface EntitySchema {
  /** Entity type name used in error messages, e.g. `Indicator`. */
  typeName: string;
  /** Filterable/sortable properties. */
  fields: Readonly<Record<string, FieldKind>>;
}

export class ODataError extends Error {
  override readonly name = 'ODataError';
}

export type CompareOp = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le';

type Literal =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'datetime'; value: number }
  | { kind: 'null' };

export type FilterNode =
  | { type: 'and' | 'or'; left: FilterNode; right: FilterNode }
  | { type: 'not'; operand: FilterNode }
  | { type: 'compare'; op: CompareOp; field: string; kind: FieldKind; value: Literal }
  | { type: 'in'; field: string; kind: FieldKind; values: Literal[] }
  | { type: 'startswith'; field: string; prefix: string };

export interface OrderBy {
  field: string;
  desc: boolean;
}

export interface ODataQuery {
  filter: FilterNode | null;
  top: number | null;
  skip: number;
  count: boolean;
  orderBy: OrderBy[];
}

export interface ParseOptions {
  /** Largest accepted $top (10,000 for most Defender collections, 8,000 for vulnerabilities). */
  maxTop: number;
  /** System query options this collection supports; others are rejected. */
  supported?: readonly string[];
}

const DEFAULT_SUPPORTED = ['$filter', '$top', '$skip', '$count', '$orderby'] as const;
const COMPARE_OPS: readonly string[] = ['eq', 'ne', 'gt', 'ge', 'lt', 'le'];

// ---------------------------------------------------------------------------------------------
// Query options

export function parseQuery(params: URLSearchParams, schema: EntitySchema, opts: ParseOptions): ODataQuery {
  const supported = opts.supported ?? DEFAULT_SUPPORTED;
  const seen = new Set<string>();
  for (const key of params.keys()) {
    if (!key.startsWith('$')) continue; // non-OData parameters (api-version…) are not ours to judge
    if (seen.has(key)) throw new ODataError(`Query option '${key}' was specified more than once, but it must be specified at most once.`);
    seen.add(key);
    if (!supported.includes(key)) throw new ODataError(`The query parameter '${key}' is not supported.`);
  }
  const filterText = params.get('$filter');
  const topText = params.get('$top');
  const skipText = params.get('$skip');
  const countText = params.get('$count');
  const orderText = params.get('$orderby');

  const top = topText === null ? null : parseNonNegativeInt('$top', topText);
  if (top !== null && top > opts.maxTop) {
    throw new ODataError(`The limit of '${opts.maxTop}' for Top query has been exceeded. The value from the incoming request is '${top}'.`);
  }
  let count = false;
  if (countText !== null) {
    if (countText.toLowerCase() === 'true') count = true;
    else if (countText.toLowerCase() !== 'false') throw new ODataError(`'${countText}' is not a valid count option.`);
  }
  return {
    filter: filterText === null ? null : parseFilter(filterText, schema),
    top,
    skip: skipText === null ? 0 : parseNonNegativeInt('$skip', skipText),
    count,
    orderBy: orderText === null ? [] : parseOrderBy(orderText, schema),
  };
}

function parseNonNegativeInt(option: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new ODataError(`Invalid value '${text}' for ${option} query option found. The ${option} query option requires a non-negative integer value.`);
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n)) throw new ODataError(`Invalid value '${text}' for ${option} query option found.`);
  return n;
}

function parseOrderBy(text: string, schema: EntitySchema): OrderBy[] {
  return text.split(',').map((part) => {
    const words = part.trim().split(/\s+/);
    const [name, dir, extra] = words;
    if (!name || extra !== undefined) throw new ODataError(`Syntax error in $orderby '${text}'.`);
    const field = resolveField(name, schema);
    if (dir !== undefined && !/^(asc|desc)$/i.test(dir)) throw new ODataError(`Syntax error in $orderby '${text}'.`);
    return { field, desc: dir?.toLowerCase() === 'desc' };
  });
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

type Token =
  | { t: 'ident'; text: string; pos: number }
  | { t: 'string'; value: string; pos: number }
  | { t: 'number'; value: number; pos: number }
  | { t: 'datetime'; value: number; text: string; pos: number }
  | { t: '(' | ')' | ','; pos: number }
  | { t: 'end'; pos: number };

const DATETIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?)?(?:Z|[+-]\d{2}:\d{2})?/i;
const NUMBER = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_./]*/;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] ?? '';
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      tokens.push({ t: c, pos: i });
      i++;
      continue;
    }
    if (c === "'") {
      // OData escapes a quote inside a literal by doubling it.
      let value = '';
      let j = i + 1;
      for (;;) {
        if (j >= text.length) throw new ODataError(`There is an unterminated string literal at position ${j} in '${text}'.`);
        const d = text[j];
        if (d === "'") {
          if (text[j + 1] === "'") {
            value += "'";
            j += 2;
            continue;
          }
          break;
        }
        value += d;
        j++;
      }
      tokens.push({ t: 'string', value, pos: i });
      i = j + 1;
      continue;
    }
    const rest = text.slice(i);
    const dt = DATETIME.exec(rest);
    if (dt) {
      const value = parseDateTimeLiteral(dt[0]);
      if (Number.isNaN(value)) throw new ODataError(`Unrecognized DateTimeOffset literal '${dt[0]}' at position ${i} in '${text}'.`);
      tokens.push({ t: 'datetime', value, text: dt[0], pos: i });
      i += dt[0].length;
      continue;
    }
    const num = NUMBER.exec(rest);
    if (num) {
      tokens.push({ t: 'number', value: Number(num[0]), pos: i });
      i += num[0].length;
      continue;
    }
    const id = IDENT.exec(rest);
    if (id) {
      tokens.push({ t: 'ident', text: id[0], pos: i });
      i += id[0].length;
      continue;
    }
    throw new ODataError(`Syntax error: character '${c}' is not valid at position ${i} in '${text}'.`);
  }
  tokens.push({ t: 'end', pos: text.length });
  return tokens;
}

function parseDateTimeLiteral(text: string): number {
  // A bare date or a zone-less time is read as UTC (`2018-08-01Z` appears in Microsoft's samples).
  let t = text.toUpperCase();
  if (/^\d{4}-\d{2}-\d{2}Z$/.test(t)) t = `${t.slice(0, 10)}T00:00:00Z`;
  else if (/^\d{4}-\d{2}-\d{2}$/.test(t)) t = `${t}T00:00:00Z`;
  else if (!/(Z|[+-]\d{2}:\d{2})$/.test(t)) t = `${t}Z`;
  return Date.parse(t);
}

// ---------------------------------------------------------------------------------------------
// Parser (recursive descent): or < and < not < primary

export function parseFilter(text: string, schema: EntitySchema): FilterNode {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = (): Token => tokens[pos] ?? { t: 'end', pos: text.length };
  const next = (): Token => {
    const tok = peek();
    pos++;
    return tok;
  };
  const isKeyword = (tok: Token, word: string): boolean => tok.t === 'ident' && tok.text.toLowerCase() === word;
  const fail = (tok: Token, what: string): never => {
    throw new ODataError(`Syntax error at position ${tok.pos} in '${text}': ${what}.`);
  };
  const expect = (t: '(' | ')' | ','): void => {
    const tok = next();
    if (tok.t !== t) fail(tok, `expected '${t}'`);
  };

  const parseOr = (): FilterNode => {
    let left = parseAnd();
    while (isKeyword(peek(), 'or')) {
      next();
      left = { type: 'or', left, right: parseAnd() };
    }
    return left;
  };
  const parseAnd = (): FilterNode => {
    let left = parseUnary();
    while (isKeyword(peek(), 'and')) {
      next();
      left = { type: 'and', left, right: parseUnary() };
    }
    return left;
  };
  const parseUnary = (): FilterNode => {
    if (isKeyword(peek(), 'not')) {
      next();
      return { type: 'not', operand: parseUnary() };
    }
    return parsePrimary();
  };
  const parseLiteral = (): Literal => {
    const tok = next();
    switch (tok.t) {
      case 'string':
        return { kind: 'string', value: tok.value };
      case 'number':
        return { kind: 'number', value: tok.value };
      case 'datetime':
        return { kind: 'datetime', value: tok.value };
      case 'ident': {
        const w = tok.text.toLowerCase();
        if (w === 'true' || w === 'false') return { kind: 'boolean', value: w === 'true' };
        if (w === 'null') return { kind: 'null' };
        return fail(tok, `'${tok.text}' is not a literal`);
      }
      default:
        return fail(tok, 'expected a literal');
    }
  };
  const parsePrimary = (): FilterNode => {
    const tok = next();
    if (tok.t === '(') {
      const inner = parseOr();
      expect(')');
      return inner;
    }
    if (tok.t !== 'ident') return fail(tok, 'expected a property name');
    if (tok.text.toLowerCase() === 'startswith' && peek().t === '(') {
      next();
      const fieldTok = next();
      if (fieldTok.t !== 'ident') return fail(fieldTok, 'expected a property name');
      const field = resolveField(fieldTok.text, schema);
      expect(',');
      const lit = next();
      if (lit.t !== 'string') return fail(lit, 'startswith expects a string literal');
      expect(')');
      if (fieldKind(schema, field) !== 'string') throw new ODataError(`startswith is not supported on property '${field}'.`);
      return { type: 'startswith', field, prefix: lit.value };
    }
    const field = resolveField(tok.text, schema);
    const kind = fieldKind(schema, field);
    const opTok = next();
    if (opTok.t !== 'ident') return fail(opTok, 'expected an operator');
    const op = opTok.text.toLowerCase();
    if (op === 'in') {
      expect('(');
      const values: Literal[] = [];
      for (;;) {
        values.push(checkLiteral(field, kind, 'eq', parseLiteral(), schema));
        const sep = next();
        if (sep.t === ')') break;
        if (sep.t !== ',') fail(sep, "expected ',' or ')'");
      }
      return { type: 'in', field, kind, values };
    }
    if (!COMPARE_OPS.includes(op)) return fail(opTok, `unknown operator '${opTok.text}'`);
    const value = checkLiteral(field, kind, op as CompareOp, parseLiteral(), schema);
    return { type: 'compare', op: op as CompareOp, field, kind, value };
  };

  if (peek().t === 'end') throw new ODataError('The $filter expression is empty.');
  const node = parseOr();
  const trailing = peek();
  if (trailing.t !== 'end') fail(trailing, 'unexpected token');
  return node;
}

function resolveField(name: string, schema: EntitySchema): string {
  const lower = name.toLowerCase();
  const match = Object.keys(schema.fields).find((f) => f.toLowerCase() === lower);
  if (!match) throw new ODataError(`Could not find a property named '${name}' on type '${schema.typeName}'.`);
  return match;
}

function fieldKind(schema: EntitySchema, field: string): FieldKind {
  const kind = schema.fields[field];
  if (kind === undefined) throw new ODataError(`Could not find a property named '${field}' on type '${schema.typeName}'.`);
  return kind;
}

const EDM: Record<string, string> = {
  string: 'Edm.String',
  number: 'Edm.Int64',
  boolean: 'Edm.Boolean',
  datetime: 'Edm.DateTimeOffset',
  enum: 'Enum',
};

// Type-checks a literal against its property, as the real parser does before running anything.
function checkLiteral(field: string, kind: FieldKind, op: CompareOp, lit: Literal, schema: EntitySchema): Literal {
  if (lit.kind === 'null') return lit;
  const kindName = typeof kind === 'string' ? kind : 'enum';
  const incompatible = (): never => {
    throw new ODataError(
      `A binary operator with incompatible types was detected. Found operand types '${EDM[kindName]}' and '${EDM[lit.kind] ?? lit.kind}' for operator kind '${op}' on property '${field}'.`,
    );
  };
  if (typeof kind === 'object') {
    if (lit.kind !== 'string') return incompatible();
    const member = kind.enum.find((m) => m.toLowerCase() === lit.value.toLowerCase());
    if (!member) throw new ODataError(`The string '${lit.value}' is not a valid enumeration type constant for property '${field}' of type '${schema.typeName}'.`);
    if (op !== 'eq' && op !== 'ne') throw new ODataError(`Operator '${op}' is not supported on enumeration property '${field}'.`);
    return { kind: 'string', value: member };
  }
  if (lit.kind !== kind) return incompatible();
  if (kind === 'boolean' && op !== 'eq' && op !== 'ne') throw new ODataError(`Operator '${op}' is not supported on boolean property '${field}'.`);
  return lit;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

type Scalar = string | number | boolean | null;

function rowValue(row: Readonly<Record<string, unknown>>, field: string, kind: FieldKind): Scalar {
  const v = row[field];
  if (v === undefined || v === null) return null;
  if (kind === 'datetime') {
    const ms = typeof v === 'string' ? Date.parse(v) : NaN;
    return Number.isNaN(ms) ? null : ms;
  }
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  return null;
}

function literalValue(lit: Literal): Scalar {
  return lit.kind === 'null' ? null : lit.value;
}

function compare(op: CompareOp, a: Scalar, b: Scalar): boolean {
  // OData null semantics: only eq/ne can be true when a null is involved.
  if (a === null || b === null) {
    if (op === 'eq') return a === b;
    if (op === 'ne') return a !== b;
    return false;
  }
  switch (op) {
    case 'eq':
      return a === b;
    case 'ne':
      return a !== b;
    case 'gt':
      return a > b;
    case 'ge':
      return a >= b;
    case 'lt':
      return a < b;
    case 'le':
      return a <= b;
  }
}

export function evaluate(node: FilterNode, row: Readonly<Record<string, unknown>>): boolean {
  switch (node.type) {
    case 'and':
      return evaluate(node.left, row) && evaluate(node.right, row);
    case 'or':
      return evaluate(node.left, row) || evaluate(node.right, row);
    case 'not':
      return !evaluate(node.operand, row);
    case 'compare':
      return compare(node.op, rowValue(row, node.field, node.kind), literalValue(node.value));
    case 'in': {
      const v = rowValue(row, node.field, node.kind);
      return node.values.some((lit) => compare('eq', v, literalValue(lit)));
    }
    case 'startswith': {
      const v = row[node.field];
      return typeof v === 'string' && v.startsWith(node.prefix);
    }
  }
}

export interface QueryResult<T> {
  page: T[];
  /** Matches before $skip/$top, for `@odata.count`. */
  total: number;
  /** $skip value of the next page when rows remain, else null. */
  nextSkip: number | null;
}

/**
 * Filters, orders and pages rows. A page holds `$top` rows (capped at `pageSize`); when matches
 * remain past it, `nextSkip` tells where the next page starts.
 */
export function runQuery<T extends object>(rows: readonly T[], q: ODataQuery, schema: EntitySchema, pageSize: number): QueryResult<T> {
  const asRecord = (r: T): Readonly<Record<string, unknown>> => r as unknown as Record<string, unknown>;
  let matched = q.filter ? rows.filter((r) => evaluate(q.filter as FilterNode, asRecord(r))) : [...rows];
  if (q.orderBy.length > 0) {
    matched = matched
      .map((row, index) => ({ row, index }))
      .sort((x, y) => {
        for (const o of q.orderBy) {
          const kind = schema.fields[o.field] ?? 'string';
          const a = rowValue(asRecord(x.row), o.field, kind);
          const b = rowValue(asRecord(y.row), o.field, kind);
          const c = a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1; // nulls sort first
          if (c !== 0) return o.desc ? -c : c;
        }
        return x.index - y.index;
      })
      .map((e) => e.row);
  }
  const size = Math.min(q.top ?? pageSize, pageSize);
  const page = matched.slice(q.skip, q.skip + size);
  const end = q.skip + page.length;
  return { page, total: matched.length, nextSkip: page.length > 0 && end < matched.length ? end : null };
}

/** Query string with `$skip` replaced; `$` kept literal in names, values percent-encoded. */
export function queryWithSkip(params: URLSearchParams, skip: number): string {
  const parts: string[] = [];
  let replaced = false;
  for (const [k, v] of params) {
    if (k === '$skip') {
      if (!replaced) parts.push(`$skip=${skip}`);
      replaced = true;
    } else {
      parts.push(`${encodeName(k)}=${encodeURIComponent(v)}`);
    }
  }
  if (!replaced) parts.push(`$skip=${skip}`);
  return parts.join('&');
}

function encodeName(name: string): string {
  return name.startsWith('$') ? `$${encodeURIComponent(name.slice(1))}` : encodeURIComponent(name);
}
