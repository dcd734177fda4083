// Wiring of the Sentinel sink from configuration: routing policy, token provider, client, worker.
import type { Config } from '../../config/schema.js';
import { DeliveryWorker, type SinkHandler } from '../../core/delivery.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Store } from '../../store/types.js';
import { timeScale } from '../defender/index.js';
import { TokenProvider } from '../microsoft/token.js';
import { AuditLog } from './audit.js';
import { SentinelClient } from './client.js';
import { SentinelDelivery } from './delivery.js';
import type { SentinelMapping } from './mapper.js';
import { SentinelRoute } from './route.js';

export const SENTINEL_SINK = 'sentinel';

export function sentinelMapping(config: Config): SentinelMapping {
  const s = config.sentinel;
  return { sink: SENTINEL_SINK, action: s.action, passiveOnly: s.passive_only, daysToExpire: s.days_to_expire, minScore: s.min_score, labels: s.labels };
}

/** Sentinel's routing policy from configuration (the running service and `replay` share it). */
export function sentinelRoute(config: Config): SentinelRoute {
  return new SentinelRoute(sentinelMapping(config));
}

/** The Entra credentials the Sentinel sink uses: its own where set, else the shared Defender app's. */
export function sentinelCredentials(config: Config) {
  const s = config.sentinel;
  const d = config.microsoft_defender_intel;
  return {
    tenantId: (s.tenant_id ?? d.tenant_id)!,
    clientId: (s.client_id ?? d.client_id)!,
    clientSecret: (s.client_secret ?? d.client_secret)!,
    loginUrl: s.login_url ?? d.login_url,
  };
}

export function createSentinelClient(config: Config, log: Logger, metrics: Metrics): SentinelClient {
  const s = config.sentinel;
  const creds = sentinelCredentials(config);
  const tokens = new TokenProvider({ ...creds, scope: s.scope, verifyTls: s.verify_cert, timeoutMs: s.request_timeout * 1000, log });
  return new SentinelClient({
    host: s.host, workspaceId: s.workspace_id!, apiVersion: s.api_version, sourceSystem: s.source_system,
    timeoutMs: s.request_timeout * 1000, verifyTls: s.verify_cert, requestsPerMinute: s.requests_per_minute, timeScale: timeScale(),
    sink: SENTINEL_SINK, tokens, audit: s.audit_log_dir ? new AuditLog(s.audit_log_dir) : null, log, metrics,
  });
}

export function createSentinelSink(config: Config, store: Store, log: Logger, metrics: Metrics, wrap: (h: SinkHandler) => SinkHandler = (h) => h) {
  const client = createSentinelClient(config, log, metrics);
  const handler = new SentinelDelivery(SENTINEL_SINK, config.sentinel.batch_size, client, store, log, metrics);
  return { route: sentinelRoute(config), client, handler, worker: new DeliveryWorker(store, wrap(handler), log) };
}
