// The connector part of the platform's GraphQL API: healthCheck (`about`), registerConnector,
// pingConnector (with the state-reset flag of domain/connector.js) and resetStateConnector.
// Operations are recognised by their root field names; arguments come from `variables`, with a
// loose fallback for inline string arguments.
import { SIM_USER_ID } from './stix.js';

export interface ConnectorRecord {
  id: string;
  name: string;
  type: string;
  scope: string[];
  /** connector_state as saved by the last ping (a JSON string), '' after a reset, null if never set. */
  state: string | null;
  /** connector_state_reset: set by a reset, cleared by the next ping (which then saves nothing). */
  stateReset: boolean;
  info: Record<string, unknown> | null;
  registeredAt: Date;
  lastPing: Date | null;
  pings: number;
}

export interface GraphqlReply {
  status: number;
  body: unknown;
}

type Vars = Record<string, unknown>;

class GraphqlError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

const CONNECTOR_INFO_KEYS = ['run_and_terminate', 'buffering', 'queue_threshold', 'queue_messages_size', 'next_run_datetime', 'last_run_datetime'];

export const AUTH_REQUIRED: GraphqlReply = {
  status: 401,
  body: { errors: [{ message: 'You must be logged in to do this.', extensions: { code: 'AUTH_REQUIRED' } }] },
};

/** `name: "value"` written inline in the query, for clients that do not use variables. */
function inlineArg(query: string, field: string, arg: string): string | undefined {
  const call = new RegExp(`\\b${field}\\s*\\(([^)]*)\\)`).exec(query)?.[1];
  if (!call) return undefined;
  const m = new RegExp(`\\b${arg}\\s*:\\s*"((?:[^"\\\\]|\\\\.)*)"`).exec(call);
  return m?.[1] !== undefined ? (JSON.parse(`"${m[1]}"`) as string) : undefined;
}

export class ConnectorApi {
  readonly connectors = new Map<string, ConnectorRecord>();
  refuseRegistration: boolean;

  constructor(private readonly opts: { version: string; refuseRegistration: boolean }) {
    this.refuseRegistration = opts.refuseRegistration;
  }

  /** The UI's "reset state": next ping gets an empty state back and its state is not saved. */
  resetState(id: string): boolean {
    const c = this.connectors.get(id);
    if (!c) return false;
    c.state = '';
    c.stateReset = true;
    return true;
  }

  handle(raw: unknown): GraphqlReply {
    const req = raw as { query?: unknown; variables?: unknown } | null;
    if (!req || typeof req !== 'object' || typeof req.query !== 'string' || req.query.trim() === '') {
      return { status: 400, body: { errors: [{ message: 'POST body missing, invalid Content-Type, or JSON object has no keys.', extensions: { code: 'BAD_REQUEST' } }] } };
    }
    const query = req.query;
    const vars: Vars = req.variables && typeof req.variables === 'object' ? (req.variables as Vars) : {};
    const handlers: Array<[string, RegExp, () => unknown]> = [
      ['about', /\babout\s*\{/, () => ({ version: this.opts.version })],
      ['registerConnector', /\bregisterConnector\s*\(/, () => this.register(query, vars)],
      ['pingConnector', /\bpingConnector\s*\(/, () => this.ping(query, vars)],
      ['resetStateConnector', /\bresetStateConnector\s*\(/, () => this.reset(query, vars)],
    ];
    const matched = handlers.filter(([, re]) => re.test(query));
    if (matched.length === 0) {
      return { status: 400, body: { errors: [{ message: 'The simulator does not know this operation', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }] } };
    }
    const data: Record<string, unknown> = {};
    const errors: Array<{ message: string; path: string[]; extensions: { code: string } }> = [];
    for (const [field, , run] of matched) {
      try {
        data[field] = run();
      } catch (err) {
        data[field] = null;
        const code = err instanceof GraphqlError ? err.code : 'INTERNAL_SERVER_ERROR';
        errors.push({ message: (err as Error).message, path: [field], extensions: { code } });
      }
    }
    return { status: 200, body: errors.length > 0 ? { errors, data } : { data } };
  }

  private register(query: string, vars: Vars): unknown {
    if (this.refuseRegistration) throw new GraphqlError('You are not allowed to do this.', 'FORBIDDEN_ACCESS');
    const input = vars['input'] as Vars | undefined;
    const id = typeof input?.['id'] === 'string' ? input['id'] : inlineArg(query, 'registerConnector', 'id');
    const name = typeof input?.['name'] === 'string' ? input['name'] : inlineArg(query, 'registerConnector', 'name');
    const type = typeof input?.['type'] === 'string' ? input['type'] : 'STREAM';
    if (!id || !name) throw new GraphqlError('Variable "$input" got invalid value; fields "id" and "name" are required.', 'BAD_USER_INPUT');
    const scope = Array.isArray(input?.['scope']) ? input['scope'].map(String) : typeof input?.['scope'] === 'string' ? [input['scope']] : [];
    const existing = this.connectors.get(id);
    const record: ConnectorRecord = existing
      ? { ...existing, name, type, scope }
      : { id, name, type, scope, state: null, stateReset: false, info: null, registeredAt: new Date(), lastPing: null, pings: 0 };
    this.connectors.set(id, record);
    return {
      id,
      connector_state: record.state,
      config: {
        connection: { host: 'rabbitmq', vhost: '/', use_ssl: false, port: 5672, user: 'opencti', pass: 'changeme' },
        listen: `listen_${id}`,
        listen_routing: `listen_routing_${id}`,
        listen_exchange: 'amqp.connector.exchange',
        push: `push_${id}`,
        push_routing: `push_routing_${id}`,
        push_exchange: 'amqp.worker.exchange',
      },
      connector_user_id: SIM_USER_ID,
    };
  }

  private ping(query: string, vars: Vars): unknown {
    const id = typeof vars['id'] === 'string' ? vars['id'] : inlineArg(query, 'pingConnector', 'id');
    const c = id ? this.connectors.get(id) : undefined;
    if (!c) throw new GraphqlError('No connector found with the specified ID', 'FUNCTIONAL_ERROR');
    const state = typeof vars['state'] === 'string' ? vars['state'] : inlineArg(query, 'pingConnector', 'state');
    c.lastPing = new Date();
    c.pings++;
    if (c.stateReset) {
      c.stateReset = false;
    } else {
      if (state !== undefined) c.state = state;
      const info = vars['connectorInfo'];
      if (info && typeof info === 'object') c.info = { ...(info as Vars) };
    }
    const info = Object.fromEntries(CONNECTOR_INFO_KEYS.map((k) => [k, c.info?.[k] ?? null]));
    return { id: c.id, connector_state: c.state, connector_info: info };
  }

  private reset(query: string, vars: Vars): unknown {
    const id = typeof vars['id'] === 'string' ? vars['id'] : inlineArg(query, 'resetStateConnector', 'id');
    if (!id || !this.resetState(id)) throw new GraphqlError('No connector found with the specified ID', 'FUNCTIONAL_ERROR');
    return { id };
  }
}
