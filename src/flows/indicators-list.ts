// `threatbridge indicators list --target sentinel|defender`: what ThreatBridge has pushed (the
// Graph script's `-r`). Defender is read back from its API (our application's indicators);
// Sentinel's upload API has no read call, so its list is the store's record of what Sentinel
// accepted (and the output says so).
import type { Config } from '../config/schema.js';
import type { ObservableType } from '../core/types.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { odataString } from '../microsoft/defender/client.js';
import { defenderClient, defenderTarget } from '../sinks/defender/index.js';
import { defenderTypeOf } from '../sinks/defender/mapper.js';
import { parseRecord } from '../sinks/sentinel/mapper.js';
import { SENTINEL_SINK } from '../sinks/sentinel/index.js';
import type { SinkIdStore, Store } from '../core/store.js';

export interface ListedIndicator {
  type: string;
  value: string;
  id: string;
  /** Sink-specific fields (Defender: action, expirationTime; Sentinel: created). */
  details: Record<string, unknown>;
}

export interface IndicatorListing {
  target: 'sentinel' | 'defender';
  /** Where the list comes from: the sink's API or our store. */
  origin: string;
  indicators: ListedIndicator[];
}

export interface ListFilter {
  type?: string;
  value?: string;
}

const matchesValue = (value: string, wanted?: string) => !wanted || value.toLowerCase().includes(wanted.toLowerCase());

/** `--type` as an observable type (ipv4, domain, sha256…); hostname counts as domain like everywhere else. */
const keyType = (t: string) => (t === 'hostname' ? 'domain' : t);

export async function listSentinel(store: SinkIdStore, filter: ListFilter): Promise<IndicatorListing> {
  const rows = await store.listSinkIds(SENTINEL_SINK);
  const indicators: ListedIndicator[] = [];
  for (const r of rows) {
    const sep = r.key.indexOf(':');
    const type = r.key.slice(0, sep);
    const value = r.key.slice(sep + 1);
    if (filter.type && type !== keyType(filter.type)) continue;
    if (!matchesValue(value, filter.value)) continue;
    const record = parseRecord(r.externalId);
    indicators.push({ type, value, id: record?.id ?? r.externalId, details: { created: record?.created, lastUploaded: new Date(r.updatedAt).toISOString() } });
  }
  return {
    target: 'sentinel',
    origin: "ThreatBridge's state store (record of uploads Sentinel accepted; the STIX upload API has no read call)",
    indicators,
  };
}

/** What one Defender tenant (`tenant`: a target's name; default the first) holds under our application name. */
export async function listDefender(config: Config, log: Logger, filter: ListFilter, tenant?: string): Promise<IndicatorListing> {
  const target = defenderTarget(config, tenant);
  const client = defenderClient(config, log, new Metrics(), target);
  const clauses = [`application eq ${odataString(config.microsoft_defender_intel.application)}`];
  if (filter.type) {
    const t = defenderTypeOf(filter.type as ObservableType) ?? filter.type;
    clauses.push(`indicatorType eq ${odataString(t)}`);
  }
  const rows = await client.listIndicators(clauses.join(' and '));
  return {
    target: 'defender',
    origin: `Defender API (${target.baseUrl ?? config.microsoft_defender_intel.base_url}${config.microsoft_defender_intel.resource_path}, tenant ${target.name}, application '${config.microsoft_defender_intel.application}')`,
    indicators: rows.filter((r) => matchesValue(r.indicatorValue, filter.value)).map((r) => ({
      type: r.indicatorType, value: r.indicatorValue, id: r.id,
      details: { action: r.action, expirationTime: r.expirationTime, severity: r['severity'] },
    })),
  };
}

export function formatListing(l: IndicatorListing): string {
  const lines = [`# ${l.indicators.length} indicator(s) in ${l.target}; source: ${l.origin}`];
  for (const i of l.indicators) {
    const extra = Object.entries(i.details).filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k}=${String(v)}`).join(' ');
    lines.push(`${i.type}\t${i.value}\t${i.id}${extra ? `\t${extra}` : ''}`);
  }
  return lines.join('\n');
}
