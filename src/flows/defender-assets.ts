// Microsoft Defender assets as a source: one poller (machines, users, CVEs, alerts) reading while
// this replica holds the source lock, feeding its ingest loop. Where the assets go is the sinks'
// business (config/flows.ts).
import type { ServicePart } from '../core/parts.js';
import { defenderApi } from '../microsoft/defender/client.js';
import { DefenderAssetsPoller, SOURCE } from '../sources/defender-assets/poller.js';
import type { Hub } from './hub.js';
import type { ServiceContext } from './parts.js';
import { POLLER_WAIT_OUT } from './defender-alerts.js';
import { runFlowOnce } from './once.js';
import { leadingSourcePart } from './source-leadership.js';

export function defenderAssetsPart(ctx: ServiceContext, hub: Hub): ServicePart {
  const { config, store, log, metrics } = ctx;
  const a = config.defender_assets;
  const client = defenderApi(config, { callsPerMinute: a.calls_per_minute, callsPerHour: a.calls_per_hour }, log,
    { metrics, label: SOURCE, waitOut: POLLER_WAIT_OUT });
  const sinks = hub.sinksOf(SOURCE);
  const ingest = hub.ingestLoop(SOURCE);
  const poller = new DefenderAssetsPoller(config, client, {
    checkpoints: store,
    ingest,
    held: hub.heldBy(SOURCE),
    // The first sink that lost its save point asks for everything again.
    savePointLost: async () => {
      for (const s of sinks) {
        const lost = await s.savePointLost?.();
        if (lost) return lost;
      }
      return null;
    },
  }, log, metrics);
  const part = leadingSourcePart(ctx, SOURCE, {
    start: async () => poller.start(),
    stop: (boundMs) => poller.stop(boundMs),
    health: () => (poller.lastError ? `last run failed: ${poller.lastError}` : null),
  }, ingest, 'the last assets run was not stored before shutdown; the next start reads it again');
  return {
    ...part,
    // One run as the interval would do it (initial import or incremental), then CAR gets what is due.
    runOnce: () => runFlowOnce({
      source: SOURCE, store, log, sinks, counts: (s) => hub.countsOf(s), loops: [ingest], sourceLetters: [`source:${SOURCE}`],
      read: async () => {
        const r = await poller.runOnce();
        return { details: { machines: r.machines, vulnerabilitiesRefreshed: r.vulnerabilitiesRefreshed, machinesDeleted: r.deleted, alerts: r.alerts, usersDeferred: r.usersDeferred }, failures: 0 };
      },
    }),
  };
}
