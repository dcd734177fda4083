// One zod schema for the whole service. Every key `section.key_name` can also be set by the
// environment variable `SECTION_KEY_NAME` (OpenCTI's convention); see load.ts.
// `.describe()` texts double as the "how to fix" hint in start-up errors.
import { z } from 'zod';
import { OBSERVABLE_TYPES } from '../core/types.js';

const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'must start with http:// or https://')
  .transform((u) => u.replace(/\/+$/, ''));

const logLevel = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(z.enum(['debug', 'info', 'warn', 'error']));

/** Current Defender action names; legacy ones are accepted and translated by the mapper. */
export const DEFENDER_ACTIONS = [
  'Audit', 'Warn', 'Block', 'BlockAndRemediate', 'Allowed', 'Alert', 'AlertAndBlock',
] as const;
export type DefenderActionInput = (typeof DEFENDER_ACTIONS)[number];

const defenderAction = z.enum(DEFENDER_ACTIONS);
const observableType = z.enum(OBSERVABLE_TYPES as [string, ...string[]]);

export const configSchema = z
  .object({
    opencti: z
      .object({
        url: httpUrl.optional().describe('OpenCTI base URL, e.g. http://opencti:8080'),
        token: z.string().min(1).optional().describe('API token of the OpenCTI user the connector runs as'),
        ssl_verify: z.boolean().default(true).describe('verify OpenCTI TLS certificates (true|false)'),
      })
      .strict()
      .prefault({}),
    connector: z
      .object({
        id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a UUID').optional().describe('a UUID v4 that identifies this connector in OpenCTI'),
        name: z.string().min(1).default('ThreatBridge').describe('name shown in OpenCTI'),
        log_level: logLevel.default('error').describe('one of debug, info, warn, error'),
        live_stream_id: z
          .string()
          .min(1)
          .refine((s) => s !== 'live', 'must be the id of a live stream collection, not "live"')
          .optional()
          .describe('id of the OpenCTI live stream (Data sharing > Live streams)'),
        live_stream_listen_delete: z.boolean().default(true).describe('receive delete events (true|false)'),
        live_stream_no_dependencies: z.boolean().default(true).describe('skip relationship expansion (true|false)'),
        live_stream_with_inferences: z.boolean().default(false).describe('include inferred data (true|false)'),
        live_stream_recover_iso_date: z
          .string()
          .refine((s) => /^(no|false|none)$/i.test(s) || !Number.isNaN(Date.parse(s)), 'must be an ISO date or "no"')
          .optional()
          .describe('first start only: replay objects updated up to this date, or "no" to skip the backfill'),
        live_stream_start_timestamp: z
          .number()
          .int()
          .refine((n) => n === 0 || n > 1e11, 'looks like epoch seconds; give epoch milliseconds')
          .optional()
          .describe('first start only: stream position as epoch milliseconds'),
        heartbeat_timeout: z.number().int().min(10).default(45).describe('seconds of stream silence before reconnecting'),
        ping_interval: z.number().int().min(5).default(40).describe('seconds between pings to OpenCTI'),
        register: z.boolean().default(true).describe('register and ping in OpenCTI (true|false)'),
        expose_metrics: z.boolean().default(false).describe('serve Prometheus metrics on /metrics (true|false)'),
        metrics_port: z.number().int().min(0).max(65535).default(9095).describe('port of /metrics, /healthz, /readyz'),
        metrics_host: z.string().default('0.0.0.0').describe('address the metrics/health server binds'),
        shutdown_timeout: z.number().int().min(1).default(20).describe('seconds to flush in-flight work on SIGTERM'),
      })
      .strict()
      .prefault({}),
    store: z
      .object({
        engine: z.enum(['sqlite']).default('sqlite').describe('sqlite (embedded; PostgreSQL for replicas is planned)'),
        dir: z.string().min(1).default('./data').describe('state directory for the SQLite store'),
      })
      .strict()
      .prefault({}),
    pipeline: z
      .object({
        batch_size: z.number().int().min(1).max(10000).default(500).describe('events per store transaction'),
        batch_ms: z.number().int().min(1).max(60000).default(200).describe('max ms an event waits before its batch commits'),
        queue_size: z.number().int().min(10).default(5000).describe('events buffered before the source pauses'),
      })
      .strict()
      .prefault({}),
    microsoft_defender_intel: z
      .object({
        tenant_id: z.string().min(1).optional().describe('Entra ID tenant id (GUID)'),
        client_id: z.string().min(1).optional().describe('application (client) id with Ti.ReadWrite.All'),
        client_secret: z.string().min(1).optional().describe('client secret of that application'),
        login_url: httpUrl.default('https://login.microsoft.com').describe('Entra login host; https://login.microsoftonline.us for GCC High'),
        base_url: httpUrl
          .default('https://api.securitycenter.microsoft.com')
          .describe('Defender API host, e.g. https://api.security.microsoft.com or a geo host'),
        resource_path: z
          .string()
          .regex(/^\/[\w/.-]*$/, 'must be a path starting with /')
          .transform((p) => p.replace(/\/+$/, ''))
          .default('/api/indicators')
          .describe('indicators path under base_url'),
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
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type DefenderConfig = Config['microsoft_defender_intel'];

/** Dotted keys whose values never appear in logs, errors or output. */
export const SECRET_KEYS = ['opencti.token', 'microsoft_defender_intel.client_secret'] as const;

/** Flows whose required keys are all set. */
export function activeFlows(config: Config): { name: string; missing: string[] }[] {
  const missing = (pairs: [string, unknown][]) => pairs.filter(([, v]) => v === undefined || v === '' || v === 'ChangeMe').map(([k]) => k);
  const d = config.microsoft_defender_intel;
  return [
    {
      name: 'opencti -> microsoft_defender_intel',
      missing: missing([
        ['opencti.url', config.opencti.url],
        ['opencti.token', config.opencti.token],
        ['connector.id', config.connector.id],
        ['connector.live_stream_id', config.connector.live_stream_id],
        ['microsoft_defender_intel.tenant_id', d.tenant_id],
        ['microsoft_defender_intel.client_id', d.client_id],
        ['microsoft_defender_intel.client_secret', d.client_secret],
      ]),
    },
  ];
}
