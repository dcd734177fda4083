// /attributes/restSearch as MISP evaluates it (RestSearchComponent, MispAttribute::restSearch):
// time filters, flags with [0,1], tags OR/NOT matching event or attribute tags, warninglists,
// includeEventTags, order, limit/page.
import type { MispData, SimAttribute, SimEvent } from './data.js';

type Body = Record<string, unknown>;

/** "5d" / "12h" / "30m" / "10s" / epoch seconds → epoch seconds; invalid → now+1 (nothing matches), as MISP. */
export function resolveTime(v: unknown, now: number): number {
  const s = String(v ?? '');
  const rel = /^(\d+)([dhms])$/.exec(s);
  if (rel) return now - Number(rel[1]) * { d: 86400, h: 3600, m: 60, s: 1 }[rel[2] as 'd' | 'h' | 'm' | 's'];
  if (/^\d+$/.test(s)) return Number(s);
  const parsed = Date.parse(s);
  return Number.isNaN(parsed) ? now + 1 : Math.floor(parsed / 1000);
}

/** 0/1/"0"/"1"/true/false or a list of them → the accepted booleans. */
function flags(v: unknown): Set<boolean> | null {
  if (v === undefined || v === null || v === '') return null;
  const list = Array.isArray(v) ? v : [v];
  return new Set(list.map((x) => x === true || x === 1 || x === '1' || x === 'true'));
}

function tagFilter(v: unknown): { or: string[]; not: string[]; and: string[] } | null {
  if (v === undefined || v === null) return null;
  const out = { or: [] as string[], not: [] as string[], and: [] as string[] };
  const push = (t: unknown, into: string[]) => { if (typeof t === 'string') into.push(t.toLowerCase()); };
  if (typeof v === 'string' || Array.isArray(v)) {
    for (const t of Array.isArray(v) ? v : [v]) {
      if (typeof t === 'string' && t.startsWith('!')) push(t.slice(1), out.not);
      else push(t, out.or);
    }
  } else if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const t of (Array.isArray(o['OR']) ? o['OR'] : [])) push(t, out.or);
    for (const t of (Array.isArray(o['NOT']) ? o['NOT'] : [])) push(t, out.not);
    for (const t of (Array.isArray(o['AND']) ? o['AND'] : [])) push(t, out.and);
  }
  return out;
}

function listOf(v: unknown): string[] | null {
  if (v === undefined || v === null) return null;
  return (Array.isArray(v) ? v : [v]).map(String);
}

export function searchAttributes(data: MispData, body: Body, now: number): Record<string, unknown>[] {
  const ts = body['timestamp'] ?? body['attribute_timestamp'];
  const since = ts !== undefined ? resolveTime(ts, now) : null;
  const publishWindow = body['publish_timestamp'] ?? body['last'];
  const publishedSince = publishWindow !== undefined ? resolveTime(publishWindow, now) : null;
  const published = flags(body['published']);
  const toIds = flags(body['to_ids']);
  // deleted omitted → live only; 1 → only soft-deleted; [0,1] → both.
  const deleted = flags(body['deleted']) ?? new Set([false]);
  const types = listOf(body['type']);
  const tags = tagFilter(body['tags']);
  const warn = flags(body['enforceWarninglist'])?.has(true) ?? false;
  const withEventTags = flags(body['includeEventTags'])?.has(true) ?? false;
  const withEventUuid = flags(body['includeEventUuid'])?.has(true) ?? false;
  // includeWarninglistHits: hits stay in the answer, marked with `warnings`.
  const markHits = flags(body['includeWarninglistHits'])?.has(true) ?? false;
  const uuids = listOf(body['uuid']);

  let rows: { a: SimAttribute; e: SimEvent }[] = [];
  for (const a of data.attributes.values()) {
    const e = data.events.get(a.event_id);
    if (!e) continue;
    if (since !== null && Number(a.timestamp) < since) continue;
    if (publishedSince !== null && Number(e.publish_timestamp) < publishedSince) continue;
    if (published && !published.has(e.published)) continue;
    if (toIds && !toIds.has(a.to_ids)) continue;
    if (!deleted.has(a.deleted)) continue;
    if (types && !types.includes(a.type)) continue;
    if (uuids && !uuids.includes(a.uuid)) continue;
    if (warn && data.warninglist.has(a.value.split('|')[0]!)) continue;
    if (tags) {
      const all = new Set([...a.tags, ...e.tags].map((t) => t.toLowerCase()));
      if (tags.not.some((t) => all.has(t))) continue;
      if (tags.or.length > 0 && !tags.or.some((t) => all.has(t))) continue;
      if (tags.and.some((t) => !all.has(t))) continue;
    }
    rows.push({ a, e });
  }
  const order = typeof body['order'] === 'string' ? body['order'] : null;
  if (order && /timestamp/i.test(order)) {
    const desc = /desc$/i.test(order);
    rows.sort((x, y) => (Number(x.a.timestamp) - Number(y.a.timestamp) || Number(x.a.id) - Number(y.a.id)) * (desc ? -1 : 1));
  } else {
    rows.sort((x, y) => Number(x.a.id) - Number(y.a.id));
  }
  const limit = Number(body['limit']);
  if (Number.isFinite(limit) && limit > 0) {
    const page = Math.max(1, Number(body['page']) || 1);
    rows = rows.slice((page - 1) * limit, page * limit);
  }
  return rows.map(({ a, e }) => {
    const { tags: own, ...cols } = a;
    const tagRows: Record<string, unknown>[] = own.map((t, i) => ({ id: String(100 + i), name: t, colour: '#33FF00', exportable: true, local: 0 }));
    if (withEventTags) for (const [i, t] of e.tags.entries()) tagRows.push({ id: String(200 + i), name: t, colour: '#33FF00', exportable: true, local: 0, inherited: 1 });
    const row: Record<string, unknown> = {
      ...cols,
      Event: { org_id: '1', distribution: e.distribution, id: e.id, info: e.info, orgc_id: e.orgc.id, uuid: e.uuid },
    };
    if (tagRows.length > 0) row['Tag'] = tagRows;
    if (withEventUuid) row['event_uuid'] = e.uuid;
    const hit = a.value.split('|').find((v) => data.warninglist.has(v));
    if (markHits && hit !== undefined) {
      row['warnings'] = [{ value: hit, match: hit, warninglist_id: '1', warninglist_name: 'List of known IPv4 public DNS resolvers', warninglist_category: 'false_positive' }];
    }
    return row;
  });
}
