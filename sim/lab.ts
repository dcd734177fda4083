// A complete loopback lab: OpenCTI, Entra ID and Defender simulators plus the environment that
// points the service at them. Used by the demo, the end-to-end tests and the benchmarks.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntraSimulator } from './entra.js';
import { DefenderSimulator } from './defender.js';
import { MispSimulator } from './misp/server.js';
import { OpenCtiSimulator } from './opencti/index.js';
import { SentinelSimulator } from './sentinel.js';
import { createTestCertificate } from './tls.js';
import { DEFENDER_ASSET_ROLES } from './defender/asset-routes.js';
import { curveKeyPair } from 'zeromq';

export const LAB_TENANT = '11111111-2222-4333-8444-555555555555';
export const LAB_CLIENT = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
export const LAB_SECRET = 'lab-client-secret-value';
export const LAB_TOKEN = 'lab-opencti-token-value';
export const LAB_STREAM = 'lab-live-stream';
/** MISP keys are 40 alphanumerics. */
export const LAB_MISP_KEY = 'LabMispKey0000000000000000000000000000000';
export const LAB_WORKSPACE = '99999999-8888-4777-8666-555555555555';

export interface LabOptions {
  heartbeatMs?: number;
  timeScale?: number;
  rateLimits?: boolean;
  maxIndicators?: number;
  /** Start a MISP simulator too (REST + ZeroMQ). */
  misp?: boolean;
  mispHeartbeatMs?: number;
  /** The MISP publisher's pace in messages per second (see MispSimulatorOptions.sendRate). */
  mispSendRate?: number;
  /** The MISP simulator publishes over CURVE; the lab env carries the keys. */
  mispCurve?: boolean;
  /** Also start the Sentinel STIX upload simulator (workspace LAB_WORKSPACE, the lab app as Contributor). */
  sentinel?: boolean;
}

export class Lab {
  entra!: EntraSimulator;
  defender!: DefenderSimulator;
  opencti!: OpenCtiSimulator;
  misp: MispSimulator | null = null;
  sentinel?: SentinelSimulator;
  caPath!: string;
  readonly stateDir = mkdtempSync(join(tmpdir(), 'threatbridge-lab-'));
  readonly connectorId = randomUUID();
  /** CURVE key pairs of the MISP publisher and of the service, with `mispCurve`. */
  readonly curve: { server: { publicKey: string; secretKey: string }; client: { publicKey: string; secretKey: string } } | null;

  constructor(private readonly options: LabOptions = {}) {
    this.curve = options.mispCurve ? { server: curveKeyPair(), client: curveKeyPair() } : null;
  }

  async start(): Promise<this> {
    const tls = await createTestCertificate();
    this.caPath = tls.caPath;
    this.entra = new EntraSimulator({ tls });
    await this.entra.start();
    this.entra.registerApp({ tenantId: LAB_TENANT, clientId: LAB_CLIENT, clientSecret: LAB_SECRET, roles: ['Ti.ReadWrite.All', ...DEFENDER_ASSET_ROLES] });
    this.defender = new DefenderSimulator({
      entra: this.entra, tls, timeScale: this.options.timeScale ?? 1, rateLimits: this.options.rateLimits ?? true,
      maxIndicators: this.options.maxIndicators,
    });
    await this.defender.start();
    this.opencti = new OpenCtiSimulator({ token: LAB_TOKEN, streams: [LAB_STREAM], heartbeatMs: this.options.heartbeatMs ?? 1000, blockMs: 1000, batchPauseMs: 10 });
    await this.opencti.start();
    if (this.options.misp) {
      this.misp = await new MispSimulator({ key: LAB_MISP_KEY, heartbeatMs: this.options.mispHeartbeatMs ?? 1000,
        ...(this.options.mispSendRate ? { sendRate: this.options.mispSendRate } : {}), ...(this.curve ? { curve: this.curve.server } : {}) }).start();
    }
    if (this.options.sentinel) {
      this.sentinel = new SentinelSimulator({
        entra: this.entra, tls, workspaces: { [LAB_WORKSPACE]: [LAB_CLIENT] }, timeScale: this.options.timeScale ?? 1, rateLimits: this.options.rateLimits ?? true,
      });
      await this.sentinel.start();
    }
    return this;
  }

  /** Environment for `threatbridge run` against this lab. */
  env(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env['PATH'],
      NODE_EXTRA_CA_CERTS: this.caPath,
      CONFIG_FILE: '',
      OPENCTI_URL: this.opencti.url,
      OPENCTI_TOKEN: LAB_TOKEN,
      CONNECTOR_ID: this.connectorId,
      CONNECTOR_NAME: 'ThreatBridge lab',
      CONNECTOR_LIVE_STREAM_ID: LAB_STREAM,
      CONNECTOR_LOG_LEVEL: 'info',
      CONNECTOR_METRICS_PORT: '0',
      CONNECTOR_METRICS_HOST: '127.0.0.1',
      CONNECTOR_EXPOSE_METRICS: 'true',
      CONNECTOR_HEARTBEAT_TIMEOUT: '10',
      STORE_DIR: this.stateDir,
      PIPELINE_BATCH_MS: '50',
      MICROSOFT_DEFENDER_INTEL_TENANT_ID: LAB_TENANT,
      MICROSOFT_DEFENDER_INTEL_CLIENT_ID: LAB_CLIENT,
      MICROSOFT_DEFENDER_INTEL_CLIENT_SECRET: LAB_SECRET,
      MICROSOFT_DEFENDER_INTEL_LOGIN_URL: this.entra.url,
      MICROSOFT_DEFENDER_INTEL_BASE_URL: this.defender.url,
      THREATBRIDGE_TIME_SCALE: String(this.options.timeScale ?? 1),
      // The OpenCTI fixtures mark 7% of indicators TLP:RED at random and the flow tests count every
      // fixture; the TLP policy's own tests (test/e2e/enforcement) set this back to the default.
      GUARD_MAX_TLP: 'opencti=red',
      ...(this.misp ? { MISP_URL: this.misp.url, MISP_KEY: LAB_MISP_KEY, MISP_ZMQ_URL: this.misp.zmqUrl, MISP_ZMQ_HEARTBEAT_TIMEOUT: '15' } : {}),
      ...(this.misp && this.curve ? {
        MISP_ZMQ_CURVE_SERVER_KEY: this.curve.server.publicKey, MISP_ZMQ_CURVE_PUBLIC_KEY: this.curve.client.publicKey, MISP_ZMQ_CURVE_SECRET_KEY: this.curve.client.secretKey,
      } : {}),
      ...(this.sentinel ? { SENTINEL_WORKSPACE_ID: LAB_WORKSPACE, SENTINEL_HOST: this.sentinel.url } : {}),
      ...overrides,
    };
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.opencti?.stop(), this.defender?.stop(), this.misp?.stop(), this.sentinel?.stop(), this.entra?.stop()]);
  }
}
