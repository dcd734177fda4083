// STIX 2.1 (3.2): `created` is the same in every version of an object. The time of the first upload of
// a key is recorded before that upload goes out, in the sink-id map under `<sink>.created` (the STIX
// id derives from sink and key, so this is keyed by STIX id). Every later version, a retry whose
// answer was lost, a revocation after a crash, or the object claimed again after a revocation, takes
// its `created` from there. The rows are never dropped: an id Sentinel may hold keeps its `created`.
import type { SinkIdStore } from '../../core/store.js';

export class CreatedLedger {
  readonly name: string;

  constructor(private readonly store: Pick<SinkIdStore, 'getSinkIds' | 'setSinkIds'>, sink: string) {
    this.name = `${sink}.created`;
  }

  /** The recorded `created` of these keys (keys never uploaded are absent). */
  known(keys: string[]): Promise<Map<string, string>> {
    return this.store.getSinkIds(this.name, keys);
  }

  /**
   * Records the `created` of keys not recorded yet (before their upload is sent). A key is delivered
   * by one worker at a time (the outbox lease), so reading then writing cannot race for the same key.
   */
  async record(objects: { key: string; created: string }[], known: Map<string, string>): Promise<void> {
    const fresh = new Map<string, string>();
    for (const o of objects) if (!known.has(o.key) && !fresh.has(o.key)) fresh.set(o.key, o.created);
    if (fresh.size > 0) await this.store.setSinkIds(this.name, [...fresh].map(([key, externalId]) => ({ key, externalId })));
  }
}
