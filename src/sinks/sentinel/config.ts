// The `sentinel` config section: the Sentinel threat-intelligence STIX upload API (workspace, host,
// API version, scope), the mapping options of the retired Graph tiIndicators script (action,
// passive_only, days_to_expire, verify_cert) and the optional per-request audit log.
// Credentials default to the `microsoft_defender_intel.*` Entra app; set them here for another app.
import { z } from 'zod';
import { httpUrl } from '../../config/fields.js';
import { LEGACY_TARGET, sentinelTargetsField } from '../../config/targets.js';

/** The script's `action` values; Sentinel STIX has no action field, so they travel as labels. */
export const SENTINEL_ACTIONS = ['alert', 'allow', 'block'] as const;
export type SentinelAction = (typeof SENTINEL_ACTIONS)[number];

export const DEFAULT_SENTINEL_HOST = 'https://api.ti.sentinel.azure.com';
export const DEFAULT_SENTINEL_API_VERSION = '2024-02-01-preview';
export const DEFAULT_SENTINEL_SCOPE = 'https://management.azure.com/.default';

export const sentinelSection = z
  .object({
    workspace_id: z
      .string()
      .regex(/^[A-Za-z0-9-]+$/, 'must be the Log Analytics workspace id (a GUID), not a name or URL')
      .optional()
      .describe('Log Analytics workspace id (GUID) of the Sentinel workspace'),
    host: httpUrl.default(DEFAULT_SENTINEL_HOST).describe('STIX upload API host'),
    api_version: z.string().min(1).default(DEFAULT_SENTINEL_API_VERSION).describe('api-version of the STIX upload API'),
    scope: z.string().min(1).default(DEFAULT_SENTINEL_SCOPE).describe('OAuth scope for the upload API'),
    tenant_id: z.string().min(1).optional().describe('Entra tenant id; default microsoft_defender_intel.tenant_id'),
    client_id: z.string().min(1).optional().describe('application id with Microsoft Sentinel Contributor; default microsoft_defender_intel.client_id'),
    client_secret: z.string().min(1).optional().describe('its client secret; default microsoft_defender_intel.client_secret'),
    login_url: httpUrl.optional().describe('Entra login host; default microsoft_defender_intel.login_url'),
    source_system: z
      .string()
      .min(1)
      .refine((s) => s.trim().toLowerCase() !== 'microsoft sentinel', 'must not be "Microsoft Sentinel" (reserved by the API)')
      .default('ThreatBridge')
      .describe('sourcesystem name the indicators are uploaded under'),
    action: z.string().transform((a) => a.toLowerCase()).pipe(z.enum(SENTINEL_ACTIONS)).optional().describe('alert, allow or block for every indicator; unset = by score (≥60 block, else alert)'),
    passive_only: z.boolean().default(false).describe('mark every indicator passive (action alert) (true|false)'),
    days_to_expire: z.number().int().min(1).max(3650).default(30).describe('days until valid_until of uploaded indicators'),
    min_score: z.number().int().min(0).max(100).default(0).describe('indicators scored below are not uploaded (and are revoked)'),
    labels: z.array(z.string().min(1)).default([]).describe('extra labels (tags) on every indicator (comma list)'),
    batch_size: z.number().int().min(1).max(100).default(100).describe('STIX objects per upload request (≤100)'),
    requests_per_minute: z.number().int().min(1).max(100).default(95).describe('pace of upload requests (Sentinel allows 100/min)'),
    request_timeout: z.number().int().min(1).default(60).describe('seconds before an upload times out'),
    verify_cert: z.boolean().default(true).describe('verify Sentinel/Entra TLS certificates (true|false)'),
    audit_log_dir: z.string().min(1).optional().describe('directory for a JSON-lines audit log of every request and response; unset = off'),
    targets: sentinelTargetsField,
  })
  .strict()
  .superRefine((s, ctx) => {
    const i = s.targets.findIndex((t) => t.name.toLowerCase() === LEGACY_TARGET);
    if (s.workspace_id && i >= 0) {
      ctx.addIssue({ code: 'custom', path: ['targets', i, 'name'], message: `"${LEGACY_TARGET}" is the target of sentinel.workspace_id; rename this one or unset workspace_id` });
    }
  })
  .prefault({});

export const SENTINEL_SECRET_KEYS = ['sentinel.client_secret'];
