// Wiring of the Defender sink from configuration: routing policy, client, delivery worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Store } from '../../core/store.js';
import { defenderApi, type DefenderApi } from '../../microsoft/defender/client.js';
import { timeScale } from '../../net/pacer.js';
import { DefenderDelivery } from './delivery.js';
import { BodiesAtDelivery } from './delivery-bodies.js';
import { defenderTypeOf, type DefenderIndicatorBody, type DefenderMapping } from './mapper.js';
import type { ObservableType } from '../../core/types.js';
import { DefenderRoute } from './route.js';
import type { Guard } from '../../guard/index.js';
import { DEFENDER_GATE_ACTIONS } from '../../guard/guard.js';
import type { ServicePart } from '../../core/parts.js';
import { errorFields } from '../../observability/logger.js';
import { IndicatorCap } from './cap.js';
import { DefenderHolders, DefenderReconciler } from './reconcile.js';
import { resolveTargets, targetRouteWarnings, type DefenderTarget } from '../../config/targets.js';

export const DEFENDER_SINK = 'defender';

/** Every configured Defender tenant (the single-tenant keys are the one named `default`). */
export function defenderTargets(config: Config): DefenderTarget[] {
  return resolveTargets(config.microsoft_defender_intel);
}

/** One target by name (`threatbridge reconcile --tenant`), else the first; the single-tenant keys when none is configured. */
export function defenderTarget(config: Config, name?: string): DefenderTarget {
  const all = defenderTargets(config);
  if (name !== undefined) {
    const t = all.find((x) => x.name === name);
    if (!t) throw new Error(`no Defender target named "${name}"; configured: ${all.map((x) => x.name).join(', ') || 'none'}`);
    return t;
  }
  const d = config.microsoft_defender_intel;
  return all[0] ?? resolveTargets({ ...d, tenant_id: d.tenant_id ?? 'unset', targets: [] })[0]!;
}

export function defenderMapping(config: Config, target?: DefenderTarget): DefenderMapping {
  const d = config.microsoft_defender_intel;
  const action = target?.action ?? d.action;
  return {
    expireDays: d.expire_time,
    expireDaysByType: d.expire_time_by_type,
    ...(action ? { action } : {}),
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

/** A target's routing policy from configuration (the running service and `replay` share it). */
export function defenderRoute(config: Config, target = defenderTarget(config)): DefenderRoute {
  return new DefenderRoute(target.sink, defenderMapping(config, target), target.filter);
}

/** Client of one target's tenant with its own application and pacer (service, `threatbridge reconcile`). */
export function defenderClient(config: Config, log: Logger, metrics: Metrics, target = defenderTarget(config)): DefenderApi {
  const d = config.microsoft_defender_intel;
  const app = { tenantId: target.tenantId, clientId: target.clientId!, clientSecret: target.clientSecret! };
  // List and single calls at 90/min: under the documented 100, with room for the pollers' reads.
  return defenderApi(config, { batchCallsPerMinute: d.import_calls_per_minute, callsPerMinute: 90, callsPerHour: d.calls_per_hour }, log,
    { metrics, label: target.sink, app, ...(target.baseUrl ? { baseUrl: target.baseUrl } : {}) });
}

/** Every application name we write under: the sink's, and a source's own (misp.application). */
function ourApplications(config: Config): Set<string> {
  return new Set([config.microsoft_defender_intel.application, ...(config.misp.application ? [config.misp.application] : [])]);
}

/** Who holds the values we did not create, from full listings at most an hour (or a reconcile interval) old. */
export function defenderHolders(config: Config, client: DefenderApi, target = defenderTarget(config)): DefenderHolders {
  const apps = ourApplications(config);
  const clientId = target.clientId;
  const minutes = config.microsoft_defender_intel.reconcile_interval || 60;
  return new DefenderHolders(() => client.listIndicators(null),
    (ind) => (ind.application != null && apps.has(ind.application)) || (clientId !== undefined && ind['createdBy'] === clientId),
    minutes * 60_000 / timeScale());
}

export function defenderReconciler(config: Config, client: DefenderApi, store: Store, log: Logger, metrics: Metrics,
  target = defenderTarget(config), holders = defenderHolders(config, client, target)): DefenderReconciler {
  return new DefenderReconciler(target.sink, client, store, defenderRoute(config, target), holders, log, metrics,
    { share: config.guard.withdrawal_breaker_percent / 100, min: config.guard.withdrawal_breaker_min });
}

/**
 * What makes a target's route match nothing, reported at start: sources none of which feeds
 * Defender, only types Defender has no indicator for, every included label also excluded.
 */
export function defenderRouteWarnings(target: DefenderTarget, feeding: readonly string[]): string[] {
  const f = target.filter;
  const out = targetRouteWarnings(f, feeding, 'Defender');
  if (f.types && ![...f.types].some((t) => defenderTypeOf(t as ObservableType) !== null)) {
    out.push(`takes only types ${[...f.types].join(', ')}, which Defender has no indicator type for`);
  }
  return out;
}

/** A periodic reconciliation as a service part (none when the interval is 0). */
function reconcilePart(config: Config, sink: string, reconciler: DefenderReconciler, log: Logger): ServicePart[] {
  const minutes = config.microsoft_defender_intel.reconcile_interval;
  if (minutes === 0) return [];
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  return [{
    name: `${sink}-reconcile`,
    kind: 'sink',
    start: async () => {
      timer = setInterval(() => {
        if (running) return;
        running = reconciler.run().catch((err) => log.warn({ sink, ...errorFields(err) }, 'reconciliation failed; next try at the next interval'))
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

/** One target's sink: its own client (tenant, application, pacer), gate, cap, id map and reconciliation. */
export function createDefenderSink(config: Config, store: Store, log: Logger, metrics: Metrics, guard: Guard,
  wrap: (h: SinkHandler) => SinkHandler = (h) => h, target = defenderTarget(config)) {
  const d = config.microsoft_defender_intel;
  const sink = target.sink;
  const client = defenderClient(config, log, metrics, target);
  const route = defenderRoute(config, target);
  const gate = guard.gate(sink, DEFENDER_GATE_ACTIONS, {
    keys: async () => (await store.listHeld(sink)).map((h) => h.key),
    route,
    action: (payload) => (payload as DefenderIndicatorBody).action,
    wake: () => worker.wake(),
  }, target.protectedValues);
  const max = target.maxIndicators ?? d.max_indicators;
  const cap = new IndicatorCap(sink, Math.max(1, max - (target.headroom ?? d.headroom)), store, log, metrics);
  const holders = defenderHolders(config, client, target);
  const handler = new DefenderDelivery(sink, d.batch_size, client, store, log, metrics,
    { gate, cap, holders, adoptForeign: config.guard.adopt_foreign });
  // Bodies first: the outbox keeps a reference to the claim (route.ts), the review file and the gate read bodies.
  const worker = new DeliveryWorker(store, new BodiesAtDelivery(wrap(handler), store, route, log), log, metrics);
  return {
    route,
    client,
    handler,
    worker,
    parts: reconcilePart(config, sink, defenderReconciler(config, client, store, log, metrics, target, holders), log),
  };
}
