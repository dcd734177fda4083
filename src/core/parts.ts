// What the service is made of: long-running parts (source readers, sink workers and their
// companions) that service.ts starts, checks and stops the same way.
import type { DeliveryWorker } from './delivery.js';

export interface ServicePart {
  /** Shown in /readyz and logs, e.g. "opencti", "iris". */
  readonly name: string;
  readonly kind: 'source' | 'sink';
  /** Outbox names whose gauges /metrics shows (sinks only). */
  readonly sinks?: readonly string[];
  start(): Promise<void>;
  /** Sources stop reading and store what they hold; sinks finish in-flight calls. Within `boundMs`. */
  stop(boundMs: number): Promise<void>;
  /** null when ready, else why not. */
  health?(): Promise<string | null>;
  /** One-shot run (`threatbridge run --once`): read once, deliver what is due, report. Parts without it are skipped. */
  runOnce?(): Promise<OnceSummary>;
}

/** What a one-shot run of a flow did; `failed` counts what was rejected or is still waiting for a retry. */
export interface OnceSummary {
  flow: string;
  processed: number;
  created: number;
  updated: number;
  failed: number;
  details?: Record<string, number>;
  /** Sinks that refused our set-up (credentials, permissions, a wrong path), with what to fix. */
  setupProblems?: string[];
}

/** A delivery worker as a part. */
export function workerPart(name: string, sink: string, worker: DeliveryWorker): ServicePart {
  return {
    name,
    kind: 'sink',
    sinks: [sink],
    start: async () => worker.start(),
    stop: (boundMs) => worker.stop(boundMs),
    health: async () => worker.setupProblem,
  };
}
