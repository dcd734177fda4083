// Wiring of the Defender sink from configuration: routing policy, client, delivery worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Store } from '../../store/types.js';
import { defenderApi, type DefenderApi } from '../../microsoft/defender/client.js';
import { timeScale } from '../../net/pacer.js';
import { DefenderDelivery } from './delivery.js';
import type { DefenderMapping } from './mapper.js';
import { DefenderRoute } from './route.js';
import { createGuard } from '../../guard/index.js';
import { observableOfKey } from '../../guard/gate.js';
import { ENFORCING_ACTIONS } from '../../guard/guard.js';
import { effectiveClaim } from '../../core/claims.js';
import type { SinkOp } from '../../core/types.js';
import type { ServicePart } from '../../core/parts.js';
import { errorFields } from '../../observability/logger.js';
import { IndicatorCap } from './cap.js';
import { DefenderReconciler } from './reconcile.js';

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

export function defenderReconciler(config: Config, client: DefenderApi, store: Store, log: Logger, metrics: Metrics): DefenderReconciler {
  // Every application name we write under: the sink's, and a source's own (misp.application).
  const applications = [...new Set([config.microsoft_defender_intel.application, ...(config.misp.application ? [config.misp.application] : [])])];
  return new DefenderReconciler(DEFENDER_SINK, client, store, defenderRoute(config), applications, log, metrics);
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

export function createDefenderSink(config: Config, store: Store, log: Logger, metrics: Metrics, wrap: (h: SinkHandler) => SinkHandler = (h) => h) {
  const d = config.microsoft_defender_intel;
  const client = defenderClient(config, log, metrics);
  const route = defenderRoute(config);
  const guard = createGuard(config, DEFENDER_SINK, store, log, metrics, async (isProtected) => {
    // Held indicators the list now protects: route their claims again; the gate decides on delivery.
    const keys = (await store.listHeld(DEFENDER_SINK)).map((h) => h.key).filter((k) => isProtected(observableOfKey(k)));
    if (keys.length === 0) return 0;
    const claims = await store.loadClaims(keys, []);
    const ops = keys.map((k) => route.route(k, effectiveClaim(claims.filter((c) => c.key === k)), Date.now()).op)
      .filter((op): op is SinkOp => op !== null && op.op === 'upsert' && ENFORCING_ACTIONS.has((op.payload as { action: string }).action));
    const n = await store.enqueue(ops);
    if (n > 0) worker.wake();
    return n;
  });
  const cap = new IndicatorCap(DEFENDER_SINK, Math.max(1, d.max_indicators - d.headroom), store, log, metrics);
  const handler = new DefenderDelivery(DEFENDER_SINK, d.batch_size, client, store, log, metrics, { gate: guard.gate, cap });
  const worker = new DeliveryWorker(store, wrap(handler), log, metrics);
  return {
    route,
    client,
    handler,
    worker,
    parts: [guard.part, ...reconcilePart(config, defenderReconciler(config, client, store, log, metrics), log)],
  };
}
