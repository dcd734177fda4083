import type { Config } from '../config/schema.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './types.js';

export type { Store } from './types.js';

/** Opens the configured engine and applies its migrations. */
export async function openStore(config: Config): Promise<Store> {
  return new SqliteStore(config.store.dir);
}
