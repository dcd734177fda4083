// Typed AST of a STIX 2.1 pattern, as built by grammar.peggy (the generated parser is untyped JS:
// this file is the contract, and the tests hold the grammar to it).

export interface PatternAst {
  type: 'pattern';
  expression: ObservationExpression;
}

export type ObservationExpression = Observation | ObservationCombination | QualifiedObservation;

/** `[ comparison ]` */
export interface Observation {
  type: 'observation';
  comparison: ComparisonExpression;
}

/** A chain of one operator; operands in source order (the operators are left-associative). */
export interface ObservationCombination {
  type: 'observation-combination';
  operator: 'AND' | 'OR' | 'FOLLOWEDBY';
  operands: ObservationExpression[];
}

/** One qualifier; several qualifiers nest, the first one innermost. */
export interface QualifiedObservation {
  type: 'qualified';
  expression: ObservationExpression;
  qualifier: Qualifier;
}

export type Qualifier =
  | { type: 'within'; seconds: number }
  | { type: 'repeats'; times: number }
  /** Timestamps as written, without the `t'…'` wrapper. */
  | { type: 'start-stop'; start: string; stop: string };

export type ComparisonExpression = Comparison | ComparisonCombination;

export interface ComparisonCombination {
  type: 'comparison-combination';
  operator: 'AND' | 'OR';
  operands: ComparisonExpression[];
}

/** `==` is parsed as `=`, `<>` as `!=`. */
export type ValueOperator = '=' | '!=' | '>' | '<' | '>=' | '<=' | 'LIKE' | 'MATCHES' | 'ISSUBSET' | 'ISSUPERSET';

export type Comparison = ValueComparison | SetComparison | ExistsComparison;

export interface ValueComparison {
  type: 'comparison';
  operator: ValueOperator;
  /** `path NOT op value` */
  negated: boolean;
  path: ObjectPath;
  value: Literal;
}

export interface SetComparison {
  type: 'comparison';
  operator: 'IN';
  negated: boolean;
  path: ObjectPath;
  values: Literal[];
}

export interface ExistsComparison {
  type: 'comparison';
  operator: 'EXISTS';
  negated: false;
  path: ObjectPath;
}

/** `object-type:first(.key|.'quoted key'|[n]|[*])*`; `steps[0]` is always a key. */
export interface ObjectPath {
  objectType: string;
  steps: PathStep[];
}

export type PathStep = KeyStep | IndexStep;

export interface KeyStep {
  type: 'key';
  key: string;
  /** Written as a string literal (`hashes.'SHA-256'`). */
  quoted: boolean;
}

export interface IndexStep {
  type: 'index';
  index: number | '*';
}

export type Literal =
  | { type: 'string'; value: string }
  | { type: 'integer'; value: number }
  | { type: 'float'; value: number }
  | { type: 'boolean'; value: boolean }
  /** As written, without `t'…'`. */
  | { type: 'timestamp'; value: string }
  /** Base64 text, without `b'…'`. */
  | { type: 'binary'; value: string }
  /** Hex digits, without `h'…'`. */
  | { type: 'hex'; value: string };
