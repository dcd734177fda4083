// Which commit failures are the data's fault (one event's rows cannot be stored) rather than the
// store's (disk full, database down). Only the former may cost an event a dead letter; anything
// not known to be the data's fault holds the source, so an outage never discards events.

/** SQLite result codes caused by the values written, not by the database or its disk. */
const SQLITE_DATA = new Set(['SQLITE_TOOBIG', 'SQLITE_MISMATCH', 'SQLITE_RANGE']);
/** PostgreSQL SQLSTATE classes caused by the values written: 22 data exception, 23 integrity, 54 program limit. */
const PG_DATA_CLASSES = new Set(['22', '23', '54']);

/** What JSON.stringify throws for a value it cannot write (a BigInt, a cycle, a string beyond V8's limit). */
const UNSERIALISABLE = /serialize a BigInt|circular structure|Invalid string length/;

export function refusedData(err: unknown): boolean {
  // Only serialisation errors: the driver's own TypeErrors (a closed database) are the store's.
  if ((err instanceof TypeError || err instanceof RangeError) && UNSERIALISABLE.test(err.message)) return true;
  // A value the store's thread cannot be handed (a function, a symbol): postMessage refuses it before any write.
  if (err instanceof DOMException && err.name === 'DataCloneError') return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  if (code.startsWith('SQLITE_')) return SQLITE_DATA.has(code) || code.startsWith('SQLITE_CONSTRAINT');
  return /^[0-9A-Z]{5}$/.test(code) && PG_DATA_CLASSES.has(code.slice(0, 2));
}
