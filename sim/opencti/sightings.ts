// The part of OpenCTI's GraphQL API that connectors use to write sightings (what pycti's
// Identity.create, ExternalReference.create and StixSightingRelationship.create/read/update_field
// send): identityAdd, externalReferenceAdd, stixSightingRelationshipAdd, the
// stixSightingRelationship query and stixSightingRelationshipEdit { fieldPatch, relationAdd }.
// Behaviour modelled on the platform: identities and external references are upserted by their
// deterministic standard id (identity: name + identity_class; reference: url, else source_name +
// external_id); a sighting given a stix_id that is already known is upserted, not doubled; an
// unknown from/to is MISSING_REFERENCE_ERROR; first_seen after last_seen is refused; an object is
// found by its internal id, standard id or any of its stix ids. Every call is kept in `calls`.
import { randomUUID } from 'node:crypto';
import { STIX_NAMESPACE, uuidV5, type StixObject } from './stix.js';

type Vars = Record<string, unknown>;

export interface SimIdentity { id: string; standard_id: string; name: string; identity_class: string; type: string }
export interface SimExternalReference { id: string; standard_id: string; source_name: string; url: string | null; external_id: string | null }
export interface SimSighting {
  id: string;
  standard_id: string;
  stix_ids: string[];
  fromId: string;
  toId: string;
  first_seen: string;
  last_seen: string;
  attribute_count: number;
  description: string;
  x_opencti_negative: boolean;
  references: string[];
}

export class SightingsError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

const IDENTITY_TYPES = new Map([['Sector', 'class'], ['Organization', 'organization'], ['Individual', 'individual'], ['System', 'system'], ['SecurityPlatform', 'securityplatform']]);

/** Canonical JSON (sorted keys) of the id-contributing properties, as the platform hashes them. */
const canonical = (o: Record<string, unknown>): string => `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(o[k])}`).join(',')}}`;

const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);
const isIso = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

export interface SightingsCall { field: string; vars: Vars; error: string | null }

export class SightingsApi {
  readonly identities = new Map<string, SimIdentity>();
  readonly references = new Map<string, SimExternalReference>();
  readonly sightings = new Map<string, SimSighting>();
  readonly calls: SightingsCall[] = [];

  /** `known(id)`: a STIX object the platform holds (the indicators of the stream). `emit`: publish on the stream. */
  constructor(private readonly known: (id: string) => StixObject | undefined, private readonly emit: (event: 'create' | 'update', obj: StixObject) => void) {}

  /** The root fields this API answers, or null when the query is not one of them. */
  handles(query: string): string[] | null {
    // `field(`: an exact root field name (operation names are capitalised, so they do not match).
    const fields = ['identityAdd', 'externalReferenceAdd', 'stixSightingRelationshipAdd', 'stixSightingRelationshipEdit', 'stixSightingRelationship']
      .filter((f) => new RegExp(`\\b${f}\\s*\\(`).test(query));
    return fields.length > 0 ? fields : null;
  }

  run(field: string, query: string, vars: Vars): unknown {
    try {
      const out = this.dispatch(field, query, vars);
      this.calls.push({ field, vars: structuredClone(vars), error: null });
      return out;
    } catch (err) {
      this.calls.push({ field, vars: structuredClone(vars), error: (err as Error).message });
      throw err;
    }
  }

  private dispatch(field: string, query: string, vars: Vars): unknown {
    switch (field) {
      case 'identityAdd': return this.identityAdd(vars['input']);
      case 'externalReferenceAdd': return this.referenceAdd(vars['input']);
      case 'stixSightingRelationship': return this.read(vars['id']);
      case 'stixSightingRelationshipAdd': return this.sightingAdd(vars['input']);
      case 'stixSightingRelationshipEdit': return /\bfieldPatch\s*\(/.test(query) ? this.fieldPatch(vars['id'], vars['input']) : this.relationAdd(vars['id'], vars['input']);
      default: throw new SightingsError(`Unknown field ${field}`, 'GRAPHQL_VALIDATION_FAILED');
    }
  }

  private input(v: unknown): Vars {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SightingsError('Variable "$input" of required type was not provided.', 'BAD_USER_INPUT');
    return v as Vars;
  }

  private identityAdd(raw: unknown): unknown {
    const input = this.input(raw);
    const name = str(input['name']);
    const type = str(input['type']);
    if (!name || !type || !IDENTITY_TYPES.has(type)) throw new SightingsError('Variable "$input" got invalid value: name and a valid type are required', 'BAD_USER_INPUT');
    const identityClass = IDENTITY_TYPES.get(type)!;
    const standardId = `identity--${uuidV5(canonical({ name: name.toLowerCase().trim(), identity_class: identityClass }), STIX_NAMESPACE)}`;
    let found = [...this.identities.values()].find((i) => i.standard_id === standardId);
    if (!found) {
      found = { id: randomUUID(), standard_id: standardId, name, identity_class: identityClass, type };
      this.identities.set(found.id, found);
    }
    return { id: found.id, standard_id: found.standard_id, entity_type: found.type };
  }

  private referenceAdd(raw: unknown): unknown {
    const input = this.input(raw);
    const source = str(input['source_name']);
    if (!source) throw new SightingsError('Variable "$input" got invalid value: source_name is required', 'BAD_USER_INPUT');
    const url = str(input['url']);
    const externalId = str(input['external_id']);
    const standardId = `external-reference--${uuidV5(canonical(url ? { url } : { source_name: source, external_id: externalId }), STIX_NAMESPACE)}`;
    let found = [...this.references.values()].find((r) => r.standard_id === standardId);
    if (!found) {
      found = { id: randomUUID(), standard_id: standardId, source_name: source, url, external_id: externalId };
      this.references.set(found.id, found);
    }
    return { ...found };
  }

  private sightingBy(id: unknown): SimSighting | undefined {
    if (typeof id !== 'string') return undefined;
    return [...this.sightings.values()].find((s) => s.id === id || s.standard_id === id || s.stix_ids.includes(id));
  }

  private view(s: SimSighting): unknown {
    return {
      id: s.id, standard_id: s.standard_id, first_seen: s.first_seen, last_seen: s.last_seen, attribute_count: s.attribute_count,
      externalReferences: { edges: s.references.map((r) => ({ node: { ...this.references.get(r)! } })) },
    };
  }

  private read(id: unknown): unknown {
    const s = this.sightingBy(id);
    return s ? this.view(s) : null;
  }

  private resolves(id: string): boolean {
    return !!this.known(id) || [...this.identities.values()].some((i) => i.id === id || i.standard_id === id);
  }

  private sightingAdd(raw: unknown): unknown {
    const input = this.input(raw);
    const from = str(input['fromId']);
    const to = str(input['toId']);
    const count = input['attribute_count'];
    if (!from || !to || typeof count !== 'number' || !Number.isInteger(count)) {
      throw new SightingsError('Variable "$input" got invalid value: fromId, toId and attribute_count (Int!) are required', 'BAD_USER_INPUT');
    }
    if (!this.resolves(from) || !this.resolves(to)) throw new SightingsError('Restricted entity already exists or missing reference', 'MISSING_REFERENCE_ERROR');
    const first = input['first_seen'];
    const last = input['last_seen'];
    if (!isIso(first) || !isIso(last)) throw new SightingsError('first_seen and last_seen must be dates', 'BAD_USER_INPUT');
    if (Date.parse(first) > Date.parse(last)) throw new SightingsError('The first_seen date must be less than or equal to the last_seen date', 'FUNCTIONAL_ERROR');
    const stixId = str(input['stix_id']);
    const existing = stixId ? this.sightingBy(stixId) : undefined;
    // Upsert: a known stix id names the existing sighting.
    if (existing) return { id: existing.id, standard_id: existing.standard_id, attribute_count: existing.attribute_count };
    const refs = Array.isArray(input['externalReferences']) ? input['externalReferences'].filter((r): r is string => typeof r === 'string') : [];
    for (const r of refs) if (!this.references.has(r)) throw new SightingsError('External reference not found', 'MISSING_REFERENCE_ERROR');
    const s: SimSighting = {
      id: randomUUID(), standard_id: stixId ?? `sighting--${randomUUID()}`, stix_ids: stixId ? [stixId] : [], fromId: from, toId: to,
      first_seen: first, last_seen: last, attribute_count: count, description: str(input['description']) ?? '',
      x_opencti_negative: input['x_opencti_negative'] === true, references: [...new Set(refs)],
    };
    this.sightings.set(s.id, s);
    this.emit('create', this.stix(s));
    return { id: s.id, standard_id: s.standard_id, attribute_count: s.attribute_count };
  }

  private fieldPatch(id: unknown, raw: unknown): unknown {
    const s = this.sightingBy(id);
    if (!s) throw new SightingsError('Cannot find the relation to edit', 'MISSING_REFERENCE_ERROR');
    if (!Array.isArray(raw)) throw new SightingsError('Variable "$input" must be a list of EditInput', 'BAD_USER_INPUT');
    const next = { ...s };
    for (const e of raw as { key?: unknown; value?: unknown }[]) {
      const v = Array.isArray(e?.value) ? e.value[0] : undefined;
      if (e?.key === 'attribute_count' && typeof v === 'number' && Number.isInteger(v) && v >= 0) next.attribute_count = v;
      else if ((e?.key === 'first_seen' || e?.key === 'last_seen') && isIso(v)) next[e.key] = v;
      else throw new SightingsError(`Invalid edit of ${typeof e?.key === 'string' ? e.key : 'a field'}`, 'FUNCTIONAL_ERROR');
    }
    if (Date.parse(next.first_seen) > Date.parse(next.last_seen)) throw new SightingsError('The first_seen date must be less than or equal to the last_seen date', 'FUNCTIONAL_ERROR');
    Object.assign(s, next);
    this.emit('update', this.stix(s));
    return { fieldPatch: { id: s.id, attribute_count: s.attribute_count, first_seen: s.first_seen, last_seen: s.last_seen } };
  }

  private relationAdd(id: unknown, raw: unknown): unknown {
    const s = this.sightingBy(id);
    if (!s) throw new SightingsError('Cannot find the relation to edit', 'MISSING_REFERENCE_ERROR');
    const input = this.input(raw);
    const to = str(input['toId']);
    if (input['relationship_type'] !== 'external-reference' || !to || !this.references.has(to)) {
      throw new SightingsError('relationAdd needs an existing external reference and relationship_type external-reference', 'FUNCTIONAL_ERROR');
    }
    if (!s.references.includes(to)) s.references.push(to);
    return { relationAdd: { id: `${s.id}-${to}` } };
  }

  /** The sighting as the stream shows it (STIX 2.1). */
  private stix(s: SimSighting): StixObject {
    const where = [...this.identities.values()].find((i) => i.id === s.toId || i.standard_id === s.toId)?.standard_id ?? s.toId;
    const of = this.known(s.fromId)?.id ?? s.fromId;
    return {
      id: s.standard_id, type: 'sighting', spec_version: '2.1', sighting_of_ref: of, where_sighted_refs: [where], first_seen: s.first_seen,
      last_seen: s.last_seen, count: s.attribute_count, description: s.description,
      external_references: s.references.map((r) => this.references.get(r)!).map((r) => ({ source_name: r.source_name, url: r.url, external_id: r.external_id })),
    };
  }

  /** Sightings of one indicator (by any of its ids). */
  of(indicatorId: string): SimSighting[] {
    return [...this.sightings.values()].filter((s) => s.fromId === indicatorId);
  }
}
