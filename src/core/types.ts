// The small set of internal types every source produces and every sink consumes.
// Sources never talk to sinks: they emit these, the router turns them into sink operations.

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
}

/** A source event with its resume position. */
export interface PositionedEvent<E> {
  event: E;
  /** Opaque position the source resumes from (SSE id, ZMQ seq, timestamp). */
  position: string;
  /**
   * False when committing this position would skip events that share it and are still to come
   * (OpenCTI dependency events reuse their parent's id and precede it).
   */
  positionFinal: boolean;
}
