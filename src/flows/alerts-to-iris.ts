// Microsoft Defender alerts → DFIR-IRIS alerts: one poller per Defender tenant (same Entra app,
// multi-tenant when several) feeding the `iris` outbox, and one IRIS delivery worker.
import { DeliveryWorker } from '../core/delivery.js';
import { IrisClient } from '../sinks/iris/client.js';
import { IrisDelivery } from '../sinks/iris/delivery.js';
import { defenderApi } from '../microsoft/defender/client.js';
import { tenantCredentials } from '../sources/defender-alerts/config.js';
import { ConfigError } from '../config/load.js';
import { DefenderAlertsPoller } from '../sources/defender-alerts/poller.js';
import type { SinkOp } from '../core/types.js';
import { normaliseAlert } from '../sources/defender-alerts/normalise.js';
import type { DeadLetter, DeadLetterInput } from '../store/types.js';
import { workerPart, type ServiceContext, type ServicePart } from './parts.js';

export const ALERTS_SOURCE = 'defender_alerts';
export const IRIS_SINK = 'iris';
/** A poll's listing waits out this many throttled or failed calls before the poll fails (and runs again later). */
export const POLLER_WAIT_OUT = 4;

export function alertsToIrisParts(ctx: ServiceContext): ServicePart[] {
  const { config, store, log, metrics } = ctx;
  const d = config.microsoft_defender_intel;
  const a = config.defender_alerts;
  const i = config.iris;

  const client = new IrisClient({ url: i.url!, apiKey: i.api_key!, verifyTls: i.verify_cert, timeoutMs: i.request_timeout * 1000, sink: IRIS_SINK, log, metrics });
  const handler = new IrisDelivery(IRIS_SINK, i, client, store, log);
  const worker = new DeliveryWorker(store, handler, log, metrics);

  const tenants = a.tenant_ids.length > 0 ? [...new Set(a.tenant_ids)] : [d.tenant_id!];
  const pollers = tenants.map((tenantId) => {
    let app: { clientId: string; clientSecret: string };
    try {
      app = tenantCredentials(a, tenantId, { clientId: d.client_id!, clientSecret: d.client_secret! });
    } catch (err) {
      throw new ConfigError([(err as Error).message]);
    }
    const alerts = defenderApi(config, { callsPerMinute: a.calls_per_minute, callsPerHour: a.calls_per_hour }, log,
      { metrics, label: ALERTS_SOURCE, app: { tenantId, ...app }, waitOut: POLLER_WAIT_OUT });
    const source = tenants.length === 1 ? ALERTS_SOURCE : `${ALERTS_SOURCE}:${tenantId}`;
    return new DefenderAlertsPoller(source, tenantId, IRIS_SINK, a, alerts, store, log, metrics, () => worker.wake());
  });

  const source: ServicePart = {
    name: ALERTS_SOURCE,
    kind: 'source',
    start: async () => { for (const p of pollers) p.start(); },
    stop: async () => { await Promise.all(pollers.map((p) => p.stop())); },
    health: async () => {
      const failing = pollers.filter((p) => p.lastError !== null);
      return failing.length ? failing.map((p) => `${p.source}: ${p.lastError}`).join('; ') : null;
    },
    runOnce: async () => {
      let read = 0;
      let queued = 0;
      let pollFailures = 0;
      for (const p of pollers) {
        try {
          const r = await p.pollOnce();
          read += r.read;
          queued += r.queued;
        } catch (err) {
          pollFailures++;
          log.error({ source: p.source, error: (err as Error).message }, 'Defender alerts poll failed');
        }
      }
      const processed = await worker.drainOnce();
      const waiting = (await store.outboxStats(Date.now())).find((s) => s.sink === IRIS_SINK)?.pending ?? 0;
      const c = handler.counts;
      return {
        flow: `${ALERTS_SOURCE} -> ${IRIS_SINK}`,
        processed, created: c.created, updated: c.updated, failed: c.deadLettered + waiting + pollFailures,
        details: { alertsRead: read, queued, deadLettered: c.deadLettered, waitingForRetry: waiting, pollFailures },
      };
    },
  };
  const base = workerPart(IRIS_SINK, IRIS_SINK, worker);
  const sink: ServicePart = {
    ...base,
    start: async () => {
      // Look IRIS's ids up now, so a configuration problem shows at start, not with the first alert.
      void handler.ensureRefs().catch((err: Error) => log.warn({ sink: IRIS_SINK, error: err.message }, 'IRIS not ready at start; alerts will wait'));
      await base.start();
    },
    health: async () => handler.setupError ?? worker.setupProblem,
  };
  return [source, sink];
}

/**
 * `replay` of alerts the poller could not read (dead letters `source:defender_alerts…`): normalised
 * again, queued for IRIS, or dead-lettered again with the current reason. Returns how many were queued.
 */
export async function replayAlertLetters(config: ServiceContext['config'], store: ServiceContext['store'], letters: DeadLetter[]): Promise<number> {
  const ops: SinkOp[] = [];
  const dead: DeadLetterInput[] = [];
  for (const d of letters) {
    const tenant = d.sink.includes(':', 'source:'.length) ? d.sink.slice(d.sink.lastIndexOf(':') + 1) : config.microsoft_defender_intel.tenant_id ?? '';
    const n = normaliseAlert(d.payload, tenant, config.defender_alerts.portal_url);
    if ('change' in n) ops.push({ sink: IRIS_SINK, key: n.change.id, op: 'upsert', payload: n.change, sourceRef: null });
    else dead.push({ sink: d.sink, key: d.key, op: d.op, payload: d.payload, sourceRef: null, reason: `${n.rejected.code}: ${n.rejected.detail}` });
  }
  await store.commit({ source: ALERTS_SOURCE, checkpoint: null, claimUpserts: [], claimDeletes: [], ops, deadLetters: dead });
  return ops.length;
}
