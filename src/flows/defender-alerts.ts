// Microsoft Defender alerts as a source: one poller per Defender tenant (same Entra app,
// multi-tenant when several), each with its own ingest loop and checkpoint, reading while this
// replica holds the source lock. Where the alerts go is the sinks' business (config/flows.ts).
import { ConfigError } from '../config/errors.js';
import type { ServicePart } from '../core/parts.js';
import type { Pipeline } from '../core/pipeline.js';
import { isRecordChange } from '../core/types.js';
import type { DeadLetter } from '../core/types.js';
import type { IndicatorHit } from '../core/records.js';
import type { HitLookup } from '../core/store.js';
import { defenderApi } from '../microsoft/defender/client.js';
import { tenantCredentials } from '../sources/defender-alerts/config.js';
import { attachHits } from '../sources/defender-alerts/hits.js';
import { DefenderAlertsPoller, readAlert } from '../sources/defender-alerts/poller.js';
import type { Hub } from './hub.js';
import type { ServiceContext } from './parts.js';
import { runFlowOnce } from './once.js';
import { leadingSourcePart } from './source-leadership.js';

export const ALERTS_SOURCE = 'defender_alerts';
/** A poll's listing waits out this many throttled or failed calls before the poll fails (and runs again later). */
export const POLLER_WAIT_OUT = 4;

export function defenderAlertsPart(ctx: ServiceContext, hub: Hub): ServicePart {
  const { config, store, log, metrics } = ctx;
  const d = config.microsoft_defender_intel;
  const a = config.defender_alerts;
  const sinks = hub.sinksOf(ALERTS_SOURCE);
  const held = hub.heldBy(ALERTS_SOURCE);

  const countHit = (h: IndicatorHit) => metrics.indicatorHits.inc({ platform: h.system, matched_by: h.matchedBy });

  const tenants = a.tenant_ids.length > 0 ? [...new Set(a.tenant_ids)] : [d.tenant_id!];
  const pollers = tenants.map((tenantId) => {
    let app: { clientId: string; clientSecret: string };
    try {
      app = tenantCredentials(a, tenantId, { clientId: d.client_id!, clientSecret: d.client_secret! });
    } catch (err) {
      throw new ConfigError([(err as Error).message]);
    }
    const alerts = defenderApi(config, { callsPerMinute: a.calls_per_minute, callsPerHour: a.calls_per_hour }, log,
      { metrics, label: ALERTS_SOURCE, app: { tenantId, ...app }, waitOut: POLLER_WAIT_OUT });
    // A checkpoint (and an ingest loop) per tenant.
    const source = tenants.length === 1 ? ALERTS_SOURCE : `${ALERTS_SOURCE}:${tenantId}`;
    const ingest = hub.ingestLoop(ALERTS_SOURCE, { storedAs: source });
    // CustomTI alerts carry the indicators they fired on (sightings sinks, IRIS) before they are stored.
    const matched = { store: async (items: Parameters<typeof ingest.store>[0], signal?: AbortSignal) => ingest.store(await attachHits(items, store, countHit), signal) };
    return { ingest, poller: new DefenderAlertsPoller(source, tenantId, a, alerts, { checkpoints: store, ingest: matched, held }, log, metrics) };
  });

  const part = leadingSourcePart(ctx, ALERTS_SOURCE, {
    start: async () => { for (const p of pollers) p.poller.start(); },
    stop: async () => { await Promise.all(pollers.map((p) => p.poller.stop())); },
    health: () => {
      const failing = pollers.filter((p) => p.poller.lastError !== null);
      return failing.length ? failing.map((p) => `${p.poller.source}: ${p.poller.lastError}`).join('; ') : null;
    },
  }, pollers.map((p) => p.ingest), 'some alerts were not stored before shutdown; the next poll reads them again');
  return {
    ...part,
    runOnce: () => runFlowOnce({
      source: ALERTS_SOURCE, store, log, sinks, counts: (s) => hub.countsOf(s),
      loops: pollers.map((p) => p.ingest), sourceLetters: pollers.map((p) => `source:${p.poller.source}`),
      read: async () => {
        let read = 0;
        let queued = 0;
        let failures = 0;
        for (const { poller } of pollers) {
          try {
            const r = await poller.pollOnce();
            read += r.read;
            queued += r.queued;
          } catch (err) {
            failures++;
            log.error({ source: poller.source, error: (err as Error).message }, 'Defender alerts poll failed');
          }
        }
        return { details: { alertsRead: read, queued }, failures };
      },
    }),
  };
}

/**
 * `replay` of alerts a poller could not read (dead letters `source:defender_alerts…`): read again
 * through the pipeline, so each is queued for its sinks or dead-lettered again with the current
 * reason. Returns how many were queued.
 */
export async function replayAlertLetters(config: ServiceContext['config'], pipeline: Pipeline, letters: DeadLetter[], claims?: HitLookup): Promise<number> {
  let queued = 0;
  for (const d of letters) {
    const source = d.sink.slice('source:'.length);
    const tenant = source.includes(':') ? source.slice(source.lastIndexOf(':') + 1) : config.microsoft_defender_intel.tenant_id ?? '';
    const change = readAlert(d.payload, tenant, config.defender_alerts.portal_url);
    if (isRecordChange(change)) queued++;
    const items = [{ normalised: change, raw: d.payload, event: d.op, checkpoint: null, position: d.key }];
    await pipeline.ingest(source, claims ? await attachHits(items, claims) : items);
  }
  return queued;
}
