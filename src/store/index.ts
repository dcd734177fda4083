import type { Config } from '../config/schema.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './types.js';

export type { Store } from './types.js';

export function openStore(config: Config): Store {
  return new SqliteStore(config.store.dir);
}
