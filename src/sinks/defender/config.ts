// The `microsoft_defender_intel` config section: Entra credentials (shared by every Defender API
// flow: indicators, alerts, machines) and the indicator sink's mapping and pacing.
import { z } from 'zod';
import { httpUrl, observableType } from '../../config/fields.js';
import { DEFENDER_ACTIONS } from '../../microsoft/defender/types.js';
import { LEGACY_TARGET, targetsField } from '../../config/targets.js';

const defenderAction = z.enum(DEFENDER_ACTIONS);
/** The documented paths of the indicator API: unversioned (latest) and v1.0. */
const RESOURCE_PATHS = ['/api/indicators', '/api/v1.0/indicators'];

export const defenderSection = z
.object({
  tenant_id: z.string().min(1).optional().describe('Entra ID tenant id (GUID)'),
  client_id: z.string().min(1).optional().describe('application (client) id with Ti.ReadWrite.All'),
  client_secret: z.string().min(1).optional().describe('client secret of that application'),
  login_url: httpUrl.default('https://login.microsoftonline.com').describe('Entra login host; https://login.microsoftonline.us for GCC High'),
  base_url: httpUrl
    .default('https://api.securitycenter.microsoft.com')
    .describe('Defender API host, e.g. https://api.security.microsoft.com or a geo host'),
  // The official OpenCTI connector's default is `api/indicators` (no leading slash): accepted as is.
  resource_path: z
    .string()
    .transform((p) => `/${p.trim().replace(/^\/+|\/+$/g, '')}`)
    .refine((p) => RESOURCE_PATHS.includes(p.toLowerCase()), `must be api/indicators (the official connector's default) or api/v1.0/indicators; remove the setting to use the default`)
    .default('/api/indicators')
    .describe('indicators path under base_url: api/indicators (default, as the official connector) or api/v1.0/indicators'),
  scope: z.string().optional().describe('OAuth scope; default https://api.securitycenter.microsoft.com/.default'),
  expire_time: z.number().int().min(1).max(3650).default(30).describe('days an indicator lives in Defender'),
  expire_time_by_type: z
    .partialRecord(observableType, z.number().int().min(1).max(3650))
    .default({})
    .describe('per observable type days, e.g. "url=7,ipv4=14"'),
  action: defenderAction.optional().describe('force one action for every indicator; unset = by score'),
  default_action: defenderAction.default('Alert').describe('action for indicators without a score'),
  passive_only: z.boolean().default(false).describe('send everything as Audit (true|false)'),
  min_score: z.number().int().min(0).max(100).default(0).describe('indicators scored below are not pushed (and are removed)'),
  application: z.string().min(1).default('ThreatBridge').describe('application name stamped on indicators'),
  recommended_actions: z.string().optional().describe('text for the recommendedActions field'),
  educate_url: httpUrl.optional().describe('end-user page for Warn/Block URL indicators'),
  rbac_group_names: z.array(z.string().min(1)).default([]).describe('device groups to scope indicators to (comma list)'),
  tags: z.array(z.string().min(1)).default([]).describe('extra tags added to every indicator (comma list)'),
  batch_size: z.number().int().min(1).max(500).default(500).describe('indicators per import call (≤500)'),
  import_calls_per_minute: z.number().int().min(1).max(30).default(25).describe('pace of import/BatchDelete calls (Defender allows 30)'),
  calls_per_hour: z.number().int().min(1).max(1500).default(1400).describe('pace of all indicator calls per hour (Defender allows 1,500)'),
  request_timeout: z.number().int().min(1).default(60).describe('seconds before a Defender call times out'),
  ssl_verify: z.boolean().default(true).describe('verify Defender/Entra TLS certificates (true|false)'),
  max_indicators: z.number().int().min(1).default(15000).describe('active indicators the tenant holds at most (Defender: 15,000)'),
  headroom: z.number().int().min(0).default(0)
    .describe('slots of max_indicators left free for indicators others create (portal, other apps)'),
  reconcile_interval: z.number().int().min(0).default(60)
    .describe('minutes between reconciliations with what Defender holds (0 = only `threatbridge reconcile`)'),
  targets: targetsField,
})
  .strict()
  .superRefine((d, ctx) => {
    const i = d.targets.findIndex((t) => t.name.toLowerCase() === LEGACY_TARGET);
    if (d.tenant_id && i >= 0) {
      ctx.addIssue({ code: 'custom', path: ['targets', i, 'name'],
        message: `"${LEGACY_TARGET}" is the target of microsoft_defender_intel.tenant_id; rename this one or unset tenant_id` });
    }
  })
  .prefault({});

export const DEFENDER_SECRET_KEYS = ['microsoft_defender_intel.client_secret'];
