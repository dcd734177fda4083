// Defender targets: the tenants the indicator sink writes to, each with its own Entra application
// (or the shared multi-tenant one), pacing, cap, id map, reconciliation and protected values, and
// its own route (which sources, scores, types, TLP, labels, action). Configured as a YAML list
// (`microsoft_defender_intel.targets`), its JSON in MICROSOFT_DEFENDER_INTEL_TARGETS, or numbered
// variables DEFENDER_TARGET_<N>_<KEY>; the single-tenant keys (`microsoft_defender_intel.tenant_id`
// …) stay the target named `default`, whose store rows keep the sink name `defender`.
import { z } from 'zod';
import { httpUrl, observableType } from './fields.js';
import { tlpLevel } from '../guard/config.js';
import { DEFENDER_ACTIONS } from '../microsoft/defender/types.js';

/** The name of the target the single-tenant keys describe (an upgrade keeps its store rows). */
export const LEGACY_TARGET = 'default';

/** Store and metrics name of a target's sink: the legacy target keeps `defender`. */
export function defenderSinkName(target: string): string {
  return target === LEGACY_TARGET ? 'defender' : `defender:${target}`;
}

export const targetShape = {
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/i, 'must be 1-40 letters, digits, _ or -, starting with a letter or digit')
    .describe('the target\'s name: labels its metrics, status and decisions and keys its store rows (renaming starts it afresh)'),
  tenant_id: z.string().min(1).describe('Entra ID tenant id (GUID) of this Defender tenant'),
  client_id: z.string().min(1).optional().describe('application (client) id; default the shared microsoft_defender_intel.client_id (a multi-tenant app)'),
  client_secret: z.string().min(1).optional().describe('client secret of that application; default the shared one'),
  base_url: httpUrl.optional().describe('Defender API host of this tenant (geo host); default microsoft_defender_intel.base_url'),
  sources: z.array(z.enum(['opencti', 'misp'])).optional().describe('sources whose indicators go to this tenant (comma list); default every source that targets defender'),
  min_score: z.number().int().min(0).max(100).optional().describe('indicators scored below (or without a score) are not pushed to this tenant'),
  types: z.array(observableType).optional().describe('observable types this tenant takes (comma list, e.g. "ipv4,domain"); default all'),
  max_tlp: tlpLevel.optional().describe('highest TLP this tenant may receive, e.g. green; unmarked indicators pass'),
  labels_include: z.array(z.string().min(1)).default([]).describe('only indicators with at least one of these labels (comma list, case-insensitive)'),
  labels_exclude: z.array(z.string().min(1)).default([]).describe('never indicators with any of these labels (comma list, case-insensitive)'),
  action: z.enum(DEFENDER_ACTIONS).optional().describe('force this action in this tenant (e.g. Audit for a pilot); default the sink\'s policy'),
  max_indicators: z.number().int().min(1).optional().describe('active indicators this tenant holds at most; default microsoft_defender_intel.max_indicators'),
  headroom: z.number().int().min(0).optional().describe('slots of max_indicators left free in this tenant; default microsoft_defender_intel.headroom'),
  protected_values: z.array(z.string().min(1)).default([]).describe('values never enforced in this tenant, on top of the guard\'s list (domains, IPs/CIDRs, URLs, hashes; comma list)'),
};

export const targetSchema = z.object(targetShape).strict();
export type TargetInput = z.infer<typeof targetSchema>;

export const targetsField = z.array(targetSchema).default([])
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((t, i) => {
      const name = t.name.toLowerCase();
      if (seen.has(name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `target name "${t.name}" is used twice; names must be unique` });
      seen.add(name);
    });
  })
  .describe('Defender tenants to write to, each with its own route (see doc/tenants.md); or numbered DEFENDER_TARGET_<N>_<KEY> variables');

/** Numbered variables: DEFENDER_TARGET_<N>_<KEY>. */
export const TARGET_ENV = /^DEFENDER_TARGET_(\d{1,3})_([A-Z_]+)$/;

export function targetEnvName(n: number, key: string): string {
  return `DEFENDER_TARGET_${n}_${key.toUpperCase()}`;
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

/** The configured targets: the single-tenant keys as `default` (when set), then the list. */
export function resolveTargets(d: DefenderKeys): DefenderTarget[] {
  const out: DefenderTarget[] = [];
  const none: TargetFilter = { sources: null, minScore: null, types: null, maxTlp: null, labelsInclude: new Set(), labelsExclude: new Set() };
  if (d.tenant_id) {
    out.push({ name: LEGACY_TARGET, sink: defenderSinkName(LEGACY_TARGET), tenantId: d.tenant_id, clientId: d.client_id, clientSecret: d.client_secret,
      baseUrl: undefined, filter: none, action: undefined, maxIndicators: undefined, headroom: undefined, protectedValues: [], index: -1 });
  }
  d.targets.forEach((t, index) => {
    out.push({
      name: t.name, sink: defenderSinkName(t.name), tenantId: t.tenant_id,
      clientId: t.client_id ?? d.client_id, clientSecret: t.client_secret ?? d.client_secret, baseUrl: t.base_url,
      filter: {
        sources: t.sources ? new Set(t.sources) : null, minScore: t.min_score ?? null, types: t.types ? new Set(t.types) : null,
        maxTlp: t.max_tlp ?? null, labelsInclude: lowerSet(t.labels_include), labelsExclude: lowerSet(t.labels_exclude),
      },
      action: t.action, maxIndicators: t.max_indicators, headroom: t.headroom, protectedValues: t.protected_values, index,
    });
  });
  return out;
}

/** Every secret value of the targets (scrubbed from logs and output). */
export function targetSecrets(d: DefenderKeys): string[] {
  return d.targets.map((t) => t.client_secret).filter((s): s is string => typeof s === 'string');
}
