// Defender targets (and Sentinel workspaces, the same way): the tenants the indicator sink writes to, each with its own Entra application
// (or the shared multi-tenant one), pacing, cap, id map, reconciliation and protected values, and
// its own route (which sources, scores, types, TLP, labels, action). Configured as a YAML list
// (`microsoft_defender_intel.targets`), its JSON in MICROSOFT_DEFENDER_INTEL_TARGETS, or numbered
// variables DEFENDER_TARGET_<N>_<KEY>; the single-tenant keys (`microsoft_defender_intel.tenant_id`
// …) stay the target named `default`, whose store rows keep the sink name `defender`.
import { z } from 'zod';
import { httpUrl, observableType } from './fields.js';
import { tlpLevel } from '../guard/config.js';
import { tlpRank } from '../guard/tlp.js';
import type { Claim } from '../core/types.js';
import { DEFENDER_ACTIONS } from '../microsoft/defender/types.js';

/** The name of the target the single-tenant keys describe (an upgrade keeps its store rows). */
export const LEGACY_TARGET = 'default';

/** Store and metrics name of a target's sink: the legacy target keeps `defender`. */
export function defenderSinkName(target: string): string {
  return target === LEGACY_TARGET ? 'defender' : `defender:${target}`;
}

const targetName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/i, 'must be 1-40 letters, digits, _ or -, starting with a letter or digit')
  .describe('the target\'s name: labels its metrics, status and decisions and keys its store rows (renaming starts it afresh)');

/** What a target's route lets through: the same keys for a Defender tenant and a Sentinel workspace. */
const routeShape = {
  sources: z.array(z.enum(['opencti', 'misp'])).optional().describe('sources whose indicators go to this target (comma list); default every source that targets the sink'),
  min_score: z.number().int().min(0).max(100).optional().describe('indicators scored below (or without a score) are not pushed to this target'),
  types: z.array(observableType).optional().describe('observable types this target takes (comma list, e.g. "ipv4,domain"); default all'),
  max_tlp: tlpLevel.optional().describe('highest TLP this target may receive, e.g. green; unmarked indicators pass'),
  labels_include: z.array(z.string().min(1)).default([]).describe('only indicators with at least one of these labels (comma list, case-insensitive)'),
  labels_exclude: z.array(z.string().min(1)).default([]).describe('never indicators with any of these labels (comma list, case-insensitive)'),
};

export const targetShape = {
  name: targetName,
  tenant_id: z.string().min(1).describe('Entra ID tenant id (GUID) of this Defender tenant'),
  client_id: z.string().min(1).optional().describe('application (client) id; default the shared microsoft_defender_intel.client_id (a multi-tenant app)'),
  client_secret: z.string().min(1).optional().describe('client secret of that application; default the shared one'),
  base_url: httpUrl.optional().describe('Defender API host of this tenant (geo host); default microsoft_defender_intel.base_url'),
  ...routeShape,
  action: z.enum(DEFENDER_ACTIONS).optional().describe('force this action in this tenant (e.g. Audit for a pilot); default the sink\'s policy'),
  max_indicators: z.number().int().min(1).optional().describe('active indicators this tenant holds at most; default microsoft_defender_intel.max_indicators'),
  headroom: z.number().int().min(0).optional().describe('slots of max_indicators left free in this tenant; default microsoft_defender_intel.headroom'),
  protected_values: z.array(z.string().min(1)).default([]).describe('values never enforced in this tenant, on top of the guard\'s list (domains, IPs/CIDRs, URLs, hashes; comma list)'),
};

export const targetSchema = z.object(targetShape).strict();
export type TargetInput = z.infer<typeof targetSchema>;

/** A Sentinel workspace: its own workspace id and (optionally) application, with a route. */
export const sentinelTargetShape = {
  name: targetName,
  workspace_id: z.string().regex(/^[A-Za-z0-9-]+$/, 'must be the Log Analytics workspace id (a GUID), not a name or URL').describe('Log Analytics workspace id (GUID)'),
  tenant_id: z.string().min(1).optional().describe('Entra tenant id of the workspace; default sentinel.tenant_id, else microsoft_defender_intel.tenant_id'),
  client_id: z.string().min(1).optional().describe('application id with Microsoft Sentinel Contributor on the workspace; default the shared one'),
  client_secret: z.string().min(1).optional().describe('its client secret; default the shared one'),
  ...routeShape,
};
export const sentinelTargetSchema = z.object(sentinelTargetShape).strict();
export type SentinelTargetInput = z.infer<typeof sentinelTargetSchema>;

function uniqueNames<T extends { name: string }>(list: T[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  list.forEach((t, i) => {
    const name = t.name.toLowerCase();
    if (seen.has(name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `target name "${t.name}" is used twice; names must be unique` });
    seen.add(name);
  });
}

export const targetsField = z.array(targetSchema).default([]).superRefine(uniqueNames)
  .describe('Defender tenants to write to, each with its own route (see doc/tenants.md); or numbered DEFENDER_TARGET_<N>_<KEY> variables');

export const sentinelTargetsField = z.array(sentinelTargetSchema).default([]).superRefine(uniqueNames)
  .describe('Sentinel workspaces to upload to, each with its own route (see doc/tenants.md); or numbered SENTINEL_TARGET_<N>_<KEY> variables');

/** The two numbered forms: DEFENDER_TARGET_<N>_<KEY> and SENTINEL_TARGET_<N>_<KEY>, by config section. */
export const NUMBERED_TARGETS = [
  { section: 'microsoft_defender_intel', prefix: 'DEFENDER_TARGET', shape: targetShape as Record<string, z.ZodType> },
  { section: 'sentinel', prefix: 'SENTINEL_TARGET', shape: sentinelTargetShape as Record<string, z.ZodType> },
] as const;

export function targetEnvName(n: number, key: string, prefix = 'DEFENDER_TARGET'): string {
  return `${prefix}_${n}_${key.toUpperCase()}`;
}

/** Store and metrics name of a Sentinel workspace's sink: the one of `sentinel.workspace_id` keeps `sentinel`. */
export function sentinelSinkName(target: string): string {
  return target === LEGACY_TARGET ? 'sentinel' : `sentinel:${target}`;
}

/** What a target's route lets through (the router applies it to claims). */
export interface TargetFilter {
  sources: ReadonlySet<string> | null;
  minScore: number | null;
  types: ReadonlySet<string> | null;
  maxTlp: string | null;
  labelsInclude: ReadonlySet<string>;
  labelsExclude: ReadonlySet<string>;
}

/** One Defender tenant the sink writes to, resolved against the shared keys. */
export interface DefenderTarget {
  name: string;
  /** Store, metrics and outbox name of its sink. */
  sink: string;
  tenantId: string;
  clientId: string | undefined;
  clientSecret: string | undefined;
  baseUrl: string | undefined;
  filter: TargetFilter;
  action: (typeof DEFENDER_ACTIONS)[number] | undefined;
  maxIndicators: number | undefined;
  headroom: number | undefined;
  protectedValues: string[];
  /** Where its keys come from, for error messages: `DEFENDER_TARGET_2_` style prefix or a YAML path. */
  index: number;
}

interface DefenderKeys {
  tenant_id?: string | undefined;
  client_id?: string | undefined;
  client_secret?: string | undefined;
  targets: TargetInput[];
}

const lowerSet = (list: string[]) => new Set(list.map((s) => s.toLowerCase()));

const NO_FILTER: TargetFilter = { sources: null, minScore: null, types: null, maxTlp: null, labelsInclude: new Set(), labelsExclude: new Set() };

function filterOf(t: Pick<TargetInput, 'sources' | 'min_score' | 'types' | 'max_tlp' | 'labels_include' | 'labels_exclude'>): TargetFilter {
  return {
    sources: t.sources ? new Set(t.sources) : null, minScore: t.min_score ?? null, types: t.types ? new Set(t.types) : null,
    maxTlp: t.max_tlp ?? null, labelsInclude: lowerSet(t.labels_include), labelsExclude: lowerSet(t.labels_exclude),
  };
}

/**
 * Does a target's route take this claim? Sources, minimum score (no score fails a minimum),
 * observable types, TLP ceiling (unmarked passes), labels to include (any) and exclude (none).
 */
export function targetAccepts(f: TargetFilter, claim: Claim): boolean {
  const c = claim.change;
  if (f.sources && !f.sources.has(c.sourceRef.system)) return false;
  if (f.minScore !== null && (c.score === null || c.score < f.minScore)) return false;
  // hostname and domain are one key (observableKey): a route naming either takes both.
  const type = c.observable.type === 'hostname' ? 'domain' : c.observable.type;
  if (f.types && !f.types.has(type) && !(type === 'domain' && f.types.has('hostname'))) return false;
  if (f.maxTlp !== null && c.tlp !== null && tlpRank(c.tlp) > tlpRank(f.maxTlp)) return false;
  if (f.labelsInclude.size || f.labelsExclude.size) {
    const labels = c.labels.map((l) => String(l).toLowerCase());
    if (f.labelsInclude.size && !labels.some((l) => f.labelsInclude.has(l))) return false;
    if (labels.some((l) => f.labelsExclude.has(l))) return false;
  }
  return true;
}

/** What makes any target's route match nothing, whatever the sink: sources none of which feeds it, every included label excluded. */
export function targetRouteWarnings(f: TargetFilter, feeding: readonly string[], sink: string): string[] {
  const out: string[] = [];
  if (f.sources && ![...f.sources].some((s) => feeding.includes(s))) {
    out.push(`takes sources ${[...f.sources].join(', ')}, but only ${feeding.join(', ') || 'none'} feed ${sink}`);
  }
  if (f.labelsInclude.size && [...f.labelsInclude].every((l) => f.labelsExclude.has(l))) out.push('every label it includes is also excluded');
  return out;
}

/** One Sentinel workspace the sink uploads to, resolved against the shared keys. */
export interface SentinelTarget {
  name: string;
  sink: string;
  workspaceId: string;
  /** Own credentials where set; the sink falls back to sentinel.* then microsoft_defender_intel.*. */
  tenantId: string | undefined;
  clientId: string | undefined;
  clientSecret: string | undefined;
  filter: TargetFilter;
}

/** The configured workspaces: `sentinel.workspace_id` as `default` (when set), then the list. */
export function resolveSentinelTargets(s: { workspace_id?: string | undefined; targets: SentinelTargetInput[] }): SentinelTarget[] {
  const out: SentinelTarget[] = [];
  if (s.workspace_id) {
    out.push({ name: LEGACY_TARGET, sink: sentinelSinkName(LEGACY_TARGET), workspaceId: s.workspace_id, tenantId: undefined, clientId: undefined, clientSecret: undefined, filter: NO_FILTER });
  }
  for (const t of s.targets) {
    out.push({ name: t.name, sink: sentinelSinkName(t.name), workspaceId: t.workspace_id, tenantId: t.tenant_id, clientId: t.client_id, clientSecret: t.client_secret, filter: filterOf(t) });
  }
  return out;
}

/** The configured targets: the single-tenant keys as `default` (when set), then the list. */
export function resolveTargets(d: DefenderKeys): DefenderTarget[] {
  const out: DefenderTarget[] = [];
  const none = NO_FILTER;
  if (d.tenant_id) {
    out.push({ name: LEGACY_TARGET, sink: defenderSinkName(LEGACY_TARGET), tenantId: d.tenant_id, clientId: d.client_id, clientSecret: d.client_secret,
      baseUrl: undefined, filter: none, action: undefined, maxIndicators: undefined, headroom: undefined, protectedValues: [], index: -1 });
  }
  d.targets.forEach((t, index) => {
    out.push({
      name: t.name, sink: defenderSinkName(t.name), tenantId: t.tenant_id,
      clientId: t.client_id ?? d.client_id, clientSecret: t.client_secret ?? d.client_secret, baseUrl: t.base_url,
      filter: filterOf(t),
      action: t.action, maxIndicators: t.max_indicators, headroom: t.headroom, protectedValues: t.protected_values, index,
    });
  });
  return out;
}

/** Every secret value of the targets of both sinks (scrubbed from logs and output). */
export function targetSecrets(d: { targets: { client_secret?: string | undefined }[] }, s: { targets: { client_secret?: string | undefined }[] } = { targets: [] }): string[] {
  return [...d.targets, ...s.targets].map((t) => t.client_secret).filter((x): x is string => typeof x === 'string');
}
