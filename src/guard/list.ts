// The protected list in force: built-in entries, the user's config lists (including hashes of
// files they name) and an optional list file that is watched and reloaded without restart. A bad
// file never replaces a good list: the last good one stays and the log says why.
import { createHash } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { BUILTIN_PROTECTED } from './builtin.js';
import { ProtectedValues, type ProtectedEntry } from './protected-values.js';

/** md5, sha1 and sha256 of a file's content. */
export function fileHashes(path: string): string[] {
  const data = readFileSync(path);
  return ['md5', 'sha1', 'sha256'].map((alg) => createHash(alg).update(data).digest('hex'));
}

/** Entries of a list file: one value per line, `#` starts a comment. */
export function parseListFile(text: string, origin: string): ProtectedEntry[] {
  const out: ProtectedEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    const value = line.replace(/#.*$/, '').trim();
    if (value) out.push({ value, origin });
  }
  return out;
}

type GuardConfig = Config['guard'];

function baseEntries(g: GuardConfig): ProtectedEntry[] {
  const entries: ProtectedEntry[] = [];
  if (g.builtin) for (const b of BUILTIN_PROTECTED) entries.push({ value: b.value, why: b.why, origin: 'builtin' });
  for (const key of ['domains', 'cidrs', 'urls', 'hashes'] as const) {
    for (const value of g[key]) entries.push({ value, origin: `guard.${key}` });
  }
  for (const path of g.files) {
    for (const h of fileHashes(path)) entries.push({ value: h, origin: `guard.files`, why: `hash of ${path}` });
  }
  return entries;
}

export class ProtectedList {
  private values: ProtectedValues;
  private readonly base: ProtectedEntry[];
  private watching = false;
  /** Bumped on every successful reload (tests and logs). */
  generation = 0;
  /** Called after a successful reload (the sink re-checks what it already holds). */
  onReload: ((values: ProtectedValues) => void) | null = null;

  constructor(private readonly g: GuardConfig, private readonly log: Logger) {
    try {
      this.base = baseEntries(g);
    } catch (err) {
      throw new ConfigError([`guard.files [env GUARD_FILES]: cannot read a listed file (${(err as Error).message}); list readable files only`]);
    }
    const bad = new ProtectedValues(this.base).invalid;
    if (bad.length) {
      throw new ConfigError(bad.map((b) => `${b.origin}: "${b.entry}" is not a domain, IP, CIDR, URL or hash (${b.reason}); fix or remove it`));
    }
    const built = this.build();
    if ('error' in built) throw new ConfigError([`guard.list_file [env GUARD_LIST_FILE]: ${built.error}; fix the file`]);
    this.values = built.values;
  }

  get current(): ProtectedValues {
    return this.values;
  }

  private build(): { values: ProtectedValues } | { error: string } {
    let fileEntries: ProtectedEntry[] = [];
    if (this.g.list_file) {
      try {
        fileEntries = parseListFile(readFileSync(this.g.list_file, 'utf8'), this.g.list_file);
      } catch (err) {
        return { error: `cannot read ${this.g.list_file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
      }
    }
    const values = new ProtectedValues([...this.base, ...fileEntries]);
    if (values.invalid.length) {
      return { error: `${values.invalid.length} bad line(s) in ${this.g.list_file}: ${values.invalid.slice(0, 5).map((b) => `"${b.entry}" (${b.reason})`).join('; ')}` };
    }
    return { values };
  }

  /** Re-read the list file; keeps the last good list when the file is bad. True when replaced. */
  reload(): boolean {
    const built = this.build();
    if ('error' in built) {
      this.log.error({ file: this.g.list_file, reason: built.error, entries: this.values.size }, 'protected list file rejected; keeping the last good list');
      return false;
    }
    this.values = built.values;
    this.generation++;
    this.log.info({ file: this.g.list_file, entries: this.values.size, generation: this.generation }, 'protected list reloaded');
    this.onReload?.(this.values);
    return true;
  }

  /** Poll the list file for changes (stat polling survives editors that replace the file). */
  watch(intervalMs = 1000): void {
    if (!this.g.list_file || this.watching) return;
    this.watching = true;
    watchFile(this.g.list_file, { interval: intervalMs, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) this.reload();
    });
  }

  unwatch(): void {
    if (this.g.list_file && this.watching) unwatchFile(this.g.list_file);
    this.watching = false;
  }
}
