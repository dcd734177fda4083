// The domain types the core moves around: what sources produce (changes), what sinks receive
// (operations), and the records the store keeps for them. Every layer may import this file; it
// imports nothing.

/** Observable kinds ThreatBridge understands, whatever the source calls them. */
export type ObservableType =
  | 'ipv4'
  | 'ipv6'
  | 'domain'
  | 'hostname'
  | 'url'
  | 'md5'
  | 'sha1'
  | 'sha256'
  | 'email'
  | 'cert-sha1';

export const OBSERVABLE_TYPES: readonly ObservableType[] = [
  'ipv4', 'ipv6', 'domain', 'hostname', 'url', 'md5', 'sha1', 'sha256', 'email', 'cert-sha1',
];

/** A validated, canonical observable (lower-case hashes and domains, IDN as punycode, IPv6 compressed). */
export interface Observable {
  type: ObservableType;
  value: string;
}

/** Where a piece of intelligence came from; `id` is stable across updates (STIX id, MISP attribute uuid). */
export interface SourceRef {
  system: 'opencti' | 'misp';
  id: string;
  /** Human link back to the object in its platform. */
  url?: string;
}

/** One observable asserted by one source object (retraction is expressed on NormalisedEvent). */
export interface IndicatorChange {
  observable: Observable;
  /** 0..100, null when the source gives none. */
  score: number | null;
  labels: string[];
  /** e.g. "TLP:AMBER"; null when unmarked. */
  tlp: string | null;
  title: string;
  description: string;
  validFrom: string | null;
  validUntil: string | null;
  sourceRef: SourceRef;
  /** What the source's own rules decided for the sinks (MISP routing rules, tags, config). */
  hints?: SinkHints;
}

/** Source-decided sink fields; a sink's own forced settings (passive_only, a forced action) still win. */
export interface SinkHints {
  /** Enforcement wanted: a Defender action name (legacy names allowed). */
  action?: string;
  severity?: 'Informational' | 'Low' | 'Medium' | 'High';
  /** validUntil is the source's expiry policy: sinks keep it instead of capping it with their default days. */
  ownExpiry?: boolean;
  application?: string;
  recommendedActions?: string;
  generateAlert?: boolean;
}

/** Why an input was not turned into a change: stable code plus a readable detail. */
export interface Rejection {
  code: string;
  detail: string;
}

/**
 * The normalised form of one source event. `changes` is everything the object asserts now (claims
 * it made before and no longer makes are dropped); `retractAll` drops every claim it made
 * (delete, revoke, expiry, filter exit).
 */
export interface NormalisedEvent {
  sourceRef: SourceRef | null;
  changes: IndicatorChange[];
  /** The object no longer asserts anything: remove all its claims. */
  retractAll: boolean;
  /** Why it asserts nothing when that is a decision, not a delete (revoked, a filter or rule): one debug line. */
  withdrawn?: string;
  /** Other source objects that stopped asserting anything (merged into this one). */
  alsoRetract: string[];
  /**
   * A container's full state (a published MISP event): every source object whose id starts with
   * `prefix` and is not in `keep` stopped asserting anything (a full sync limits this to claims
   * made before it started, so what arrived meanwhile stays).
   */
  retractGroup?: { prefix: string; keep: string[]; onlyClaimedBefore?: number };
  /** Observables the object produced that could not be used (unknown type, invalid value). */
  skipped: Rejection[];
  /** The whole event is unusable (malformed): dead-letter it with the raw payload. */
  rejected: Rejection | null;
  /** Nothing to do, on purpose (heartbeat-like, a marking definition, a non-indicator). */
  ignored: string | null;
}

/** An operation waiting in the outbox for one sink. `key` identifies the sink object (Defender: type:value). */
export interface SinkOp<P = unknown> {
  sink: string;
  key: string;
  op: 'upsert' | 'delete';
  payload: P;
  sourceRef: SourceRef | null;
  /**
   * What the outbox keeps instead of `payload` and `sourceRef`, when the sink can rebuild both at
   * delivery (Defender keeps a reference to the claim instead of the indicator body: half the bytes
   * written per observable). The sink's delivery turns it back before anything reads them.
   */
  stored?: unknown;
}

/**
 * A change to one record a source owns outright (a Defender alert, a machine): no claims are
 * involved, every sink whose route knows the record type turns it into operations.
 */
export interface RecordChange<T = unknown> {
  kind: 'record';
  /** What the record is, e.g. "defender-alert", "machine"; routes dispatch on it. */
  type: string;
  /** Stable id of the record in its source system. */
  id: string;
  op: 'upsert' | 'delete';
  record: T;
}

/** What one source event becomes: indicator claims (OpenCTI, MISP) or a record change (pollers). */
export type SourceChange = NormalisedEvent | RecordChange;

export const isRecordChange = (c: SourceChange): c is RecordChange => (c as RecordChange).kind === 'record';

/** Where a source resumes. */
export interface Checkpoint {
  position: string;
  /** Source-specific resume state (OpenCTI: {start_from, recover_until}). */
  state: Record<string, unknown>;
}

/** What one source object asserts about one observable key. */
export interface Claim {
  key: string;
  sourceId: string;
  change: IndicatorChange;
  updatedAt: number;
}

export interface DeadLetterInput {
  sink: string;
  key: string;
  op: string;
  payload: unknown;
  sourceRef: SourceRef | null;
  reason: string;
  attempts?: number;
}

export interface DeadLetter extends DeadLetterInput {
  id: number;
  createdAt: number;
  replayedAt: number | null;
}

/** Everything one batch of source events changes, written in one transaction. */
export interface CommitUnit {
  source: string;
  checkpoint: Checkpoint | null;
  claimUpserts: Claim[];
  claimDeletes: { key: string; sourceId: string }[];
  ops: SinkOp[];
  deadLetters: DeadLetterInput[];
}

/** An operation leased from the outbox. */
export interface OutboxItem<P = unknown> extends SinkOp<P> {
  seq: number;
  attempts: number;
  enqueuedAt: number;
  /**
   * An operation for this key was handed to the sink before and never confirmed (a crash or a
   * timeout mid-call): the sink may hold what it sent even though no external id was recorded.
   */
  unconfirmedSend: boolean;
}
