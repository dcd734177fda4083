// Wiring of the Defender sink from configuration: routing policy, client, delivery worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Store } from '../../core/store.js';
import { defenderApi, type DefenderApi } from '../../microsoft/defender/client.js';
import { timeScale } from '../../net/pacer.js';
import { DefenderDelivery } from './delivery.js';
import type { DefenderIndicatorBody, DefenderMapping } from './mapper.js';
import { DefenderRoute } from './route.js';
import type { Guard } from '../../guard/index.js';
import { DEFENDER_GATE_ACTIONS } from '../../guard/guard.js';
import type { ServicePart } from '../../core/parts.js';
import { errorFields } from '../../observability/logger.js';
import { IndicatorCap } from './cap.js';
import { DefenderHolders, DefenderReconciler } from './reconcile.js';

export const DEFENDER_SINK = 'defender';

export function defenderMapping(config: Config): DefenderMapping {
  const d = config.microsoft_defender_intel;
  return {
    expireDays: d.expire_time,
    expireDaysByType: d.expire_time_by_type,
    action: d.action,
    defaultAction: d.default_action,
    passiveOnly: d.passive_only,
    minScore: d.min_score,
    application: d.application,
    recommendedActions: d.recommended_actions,
    educateUrl: d.educate_url,
    rbacGroupNames: d.rbac_group_names,
    tags: d.tags,
  };
}

/** Defender's routing policy from configuration (the running service and `replay` share it). */
export function defenderRoute(config: Config): DefenderRoute {
  return new DefenderRoute(DEFENDER_SINK, defenderMapping(config));
}

/** Client of the configured tenant (service, `threatbridge reconcile`). */
export function defenderClient(config: Config, log: Logger, metrics: Metrics): DefenderApi {
  const d = config.microsoft_defender_intel;
  // List and single calls at 90/min: under the documented 100, with room for the pollers' reads.
  return defenderApi(config, { batchCallsPerMinute: d.import_calls_per_minute, callsPerMinute: 90, callsPerHour: d.calls_per_hour }, log, { metrics, label: DEFENDER_SINK });
}

/** Every application name we write under: the sink's, and a source's own (misp.application). */
function ourApplications(config: Config): Set<string> {
  return new Set([config.microsoft_defender_intel.application, ...(config.misp.application ? [config.misp.application] : [])]);
}

/** Who holds the values we did not create, from full listings at most an hour (or a reconcile interval) old. */
export function defenderHolders(config: Config, client: DefenderApi): DefenderHolders {
  const apps = ourApplications(config);
  const clientId = config.microsoft_defender_intel.client_id;
  const minutes = config.microsoft_defender_intel.reconcile_interval || 60;
  return new DefenderHolders(() => client.listIndicators(null),
    (ind) => (ind.application != null && apps.has(ind.application)) || (clientId !== undefined && ind['createdBy'] === clientId),
    minutes * 60_000 / timeScale());
}

export function defenderReconciler(config: Config, client: DefenderApi, store: Store, log: Logger, metrics: Metrics,
  holders = defenderHolders(config, client)): DefenderReconciler {
  return new DefenderReconciler(DEFENDER_SINK, client, store, defenderRoute(config), holders, log, metrics,
    { share: config.guard.withdrawal_breaker_percent / 100, min: config.guard.withdrawal_breaker_min });
}

/** A periodic reconciliation as a service part (none when the interval is 0). */
function reconcilePart(config: Config, reconciler: DefenderReconciler, log: Logger): ServicePart[] {
  const minutes = config.microsoft_defender_intel.reconcile_interval;
  if (minutes === 0) return [];
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  return [{
    name: `${DEFENDER_SINK}-reconcile`,
    kind: 'sink',
    start: async () => {
      timer = setInterval(() => {
        if (running) return;
        running = reconciler.run().catch((err) => log.warn({ sink: DEFENDER_SINK, ...errorFields(err) }, 'reconciliation failed; next try at the next interval'))
          .finally(() => { running = null; });
      }, minutes * 60_000 / timeScale());
      timer.unref();
    },
    stop: async () => {
      if (timer) clearInterval(timer);
      await running;
    },
  }];
}

export function createDefenderSink(config: Config, store: Store, log: Logger, metrics: Metrics, guard: Guard,
  wrap: (h: SinkHandler) => SinkHandler = (h) => h) {
  const d = config.microsoft_defender_intel;
  const client = defenderClient(config, log, metrics);
  const route = defenderRoute(config);
  const gate = guard.gate(DEFENDER_SINK, DEFENDER_GATE_ACTIONS, {
    keys: async () => (await store.listHeld(DEFENDER_SINK)).map((h) => h.key),
    route,
    action: (payload) => (payload as DefenderIndicatorBody).action,
    wake: () => worker.wake(),
  });
  const cap = new IndicatorCap(DEFENDER_SINK, Math.max(1, d.max_indicators - d.headroom), store, log, metrics);
  const holders = defenderHolders(config, client);
  const handler = new DefenderDelivery(DEFENDER_SINK, d.batch_size, client, store, log, metrics,
    { gate, cap, holders, adoptForeign: config.guard.adopt_foreign });
  const worker = new DeliveryWorker(store, wrap(handler), log, metrics);
  return {
    route,
    client,
    handler,
    worker,
    parts: reconcilePart(config, defenderReconciler(config, client, store, log, metrics, holders), log),
  };
}
