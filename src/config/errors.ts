// The one error a configuration problem raises: every check that can stop start-up (the schema, a
// guard list that cannot be read, a store that cannot be opened) throws it, and `run` exits 78.
// Its own module so that the folders whose sections the schema composes need not import the loader.

export class ConfigError extends Error {
  readonly code = 'config_invalid';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}
