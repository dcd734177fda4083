// The platform's knowledge (what Elasticsearch holds): the current state of every object, used
// for recovery and to resolve dependencies. `visible` says whether the object matches the stream
// collection's filters; built-in references (markings, authors) exist but do not match.
import { defaultReference, entityTypeOf, ext, octiExt, OCTI_EXT, SCO_EXT, SCO_TYPES, stableUuidV4, type StixObject } from './stix.js';

export interface StoredObject {
  obj: StixObject;
  internalId: string;
  updatedAtMs: number;
  visible: boolean;
}

const parseMs = (v: unknown): number | null => {
  if (typeof v !== 'string') return null;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? null : ms;
};

export function updatedAtOf(obj: Record<string, unknown>): number | null {
  return parseMs(ext(obj, OCTI_EXT)?.['updated_at']) ?? parseMs(obj['modified']);
}

/**
 * A copy carrying what the platform always adds: the OCTI extension with its internal id, entity
 * type and timestamps. Values already present are kept, so fixtures control their own dates.
 */
export function withPlatformFields(input: StixObject, nowMs: number): StixObject {
  const obj = structuredClone(input);
  const octi = octiExt(obj);
  const nowIso = new Date(nowMs).toISOString();
  octi['extension_type'] ??= 'property-extension';
  octi['id'] ??= stableUuidV4(obj.id);
  octi['type'] ??= entityTypeOf(obj);
  octi['created_at'] ??= typeof obj['created'] === 'string' ? obj['created'] : nowIso;
  octi['updated_at'] ??= typeof obj['modified'] === 'string' ? obj['modified'] : nowIso;
  octi['is_inferred'] ??= false;
  return obj;
}

/** The new state an edit stores: `modified` (SDOs/SROs) and `updated_at` move strictly forward. */
export function bumped(input: StixObject, previous: StoredObject | undefined, nowMs: number): StixObject {
  const obj = withPlatformFields(input, nowMs);
  const floor = previous ? previous.updatedAtMs + 1 : 0;
  const iso = new Date(Math.max(nowMs, floor)).toISOString();
  const octi = octiExt(obj);
  octi['updated_at'] = iso;
  if (previous) octi['created_at'] = ext(previous.obj, OCTI_EXT)?.['created_at'] ?? octi['created_at'];
  if (!SCO_TYPES.has(obj.type) && obj.type !== 'marking-definition') obj['modified'] = iso;
  return obj;
}

/** The ends of a relationship or sighting: what makes it a "core relationship" of an object. */
export function relationEnds(obj: Record<string, unknown>): string[] {
  if (obj['type'] === 'relationship') return [obj['source_ref'], obj['target_ref']].filter((v): v is string => typeof v === 'string');
  if (obj['type'] === 'sighting') {
    const where = Array.isArray(obj['where_sighted_refs']) ? obj['where_sighted_refs'] : [];
    return [obj['sighting_of_ref'], ...where].filter((v): v is string => typeof v === 'string');
  }
  return [];
}

export class ObjectStore {
  private readonly objects = new Map<string, StoredObject>();
  /** object id → ids of the relationships/sightings touching it. */
  private readonly relations = new Map<string, Set<string>>();

  get size(): number {
    return this.objects.size;
  }

  get(id: string): StoredObject | undefined {
    return this.objects.get(id);
  }

  delete(id: string): boolean {
    const old = this.objects.get(id);
    if (old) this.unindex(old.obj);
    return this.objects.delete(id);
  }

  /** Relationships and sightings that have `id` at one end. */
  relationsOf(id: string): StoredObject[] {
    const ids = this.relations.get(id);
    if (!ids) return [];
    return [...ids].map((r) => this.objects.get(r)).filter((s): s is StoredObject => s !== undefined);
  }

  private unindex(obj: StixObject): void {
    for (const end of relationEnds(obj)) this.relations.get(end)?.delete(obj.id);
  }

  values(): IterableIterator<StoredObject> {
    return this.objects.values();
  }

  put(obj: StixObject, visible: boolean): StoredObject {
    const stored: StoredObject = {
      obj,
      internalId: String(ext(obj, OCTI_EXT)?.['id'] ?? stableUuidV4(obj.id)),
      updatedAtMs: updatedAtOf(obj) ?? 0,
      visible,
    };
    const old = this.objects.get(obj.id);
    if (old) this.unindex(old.obj);
    this.objects.set(obj.id, stored);
    for (const end of relationEnds(obj)) {
      let set = this.relations.get(end);
      if (!set) this.relations.set(end, (set = new Set()));
      set.add(obj.id);
    }
    this.ensureReferences(obj);
    return stored;
  }

  /** Authors and markings the object names but nobody described get the platform's defaults. */
  private ensureReferences(obj: StixObject): void {
    const refs: unknown[] = [obj['created_by_ref'], ext(obj, SCO_EXT)?.['created_by_ref']];
    if (Array.isArray(obj['object_marking_refs'])) refs.push(...obj['object_marking_refs']);
    for (const ref of refs) {
      if (typeof ref !== 'string' || this.objects.has(ref)) continue;
      const made = defaultReference(ref);
      if (made) this.put(made, false);
    }
  }
}
