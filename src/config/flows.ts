// Which flows the configuration asks for, and what each still lacks. A flow is *wanted* when its
// source is configured (and, for indicator sources, lists the sink in `<source>.targets`); a wanted
// flow must have every required key, or start-up stops naming them.
import { INDICATOR_SINKS, type IndicatorSinkName } from './fields.js';
import { ConfigError } from './errors.js';
import { targetKeyName } from './load.js';
import type { Config } from './schema.js';

export interface FlowStatus {
  /** e.g. "opencti -> defender" */
  name: string;
  source: string;
  sink: string;
  wanted: boolean;
  /** Required keys that are unset or still the sample's placeholder. */
  missing: string[];
  /** One line per missing key: the key, its variable and the fix. */
  problems: string[];
}

type Pairs = [string, unknown][];

/** config.yml.sample's placeholders: a value still equal to one of them counts as unset. */
export const PLACEHOLDERS: readonly string[] = ['ChangeMe', '00000000-0000-4000-8000-000000000000'];

const unset = (v: unknown) => v === undefined || v === '' || PLACEHOLDERS.includes(v as string);
const missing = (pairs: Pairs) => pairs.filter(([, v]) => unset(v)).map(([k]) => k);

const envOf = (key: string) => key.replace(/\./g, '_').toUpperCase();

/** Why a required key is not usable, and how to fix it. */
function keyProblem(key: string, value: unknown): string {
  const target = /^(microsoft_defender_intel|sentinel)\.targets\[(\d+)\]\.(\w+)$/.exec(key);
  if (target) {
    // A target's application: its own key (the numbered variable that set the target, or YAML), or the shared one.
    const where = targetKeyName(process.env, [target[1]!, 'targets', target[2]!, target[3]!]);
    const prefix = target[1] === 'sentinel' ? 'SENTINEL_TARGET' : 'DEFENDER_TARGET';
    const own = where.env ?? `${prefix}_<N>_${target[3]!.toUpperCase()}`;
    return `${where.label} [env ${own} or the shared MICROSOFT_DEFENDER_INTEL_${target[3]!.toUpperCase()}]: required; set the target's own application or the shared multi-tenant one`;
  }
  const where = `${key} [env ${envOf(key)}]`;
  if (key === 'connector.id' && value === PLACEHOLDERS[1]) {
    return `${where}: still the placeholder UUID of config.yml.sample; give this connector its own UUID v4 (e.g. the output of \`uuidgen\`)`;
  }
  if (value !== undefined && value !== '') return `${where}: still the placeholder "${String(value)}" from config.yml.sample; set the real value`;
  return `${where}: required; set it in config.yml or the environment`;
}
const problemsOf = (pairs: Pairs) => pairs.filter(([, v]) => unset(v)).map(([k, v]) => keyProblem(k, v));

/** Entra ID application credentials; every Microsoft API flow uses them. */
export function microsoftCredentialKeys(c: Config): Pairs {
  const d = c.microsoft_defender_intel;
  return [
    ['microsoft_defender_intel.tenant_id', d.tenant_id],
    ['microsoft_defender_intel.client_id', d.client_id],
    ['microsoft_defender_intel.client_secret', d.client_secret],
  ];
}

/** Sentinel: its workspace, and its own Entra credentials where set, else the shared ones. */
export function sentinelKeys(c: Config): Pairs {
  const s = c.sentinel;
  const shared = microsoftCredentialKeys(c);
  const own: Pairs = [['sentinel.tenant_id', s.tenant_id], ['sentinel.client_id', s.client_id], ['sentinel.client_secret', s.client_secret]];
  const credentials = own.map((pair, i) => (unset(pair[1]) ? shared[i]! : pair));
  if (s.targets.length === 0) return [['sentinel.workspace_id', s.workspace_id], ...credentials];
  // Several workspaces: each needs an application (its own, sentinel.*, or the Defender one).
  const legacy: Pairs = s.workspace_id ? credentials : [];
  return [...legacy, ...s.targets.flatMap((t, i): Pairs => [
    [`sentinel.targets[${i}].tenant_id`, t.tenant_id ?? s.tenant_id ?? c.microsoft_defender_intel.tenant_id],
    [`sentinel.targets[${i}].client_id`, t.client_id ?? s.client_id ?? c.microsoft_defender_intel.client_id],
    [`sentinel.targets[${i}].client_secret`, t.client_secret ?? s.client_secret ?? c.microsoft_defender_intel.client_secret],
  ])];
}

/**
 * Defender indicator sink: the single-tenant keys, or every target's tenant with its own
 * application or the shared one (`microsoft_defender_intel.targets[i].client_id` names a target's need).
 */
export function defenderSinkKeys(c: Config): Pairs {
  const d = c.microsoft_defender_intel;
  if (d.targets.length === 0) return microsoftCredentialKeys(c);
  const legacy: Pairs = d.tenant_id ? microsoftCredentialKeys(c) : [];
  return [...legacy, ...d.targets.flatMap((t, i): Pairs => [
    [`microsoft_defender_intel.targets[${i}].client_id`, t.client_id ?? d.client_id],
    [`microsoft_defender_intel.targets[${i}].client_secret`, t.client_secret ?? d.client_secret],
  ])];
}

const INDICATOR_SINK_KEYS: Record<IndicatorSinkName, (c: Config) => Pairs> = {
  defender: defenderSinkKeys,
  sentinel: sentinelKeys,
};

interface IndicatorSourceSpec {
  source: string;
  wanted(c: Config): boolean;
  targets(c: Config): readonly string[];
  required(c: Config): Pairs;
}

const INDICATOR_SOURCES: IndicatorSourceSpec[] = [
  {
    source: 'opencti',
    wanted: (c) => !unset(c.opencti.url) || !unset(c.connector.live_stream_id),
    targets: (c) => c.opencti.targets,
    required: (c) => [
      ['opencti.url', c.opencti.url],
      ['opencti.token', c.opencti.token],
      ['connector.id', c.connector.id],
      ['connector.live_stream_id', c.connector.live_stream_id],
    ],
  },
  {
    source: 'misp',
    wanted: (c) => !unset(c.misp.url) || !unset(c.misp.zmq_url),
    targets: (c) => c.misp.targets,
    required: (c) => [
      ['misp.url', c.misp.url],
      ['misp.key', c.misp.key],
      ...(c.misp.otx_exclude ? [['otx.api_key', c.otx.api_key] as [string, unknown]] : []),
      ...(c.misp.zmq_username ? [['misp.zmq_password', c.misp.zmq_password] as [string, unknown]] : []),
    ],
  },
];

/** Defender assets → CAR: wanted when `car.url` is set; Basic auth or a car-token. */
function carFlowKeys(c: Config): Pairs {
  const auth: Pairs = unset(c.car.token)
    ? [['car.api_key', c.car.api_key], ['car.password', c.car.password]]
    : [['car.token', c.car.token]];
  return [['car.url', c.car.url], ...auth, ...microsoftCredentialKeys(c)];
}

export function flowStatuses(c: Config): FlowStatus[] {
  const flows: FlowStatus[] = [];
  for (const spec of INDICATOR_SOURCES) {
    for (const sink of INDICATOR_SINKS) {
      const required = [...spec.required(c), ...INDICATOR_SINK_KEYS[sink](c)];
      flows.push({
        name: `${spec.source} -> ${sink}`,
        source: spec.source,
        sink,
        wanted: spec.wanted(c) && spec.targets(c).includes(sink),
        missing: missing(required),
        problems: problemsOf(required),
      });
    }
  }
  for (const spec of OTHER_FLOWS) {
    const required = spec.required(c);
    flows.push({ name: `${spec.source} -> ${spec.sink}`, source: spec.source, sink: spec.sink, wanted: spec.wanted(c), missing: missing(required), problems: problemsOf(required) });
  }
  const car = carFlowKeys(c);
  flows.push({ name: 'defender_assets -> car', source: 'defender_assets', sink: 'car', wanted: !unset(c.car.url), missing: missing(car), problems: problemsOf(car) });
  return flows;
}

/** Flows with their own source and sink (not through the indicator hub). */
const OTHER_FLOWS: { source: string; sink: string; wanted(c: Config): boolean; required(c: Config): Pairs }[] = [
  {
    source: 'defender_alerts',
    sink: 'iris',
    wanted: (c) => c.defender_alerts.enabled && !unset(c.iris.url),
    required: (c) => [
      ['iris.url', c.iris.url],
      ['iris.api_key', c.iris.api_key],
      ['iris.customer_id', c.iris.customer_id],
      ...microsoftCredentialKeys(c),
    ],
  },
  {
    source: 'defender_alerts',
    sink: 'opencti-sightings',
    wanted: (c) => c.defender_alerts.enabled && c.sightings.opencti_enabled,
    required: (c) => [['opencti.url', c.opencti.url], ['opencti.token', c.opencti.token], ...microsoftCredentialKeys(c)],
  },
  {
    source: 'defender_alerts',
    sink: 'misp-sightings',
    wanted: (c) => c.defender_alerts.enabled && c.sightings.misp_enabled,
    required: (c) => [['misp.url', c.misp.url], ['misp.key', c.misp.key], ...microsoftCredentialKeys(c)],
  },
];

/** Flows that are wanted and fully configured. */
export function activeFlows(c: Config): FlowStatus[] {
  return flowStatuses(c).filter((f) => f.wanted && f.missing.length === 0);
}

/** Indicator sinks some active flow feeds. */
export function activeIndicatorSinks(c: Config): Set<string> {
  return new Set(activeFlows(c).map((f) => f.sink).filter((s) => (INDICATOR_SINKS as readonly string[]).includes(s)));
}

/** Sources some active flow reads. */
export function activeSources(c: Config): Set<string> {
  return new Set(activeFlows(c).map((f) => f.source));
}

/**
 * Start-up check: the problems that stop the service, as `key: what to do` lines; empty when at
 * least one flow is wanted and every wanted flow is complete.
 */
export function flowProblems(c: Config): { missingKeys: string[]; noFlow: string | null } {
  const statuses = flowStatuses(c);
  const wanted = statuses.filter((f) => f.wanted);
  if (wanted.length === 0) {
    const hints = statuses.map((f) => `${f.name}: set ${f.missing.map((k) => `${k} [${envOf(k)}]`).join(', ') || 'its source keys'}`);
    return { missingKeys: [], noFlow: `no flow is configured; configure at least one:\n    ${hints.join('\n    ')}` };
  }
  return { missingKeys: [...new Set(wanted.flatMap((f) => f.missing))], noFlow: null };
}

/**
 * Everything that stops start-up beyond the schema, per flow (never merged across flows): the one
 * check `run`, `run --once` and `check-config` share.
 */
export function startupProblems(c: Config): string[] {
  const problems = flowProblems(c);
  if (problems.noFlow) return [problems.noFlow];
  return flowStatuses(c).filter((f) => f.wanted).flatMap((f) => f.problems.map((p) => `${f.name}: ${p}`));
}

/** Throws the start-up problems as one ConfigError (exit code 78 in the CLI). */
export function assertStartable(c: Config): void {
  const problems = startupProblems(c);
  if (problems.length > 0) throw new ConfigError(problems);
}
