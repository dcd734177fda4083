// Prometheus metrics (prom-client). One registry per service instance so tests can run several.
// Label values are bounded: callers pass values from closed sets (event names, sinks, endpoints,
// reason codes), and each label keeps at most MAX_LABEL_VALUES distinct values per metric, later
// ones counted as `other`, so that no feed can grow the series without bound.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type LabelValues } from 'prom-client';
import { Activity } from './activity.js';
import { Reachability } from './reachability.js';

/** Far above the closed sets (a few dozen reason codes), far below a memory or scrape problem. */
export const MAX_LABEL_VALUES = 100;
export const OTHER = 'other';

/** Distinct values seen per label of one metric; a new value past the cap becomes `other`. */
export class LabelBound {
  private readonly seen = new Map<string, Set<string>>();
  constructor(private readonly max = MAX_LABEL_VALUES) {}

  apply<T extends string>(labels: LabelValues<T>): LabelValues<T> {
    const out: Partial<Record<T, string>> = {};
    for (const name of Object.keys(labels) as T[]) {
      const value = String(labels[name]);
      let values = this.seen.get(name);
      if (!values) this.seen.set(name, (values = new Set()));
      if (!values.has(value) && values.size >= this.max) out[name] = OTHER;
      else {
        values.add(value);
        out[name] = value;
      }
    }
    return out as LabelValues<T>;
  }
}

export class BoundedCounter<T extends string> {
  private readonly bound = new LabelBound();
  constructor(readonly metric: Counter<T>) {}
  inc(labels: LabelValues<T>, value?: number): void { this.metric.inc(this.bound.apply(labels), value); }
  get() { return this.metric.get(); }
}

/**
 * Counts per label set while a batch is handled, then one `inc` per distinct set: prom-client
 * hashes the labels on every call, and a batch has thousands of events but a handful of sets.
 * The sets reach the counter in the order they were first seen, as single `inc`s would.
 */
export class LabelTally<T extends string> {
  private readonly counts = new Map<string, { labels: LabelValues<T>; n: number }>();
  constructor(private readonly names: readonly T[]) {}

  add(labels: LabelValues<T>): void {
    const key = this.names.map((name) => labels[name]).join('\u0000');
    const entry = this.counts.get(key);
    if (entry) entry.n += 1;
    else this.counts.set(key, { labels, n: 1 });
  }

  addTo(counter: BoundedCounter<T>): void {
    for (const { labels, n } of this.counts.values()) counter.inc(labels, n);
  }
}

export class BoundedGauge<T extends string> {
  private readonly bound = new LabelBound();
  constructor(readonly metric: Gauge<T>) {}
  set(labels: LabelValues<T>, value: number): void { this.metric.set(this.bound.apply(labels), value); }
  get() { return this.metric.get(); }
}

export class BoundedHistogram<T extends string> {
  private readonly bound = new LabelBound();
  constructor(readonly metric: Histogram<T>) {}
  startTimer(labels: LabelValues<T>): () => number { return this.metric.startTimer(this.bound.apply(labels)); }
  get() { return this.metric.get(); }
}

export class Metrics {
  readonly registry = new Registry();
  readonly events = new BoundedCounter(new Counter({
    name: 'threatbridge_source_events_total', help: 'Source events handled, by outcome',
    labelNames: ['source', 'event', 'outcome'] as const, registers: [this.registry],
  }));
  readonly skipped = new BoundedCounter(new Counter({
    name: 'threatbridge_observables_skipped_total', help: 'Observables not usable, by reason code',
    labelNames: ['source', 'reason'] as const, registers: [this.registry],
  }));
  readonly opsEnqueued = new BoundedCounter(new Counter({
    name: 'threatbridge_outbox_enqueued_total', help: 'Sink operations written to the outbox',
    labelNames: ['sink', 'op'] as const, registers: [this.registry],
  }));
  readonly delivered = new BoundedCounter(new Counter({
    name: 'threatbridge_sink_delivered_total', help: 'Sink operations delivered',
    labelNames: ['sink', 'op'] as const, registers: [this.registry],
  }));
  readonly deadLettered = new BoundedCounter(new Counter({
    name: 'threatbridge_dead_letters_total', help: 'Operations or events dead-lettered',
    labelNames: ['sink', 'reason'] as const, registers: [this.registry],
  }));
  readonly sinkRequests = new BoundedCounter(new Counter({
    // `sink` names the part that made the call: a sink, a source (misp, opencti, defender_alerts,
    // defender_assets, otx) or `entra` for token calls. The name stays for existing dashboards.
    name: 'threatbridge_sink_requests_total', help: 'Outbound HTTP calls by part (sink, source or entra), endpoint and status',
    labelNames: ['sink', 'endpoint', 'status'] as const, registers: [this.registry],
  }));
  readonly sinkLatency = new BoundedHistogram(new Histogram({
    name: 'threatbridge_sink_request_seconds', help: 'Sink call latency',
    labelNames: ['sink', 'endpoint'] as const, buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  }));
  readonly sinkThrottled = new BoundedCounter(new Counter({
    name: 'threatbridge_sink_throttled_total', help: '429 answers received',
    labelNames: ['sink'] as const, registers: [this.registry],
  }));
  readonly outboxPending = new BoundedGauge(new Gauge({
    name: 'threatbridge_outbox_pending', help: 'Operations waiting per sink',
    labelNames: ['sink'] as const, registers: [this.registry],
  }));
  readonly outboxOldestSeconds = new BoundedGauge(new Gauge({
    name: 'threatbridge_outbox_oldest_seconds', help: 'Age of the oldest waiting operation per sink',
    labelNames: ['sink'] as const, registers: [this.registry],
  }));
  readonly sourceConnected = new BoundedGauge(new Gauge({
    name: 'threatbridge_source_connected', help: '1 when the source is connected',
    labelNames: ['source'] as const, registers: [this.registry],
  }));
  /** Reachability of every source and sink: drives `sourceConnected` and the unreachable/recovered lines. */
  readonly reach = new Reachability((kind, name, up) => {
    if (kind === 'source') this.sourceConnected.set({ source: name }, up ? 1 : 0);
  });
  /** Last event and lag per source, read at scrape time. */
  readonly activity = new Activity();
  private readonly activityBound = new LabelBound();
  readonly sourceLastEventAge = new Gauge({
    name: 'threatbridge_source_last_event_age_seconds', help: 'Seconds since the source last delivered an event (absent before its first)',
    labelNames: ['source'] as const, registers: [this.registry],
    collect: () => this.collectActivity(),
  });
  readonly sourceLag = new Gauge({
    name: 'threatbridge_source_lag_seconds', help: 'How far behind its source the last event was (streams), or the age of the last completed poll (pollers)',
    labelNames: ['source'] as const, registers: [this.registry],
  });
  readonly sourceReconnects = new BoundedCounter(new Counter({
    name: 'threatbridge_source_reconnects_total', help: 'Source reconnections',
    labelNames: ['source', 'reason'] as const, registers: [this.registry],
  }));
  readonly sourceActive = new BoundedGauge(new Gauge({
    name: 'threatbridge_source_active', help: '1 when this replica is the reader of the source (0: standby)',
    labelNames: ['source'] as const, registers: [this.registry],
  }));
  readonly batchSeconds = new BoundedHistogram(new Histogram({
    name: 'threatbridge_pipeline_batch_seconds', help: 'Time to normalise, route and commit one batch',
    labelNames: ['source'] as const, buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry],
  }));

  readonly indicatorHits = new BoundedCounter(new Counter({
    name: 'threatbridge_indicator_hits_total', help: 'Defender custom-indicator alerts matched to a pushed indicator, per platform that asserted it',
    labelNames: ['platform', 'matched_by'] as const, registers: [this.registry],
  }));
  readonly guardDecisions = new BoundedCounter(new Counter({
    name: 'threatbridge_guard_decisions_total', help: 'Enforcing actions checked by the guard, by outcome (allow, downgrade, skip, breaker)',
    labelNames: ['sink', 'source', 'outcome'] as const, registers: [this.registry],
  }));
  readonly breakerOpen = new BoundedGauge(new Gauge({
    name: 'threatbridge_guard_breaker_open', help: "1 while a source's enforcing actions are paused by the breaker",
    labelNames: ['source'] as const, registers: [this.registry],
  }));
  readonly breakerTrips = new BoundedCounter(new Counter({
    name: 'threatbridge_guard_breaker_trips_total', help: 'Times the breaker paused a source',
    labelNames: ['source'] as const, registers: [this.registry],
  }));
  readonly capEvictions = new BoundedCounter(new Counter({
    name: 'threatbridge_sink_cap_total', help: 'Indicator cap outcomes: evicted (removed for a more valuable one), refused, expired (forgotten)',
    labelNames: ['sink', 'outcome'] as const, registers: [this.registry],
  }));
  readonly heldObjects = new BoundedGauge(new Gauge({
    name: 'threatbridge_sink_held', help: 'Active objects the sink holds for us (counted against its cap)',
    labelNames: ['sink'] as const, registers: [this.registry],
  }));
  readonly reconcileRepairs = new BoundedCounter(new Counter({
    name: 'threatbridge_reconcile_repairs_total', help: 'Drift repaired by reconciliation (recreated, duplicate_deleted, unclaimed_deleted, adopted, forgotten)',
    labelNames: ['sink', 'repair'] as const, registers: [this.registry],
  }));

  private collectActivity(): void {
    for (const a of this.activity.snapshot()) {
      const labels = this.activityBound.apply({ source: a.source });
      if (a.lastEventAt !== null) this.sourceLastEventAge.set(labels, Math.max(0, (Date.now() - a.lastEventAt) / 1000));
      if (a.lagSeconds !== null) this.sourceLag.set(labels, a.lagSeconds);
    }
  }

  constructor(defaultMetrics = false) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'threatbridge_' });
  }
}
