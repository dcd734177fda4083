// The GraphQL calls OpenCTI connectors make for sightings (pycti: Identity.create,
// ExternalReference.create, StixSightingRelationship.create/read/update_field, and relationAdd of
// an external reference), through the one call envelope. Statuses and GraphQL errors come back to
// the delivery, which decides what they mean.
import { ApiCaller, fixedHeaders, type ApiResponse } from '../../net/call.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';

const IDENTITY_ADD = `mutation IdentityAdd($input: IdentityAddInput!) {
  identityAdd(input: $input) { id standard_id entity_type }
}`;
const EXTERNAL_REFERENCE_ADD = `mutation ExternalReferenceAdd($input: ExternalReferenceAddInput!) {
  externalReferenceAdd(input: $input) { id standard_id url external_id source_name }
}`;
const SIGHTING_READ = `query StixSightingRelationship($id: String!) {
  stixSightingRelationship(id: $id) {
    id standard_id first_seen last_seen attribute_count
    externalReferences { edges { node { id source_name url external_id } } }
  }
}`;
const SIGHTING_ADD = `mutation StixSightingRelationshipAdd($input: StixSightingRelationshipAddInput!) {
  stixSightingRelationshipAdd(input: $input) { id standard_id attribute_count }
}`;
const SIGHTING_FIELD_PATCH = `mutation StixSightingRelationshipEdit($id: ID!, $input: [EditInput]!) {
  stixSightingRelationshipEdit(id: $id) { fieldPatch(input: $input) { id attribute_count first_seen last_seen } }
}`;
const SIGHTING_REF_ADD = `mutation StixSightingRelationshipAddRef($id: ID!, $input: StixRefRelationshipAddInput!) {
  stixSightingRelationshipEdit(id: $id) { relationAdd(input: $input) { id } }
}`;

export interface SightingRecord {
  id: string;
  standard_id: string;
  first_seen: string | null;
  last_seen: string | null;
  attribute_count: number;
  externalReferences: { edges: { node: { id: string; source_name: string | null; url: string | null; external_id: string | null } }[] };
}

/** A call that answered: an HTTP failure, GraphQL errors, or the data. */
export type GraphqlAnswer<T> =
  | { ok: true; data: T }
  | { ok: false; http: ApiResponse<unknown> }
  | { ok: false; errors: { message: string; code: string | null }[] };

export class OpenctiSightingsClient {
  private readonly caller: ApiCaller;

  constructor(o: { url: string; token: string; verifyTls: boolean; timeoutMs: number; sink: string; log: Logger; metrics: Metrics }) {
    this.caller = new ApiCaller({
      system: 'opencti', baseURL: o.url, timeoutMs: o.timeoutMs, verifyTls: o.verifyTls, userAgent: 'threatbridge', log: o.log,
      credentials: fixedHeaders({ Authorization: `Bearer ${o.token}` }), headers: { 'Content-Type': 'application/json' },
      metrics: { metrics: o.metrics, label: o.sink },
    });
  }

  private async graphql<T>(endpoint: string, query: string, variables: Record<string, unknown>, signal?: AbortSignal): Promise<GraphqlAnswer<T>> {
    const res = await this.caller.call<{ data?: T; errors?: unknown }>(endpoint, { method: 'POST', url: '/graphql', data: { query, variables } }, signal);
    const body = res.data && typeof res.data === 'object' ? res.data : {};
    const errors = Array.isArray(body.errors) ? body.errors : [];
    if (errors.length > 0) {
      return {
        ok: false,
        errors: errors.map((e: { message?: unknown; extensions?: { code?: unknown } }) => ({
          message: typeof e?.message === 'string' ? e.message.slice(0, 300) : 'unknown error',
          code: typeof e?.extensions?.code === 'string' ? e.extensions.code : null,
        })),
      };
    }
    if (res.status !== 200 || !body.data) return { ok: false, http: res };
    return { ok: true, data: body.data };
  }

  identityAdd(input: Record<string, unknown>, signal?: AbortSignal) {
    return this.graphql<{ identityAdd: { id: string; standard_id: string } }>('identityAdd', IDENTITY_ADD, { input }, signal);
  }

  externalReferenceAdd(input: Record<string, unknown>, signal?: AbortSignal) {
    return this.graphql<{ externalReferenceAdd: { id: string } }>('externalReferenceAdd', EXTERNAL_REFERENCE_ADD, { input }, signal);
  }

  readSighting(id: string, signal?: AbortSignal) {
    return this.graphql<{ stixSightingRelationship: SightingRecord | null }>('stixSightingRelationship', SIGHTING_READ, { id }, signal);
  }

  addSighting(input: Record<string, unknown>, signal?: AbortSignal) {
    return this.graphql<{ stixSightingRelationshipAdd: { id: string; standard_id: string } }>('stixSightingRelationshipAdd', SIGHTING_ADD, { input }, signal);
  }

  patchSighting(id: string, input: { key: string; value: unknown[] }[], signal?: AbortSignal) {
    return this.graphql<unknown>('stixSightingRelationshipEdit', SIGHTING_FIELD_PATCH, { id, input }, signal);
  }

  addReference(id: string, referenceId: string, signal?: AbortSignal) {
    return this.graphql<unknown>('stixSightingRelationshipEdit', SIGHTING_REF_ADD, { id, input: { toId: referenceId, relationship_type: 'external-reference' } }, signal);
  }
}
