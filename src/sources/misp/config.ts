// The `misp` config section: where MISP is, which attributes leave it, and how they are marked.
import { z } from 'zod';
import { httpUrl, indicatorTargets, observableType } from '../../config/fields.js';
import { DEFENDER_ACTIONS } from '../../microsoft/defender/types.js';
import { unknownFilterKey } from './filters.js';

/**
 * Longest expiry sent. Defender documents no maximum for expirationTime; 100 years is what this
 * service has always sent for hashes, and what a 99999-day MISP2Defender setting is cut to.
 */
export const MAX_EXPIRE_DAYS = 36500;

const isPlainObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);

const severity = z.enum(['Informational', 'Low', 'Medium', 'High']);
const scalar = z.union([z.string().min(1), z.number(), z.boolean()]);
const filterValue = z.union([scalar, z.array(scalar).min(1)]);

/** A routing rule: attributes carrying `tag` (and of `type`, when given) get `action`, or never leave (`skip`). */
const rule = z
  .object({
    tag: z.string().min(1).optional(),
    type: z.string().min(1).optional(),
    action: z.enum(['skip', ...DEFENDER_ACTIONS]),
    severity: severity.optional(),
  })
  .strict()
  .refine((r) => r.tag !== undefined || r.type !== undefined, 'a rule needs a tag or a type');

export type MispRule = z.infer<typeof rule>;

/** MISP's relative time ("2d", "12h", "30m", "45s") or epoch seconds. */
/** A CURVE key in Z85 text form (ZeroMQ's 32-byte keys are 40 Z85 characters). */
const curveKey = z.string().regex(/^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/, 'must be a 40-character Z85 CURVE key');

const timeWindow = z.string().regex(/^(\d+[dhms]|\d{9,11})$/, 'must be like 2d, 12h, 30m, 45s or epoch seconds');

export const mispSection = z
  .object({
    url: httpUrl.optional().describe('MISP base URL, e.g. https://misp.example.org'),
    key: z.string().min(1).optional().describe('MISP automation key (40 characters; a sync-role key also sees deletions in other orgs\' events)'),
    verify_cert: z.boolean().default(true).describe('verify MISP TLS certificates (true|false)'),
    zmq_url: z.string().regex(/^tcp:\/\/[^:]+:\d+$/, 'must be like tcp://misp:50000').optional()
      .describe('MISP ZeroMQ publisher, e.g. tcp://misp:50000; unset = REST polling only'),
    zmq_username: z.string().min(1).optional().describe('ZeroMQ PLAIN username (MISP Plugin.ZeroMQ_username)'),
    zmq_password: z.string().min(1).optional().describe('ZeroMQ PLAIN password'),
    zmq_curve_server_key: curveKey.optional()
      .describe('CURVE public key of the ZeroMQ publisher (Z85, 40 characters); set it to encrypt the feed (see doc/misp.md)'),
    zmq_curve_public_key: curveKey.optional().describe('CURVE public key of ThreatBridge (Z85, 40 characters; see doc/misp.md to make a pair)'),
    zmq_curve_secret_key: curveKey.optional().describe('CURVE secret key of ThreatBridge (Z85, 40 characters)'),
    zmq_heartbeat_timeout: z.number().int().min(15).default(60)
      .describe('seconds without any ZeroMQ message (MISP sends misp_json_self after 10 s idle) before reconnecting'),
    targets: indicatorTargets.describe('indicator sinks that get MISP attributes (comma list of defender, sentinel)'),
    catchup_interval: z.number().int().min(10).default(300).describe('seconds between REST catch-ups from the last stored timestamp'),
    full_sync_interval: z.number().int().min(0).default(86400)
      .describe('seconds between full REST syncs that remove what MISP no longer holds (hard deletes); 0 = only on first start'),
    page_size: z.number().int().min(10).max(10000).default(1000).describe('attributes per restSearch page'),
    initial_lookback: timeWindow.optional().describe('first start only: read attributes changed in this window (e.g. 30d); unset = everything'),
    published_only: z.boolean().default(true).describe('only attributes of published events (true|false)'),
    to_ids_only: z.boolean().default(true).describe('only attributes with the IDS flag (true|false)'),
    enforce_warninglist: z.boolean().default(true)
      .describe('drop values that hit a MISP warninglist, on every path: ZeroMQ items wait for MISP\'s answer (true|false)'),
    warninglist_refresh: z.number().int().min(60).default(3600)
      .describe('seconds a warninglist answer for a value is reused before MISP is asked again'),
    publish_timestamp: timeWindow.optional().describe('only events published within this window, e.g. 2d (as MISP2Defender)'),
    tags_include: z.array(z.string().min(1)).default([]).describe('attributes (event or attribute tags) must carry one of these tags'),
    tags_exclude: z.array(z.string().min(1)).default([]).describe('attributes carrying any of these tags never leave'),
    event_filters: z.preprocess((v) => (isPlainObject(v) ? [v] : v), z.array(z.record(z.string(), filterValue).superRefine((entry, ctx) => {
      for (const key of Object.keys(entry)) {
        const why = unknownFilterKey(key);
        if (why) ctx.addIssue({ code: 'custom', message: why, path: [key] });
      }
    })).default([]))
      .describe('JSON list of filters (misp_event_filters; one JSON object, as MISP2Defender has it, is a list of one); an attribute passes when one filter matches: every key must match, a list value is an OR. Keys: type_attribute, values, not_values, date_from, date_to, last, eventid, uuid, withAttachments, not_tags, org, category, tags, publish_timestamp, published (also type, tag, info, threat_level_id, distribution; limit, page and enforceWarninglist select nothing)'),
    vetted_event_tags: z.array(z.string().min(1)).default([])
      .describe('events carrying one of these tags only pass attributes carrying a vetted tag'),
    vetted_attribute_tags: z.array(z.string().min(1)).default(['course-of-action:active="deny"']).describe('tags that vet an attribute'),
    rules: z.array(rule).default([])
      .describe('JSON list of {tag?, type?, action: skip|Audit|Warn|Block|…, severity?}; the first match wins (TLP is guard.max_tlp\'s, whatever a rule says)'),
    action_from_tags: z.boolean().default(true)
      .describe('course-of-action tags pick the action: active deny/degrade/disrupt/deceive → Block, passive/detect/discover → Audit'),
    action: z.enum(DEFENDER_ACTIONS).optional().describe('action when no rule or tag decides; unset = the sink\'s own choice'),
    severity: severity.optional().describe('severity when the event threat level does not decide (1 High, 2 Medium, 3 Low)'),
    severity_override: severity.optional()
      .describe('severity for every attribute whatever the event threat level (MISP2Defender defender_severity); a rule\'s severity or a misp:threat-level tag still wins'),
    application: z.string().min(1).optional().describe('application name on indicators from MISP; unset = the sink\'s'),
    recommended_actions: z.string().min(1).optional().describe('recommendedActions text on indicators from MISP'),
    generate_alert: z.boolean().default(true).describe('ask Defender to alert on hits of non-Audit indicators (true|false)'),
    expire_days: z.number().int().min(1).default(50)
      .describe(`days an attribute lives in the sinks (MISP2Defender: 50); more than ${MAX_EXPIRE_DAYS} is cut to ${MAX_EXPIRE_DAYS} with a warning`),
    expire_days_by_type: z.partialRecord(observableType, z.number().int().min(1))
      .default({ ipv4: 90, ipv6: 90, url: 365, domain: 300, hostname: 300, md5: 36500, sha1: 36500, sha256: 36500 })
      .describe(`per observable type days, e.g. "ipv4=90,url=365" (MISP2Defender's 99999 for hashes is cut to ${MAX_EXPIRE_DAYS})`),
    tlp_clear_expire_days: z.number().int().min(1).default(7).describe('days for TLP:CLEAR / TLP:WHITE attributes'),
    expire_from: z.enum(['valid_from', 'now', 'current_date', 'first_seen']).default('valid_from')
      .describe('count expiry from the attribute\'s timestamp (valid_from, MISP2Defender\'s days_to_expire_start default), from today (now or current_date) or from its first_seen'),
    use_last_seen: z.boolean().default(false).describe('count the expiry days from the attribute\'s last_seen when MISP has one (true|false)'),
    flatten_attributes: z.boolean().default(true)
      .describe('attributes inside MISP objects leave MISP too, as plain attributes (MISP2Defender misp_flatten_attributes) (true|false)'),
    log_events: z.boolean().default(false)
      .describe('log one line per MISP event read (id, info, creator org), as MISP2Defender write_parsed_eventid (true|false)'),
    otx_exclude: z.boolean().default(false).describe('leave out values AlienVault OTX already knows (needs otx.api_key)'),
  })
  .strict()
  .superRefine((m, ctx) => {
    const curve = [m.zmq_curve_server_key, m.zmq_curve_public_key, m.zmq_curve_secret_key];
    if (curve.some((k) => k !== undefined) && curve.some((k) => k === undefined)) {
      for (const [i, key] of ['zmq_curve_server_key', 'zmq_curve_public_key', 'zmq_curve_secret_key'].entries()) {
        if (curve[i] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'required: CURVE needs the publisher\'s public key and this subscriber\'s key pair' });
      }
    }
  })
  .prefault({});

export const MISP_SECRET_KEYS = ['misp.key', 'misp.zmq_password', 'misp.zmq_curve_secret_key'];

export const otxSection = z
  .object({
    api_key: z.string().min(1).optional().describe('AlienVault OTX API key (for misp.otx_exclude)'),
    url: httpUrl.default('https://otx.alienvault.com').describe('OTX API host'),
    cache_hours: z.number().int().min(1).default(24).describe('hours an OTX answer is reused'),
  })
  .strict()
  .prefault({});

export const OTX_SECRET_KEYS = ['otx.api_key'];
