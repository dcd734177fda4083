// Reference lists of a DFIR-IRIS 2.4 install, with the ids a fresh install gets (see
// design/apis/iris.md §6). Severity ids differ between fresh and upgraded installs, so the
// simulator can be told either layout: a client must look every id up by name.

export const FRESH_SEVERITIES: readonly [number, string][] = [
  [1, 'Medium'], [2, 'Unspecified'], [3, 'Informational'], [4, 'Low'], [5, 'High'], [6, 'Critical'],
];
export const UPGRADED_SEVERITIES: readonly [number, string][] = [
  [1, 'Unspecified'], [2, 'Informational'], [3, 'Low'], [4, 'Medium'], [5, 'High'], [6, 'Critical'],
];

export const ALERT_STATUSES: readonly [number, string][] = [
  [1, 'Unspecified'], [2, 'New'], [3, 'Assigned'], [4, 'In progress'], [5, 'Pending'], [6, 'Closed'], [7, 'Merged'], [8, 'Escalated'],
];

export const RESOLUTIONS: readonly [number, string][] = [
  [1, 'False Positive'], [2, 'True Positive With Impact'], [3, 'True Positive Without Impact'], [4, 'Not Applicable'], [5, 'Unknown'], [6, 'Legitimate'],
];

export const TLPS: readonly [number, string, string][] = [
  [1, 'red', 'danger'], [2, 'amber', 'warning'], [3, 'green', 'success'], [4, 'clear', 'black'], [5, 'amber+strict', 'warning'],
];

/** [id, name, validation regex or null] for the seeded IOC types ThreatBridge uses, at fresh-install ids. */
export const IOC_TYPES: readonly [number, string, string | null][] = [
  [1, 'AS', null], [3, 'account', null], [20, 'domain', null], [21, 'domain|ip', null], [22, 'email', null],
  [31, 'email-src', null], [37, 'filename', null], [42, 'filename|md5', '.+\\|[a-f0-9]{32}'],
  [46, 'filename|sha256', '.+\\|[a-f0-9]{64}'], [69, 'hostname', null], [70, 'hostname|port', null], [76, 'ip-any', null],
  [77, 'ip-dst', null], [79, 'ip-src', null], [86, 'mac-address', null], [90, 'md5', '[a-f0-9]{32}'], [96, 'other', null],
  [97, 'file-path', null], [109, 'regkey', null], [111, 'sha1', '[a-f0-9]{40}'], [113, 'sha256', '[a-f0-9]{64}'],
  [135, 'text', null], [141, 'url', null], [142, 'user-agent', null], [144, 'vulnerability', null],
];

export const ASSET_TYPES: readonly string[] = [
  'Account', 'Firewall', 'Linux - Server', 'Linux - Computer', 'Linux Account', 'Mac - Computer', 'Phone - Android',
  'Phone - IOS', 'Windows - Computer', 'Windows - Server', 'Windows - DC', 'Router', 'Switch', 'VPN', 'WAF',
  'Windows Account - Local', 'Windows Account - Local - Admin', 'Windows Account - AD', 'Windows Account - AD - Admin',
  'Windows Account - AD - krbtgt', 'Windows Account - AD - Service',
];

/** Python's repr of a marshmallow messages dict, as IRIS puts `str(ValidationError)` in `message`. */
export function pyRepr(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return value.includes("'") && !value.includes('"') ? `"${value}"` : `'${value.replace(/'/g, "\\'")}'`;
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  if (typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>).map(([k, v]) => `${/^\d+$/.test(k) ? k : pyRepr(k)}: ${pyRepr(v)}`).join(', ')}}`;
  }
  return String(value);
}
