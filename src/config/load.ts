// Loads config.yml, overlays environment variables (the variable wins), validates with the
// one schema and turns every problem into a message naming the key, the variable and the fix.
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, SECRET_KEYS, type Config } from './schema.js';

export class ConfigError extends Error {
  readonly code = 'config_invalid';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/** `microsoft_defender_intel.client_id` → `MICROSOFT_DEFENDER_INTEL_CLIENT_ID`. */
export function envName(dottedKey: string): string {
  return dottedKey.replace(/\./g, '_').toUpperCase();
}

type Kind = 'string' | 'number' | 'boolean' | 'array' | 'record' | 'other';

// Unwrap optional/default/pipe wrappers to learn how an environment string must be read.
function kindOf(schema: z.ZodType): Kind {
  let s: { _zod: { def: Record<string, unknown> & { type: string } } } = schema as never;
  for (;;) {
    const def = s._zod.def;
    if (['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch'].includes(def.type)) s = def['innerType'] as never;
    else if (def.type === 'pipe') s = def['in'] as never;
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
      if (value.startsWith('[')) return safeJson(value);
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
  const merged: Record<string, unknown> = structuredClone(yamlDoc);
  for (const [section, shape] of sectionShapes()) {
    for (const [key, schema] of Object.entries(shape)) {
      const raw = env[envName(`${section}.${key}`)];
      if (raw === undefined || raw.trim() === '') continue;
      const target = (merged[section] ??= {}) as Record<string, unknown>;
      if (typeof target !== 'object' || target === null) continue;
      target[key] = parseEnvValue(kindOf(schema), raw);
    }
  }
  return merged;
}

function describeIssue(issue: z.core.$ZodIssue, merged: Record<string, unknown>): string {
  const dotted = issue.path.map(String).join('.');
  const [section, key] = issue.path.map(String);
  const isSecret = (SECRET_KEYS as readonly string[]).includes(`${section}.${key}`);
  const shape = sectionShapes().find(([s]) => s === section)?.[1];
  const hint = key && shape?.[key]?.description;
  if (issue.code === 'unrecognized_keys') {
    const where = dotted ? `${dotted}.` : '';
    return `${issue.keys.map((k) => where + k).join(', ')}: unknown key; check the spelling against doc/configuration.md`;
  }
  let value = '';
  if (!isSecret && section && key) {
    const v = (merged[section] as Record<string, unknown> | undefined)?.[key];
    if (v !== undefined) value = ` (got ${JSON.stringify(v)?.slice(0, 80)})`;
  }
  const envHint = section && key ? ` [env ${envName(`${section}.${key}`)}]` : '';
  return `${dotted}${envHint}: ${issue.message}${value}${hint ? `; expected: ${hint}` : ''}`;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Explicit file; otherwise CONFIG_FILE, else ./config.yml when it exists. */
  file?: string;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const explicit = options.file ?? env['CONFIG_FILE'];
  const yamlDoc = readYaml(explicit ?? './config.yml', explicit !== undefined && explicit !== '');
  const merged = mergeSources(yamlDoc, env);
  const result = configSchema.safeParse(merged);
  if (!result.success) throw new ConfigError(result.error.issues.map((i) => describeIssue(i, merged)));
  return result.data;
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
