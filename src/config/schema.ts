// One zod schema for the whole service, composed of one section per external system (each
// system's folder owns its section). Every key `section.key_name` can also be set by the
// environment variable `SECTION_KEY_NAME` (OpenCTI's convention); see load.ts.
// `.describe()` texts double as the "how to fix" hint in start-up errors.
import { z } from 'zod';
import { logLevel } from './fields.js';
import { limitsSection } from './limits.js';
import { DEFENDER_SECRET_KEYS, defenderSection } from '../sinks/defender/config.js';
import { OPENCTI_SECRET_KEYS, openctiSection } from '../sources/opencti/config.js';
import { MISP_SECRET_KEYS, mispSection, OTX_SECRET_KEYS, otxSection } from '../sources/misp/config.js';
import { SENTINEL_SECRET_KEYS, sentinelSection } from '../sinks/sentinel/config.js';
import { DEFENDER_ALERTS_SECRET_KEYS, defenderAlertsSection } from '../sources/defender-alerts/config.js';
import { IRIS_SECRET_KEYS, irisSection } from '../sinks/iris/config.js';
import { guardSection } from '../guard/config.js';
import { CAR_SECRET_KEYS, carSection } from '../sinks/car/config.js';
import { defenderAssetsSection } from '../sources/defender-assets/config.js';
import { sightingsSection } from './sightings.js';

export { DEFENDER_ACTIONS, type DefenderActionInput } from '../microsoft/defender/types.js';

export const configSchema = z
  .object({
    opencti: openctiSection.describe('OpenCTI, the source of the live stream (its stream options are in `connector`, as pycti has them).'),
    connector: z
      .object({
        id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a UUID').optional().describe('a UUID v4 of your own that identifies this connector in OpenCTI (e.g. from `uuidgen`); the sample\'s all-zero placeholder is refused'),
        name: z.string().min(1).default('ThreatBridge').describe('name shown in OpenCTI'),
        log_level: logLevel.default('info').describe('one of trace, debug, info, warn (or warning, as pycti spells it), error (info: start, stop, outages and recoveries; debug adds every skip and routing decision)'),
        // Settings of the official OpenCTI connector that mean nothing here; accepted so its
        // environment works unchanged, and noted at start-up (see ignoredSettings).
        scope: z.string().optional().describe('accepted for compatibility with the official connector (CONNECTOR_SCOPE) and ignored: ThreatBridge reads the indicators of the live stream'),
        type: z.string().optional().describe('accepted for compatibility with the official connector (CONNECTOR_TYPE=STREAM) and ignored'),
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
          .describe('first start only: backfill objects updated up to this ISO date, or "no" to skip the backfill; unset = up to now (OpenCTI\'s own default backfills everything)'),
        live_stream_start_timestamp: z
          .number()
          .int()
          .refine((n) => n === 0 || n > 1e11, 'looks like epoch seconds; give epoch milliseconds')
          .optional()
          .describe('first start only: stream position as epoch milliseconds (epoch seconds are refused: they would silently replay everything)'),
        heartbeat_timeout: z.number().int().min(10).default(45).describe('seconds without any message (OpenCTI heartbeats every 5 s) before reconnecting'),
        ping_interval: z.number().int().min(5).default(40).describe('seconds between pings to OpenCTI'),
        register: z.boolean().default(true).describe('register and ping as a STREAM connector so it is listed in OpenCTI; a refusal is a warning (true|false)'),
        expose_metrics: z.boolean().default(false).describe('serve Prometheus metrics on /metrics (true|false)'),
        metrics_port: z.number().int().min(0).max(65535).default(9095).describe('port of /metrics, /healthz, /readyz'),
        metrics_host: z.string().min(1).default('127.0.0.1').describe('address the health port binds: 127.0.0.1 (this host only) by default; 0.0.0.0 in a container so that probes and Prometheus reach it'),
        status_token: z.string().min(16, 'must be at least 16 characters').optional()
          .describe('token for the /status page when the health port is bound beyond loopback (sent as "Authorization: Bearer …" or once as ?token=); without it the page answers only on loopback'),
        unreachable_after: z.number().int().min(1).default(60).describe('seconds a source or sink may be unreachable before an error is logged (and a line when it recovers)'),
        shutdown_timeout: z.number().int().min(1).default(20).describe('seconds to flush in-flight work on SIGTERM'),
        dry_run: z.boolean().default(false).describe('read, filter and map everything, send nothing to the indicator sinks; operations are recorded and acknowledged (true|false)'),
        write_parsed_indicators: z.string().min(1).optional()
          .describe('file to append every indicator-sink operation to as JSON lines ({at, sink, op, key, dryRun, payload, source}), for review; with or without dry_run'),
        user_agent: z.string().min(1).default('ThreatBridge/0.1').describe('User-Agent header on calls to Microsoft APIs'),
      })
      .strict()
      .prefault({})
      .describe('The connector itself: its identity in OpenCTI, the live-stream options, health and metrics, shutdown and dry run.'),
    store: z
      .object({
        engine: z.enum(['sqlite', 'postgres']).default('sqlite').describe('sqlite (embedded, one process) or postgres (shared by several replicas; needs store.url)'),
        dir: z.string().min(1).default('./data').describe('state directory of the SQLite store (checkpoints, outbox, sink ids, dead letters); mount a volume here'),
        url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// connection URL').optional().describe('PostgreSQL connection URL for engine postgres, e.g. postgres://user:password@host:5432/db (?sslmode=require for TLS; URL-encode reserved characters of the password)'),
        schema: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower-case SQL identifier').default('threatbridge').describe('PostgreSQL schema holding the tables (created when missing)'),
        source_lock_retry: z.number().int().min(1).default(5).describe('seconds between attempts of a standby replica to become the reader of a source'),
        sqlite_thread: z.boolean().default(false)
          .describe('engine sqlite: the service writes the store on a thread of its own, so a commit and its fsync never hold the event loop (stream reading, /healthz, delivery) for more than a few ms; the same throughput for ~35 % more CPU, worth it on a disk with slow fsync and a second core (true|false)'),
      })
      .strict()
      .superRefine((s, ctx) => {
        if (s.engine === 'postgres' && !s.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'required when store.engine is postgres' });
      })
      .prefault({})
      .describe('The state store: checkpoints, outbox, sink ids, dead letters and decisions ([operations](operations.md)).'),
    pipeline: z
      .object({
        batch_size: z.number().int().min(1).max(10000).default(500).describe('events per store transaction'),
        batch_ms: z.number().int().min(1).max(60000).default(200).describe('max ms an event waits before its batch commits'),
        queue_size: z.number().int().min(10).default(5000).describe('events buffered before the source pauses'),
      })
      .strict()
      .prefault({})
      .describe('How events from a source are batched into store transactions.'),
    limits: limitsSection.describe('How big one input may be; what happens when a limit is hit: [operations](operations.md#limits).'),
    microsoft_defender_intel: defenderSection.describe('The Entra ID application every Microsoft Defender flow uses, and the Defender indicator sink. The application needs `Ti.ReadWrite.All` (WindowsDefenderATP, application permission, admin-consented); see [mappings](mappings.md) and [guard](guard.md) for actions and the cap.'),
    misp: mispSection.describe('MISP → the indicator sinks in `misp.targets`. Runs when `misp.url` (or `misp.zmq_url`) is set; then `misp.key` is required. See [misp](misp.md) for the feed, the catch-up and the filters.'),
    otx: otxSection.describe('AlienVault OTX, asked only with `misp.otx_exclude`.'),
    sentinel: sentinelSection.describe('Microsoft Sentinel threat intelligence through the STIX upload API ([sentinel](sentinel.md)). Fed by the sources whose `targets` list `sentinel`; needs `sentinel.workspace_id` and Entra credentials (its own, or the `microsoft_defender_intel` ones).'),
    defender_alerts: defenderAlertsSection.describe('The Defender alerts → DFIR-IRIS flow ([defender-iris](defender-iris.md)); runs when `iris.url` is set and this section is enabled. It uses the `microsoft_defender_intel` credentials and `base_url`; the application needs `Alert.Read.All`.'),
    iris: irisSection.describe('DFIR-IRIS, the sink of Defender alerts. Setting `iris.url` asks for the Defender alerts → IRIS flow.'),
    guard: guardSection.describe('Protected values, the TLP policy and the breakers in front of every enforcing action ([guard](guard.md)).'),
    defender_assets: defenderAssetsSection.describe('The Defender assets poller of the Defender → CAR flow ([defender-car](defender-car.md)). It uses the `microsoft_defender_intel` credentials; the application needs `Machine.Read.All`, `User.Read.All`, `Vulnerability.Read.All`, `AdvancedQuery.Read.All` and `Alert.Read.All`.'),
    car: carSection.describe('IBM Security CAR (Connected Assets and Risk). Setting `car.url` turns the Defender → CAR flow on.'),
    sightings: sightingsSection.describe('Defender custom-indicator hits written back as sightings ([sightings](sightings.md)). Each platform is off until switched on; switching one on starts the Defender alerts poller (with the `defender_alerts` settings and credentials, `Alert.Read.All`) even without IRIS.'),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type DefenderConfig = Config['microsoft_defender_intel'];

/** Dotted keys whose values never appear in logs, errors or output. */
export const SECRET_KEYS: readonly string[] = [
  ...OPENCTI_SECRET_KEYS,
  ...DEFENDER_SECRET_KEYS,
  ...MISP_SECRET_KEYS,
  ...OTX_SECRET_KEYS,
  ...SENTINEL_SECRET_KEYS,
  ...IRIS_SECRET_KEYS,
  ...DEFENDER_ALERTS_SECRET_KEYS,
  ...CAR_SECRET_KEYS,
  'store.url',
  'connector.status_token',
];
