// OpenCTI's connector GraphQL API: register as a STREAM connector and ping with our state so the
// platform lists us. Best effort: the local store stays the source of truth, so a platform that
// refuses gets a warning, never a crash.
import type { Metrics } from '../../observability/metrics.js';
import { ApiCaller, fixedHeaders } from '../../net/call.js';
import type { Logger } from '../../observability/logger.js';
import { errorFields } from '../../observability/logger.js';

const REGISTER = `mutation RegisterConnector($input: RegisterConnectorInput) {
  registerConnector(input: $input) { id connector_state config { connection { host vhost use_ssl port user pass } listen listen_routing listen_exchange push push_routing push_exchange } connector_user_id }
}`;
const PING = `mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput) {
  pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id connector_state connector_info { run_and_terminate buffering queue_threshold queue_messages_size next_run_datetime last_run_datetime } }
}`;

export interface ConnectorApiOptions {
  url: string;
  token: string;
  verifyTls: boolean;
  connectorId: string;
  name: string;
  scope: string[];
  log: Logger;
  /** Calls counted as threatbridge_sink_requests_total{sink="opencti", endpoint="graphql"}. */
  metrics?: Metrics;
}

export class ConnectorApi {
  private readonly caller: ApiCaller;
  registered = false;

  constructor(private readonly o: ConnectorApiOptions) {
    this.caller = new ApiCaller({
      system: 'opencti', baseURL: o.url, timeoutMs: 30_000, verifyTls: o.verifyTls, userAgent: 'threatbridge', log: o.log,
      credentials: fixedHeaders({ Authorization: `Bearer ${o.token}` }), headers: { 'Content-Type': 'application/json' },
      ...(o.metrics ? { metrics: { metrics: o.metrics, label: 'opencti' } } : {}),
    });
  }

  private async graphql<T>(query: string, variables: Record<string, unknown>): Promise<T> {
    const res = await this.caller.call<{ data?: T; errors?: { message?: string }[] }>('graphql', { method: 'POST', url: '/graphql', data: { query, variables } });
    if (res.status !== 200) throw new Error(`OpenCTI GraphQL answered HTTP ${res.status}`);
    if (res.data?.errors?.length) throw new Error(`OpenCTI GraphQL error: ${res.data.errors.map((e) => e.message).join('; ')}`);
    if (!res.data?.data) throw new Error('OpenCTI GraphQL answered without data');
    return res.data.data;
  }

  async register(): Promise<void> {
    try {
      await this.graphql(REGISTER, {
        input: {
          id: this.o.connectorId, name: this.o.name, type: 'STREAM', scope: this.o.scope, auto: false, auto_update: false,
          only_contextual: false, playbook_compatible: false, enrichment_resolution: 'none', listen_callback_uri: null,
        },
      });
      this.registered = true;
      this.o.log.info({ connectorId: this.o.connectorId }, 'registered in OpenCTI as a stream connector');
    } catch (err) {
      this.o.log.warn({ connectorId: this.o.connectorId, ...errorFields(err) }, 'OpenCTI did not accept the connector registration; continuing without it');
    }
  }

  /** Ping with our state; returns true when the platform asked for a state reset. */
  async ping(state: Record<string, unknown>): Promise<boolean> {
    if (!this.registered) {
      await this.register();
      if (!this.registered) return false;
    }
    try {
      const data = await this.graphql<{ pingConnector?: { connector_state?: string | null } }>(PING, {
        id: this.o.connectorId, state: JSON.stringify(state),
        connectorInfo: { run_and_terminate: false, buffering: false, queue_threshold: 0, queue_messages_size: 0, next_run_datetime: null, last_run_datetime: null },
      });
      const remote = data.pingConnector?.connector_state;
      return remote === '' || remote === null;
    } catch (err) {
      this.o.log.warn({ ...errorFields(err) }, 'OpenCTI ping failed');
      return false;
    }
  }
}
