// Wiring of the Defender sink from configuration: routing policy, client, delivery worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker } from '../../core/delivery.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Store } from '../../store/types.js';
import { TokenProvider } from '../microsoft/token.js';
import { DefenderClient } from './client.js';
import { DefenderDelivery } from './delivery.js';
import type { DefenderMapping } from './mapper.js';
import { DefenderRoute } from './route.js';

export const DEFENDER_SINK = 'defender';
export const DEFAULT_DEFENDER_SCOPE = 'https://api.securitycenter.microsoft.com/.default';

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

/** Simulated clocks only (benchmarks, demo): shortens pacing windows. Never set in production. */
export function timeScale(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env['THREATBRIDGE_TIME_SCALE'] ?? '1');
  return Number.isFinite(v) && v >= 1 ? v : 1;
}

export function createDefenderSink(config: Config, store: Store, log: Logger, metrics: Metrics) {
  const d = config.microsoft_defender_intel;
  const tokens = new TokenProvider({
    loginUrl: d.login_url, tenantId: d.tenant_id!, clientId: d.client_id!, clientSecret: d.client_secret!,
    scope: d.scope ?? DEFAULT_DEFENDER_SCOPE, verifyTls: d.ssl_verify, timeoutMs: d.request_timeout * 1000, log,
  });
  const client = new DefenderClient({
    baseUrl: d.base_url, resourcePath: d.resource_path, timeoutMs: d.request_timeout * 1000, verifyTls: d.ssl_verify,
    importCallsPerMinute: d.import_calls_per_minute, callsPerHour: d.calls_per_hour, timeScale: timeScale(),
    sink: DEFENDER_SINK, tokens, log, metrics, userAgent: config.connector.user_agent,
  });
  const handler = new DefenderDelivery(DEFENDER_SINK, d.batch_size, client, store, log, metrics);
  return {
    route: defenderRoute(config),
    client,
    tokens,
    handler,
    worker: new DeliveryWorker(store, handler, log),
  };
}
