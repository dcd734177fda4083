// Pure: what to send CAR for a batch of machine and alert snapshots, given what CAR already got
// from us for each machine (the "delivered state" we record as the machine's sink id). Edges that
// were delivered before and are no longer wanted are disabled by PATCH; that diff is computed at
// delivery time against what CAR actually holds, so a snapshot that superseded an undelivered one
// still disables the right edges.
import type { AlertSnapshot, CarNode, MachineSnapshot } from '../../core/records.js';

/** What CAR holds from us for one machine (edge targets), stored as JSON in sink_ids. */
export interface DeliveredState {
  /** The asset's external id in CAR; absent = the machine id. */
  a?: string;
  /** Earlier assets of this machine (before a hostname change), removed with it. */
  old?: string[];
  h: string | null;
  os: string | null;
  ip: string[];
  mac: string[];
  /** "ip|mac" pairs with an ipaddress_macaddress edge. */
  ipmac: string[];
  acc: string[];
  vul: string[];
  /** TVM applications (`vendor:product:version`) with an asset_application edge; absent in states recorded before. */
  app?: string[];
  /** Accounts with an account_hostname edge to `h`. */
  acch?: string[];
}

export interface EdgePatch {
  edge: string;
  from: string;
  to: string;
  body: { active: false };
}

export interface ImportPlan {
  nodes: Record<string, CarNode[]>;
  edges: Record<string, CarNode[]>;
  patches: EdgePatch[];
  delivered: Map<string, DeliveredState>;
}

export interface ReportInfo {
  source: string;
  reportKey: string;
  timestamp: number;
}

export function parseDelivered(raw: string | undefined): DeliveredState | null {
  if (!raw) return null;
  try {
    const d = JSON.parse(raw) as Partial<DeliveredState>;
    const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    return { ...(typeof d.a === 'string' ? { a: d.a } : {}), ...(Array.isArray(d.old) ? { old: list(d.old) } : {}), h: typeof d.h === 'string' ? d.h : null, os: typeof d.os === 'string' ? d.os : null, ip: list(d.ip), mac: list(d.mac), ipmac: list(d.ipmac), acc: list(d.acc), vul: list(d.vul),
      ...(Array.isArray(d.app) ? { app: list(d.app) } : {}), ...(Array.isArray(d.acch) ? { acch: list(d.acch) } : {}) };
  } catch {
    return null;
  }
}

class Collector {
  readonly nodes: Record<string, Map<string, CarNode>> = {};
  readonly edges: Record<string, Map<string, CarNode>> = {};
  constructor(private readonly report: ReportInfo) {}

  node(collection: string, key: string, node: CarNode): void {
    (this.nodes[collection] ??= new Map()).set(key, node);
  }

  /** Endpoints as `_from_external_id`/`_to_external_id` or `_from`/`_to` = "<collection>/<_key>". */
  edge(type: string, from: CarNode, to: CarNode): void {
    const e: CarNode = { ...from, ...to, report: this.report.reportKey, source: this.report.source, active: true, timestamp: this.report.timestamp };
    (this.edges[type] ??= new Map()).set(JSON.stringify([from, to]), e);
  }

  lists(which: Record<string, Map<string, CarNode>>): Record<string, CarNode[]> {
    return Object.fromEntries(Object.entries(which).map(([k, v]) => [k, [...v.values()]]));
  }
}

const ext = (id: string, side: 'from' | 'to') => ({ [`_${side}_external_id`]: id });
const keyed = (collection: string, key: string, side: 'from' | 'to') => ({ [`_${side}`]: `${collection}/${key}` });

/**
 * What CAR may hold for a machine while `now` is being delivered over `before`: the edges of both.
 * Recorded before the edges import, so that if this delivery stops half way and a newer snapshot
 * replaces it, that snapshot still disables the edges this one created. A rename's new asset is
 * not covered (its edges hang off another asset id): null, keep `before`.
 */
export function inFlightState(before: DeliveredState | null, now: DeliveredState): DeliveredState | null {
  if (!before) return now;
  if ((now.a ?? null) !== (before.a ?? null)) return null;
  const union = (a: string[], b: string[]) => [...new Set([...a, ...b])];
  return { ...before, ip: union(before.ip, now.ip), mac: union(before.mac, now.mac), ipmac: union(before.ipmac, now.ipmac),
    acc: union(before.acc, now.acc), vul: union(before.vul, now.vul), app: union(before.app ?? [], now.app ?? []), acch: union(before.acch ?? [], now.acch ?? []) };
}

/** The CAR asset ids a machine has had: its current one first. */
export function assetIdsOf(machineId: string, d: DeliveredState | null): string[] {
  return [d?.a ?? machineId, ...(d?.old ?? [])];
}

/**
 * `knownAssets`: machine id → current asset id for machines not in this batch (alerts need it).
 * A hostname change on the same machine id is a new asset (`<machine id>:<new hostname>`): the
 * old asset keeps its node, its edges are disabled, and it is removed with the machine.
 */
export function planImport(machines: { snapshot: MachineSnapshot; delivered: DeliveredState | null }[], alerts: AlertSnapshot[], report: ReportInfo,
  knownAssets: Map<string, string> = new Map()): ImportPlan {
  const c = new Collector(report);
  const patches: EdgePatch[] = [];
  const delivered = new Map<string, DeliveredState>();
  const disable = (edge: string, from: string, gone: string[]) => {
    for (const to of gone) patches.push({ edge, from, to, body: { active: false } });
  };

  for (const { snapshot: s, delivered: before } of machines) {
    const previous = before?.a ?? s.machineId;
    const renamed = !!(before?.h && s.hostname && before.h !== s.hostname);
    const id = renamed ? `${s.machineId}:${s.hostname}` : previous;
    c.node('asset', id, { ...s.asset, external_id: id });
    const now: DeliveredState = { h: s.hostname, os: s.os, ip: [], mac: [], ipmac: [], acc: [], vul: [], app: [], acch: [] };
    if (id !== s.machineId) now.a = id;
    const old = [...(before?.old ?? []), ...(renamed ? [previous] : [])];
    if (old.length) now.old = old;
    if (s.hostname) {
      // `host_name` is the hostname schema's required field (the framework copies `_key` into it).
      c.node('hostname', s.hostname, { _key: s.hostname, host_name: s.hostname });
      c.edge('asset_hostname', ext(id, 'from'), keyed('hostname', s.hostname, 'to'));
    }
    if (s.os) {
      c.node('application', s.os, { external_id: s.os, name: s.os, is_os: true });
      c.edge('asset_application', ext(id, 'from'), ext(s.os, 'to'));
    }
    for (const a of s.addresses) {
      if (a.ip) {
        c.node('ipaddress', a.ip, { _key: a.ip });
        c.edge('asset_ipaddress', ext(id, 'from'), keyed('ipaddress', a.ip, 'to'));
        now.ip.push(a.ip);
      }
      if (a.mac) {
        c.node('macaddress', a.mac, { _key: a.mac });
        c.edge('asset_macaddress', ext(id, 'from'), keyed('macaddress', a.mac, 'to'));
        now.mac.push(a.mac);
      }
      // The seed's rule: never an edge between a MAC and a public IP.
      if (a.ip && a.mac && !a.publicIp) {
        c.edge('ipaddress_macaddress', keyed('ipaddress', a.ip, 'from'), keyed('macaddress', a.mac, 'to'));
        now.ipmac.push(`${a.ip}|${a.mac}`);
      }
    }
    if (s.accounts) {
      for (const { user, account } of s.accounts) {
        const accId = String(account['external_id']);
        c.node('user', String(user['external_id']), user);
        c.node('account', accId, account);
        c.edge('user_account', ext(String(user['external_id']), 'from'), ext(accId, 'to'));
        c.edge('asset_account', ext(id, 'from'), ext(accId, 'to'));
        now.acc.push(accId);
      }
    } else {
      now.acc = before?.acc ?? [];
      // Not read this run: a new asset still gets the accounts CAR already has.
      if (renamed) for (const acc of now.acc) c.edge('asset_account', ext(id, 'from'), ext(acc, 'to'));
    }
    if (s.vulnerabilities) {
      for (const { node } of s.vulnerabilities) {
        const cve = String(node['external_id']);
        c.node('vulnerability', cve, node);
        c.edge('asset_vulnerability', ext(id, 'from'), ext(cve, 'to'));
        now.vul.push(cve);
      }
    } else {
      now.vul = before?.vul ?? [];
      if (renamed) for (const cve of now.vul) c.edge('asset_vulnerability', ext(id, 'from'), ext(cve, 'to'));
    }
    // The vulnerable software (TVM rows), as the IBM connector builds it: application nodes, the
    // machine's asset_application edges and application_vulnerability. The latter is a fact about
    // the software version, not the machine: never disabled here.
    if (s.vulnerabilities) {
      for (const v of s.vulnerabilities) {
        for (const app of v.applications ?? []) {
          c.node('application', app, { external_id: app, name: app });
          c.edge('asset_application', ext(id, 'from'), ext(app, 'to'));
          c.edge('application_vulnerability', ext(app, 'from'), ext(String(v.node['external_id']), 'to'));
          now.app!.push(app);
        }
      }
    } else {
      now.app = before?.app ?? [];
      if (renamed) for (const app of now.app) c.edge('asset_application', ext(id, 'from'), ext(app, 'to'));
    }
    // Who logged on where: account → the machine's hostname (the IBM connector keyed it by machine id, a bug).
    if (s.hostname) {
      for (const acc of now.acc) c.edge('account_hostname', ext(acc, 'from'), keyed('hostname', s.hostname, 'to'));
      now.acch = [...now.acc];
    }
    now.ip = [...new Set(now.ip)];
    now.mac = [...new Set(now.mac)];
    now.ipmac = [...new Set(now.ipmac)];
    now.app = [...new Set(now.app)];
    if (before) {
      // After a rename every edge of the previous asset goes; otherwise only what vanished.
      const gone = (was: string[], cur: string[]) => (renamed ? was : was.filter((x) => !cur.includes(x)));
      if (before.h && (renamed || before.h !== now.h)) disable('asset_hostname', previous, [before.h]);
      if (before.os && (renamed || before.os !== now.os)) disable('asset_application', previous, [before.os]);
      disable('asset_ipaddress', previous, gone(before.ip, now.ip));
      disable('asset_macaddress', previous, gone(before.mac, now.mac));
      for (const pair of before.ipmac.filter((x) => !now.ipmac.includes(x))) {
        const [ip, mac] = pair.split('|') as [string, string];
        patches.push({ edge: 'ipaddress_macaddress', from: ip, to: mac, body: { active: false } });
      }
      disable('asset_account', previous, gone(before.acc, now.acc));
      disable('asset_vulnerability', previous, gone(before.vul, now.vul));
      disable('asset_application', previous, gone(before.app ?? [], now.app));
      // account_hostname hangs off the hostname: all go when it changed, else the accounts that left.
      const hostChanged = before.h !== now.h;
      if (before.h) for (const acc of (before.acch ?? []).filter((a) => hostChanged || !(now.acch ?? []).includes(a))) {
        patches.push({ edge: 'account_hostname', from: acc, to: before.h, body: { active: false } });
      }
    }
    delivered.set(s.machineId, now);
  }

  for (const a of alerts) {
    const asset = delivered.get(a.machineId)?.a ?? knownAssets.get(a.machineId) ?? a.machineId;
    c.node('vulnerability', a.alertId, a.node);
    if (a.active) c.edge('asset_vulnerability', ext(asset, 'from'), ext(a.alertId, 'to'));
    else patches.push({ edge: 'asset_vulnerability', from: asset, to: a.alertId, body: { active: false } });
  }
  return { nodes: c.lists(c.nodes), edges: c.lists(c.edges), patches, delivered };
}

/** Splits collections into import bodies of at most `pageSize` items each (order kept). */
export function pages(collections: Record<string, CarNode[]>, pageSize: number): Record<string, CarNode[]>[] {
  const out: Record<string, CarNode[]>[] = [];
  let current: Record<string, CarNode[]> = {};
  let size = 0;
  for (const [name, items] of Object.entries(collections)) {
    for (let i = 0; i < items.length; i++) {
      if (size === pageSize) {
        out.push(current);
        current = {};
        size = 0;
      }
      (current[name] ??= []).push(items[i]!);
      size++;
    }
  }
  if (size > 0) out.push(current);
  return out;
}
