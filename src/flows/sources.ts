// Every source ThreatBridge can read, by the name flows use (config/flows.ts): each builds its part
// around the hub's ingest loop. With the sinks table (sinks.ts) this is what the service is made of.
import type { ServicePart } from '../core/parts.js';
import { activeSources } from '../config/flows.js';
import { defenderAlertsPart } from './defender-alerts.js';
import { defenderAssetsPart } from './defender-assets.js';
import { Hub } from './hub.js';
import { mispPart } from './misp.js';
import { openctiPart } from './opencti.js';
import type { ServiceContext } from './parts.js';

export const SOURCES: Record<string, (ctx: ServiceContext, hub: Hub) => ServicePart> = {
  opencti: openctiPart,
  misp: mispPart,
  defender_alerts: defenderAlertsPart,
  defender_assets: defenderAssetsPart,
};

/** The parts of the active flows: every fed sink's parts, then every configured source's part. */
export function serviceParts(ctx: ServiceContext): ServicePart[] {
  const hub = new Hub(ctx);
  return [...hub.parts(), ...[...activeSources(ctx.config)].map((source) => SOURCES[source]!(ctx, hub))];
}
