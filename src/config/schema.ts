// One zod schema for the whole service, composed of one section per external system (each
// system's folder owns its section). Every key `section.key_name` can also be set by the
// environment variable `SECTION_KEY_NAME` (OpenCTI's convention); see load.ts.
// `.describe()` texts double as the "how to fix" hint in start-up errors.
import { z } from 'zod';
import { logLevel } from './fields.js';
import { DEFENDER_SECRET_KEYS, defenderSection } from '../sinks/defender/config.js';
import { OPENCTI_SECRET_KEYS, openctiSection } from '../sources/opencti/config.js';

export { DEFENDER_ACTIONS, type DefenderActionInput } from '../sinks/defender/config.js';

export const configSchema = z
  .object({
    opencti: openctiSection,
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
        engine: z.enum(['sqlite', 'postgres']).default('sqlite').describe('sqlite (embedded, one process) or postgres (shared by several replicas; needs store.url)'),
        dir: z.string().min(1).default('./data').describe('state directory for the SQLite store'),
        url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// connection URL').optional().describe('PostgreSQL connection URL, e.g. postgres://user:password@host:5432/db (engine postgres)'),
        schema: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower-case SQL identifier').default('threatbridge').describe('PostgreSQL schema holding the tables (created when missing)'),
        source_lock_retry: z.number().int().min(1).default(5).describe('seconds between attempts of a standby replica to become the reader of a source'),
      })
      .strict()
      .superRefine((s, ctx) => {
        if (s.engine === 'postgres' && !s.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'required when store.engine is postgres' });
      })
      .prefault({}),
    pipeline: z
      .object({
        batch_size: z.number().int().min(1).max(10000).default(500).describe('events per store transaction'),
        batch_ms: z.number().int().min(1).max(60000).default(200).describe('max ms an event waits before its batch commits'),
        queue_size: z.number().int().min(10).default(5000).describe('events buffered before the source pauses'),
      })
      .strict()
      .prefault({}),
    microsoft_defender_intel: defenderSection,
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type DefenderConfig = Config['microsoft_defender_intel'];

/** Dotted keys whose values never appear in logs, errors or output. */
export const SECRET_KEYS: readonly string[] = [...OPENCTI_SECRET_KEYS, ...DEFENDER_SECRET_KEYS, 'store.url'];
