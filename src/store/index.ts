import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/schema.js';
import { registerSecret, type Logger } from '../observability/logger.js';
import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import { openSqliteThread } from './sqlite-thread.js';
import type { Store } from '../core/store.js';

export type { Store } from '../core/store.js';

/**
 * Opens the configured engine and applies its migrations; `owner` = the service process (not a CLI
 * command), whose SQLite store runs on its own thread when `store.sqlite_thread` is on; `log`
 * hears of that thread stopping.
 */
export async function openStore(config: Config, options: { owner?: boolean; log?: Logger } = {}): Promise<Store> {
  if (config.store.engine === 'postgres') {
    const url = config.store.url;
    if (!url) {
      throw new ConfigError(['store.url [env STORE_URL]: required when store.engine is postgres; give a postgres://user:password@host:5432/db URL']);
    }
    // The password alone may surface in a driver message; keep it out of logs too.
    try { const pw = decodeURIComponent(new URL(url).password); if (pw) registerSecret(pw); } catch { /* the schema checked the form */ }
    try {
      return await PostgresStore.open({ url, schema: config.store.schema });
    } catch (err) {
      throw new ConfigError([`store.url [env STORE_URL]: cannot open the PostgreSQL state store (${(err as Error).message}); check the URL, that the server runs and that the user may create the schema ${config.store.schema}`]);
    }
  }
  // A CLI command makes a call or two: a thread would cost more than it frees.
  if (options.owner && config.store.sqlite_thread) return openSqliteThread(config.store.dir, options);
  return new SqliteStore(config.store.dir, undefined, options);
}
