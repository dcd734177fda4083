// Writes doc/configuration.md from the zod schema: one table per section, rows in schema order,
// defaults from parsing an empty configuration, "required" from the flows, secrets marked.
// Deterministic (no dates, no environment), so a unit test can fail when the file is stale.
// Run `npm run docs:config` after adding or changing a key (its `.describe()` is its Meaning).
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { z } from 'zod';
import { flowStatuses } from './flows.js';
import { envName, envPrefixes, schemaKind } from './load.js';
import { configSchema, SECRET_KEYS } from './schema.js';
import { NUMBERED_TARGETS } from './targets.js';

type Def = Record<string, unknown> & { type: string };
const defOf = (s: unknown) => (s as { _zod: { def: Def } })._zod.def;

/** The innermost schema (under optional/default/pipe), where enum values live. */
function core(schema: unknown): Def {
  let def = defOf(schema);
  for (;;) {
    if (['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch'].includes(def.type)) def = defOf(def['innerType']);
    else if (def.type === 'pipe') def = defOf(def['in']);
    else return def;
  }
}

/** A cell must not break the table: `|` is escaped, newlines become spaces. */
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
const code = (text: string) => `\`${text}\``;

function formatDefault(value: unknown): string {
  if (value === undefined) return 'unset';
  if (Array.isArray(value)) return value.length === 0 ? 'empty' : code(value.map(String).join(','));
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    return entries.length === 0 ? 'empty' : code(entries.map(([k, v]) => `${k}=${String(v)}`).join(','));
  }
  return code(String(value));
}

function typeOf(schema: z.ZodType): string {
  const def = core(schema);
  if (def.type === 'enum') return Object.values(def['entries'] as Record<string, string>).map(code).join(' \\| ');
  const kind = schemaKind(schema);
  return { string: 'text', number: 'number', boolean: 'true/false', array: 'list', record: 'map', other: 'JSON' }[kind];
}

const HEADER = `# Configuration reference

<!-- Generated from the zod schema (src/config/) by \`npm run docs:config\`; do not edit by hand:
     change a key's \`.describe()\` text or the prose in src/config/doc.ts, then regenerate. -->

ThreatBridge reads \`config.yml\` (its path from \`CONFIG_FILE\`, default \`./config.yml\`; a missing
default file is fine, a missing \`CONFIG_FILE\` is an error) and the environment. Every YAML key
\`section.key_name\` has the variable \`SECTION_KEY_NAME\`, and **the variable wins**. An empty
variable means "use the default", and so does a key or a section left empty in the YAML file.
Booleans accept \`true/false/yes/no/1/0/on/off\`; lists accept \`a,b,c\` or JSON; maps accept
\`k=v,k2=v2\` or JSON.

**Flows.** A flow runs when its source is configured and, for an indicator source, its \`targets\`
list the sink: OpenCTI → Defender/Sentinel when \`opencti.url\` (or \`connector.live_stream_id\`) is
set; MISP → Defender/Sentinel when \`misp.url\` (or \`misp.zmq_url\`) is set; Defender alerts →
DFIR-IRIS when \`iris.url\` is set and \`defender_alerts.enabled\` is not \`false\`; Defender assets →
IBM CAR when \`car.url\` is set; Defender hits → OpenCTI / MISP sightings when
\`sightings.opencti_enabled\` / \`sightings.misp_enabled\` is true. A flow you started to configure
must be complete: start-up stops and names, per flow, every key it still lacks with its variable.
With no flow configured at all, start-up lists what each flow needs. Values still equal to the
sample's placeholders (\`ChangeMe\`, the all-zero \`connector.id\`) count as unset.

**Checking.** \`threatbridge check-config\` runs the same validation as \`run\` and prints a short
summary (flows, warnings, problems; \`--json\` for machines) with secrets redacted. A problem stops
start-up with exit code 78, naming the key, its variable, the problem and the fix, for example:

\`\`\`
invalid configuration:
  - microsoft_defender_intel.expire_time [env MICROSOFT_DEFENDER_INTEL_EXPIRE_TIME]: Invalid input: expected number, received string (got "ten"); expected: days an indicator lives in Defender
\`\`\`

**Typos.** An unknown key in \`config.yml\` is an error with the closest valid name (the file is
ThreatBridge's alone, so an unknown key there is a mistake). A variable that starts with one of
ThreatBridge's prefixes (${'${PREFIXES}'}) but names no key is a **warning**, printed on
stderr at start and listed by \`check-config\` with the closest valid name, e.g. \`unknown variable
OPENCTI_TOKN — did you mean OPENCTI_TOKEN?\` (a warning because the environment is shared with other
software; a typo of a required key fails anyway, as that key is then missing).

**Secrets** (marked *secret* below) never appear in logs, errors, metrics, links or command output.
URLs must not carry credentials (\`https://user:password@host\`): such a URL is refused at start,
naming its variable; each system has its own token or key setting.
`;

const FOOTER = `
## Other variables
| Variable | Meaning |
|---|---|
| \`CONFIG_FILE\` | path of the YAML file |
| \`NODE_EXTRA_CA_CERTS\` | extra CA certificates to trust (private CAs, the simulators' self-signed certificate) |
| \`THREATBRIDGE_TIME_SCALE\` | simulators only: shortens the client-side pacing windows by this factor. Never set it against real Microsoft APIs |
`;

/** The numbered target variables (DEFENDER_TARGET_<N>_*, SENTINEL_TARGET_<N>_*), from the targets' own shapes. */
function renderTargets(): string[] {
  const out = ['## Targets: several Defender tenants and Sentinel workspaces',
    'Each target is its own sink (`defender:<name>`, `sentinel:<name>`) with its own application, pacing, queue, cap and route; see',
    '[tenants.md](tenants.md). Set them as the YAML list `targets:` of the section, its JSON in `MICROSOFT_DEFENDER_INTEL_TARGETS` /',
    '`SENTINEL_TARGETS`, or numbered variables, one tenant per N (1, 2, …; gaps allowed, order kept). When any numbered variable is',
    'set, they are the list. The single-tenant keys stay the target named `default` (sinks `defender`, `sentinel`). A wrong value is',
    'reported under its variable; an unknown key is an error.', ''];
  for (const { section, prefix, shape } of NUMBERED_TARGETS) {
    out.push(`### \`${prefix}_<N>_<KEY>\` (${section}.targets)`, '', '| Key | Variable | Type | Meaning |', '|---|---|---|---|');
    for (const [key, schema] of Object.entries(shape)) {
      const secret = key === 'client_secret' ? '*secret*; ' : '';
      out.push(`| ${code(key)} | ${code(`${prefix}_<N>_${key.toUpperCase()}`)} | ${typeOf(schema)} | ${cell(secret + (schema.description ?? ''))} |`);
    }
    out.push('');
  }
  return out;
}

export function renderConfigDoc(): string {
  const defaults = configSchema.parse({}) as unknown as Record<string, Record<string, unknown>>;
  const requiredBy = new Map<string, string[]>();
  for (const f of flowStatuses(defaults as never)) {
    for (const key of f.missing) requiredBy.set(key, [...(requiredBy.get(key) ?? []), f.name.replace(' -> ', ' → ')]);
  }
  const out = [HEADER.replace('${PREFIXES}', envPrefixes().map(code).join(', '))];
  for (const [section, sectionSchema] of Object.entries(configSchema.shape)) {
    out.push(`## ${section}`);
    if (sectionSchema.description) out.push(sectionSchema.description.trim(), '');
    out.push('| Key | Variable | Type | Default | Meaning |', '|---|---|---|---|---|');
    let inner: unknown = sectionSchema;
    while (defOf(inner).type !== 'object') inner = defOf(inner)['innerType'];
    for (const [key, schema] of Object.entries((inner as { shape: Record<string, z.ZodType> }).shape)) {
      const dotted = `${section}.${key}`;
      const flows = requiredBy.get(dotted);
      const dflt = flows ? `required by ${flows.join(', ')}` : formatDefault(defaults[section]?.[key]);
      const secret = SECRET_KEYS.includes(dotted) ? '*secret*; ' : '';
      // "(true|false)" in a description is for start-up errors; the Type column says it here.
      const meaning = (schema.description ?? '').replace(/\s*\(true\|false\)/, '');
      out.push(`| ${code(key)} | ${code(envName(dotted))} | ${typeOf(schema)} | ${cell(dflt)} | ${cell(secret + meaning)} |`);
    }
    out.push('');
  }
  out.push(...renderTargets());
  return `${out.join('\n').trimEnd()}\n${FOOTER}`;
}

// `node dist/src/config/doc.js [file]` writes the reference (default doc/configuration.md).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2] ?? 'doc/configuration.md';
  writeFileSync(file, renderConfigDoc());
  process.stdout.write(`wrote ${file}\n`);
}
