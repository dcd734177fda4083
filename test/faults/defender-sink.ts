// What the Defender simulator holds, as the fault suite compares it: value → one entry per indicator
// (two entries for one value are a duplicate), how many items the service wrote, and how many of
// those repeated an answered send (the import upserts by value, so the held state cannot show them).
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { DefenderSimulator } from '../../sim/defender.js';
import type { Interruption } from '../../sim/send-log.js';

type HeldIndicator = { indicatorValue: string } & Record<string, unknown>;

export function defenderHeld(defender: DefenderSimulator, field: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const i of defender.indicators() as HeldIndicator[]) {
    out.set(i.indicatorValue, [...(out.get(i.indicatorValue) ?? []), String(i[field])]);
  }
  return out;
}

/** Items in successful write calls (an import of 500 counts 500). */
export function defenderWrites(defender: DefenderSimulator): number {
  return defender.requestLog.filter((e) => e.status === 200 && e.endpoint !== null && e.method !== 'GET')
    .reduce((n, e) => n + (e.items ?? 1), 0);
}

/**
 * Indicators sent again unchanged after Defender's answer reached the service (sim/send-log.ts), except
 * values the source itself re-emitted unchanged (`reemitted`, lower-case as Defender keys them).
 */
export function defenderRepeats(defender: DefenderSimulator, interruptions: readonly Interruption[], reemitted: ReadonlySet<string>): number {
  return defender.sends.repeats({ interruptions }).filter((s) => !reemitted.has(s.key.split('\u0000').at(-1)!)).length;
}

/** What the SQLite store knows of keys that did not converge (printed when a run fails). */
export function diagnoseStore(keys: string[], env: NodeJS.ProcessEnv, describe: (key: string) => string): string {
  const db = new Database(join(env['STORE_DIR']!, 'threatbridge.db'), { readonly: true, fileMustExist: true });
  try {
    const out: string[] = [];
    for (const value of keys) {
      const like = `%${value}`;
      out.push(`        ${value}: ${describe(value)}`);
      out.push(`          outbox ${JSON.stringify(db.prepare('SELECT key, seq, op, attempts, next_attempt_at, lease_until, last_error FROM outbox WHERE key LIKE ?').all(like))}`);
      out.push(`          claims ${JSON.stringify(db.prepare('SELECT key, source_id, change FROM claims WHERE key LIKE ?').all(like)).slice(0, 600)}`);
      out.push(`          sink_ids ${JSON.stringify(db.prepare('SELECT key, external_id FROM sink_ids WHERE key LIKE ?').all(like))}`);
      out.push(`          dead letters ${JSON.stringify(db.prepare('SELECT key, reason FROM dead_letters WHERE key LIKE ?').all(like))}`);
    }
    return out.join('\n');
  } finally {
    db.close();
  }
}
