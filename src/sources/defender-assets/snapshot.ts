// Pure builder: Defender entities → what CAR should hold per machine and per alert. Total on its
// input: odd or missing fields are skipped, never thrown on.
import { isIP } from 'node:net';
import type { AccountSnapshot, AddressSnapshot, AlertSnapshot, MachineSnapshot, VulnerabilitySnapshot } from '../../core/records.js';
import type { DefenderAlert, LogonUser, Machine, MachineVulnerability, Vulnerability } from '../../microsoft/defender/types.js';

// Maps: the keys are Defender's strings.
const RISK = new Map([['none', 0], ['informational', 1], ['low', 3], ['medium', 5], ['high', 8]]);
const VALUE = new Map([['low', 3], ['normal', 5], ['high', 8]]);
const ALERT_SCORE = new Map([['high', 8], ['medium', 5], ['low', 2], ['informational', 0], ['unspecified', 0]]);

const ms = (iso: string | null | undefined): number | undefined => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? undefined : t;
};

/** `000C29897942` / `00-0c-29-89-79-42` → `00:0c:29:89:79:42`; anything else → null. */
export function normaliseMac(raw: unknown): string | null {
  const hex = (typeof raw === 'string' ? raw : '').replace(/[^0-9a-f]/gi, '').toLowerCase();
  if (hex.length !== 12 || /^0+$/.test(hex)) return null;
  return hex.match(/../g)!.join(':');
}

/** A usable host address (not loopback, unspecified or a prefix). */
export function normaliseIp(raw: unknown): string | null {
  const ip = (typeof raw === 'string' ? raw : '').trim().toLowerCase();
  if (!isIP(ip)) return null;
  if (ip === '::1' || ip === '::' || ip === '0.0.0.0' || ip.startsWith('127.')) return null;
  return ip;
}

/** RFC 1918, CGNAT, link-local and IPv6 ULA/link-local are private; the rest is public. */
export function isPrivateIp(ip: string): boolean {
  if (isIP(ip) === 4) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254);
  }
  return /^(fc|fd|fe8|fe9|fea|feb)/i.test(ip);
}

/** Addresses of a machine: its `ipAddresses` (with MACs) and its last external address (public, no MAC). */
export function machineAddresses(machine: Machine, hunted: AddressSnapshot[] = []): AddressSnapshot[] {
  const out = new Map<string, AddressSnapshot>();
  const add = (ipRaw: string | null | undefined, macRaw: string | null | undefined) => {
    const ip = normaliseIp(ipRaw);
    const mac = normaliseMac(macRaw);
    if (!ip && !mac) return;
    const a: AddressSnapshot = { ip, mac, publicIp: ip !== null && !isPrivateIp(ip) };
    out.set(`${a.ip}|${a.mac}`, a);
  };
  for (const entry of machine.ipAddresses ?? []) {
    if (!entry || (entry.operationalStatus && !/^up$/i.test(entry.operationalStatus))) continue;
    add(entry.ipAddress, entry.macAddress);
  }
  for (const h of hunted) add(h.ip, h.mac);
  if (!machine.ipAddresses?.length && hunted.length === 0) add(machine.lastIpAddress, null);
  add(machine.lastExternalIpAddress, null);
  return [...out.values()];
}

/** Rows of the DeviceNetworkInfo hunting query → addresses per machine id. */
export function huntedAddresses(rows: Record<string, unknown>[]): Map<string, AddressSnapshot[]> {
  const out = new Map<string, AddressSnapshot[]>();
  for (const row of rows) {
    if (typeof row !== 'object' || row === null) continue;
    const id = typeof row['DeviceId'] === 'string' ? row['DeviceId'] : null;
    if (!id) continue;
    let ips: unknown = row['IPAddresses'];
    if (typeof ips === 'string') {
      try { ips = JSON.parse(ips); } catch { ips = []; }
    }
    const mac = typeof row['MacAddress'] === 'string' ? row['MacAddress'] : null;
    const list = out.get(id) ?? [];
    for (const entry of Array.isArray(ips) ? ips : []) {
      const ip = normaliseIp(typeof entry === 'string' ? entry : (entry as { IPAddress?: unknown } | null)?.IPAddress);
      if (ip) list.push({ ip, mac: normaliseMac(mac), publicIp: !isPrivateIp(ip) });
    }
    out.set(id, list);
  }
  return out;
}

export function accountsOf(users: LogonUser[]): AccountSnapshot[] {
  const out = new Map<string, AccountSnapshot>();
  for (const u of users) {
    const name = (u.accountName ?? '').trim();
    if (!name) continue;
    const domain = (u.accountDomain ?? '').trim();
    const id = (u.id ?? (domain ? `${domain}\\${name}` : name)).toLowerCase();
    const user: Record<string, unknown> = { external_id: id, username: name };
    const account: Record<string, unknown> = { external_id: id, name };
    const modified = ms(u.lastSeen);
    const created = ms(u.firstSeen);
    if (created !== undefined) account['created'] = created;
    if (modified !== undefined) account['modified'] = modified;
    out.set(id, { user, account });
  }
  return [...out.values()];
}

export function vulnerabilitiesOf(rows: MachineVulnerability[], details: Map<string, Vulnerability>): VulnerabilitySnapshot[] {
  const out = new Map<string, VulnerabilitySnapshot>();
  for (const row of rows) {
    const cve = (row.cveId ?? '').trim();
    if (!cve) continue;
    const app = applicationOf(row);
    const seen = out.get(cve);
    if (seen) {
      if (app && !seen.applications?.includes(app)) seen.applications = [...seen.applications ?? [], app];
      continue;
    }
    const d = details.get(cve);
    const node: Record<string, unknown> = { external_id: cve, name: d?.name || cve };
    if (d?.description) node['description'] = d.description;
    // Rounded as the IBM connector does (CvssScore → base_score).
    if (typeof d?.cvssV3 === 'number') node['base_score'] = Math.round(d.cvssV3);
    const published = ms(d?.publishedOn);
    const updated = ms(d?.updatedOn);
    if (published !== undefined) node['published_on'] = published;
    if (updated !== undefined) node['updated_on'] = updated;
    out.set(cve, { node, ...(app ? { applications: [app] } : {}) });
  }
  return [...out.values()];
}

/** TVM's vulnerable software as the IBM connector names its application nodes: `vendor:product:version`. */
function applicationOf(row: MachineVulnerability): string | null {
  const part = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
  const [vendor, product, version] = [part(row.productVendor), part(row.productName), part(row.productVersion)];
  return vendor && product && version ? `${vendor}:${product}:${version}`.slice(0, 512) : null;
}

export interface MachineInputs {
  users: LogonUser[] | null;
  vulnerabilities: MachineVulnerability[] | null;
  vulnerabilityDetails: Map<string, Vulnerability>;
  hunted?: AddressSnapshot[];
}

export function machineSnapshot(machine: Machine, inputs: MachineInputs): MachineSnapshot {
  const hostname = (machine.computerDnsName ?? '').trim().toLowerCase() || null;
  const asset: Record<string, unknown> = { external_id: machine.id, name: machine.computerDnsName?.trim() || machine.id };
  const os = machine.osPlatform?.trim() || null;
  if (os) asset['description'] = [os, machine.version].filter(Boolean).join(' ');
  const risk = RISK.get((machine.riskScore ?? '').toLowerCase());
  if (risk !== undefined) asset['risk'] = risk;
  const value = VALUE.get((machine.deviceValue ?? '').toLowerCase());
  if (value !== undefined) asset['business_value'] = value;
  return {
    machineId: machine.id,
    asset,
    hostname,
    os,
    addresses: machineAddresses(machine, inputs.hunted),
    accounts: inputs.users ? accountsOf(inputs.users) : null,
    vulnerabilities: inputs.vulnerabilities ? vulnerabilitiesOf(inputs.vulnerabilities, inputs.vulnerabilityDetails) : null,
  };
}

export function alertSnapshot(alert: DefenderAlert): AlertSnapshot | null {
  if (!alert?.id || !alert.machineId) return null;
  const node: Record<string, unknown> = { external_id: alert.id, name: alert.title?.trim() || alert.id };
  if (alert.description) node['description'] = alert.description;
  node['base_score'] = ALERT_SCORE.get((alert.severity ?? '').toLowerCase()) ?? 0;
  const disclosed = ms(alert.firstEventTime);
  const published = ms(alert.alertCreationTime);
  const updated = ms(alert.lastUpdateTime);
  if (disclosed !== undefined) node['disclosed_on'] = disclosed;
  if (published !== undefined) node['published_on'] = published;
  if (updated !== undefined) node['updated_on'] = updated;
  return { alertId: alert.id, machineId: alert.machineId, node, active: !/^resolved$/i.test(alert.status ?? '') };
}

/** The seed's deletion rule: Inactive and not seen for `days` or more. */
export function isExpiredInactive(machine: Machine, now: number, days: number): boolean {
  const seen = ms(machine.lastSeen);
  return /^inactive$/i.test(machine.healthStatus ?? '') && seen !== undefined && seen <= now - days * 86_400_000;
}
