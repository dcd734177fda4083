import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { registerSecret } from '../observability/logger.js';
import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from '../core/store.js';

export type { Store } from '../core/store.js';

/** Opens the configured engine and applies its migrations; `owner` = the service process (not a CLI command). */
export async function openStore(config: Config, options: { owner?: boolean } = {}): Promise<Store> {
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
  return new SqliteStore(config.store.dir, undefined, options);
}
