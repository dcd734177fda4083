// Which pushed indicators a custom-indicator alert fired on. Defender's alert names no indicator id
// (microsoft.md §4: only detectionSource, title and evidence), so a CustomTI alert is matched by the
// values in its evidence, in the mapper's canonical forms (parseObservable: IPv6 spellings, case,
// trailing dots, IDN) and, when no evidence value is claimed, by its title (an Audit indicator's
// alert carries the title ThreatBridge gave the indicator). The store's claims name the OpenCTI and
// MISP objects that asserted the value: those are the hits the sightings sinks and IRIS use.
import { observableKey } from '../../core/claims.js';
import { parseObservable, readUrl } from '../../core/observables.js';
import type { IngestItem } from '../../core/pipeline.js';
import { RECORD_TYPES, type DefenderAlertChange, type IndicatorHit } from '../../core/records.js';
import type { HitLookup } from '../../core/store.js';
import { isRecordChange, type Claim, type Observable, type ObservableType } from '../../core/types.js';

/** Bounds per alert: a crafted alert with thousands of evidence rows costs a bounded lookup. */
const MAX_CANDIDATES = 200;
const MAX_HITS = 50;

export const isCustomTi = (a: DefenderAlertChange): boolean => (a.detectionSource ?? '').toLowerCase() === 'customti';

function canonical(type: ObservableType, raw: string): Observable | null {
  const r = parseObservable(type, raw);
  return r.ok ? r.observable : null;
}

/** A host and its parent domains down to two labels: a domain indicator also matches its subdomains. */
function domainsOf(host: string): Observable[] {
  const d = canonical('domain', host);
  if (!d) return [];
  const labels = d.value.split('.');
  const out: Observable[] = [];
  for (let i = 0; i <= labels.length - 2; i++) out.push({ type: 'domain', value: labels.slice(i).join('.') });
  return out;
}

/** The canonical observables an alert's evidence names (IPs, URLs and their hosts, file hashes, certificate thumbprints). */
export function alertObservables(a: DefenderAlertChange): Observable[] {
  const out = new Map<string, Observable>();
  const add = (o: Observable | null) => { if (o && out.size < MAX_CANDIDATES) out.set(observableKey(o), o); };
  for (const ip of a.evidence.ips) add(canonical('ipv4', ip) ?? canonical('ipv6', ip));
  for (const u of a.evidence.urls) {
    const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(u) ? readUrl(u) : null;
    if (url) {
      add(canonical('url', u));
      for (const d of domainsOf(url.hostname)) add(d);
    } else {
      // Defender puts a bare domain in the Url evidence of a domain indicator.
      add(canonical('ipv4', u) ?? canonical('ipv6', u));
      for (const d of domainsOf(u)) add(d);
    }
  }
  for (const f of a.evidence.files) {
    if (f.sha1) { add(canonical('sha1', f.sha1)); add(canonical('cert-sha1', f.sha1)); }
    if (f.sha256) add(canonical('sha256', f.sha256));
  }
  return [...out.values()];
}

const hitOf = (c: Claim, matchedBy: IndicatorHit['matchedBy']): IndicatorHit => ({
  key: c.key, value: c.change.observable.value, system: c.change.sourceRef.system, sourceId: c.sourceId,
  url: c.change.sourceRef.url ?? null, title: c.change.title, matchedBy,
});

/** The hits of one alert: none unless it is a CustomTI detection. */
export async function findHits(a: DefenderAlertChange, store: HitLookup): Promise<IndicatorHit[]> {
  if (!isCustomTi(a)) return [];
  const keys = alertObservables(a).map(observableKey);
  let claims = keys.length > 0 ? await store.loadClaims(keys, []) : [];
  let by: IndicatorHit['matchedBy'] = 'evidence';
  if (claims.length === 0 && a.title) {
    claims = await store.claimsByTitle([a.title], MAX_HITS);
    by = 'title';
    // A title shared by several values (a MISP event's info on each of its attributes) does not
    // say which one fired: no hit rather than a sighting on every one.
    if (new Set(claims.map((c) => c.key)).size > 1) claims = [];
  }
  const seen = new Set<string>();
  return claims
    .filter((c) => (seen.has(c.sourceId + c.key) ? false : (seen.add(c.sourceId + c.key), true)))
    .sort((x, y) => (x.key + x.sourceId < y.key + y.sourceId ? -1 : 1))
    .slice(0, MAX_HITS)
    .map((c) => hitOf(c, by));
}

/**
 * The poller's items with each CustomTI alert's hits attached (`onHit` counts them), before the
 * core stores and routes them. A store failure throws: the poll fails and runs again.
 */
export async function attachHits(items: IngestItem[], store: HitLookup, onHit: (hit: IndicatorHit) => void = () => {}): Promise<IngestItem[]> {
  const out: IngestItem[] = [];
  for (const item of items) {
    const n = item.normalised;
    if (!isRecordChange(n) || n.type !== RECORD_TYPES.alert) { out.push(item); continue; }
    const alert = n.record as DefenderAlertChange;
    const hits = await findHits(alert, store);
    hits.forEach(onHit);
    out.push(hits.length > 0 ? { ...item, normalised: { ...n, record: { ...alert, hits } } } : item);
  }
  return out;
}
