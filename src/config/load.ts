// Loads config.yml, overlays environment variables (the variable wins), validates with the
// one schema and turns every problem into a message naming the key, the variable and the fix.
import { existsSync, readFileSync } from 'node:fs';
import { closest, distance } from 'fastest-levenshtein';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { withoutUserinfo } from '../observability/public-text.js';
import { configSchema, SECRET_KEYS, type Config } from './schema.js';
import { NUMBERED_TARGETS, targetEnvName } from './targets.js';
import { ConfigError } from './errors.js';

type TargetSection = (typeof NUMBERED_TARGETS)[number]['section'];
const numberedOf = (section: string) => NUMBERED_TARGETS.find((t) => t.section === section);

/** `microsoft_defender_intel.client_id` → `MICROSOFT_DEFENDER_INTEL_CLIENT_ID`. */
export function envName(dottedKey: string): string {
  return dottedKey.replace(/\./g, '_').toUpperCase();
}

type Kind = 'string' | 'number' | 'boolean' | 'array' | 'record' | 'other';

// Unwrap optional/default/pipe wrappers to learn how an environment string must be read.
export function schemaKind(schema: z.ZodType): Kind {
  let s: { _zod: { def: Record<string, unknown> & { type: string } } } = schema as never;
  for (;;) {
    const def = s._zod.def;
    if (['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch'].includes(def.type)) s = def['innerType'] as never;
    // A preprocess is a pipe from a transform: the schema after it says how to read the variable.
    else if (def.type === 'pipe') s = ((def['in'] as { _zod: { def: { type: string } } })._zod.def.type === 'transform' ? def['out'] : def['in']) as never;
    else break;
  }
  const t = s._zod.def.type;
  if (t === 'enum' || t === 'literal') return 'string';
  return (['string', 'number', 'boolean', 'array', 'record'] as const).find((k) => k === t) ?? 'other';
}

function sectionShapes(): [string, Record<string, z.ZodType>][] {
  return Object.entries(configSchema.shape).map(([section, schema]) => {
    let s: { _zod: { def: Record<string, unknown> & { type: string } } } = schema as never;
    while (s._zod.def.type !== 'object') s = s._zod.def['innerType'] as never;
    return [section, (s as unknown as { shape: Record<string, z.ZodType> }).shape];
  });
}

/** Every dotted key the schema knows, with its description (for docs and the doc test). */
export function configKeys(): { key: string; env: string; description: string }[] {
  return sectionShapes().flatMap(([section, shape]) =>
    Object.entries(shape).map(([key, schema]) => ({
      key: `${section}.${key}`,
      env: envName(`${section}.${key}`),
      description: schema.description ?? '',
    })),
  );
}

function parseEnvValue(kind: Kind, raw: string): unknown {
  const value = raw.trim();
  switch (kind) {
    case 'boolean':
      if (/^(true|yes|1|on)$/i.test(value)) return true;
      if (/^(false|no|0|off)$/i.test(value)) return false;
      return value; // left as a string so validation names the key
    case 'number':
      return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
    case 'array':
      // A JSON object where a list is expected is left to the schema (misp.event_filters takes one).
      if (value.startsWith('[') || value.startsWith('{')) return safeJson(value);
      return value.split(',').map((v) => v.trim()).filter(Boolean);
    case 'record': {
      if (value.startsWith('{')) return safeJson(value);
      const out: Record<string, unknown> = {};
      for (const pair of value.split(',').map((p) => p.trim()).filter(Boolean)) {
        const [k, v = ''] = pair.split('=').map((x) => x.trim());
        if (k) out[k] = /^-?\d+$/.test(v) ? Number(v) : v;
      }
      return out;
    }
    default:
      return value;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function readYaml(path: string, required: boolean): Record<string, unknown> {
  if (!existsSync(path)) {
    if (required) throw new ConfigError([`CONFIG_FILE=${path}: file not found; fix the path or unset CONFIG_FILE`]);
    return {};
  }
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError([`${path}: not valid YAML (${(err as Error).message.split('\n')[0]})`]);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError([`${path}: the top level must be a mapping of sections`]);
  return doc as Record<string, unknown>;
}

/** Merge YAML and environment into the raw object the schema validates. Empty variables mean "default". */
export function mergeSources(yamlDoc: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const merged: Record<string, unknown> = withoutNulls(structuredClone(yamlDoc));
  for (const [section, shape] of sectionShapes()) {
    for (const [key, schema] of Object.entries(shape)) {
      const raw = env[envName(`${section}.${key}`)];
      if (raw === undefined || raw.trim() === '') continue;
      const target = (merged[section] ??= {}) as Record<string, unknown>;
      if (typeof target !== 'object' || target === null) continue;
      target[key] = parseEnvValue(schemaKind(schema), raw);
    }
  }
  for (const { section } of NUMBERED_TARGETS) {
    const numbered = targetsFromEnv(env, section);
    if (!numbered.length) continue;
    const d = (merged[section] ??= {}) as Record<string, unknown>;
    if (typeof d === 'object' && d !== null) d['targets'] = numbered.map((t) => t.values);
  }
  return merged;
}

/**
 * YAML reads a section whose keys are all commented out (`pipeline:`) and a key without a value
 * (`url:`) as null; both mean "not set here", as in config.yml.sample.
 */
function withoutNulls(doc: Record<string, unknown>): Record<string, unknown> {
  for (const [section, value] of Object.entries(doc)) {
    if (value === null) delete doc[section];
    else if (typeof value === 'object' && !Array.isArray(value)) {
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) if (v === null) delete (value as Record<string, unknown>)[key];
    }
  }
  return doc;
}

/** The closest name when it is close enough to be a typo (at most a third of it differs). */
export function didYouMean(name: string, candidates: readonly string[]): string | null {
  if (candidates.length === 0) return null;
  const best = closest(name, candidates as string[]);
  return distance(name, best) <= Math.max(2, Math.floor(best.length / 3)) ? best : null;
}

/** Variable prefixes ThreatBridge owns: the first word of every section (OPENCTI_, MICROSOFT_, DEFENDER_, ...). */
export function envPrefixes(): string[] {
  return [...new Set(sectionShapes().map(([section]) => `${section.split('_')[0]!.toUpperCase()}_`))].sort();
}

/** Variables read outside the schema that carry one of our prefixes. */
const OTHER_VARIABLES: readonly string[] = [];

/**
 * Variables under our prefixes that no key reads, each with the closest valid name. A warning, not
 * an error: the environment is shared with other software (OpenCTI's own OPENCTI_ADMIN_* in a
 * compose .env, for example), while a typo of a required key already fails as "missing".
 */
export function unknownVariables(env: NodeJS.ProcessEnv): string[] {
  const known = configKeys().map((k) => k.env);
  const prefixes = envPrefixes();
  return Object.keys(env)
    // Numbered targets (DEFENDER_TARGET_<N>_*) are read by targetsFromEnv; their unknown keys fail validation.
    .filter((name) => prefixes.some((p) => name.startsWith(p)) && !known.includes(name) && !OTHER_VARIABLES.includes(name)
      && !/^(DEFENDER|SENTINEL)_TARGET_\d{1,3}_/.test(name))
    .sort()
    .map((name) => {
      const near = didYouMean(name, known);
      return `unknown variable ${name}${near ? ` — did you mean ${near}?` : ''} (ignored)`;
    });
}

/**
 * Numbered targets, DEFENDER_TARGET_<N>_<KEY> (or SENTINEL_TARGET_…), in the order of N (gaps
 * allowed). When any is set they are the target list (the variables win over config.yml, as everywhere).
 */
export function targetsFromEnv(env: NodeJS.ProcessEnv, section: TargetSection = 'microsoft_defender_intel'): { n: number; values: Record<string, unknown> }[] {
  const { prefix, shape } = numberedOf(section)!;
  const pattern = new RegExp(`^${prefix}_(\\d{1,3})_([A-Z_]+)$`);
  const byN = new Map<number, Map<string, unknown>>();
  for (const [name, raw] of Object.entries(env)) {
    const m = pattern.exec(name);
    if (!m || raw === undefined || raw.trim() === '') continue;
    const n = Number(m[1]);
    const key = m[2]!.toLowerCase();
    const schema = Object.hasOwn(shape, key) ? shape[key] : undefined;
    const values = byN.get(n) ?? new Map<string, unknown>([['name', `target${n}`]]);
    // An unknown key stays in, so the schema's strictness names it (`__proto__` too: fromEntries
    // makes it a plain own key, never the object's prototype).
    values.set(key, schema ? parseEnvValue(schemaKind(schema), raw) : raw.trim());
    byN.set(n, values);
  }
  return [...byN].sort(([a], [b]) => a - b).map(([n, values]) => ({ n, values: Object.fromEntries(values) }));
}

/** `<section>.targets.<i>.<key>` as the variable that sets it (numbered form) or the YAML path. */
export function targetKeyName(env: NodeJS.ProcessEnv, path: string[]): { label: string; env: string | null } {
  const section = path[0] as TargetSection;
  const i = Number(path[2]);
  const key = path[3];
  const numbered = targetsFromEnv(env, section);
  const yaml = `${section}.targets[${i}]${key ? `.${key}` : ''}`;
  if (numbered.length && numbered[i]) return { label: yaml, env: targetEnvName(numbered[i]!.n, key ?? 'NAME', numberedOf(section)!.prefix) };
  return { label: yaml, env: null };
}

function describeIssue(issue: z.core.$ZodIssue, merged: Record<string, unknown>, env: NodeJS.ProcessEnv): string {
  const path = issue.path.map(String);
  if (numberedOf(path[0] ?? '') && path[1] === 'targets' && path.length >= 3) return describeTargetIssue(issue, path, env);
  const dotted = issue.path.map(String).join('.');
  const [section, key] = issue.path.map(String);
  // The target list carries client secrets: its value is never echoed.
  const isSecret = (SECRET_KEYS as readonly string[]).includes(`${section}.${key}`) || (key === 'targets' && numberedOf(section ?? '') !== undefined);
  const shape = sectionShapes().find(([s]) => s === section)?.[1];
  const hint = key && shape?.[key]?.description;
  if (issue.code === 'unrecognized_keys') {
    const where = dotted ? `${dotted}.` : '';
    const valid = dotted ? Object.keys(shape ?? {}) : sectionShapes().map(([s]) => s);
    return issue.keys.map((k) => {
      const near = issue.path.length <= 1 ? didYouMean(k, valid) : null;
      return `${where}${k}: unknown key${near ? ` — did you mean ${where}${near}?` : ''}; check the spelling against doc/configuration.md`;
    }).join('\n  - ');
  }
  let value = '';
  if (!isSecret && section && key) {
    const v = (merged[section] as Record<string, unknown> | undefined)?.[key];
    if (v !== undefined) value = ` (got ${withoutUserinfo(JSON.stringify(v) ?? '').slice(0, 80)})`;
  }
  const envHint = section && key ? ` [env ${envName(`${section}.${key}`)}]` : '';
  return `${dotted}${envHint}: ${issue.message}${value}${hint ? `; expected: ${hint}` : ''}`;
}

/** A target's problem, named by its variable (numbered form) or YAML path; a secret's value never shown. */
function describeTargetIssue(issue: z.core.$ZodIssue, path: string[], env: NodeJS.ProcessEnv): string {
  const where = targetKeyName(env, path);
  const shape = numberedOf(path[0]!)!.shape;
  if (issue.code === 'unrecognized_keys') {
    const names = issue.keys.map((k) => targetKeyName(env, [...path.slice(0, 3), k]));
    return `${names.map((n) => n.env ?? n.label).join(', ')}: unknown key of a ${path[0] === 'sentinel' ? 'Sentinel' : 'Defender'} target; the keys are ${Object.keys(shape).join(', ')} (doc/tenants.md)`;
  }
  const hint = path[3] ? shape[path[3]]?.description : undefined;
  const envHint = where.env ? ` [env ${where.env}]` : '';
  return `${where.label}${envHint}: ${issue.message}${hint ? `; expected: ${hint}` : ''}`;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Explicit file; otherwise CONFIG_FILE, else ./config.yml when it exists. */
  file?: string;
}

export interface LoadedConfig {
  config: Config;
  /** Problems that do not stop start-up (unknown variables), one line each. */
  warnings: string[];
  /** The YAML file read, or null when none was. */
  file: string | null;
}

/** Load and validate; throws ConfigError naming every problem (key, variable, fix). */
export function loadConfigReport(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const explicit = options.file ?? env['CONFIG_FILE'];
  const path = explicit || './config.yml';
  const yamlDoc = readYaml(path, explicit !== undefined && explicit !== '');
  const merged = mergeSources(yamlDoc, env);
  const result = configSchema.safeParse(merged);
  if (!result.success) throw new ConfigError(result.error.issues.map((i) => describeIssue(i, merged, env)));
  return { config: result.data, warnings: unknownVariables(env), file: existsSync(path) ? path : null };
}

export function loadConfig(options: LoadOptions = {}): Config {
  return loadConfigReport(options).config;
}

/** Flow-specific checks that the schema cannot express (required together). */
export function requireKeys(config: Config, keys: string[]): void {
  const problems: string[] = [];
  for (const k of keys) {
    const [section, key] = k.split('.') as [keyof Config, string];
    const v = (config[section] as Record<string, unknown>)[key];
    if (v === undefined || v === '') problems.push(`${k} [env ${envName(k)}]: required for this flow; set it in config.yml or the environment`);
    else if (v === 'ChangeMe') problems.push(`${k} [env ${envName(k)}]: still the placeholder "ChangeMe" from config.yml.sample; set the real value`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
}
