// The `defender_alerts` config section: how the Defender alerts poller reads /api/alerts. The
// Entra credentials and the API host are shared with the indicator sink (`microsoft_defender_intel`).
import { z } from 'zod';
import { httpUrl } from '../../config/fields.js';

export const DEFENDER_ALERT_STATUSES = ['New', 'InProgress', 'Resolved', 'Unknown'] as const;
/** Defender's severities, lowest first (the order of the severity floor). */
export const DEFENDER_ALERT_SEVERITIES = ['UnSpecified', 'Informational', 'Low', 'Medium', 'High'] as const;

export const defenderAlertsSection = z
  .object({
    enabled: z.boolean().default(true).describe('poll Defender alerts for IRIS when iris.url is set (true|false)'),
    interval: z.number().int().min(1).default(60).describe('seconds between polls of /api/alerts'),
    statuses: z
      .array(z.enum(DEFENDER_ALERT_STATUSES))
      .min(1)
      .default(['New'])
      .describe('statuses of alerts to bring into IRIS, comma list of New, InProgress, Resolved, Unknown; changes of alerts already in IRIS always follow'),
    min_severity: z.enum(DEFENDER_ALERT_SEVERITIES).default('UnSpecified').describe('severity floor: UnSpecified (all, as the script), Informational, Low, Medium or High'),
    lookback_hours: z.number().int().min(0).max(24 * 180).default(0)
      .describe('first run only: 0 (default, as the script) reads every alert in the chosen statuses however old; N reads only those updated in the last N hours'),
    overlap_seconds: z.number().int().min(0).max(86_400).default(900)
      .describe('each poll re-reads this many seconds before the last one: covers alerts that reach the API up to this long after their lastUpdateTime (ingestion delay), clock skew and paging shifts'),
    page_size: z.number().int().min(1).max(10_000).default(1000).describe('alerts per page ($top, at most 10,000)'),
    calls_per_minute: z.number().int().min(1).max(100).default(90).describe('pace of /api/alerts calls per minute (Defender allows 100)'),
    calls_per_hour: z.number().int().min(1).max(1500).default(1400).describe('pace of /api/alerts calls per hour (Defender allows 1,500)'),
    portal_url: httpUrl.default('https://security.microsoft.com').describe('Defender portal for links to alerts (e.g. https://security.microsoft.us for GCC High)'),
    machine_details: z
      .boolean()
      .default(true)
      .describe('add OS, IP addresses and risk of the affected machine from /api/machines (needs Machine.Read.All; skipped with a warning without it)'),
    tenant_ids: z
      .array(z.string().min(1))
      .default([])
      .describe('poll several tenants with the same multi-tenant app (comma list); empty = microsoft_defender_intel.tenant_id'),
    tenant_client_ids: z
      .record(z.string().min(1), z.string().min(1))
      .default({})
      .describe('per tenant its own application (client) id, e.g. "tenant2=<client id>"; others use microsoft_defender_intel.client_id'),
    tenant_client_secrets: z
      .record(z.string().min(1), z.string().min(1))
      .default({})
      .describe('per tenant the secret of that application, e.g. "tenant2=<secret>"'),
  })
  .strict()
  .prefault({});

export const DEFENDER_ALERTS_SECRET_KEYS = ['defender_alerts.tenant_client_secrets'];

/** The Entra application that reads one tenant's alerts; an error names the key to set. */
export function tenantCredentials(cfg: DefenderAlertsConfig, tenantId: string, fallback: { clientId: string; clientSecret: string }): { clientId: string; clientSecret: string } {
  const clientId = cfg.tenant_client_ids[tenantId];
  const secret = cfg.tenant_client_secrets[tenantId];
  if (clientId && !secret) throw new Error(`defender_alerts.tenant_client_secrets [env DEFENDER_ALERTS_TENANT_CLIENT_SECRETS]: tenant ${tenantId} has its own client id but no secret; add "${tenantId}=<secret>"`);
  if (!clientId && secret) throw new Error(`defender_alerts.tenant_client_ids [env DEFENDER_ALERTS_TENANT_CLIENT_IDS]: tenant ${tenantId} has its own secret but no client id; add "${tenantId}=<client id>"`);
  return clientId && secret ? { clientId, clientSecret: secret } : fallback;
}

export type DefenderAlertsConfig = z.infer<typeof defenderAlertsSection>;
