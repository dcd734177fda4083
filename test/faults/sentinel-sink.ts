// What the Sentinel simulator holds, as the fault suite compares it: the observable value of each
// live (unrevoked) STIX indicator → its confidence; two live objects for one value are a duplicate.
// Its store is keyed by id and would hide an object uploaded twice: the send log counts those.
import type { Interruption } from '../../sim/send-log.js';
import type { SentinelSimulator } from '../../sim/sentinel.js';

const SINGLE_VALUE = /^\[[a-z0-9-]+:[a-z_.]+ = '((?:[^'\\]|\\.)*)'\]$/;

export function sentinelHeld(sentinel: SentinelSimulator): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const o of sentinel.indicators()) {
    if (o['revoked'] === true) continue;
    const value = SINGLE_VALUE.exec(String(o['pattern']))?.[1] ?? String(o['pattern']);
    out.set(value, [...(out.get(value) ?? []), String(o['confidence'])]);
  }
  return out;
}

/** Objects in accepted upload calls. */
export function sentinelWrites(sentinel: SentinelSimulator): number {
  return sentinel.requestLog.filter((e) => e.status === 200).reduce((n, e) => n + e.objects, 0);
}

/** Objects uploaded again unchanged after Sentinel's answer reached the service (sim/send-log.ts), except values the source re-emitted unchanged. */
export function sentinelRepeats(sentinel: SentinelSimulator, interruptions: readonly Interruption[], reemitted: ReadonlySet<string>): number {
  const valueOf = (content: string) => SINGLE_VALUE.exec(String((JSON.parse(content) as { pattern?: unknown }).pattern))?.[1];
  return sentinel.sends.repeats({ interruptions }).filter((s) => !reemitted.has(valueOf(s.content) ?? '')).length;
}

/** Ids whose received versions carried more than one `created` (STIX 2.1: it never changes), counted from what Sentinel received. */
export function sentinelCreatedChanges(sentinel: SentinelSimulator): string[] {
  const created = new Map<string, Set<string>>();
  for (const send of sentinel.sends.sends) {
    const o = JSON.parse(send.content) as { id?: unknown; created?: unknown };
    const id = String(o.id);
    created.set(id, (created.get(id) ?? new Set()).add(String(o.created)));
  }
  return [...created].filter(([, values]) => values.size > 1).map(([id]) => id);
}
