// Per-indicator validation as Defender documents it (post-ti-indicator, ti-indicator,
// indicators-overview, common-errors). Throws MdeError(400, code, message); the import route
// turns the message into the item's failureReason.

import { MdeError } from './errors.js';

export const INDICATOR_TYPES = ['FileSha1', 'FileMd5', 'CertificateThumbprint', 'FileSha256', 'IpAddress', 'DomainName', 'Url'] as const;
export const INDICATOR_ACTIONS = ['Alert', 'Warn', 'Block', 'Audit', 'BlockAndRemediate', 'AlertAndBlock', 'Allowed'] as const;
export const SEVERITIES = ['Informational', 'Low', 'Medium', 'High'] as const;

export type IndicatorType = (typeof INDICATOR_TYPES)[number];
export type IndicatorAction = (typeof INDICATOR_ACTIONS)[number];
export type Severity = (typeof SEVERITIES)[number];

// Current action names per type (indicators-overview). The legacy Alert/AlertAndBlock remain in
// the API enum and are still accepted for every type.
const LEGACY_ACTIONS: readonly IndicatorAction[] = ['Alert', 'AlertAndBlock'];
const FILE_ACTIONS: readonly IndicatorAction[] = ['Allowed', 'Audit', 'Warn', 'Block', 'BlockAndRemediate'];
const NETWORK_ACTIONS: readonly IndicatorAction[] = ['Allowed', 'Audit', 'Warn', 'Block'];
const CERT_ACTIONS: readonly IndicatorAction[] = ['Allowed', 'BlockAndRemediate'];
const ACTIONS_BY_TYPE: Record<IndicatorType, readonly IndicatorAction[]> = {
  FileSha1: FILE_ACTIONS,
  FileMd5: FILE_ACTIONS,
  FileSha256: FILE_ACTIONS,
  CertificateThumbprint: CERT_ACTIONS,
  IpAddress: NETWORK_ACTIONS,
  DomainName: NETWORK_ACTIONS,
  Url: NETWORK_ACTIONS,
};

const HASH_LENGTH: Partial<Record<IndicatorType, number>> = { FileMd5: 32, FileSha1: 40, FileSha256: 64, CertificateThumbprint: 40 };

/** A validated request body; optional fields absent from the request are null. */
export interface IndicatorInput {
  id: string | null;
  indicatorValue: string;
  indicatorType: IndicatorType;
  action: IndicatorAction;
  title: string;
  description: string;
  application: string | null;
  /** Normalised ISO-8601 (UTC), or null for "never". */
  expirationTime: string | null;
  severity: Severity | null;
  recommendedActions: string | null;
  rbacGroupNames: string[];
  rbacGroupIds: (string | number)[];
  generateAlert: boolean;
  educateUrl: string | null;
  externalId: string | null;
  category: string | null;
  mitreTechniques: string[] | null;
  /** Accepted-but-undocumented fields, stored and returned as sent. */
  extras: Record<string, unknown>;
}

// Undocumented fields the real service accepts and echoes (microsoft-365-docs#5890).
const EXTRA_FIELDS = ['bypassDurationHours', 'notificationId', 'notificationBody', 'version', 'historicalDetection', 'lookBackPeriod', 'additionalInfo', 'certificateInfo'] as const;

const bad = (code: string, message: string): MdeError => new MdeError(400, code, message);

export function validateIndicator(raw: unknown): IndicatorInput {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('InvalidRequestBody', 'Request body is not a valid indicator object.');
  // Body keys are case-sensitive: `IndicatorValue` does not count as `indicatorValue`.
  const body = raw as Record<string, unknown>;

  const value = requiredString(body, 'indicatorValue');
  if (value.trim() === '') throw bad('InvalidInput', 'Recieved an empty indicator value.');
  const type = requiredEnum(body, 'indicatorType', INDICATOR_TYPES);
  const action = requiredEnum(body, 'action', INDICATOR_ACTIONS);
  const title = requiredString(body, 'title');
  if (title.trim() === '') throw bad('MissingRequiredParameter', 'Parameter title is missing.');
  const description = requiredString(body, 'description');
  if (description.trim() === '') throw bad('MissingRequiredParameter', 'Parameter description is missing.');

  checkValue(type, value);

  if (!ACTIONS_BY_TYPE[type].includes(action) && !LEGACY_ACTIONS.includes(action)) {
    throw bad('InvalidInput', `Action '${action}' is not supported for indicator type '${type}'. Supported actions: ${ACTIONS_BY_TYPE[type].join(', ')}.`);
  }
  const generateAlert = optionalBoolean(body, 'generateAlert') ?? false;
  if (action === 'Audit' && !generateAlert) throw bad('InvalidInput', "The 'Audit' action requires generateAlert to be true.");

  const severityRaw = optionalString(body, 'severity');
  let severity: Severity | null = null;
  if (severityRaw !== null) {
    const s = SEVERITIES.find((x) => x === severityRaw);
    if (!s) throw bad('InvalidInput', `Invalid severity '${severityRaw}'. Possible values: ${SEVERITIES.join(', ')}.`);
    severity = s;
  }

  const extras: Record<string, unknown> = {};
  for (const f of EXTRA_FIELDS) if (body[f] !== undefined) extras[f] = body[f];

  const id = body.id;
  if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') throw bad('InvalidRequestBody', 'Field id must be a string.');

  return {
    id: id === undefined || id === null ? null : String(id),
    indicatorValue: value,
    indicatorType: type,
    action,
    title,
    description,
    application: optionalString(body, 'application'),
    expirationTime: optionalDate(body, 'expirationTime'),
    severity,
    recommendedActions: optionalString(body, 'recommendedActions'),
    rbacGroupNames: rbacGroupNames(body),
    rbacGroupIds: rbacGroupIds(body),
    generateAlert,
    educateUrl: optionalString(body, 'educateUrl'),
    externalId: optionalString(body, 'externalId'),
    category: optionalString(body, 'category'),
    mitreTechniques: optionalStringArray(body, 'mitreTechniques'),
    extras,
  };
}

// --- values -----------------------------------------------------------------------------------

function checkValue(type: IndicatorType, value: string): void {
  const hashLength = HASH_LENGTH[type];
  if (hashLength !== undefined) {
    if (!new RegExp(`^[0-9a-fA-F]{${hashLength}}$`).test(value)) {
      throw bad('InvalidHashValue', `Invalid hash value '${value}' for indicator type '${type}': expected ${hashLength} hexadecimal characters.`);
    }
    return;
  }
  if (type === 'IpAddress') {
    if (value.includes('/')) throw bad('InvalidIpAddress', `Invalid IP address '${value}': CIDR notation is not supported.`);
    if (!isIpv4(value) && !isFullIpv6(value)) {
      throw bad('InvalidIpAddress', `Invalid IP address '${value}'. IPv4 addresses must be dotted quads; IPv6 addresses must have all 8 segments.`);
    }
    return;
  }
  if (type === 'DomainName') {
    if (!isDomainName(value)) throw bad('InvalidDomainName', `Invalid domain name '${value}'.`);
    return;
  }
  if (!isUrlIndicator(value)) throw bad('InvalidUrl', `Invalid URL '${value}'.`);
}

export function isIpv4(value: string): boolean {
  return /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(value);
}

/** IPv6 with all eight 1–4 digit groups: Defender does not accept the `::` short form. */
export function isFullIpv6(value: string): boolean {
  return /^(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}$/.test(value);
}

export function isDomainName(value: string): boolean {
  if (value.length > 253 || value.includes('*')) return false;
  const labels = value.split('.');
  if (labels.length < 2) return false;
  const labelOk = labels.every((l) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l));
  const tld = labels[labels.length - 1] ?? '';
  return labelOk && !/^\d+$/.test(tld); // an all-numeric "TLD" is an IP address, not a domain
}

/** http(s) URLs, with or without the scheme (`example.com/path`); no wildcards or whitespace. */
export function isUrlIndicator(value: string): boolean {
  if (/[\s*]/.test(value)) return false;
  const hasScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value);
  if (hasScheme && !/^https?:\/\//i.test(value)) return false;
  let url: URL;
  try {
    url = new URL(hasScheme ? value : `http://${value}`);
  } catch {
    return false;
  }
  const host = url.hostname;
  return host !== '' && (isDomainName(host) || isIpv4(host) || /^\[[0-9a-fA-F:]+\]$/.test(host));
}

// --- field readers ----------------------------------------------------------------------------

function requiredString(body: Record<string, unknown>, name: string): string {
  const v = body[name];
  if (v === undefined || v === null) throw bad('MissingRequiredParameter', `Parameter ${name} is missing.`);
  if (typeof v !== 'string') throw bad('InvalidRequestBody', `Field ${name} must be a string.`);
  return v;
}

function requiredEnum<T extends string>(body: Record<string, unknown>, name: string, values: readonly T[]): T {
  const v = requiredString(body, name);
  // Enum names must be spelled exactly as documented.
  const match = values.find((x) => x === v);
  if (!match) throw bad('InvalidInput', `Invalid ${name} '${v}'. Possible values: ${values.join(', ')}.`);
  return match;
}

function optionalString(body: Record<string, unknown>, name: string): string | null {
  const v = body[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw bad('InvalidRequestBody', `Field ${name} must be a string.`);
  return v;
}

function optionalBoolean(body: Record<string, unknown>, name: string): boolean | null {
  const v = body[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'boolean') throw bad('InvalidRequestBody', `Field ${name} must be a boolean.`);
  return v;
}

function optionalStringArray(body: Record<string, unknown>, name: string): string[] | null {
  const v = body[name];
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad('InvalidRequestBody', `Field ${name} must be an array of strings.`);
  return [...(v as string[])];
}

function optionalDate(body: Record<string, unknown>, name: string): string | null {
  const s = optionalString(body, name);
  if (s === null) return null;
  const withZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(s) || !s.includes('T') ? s : `${s}Z`;
  const ms = Date.parse(withZone);
  if (Number.isNaN(ms)) throw bad('InvalidInput', `Invalid ${name} '${s}'.`);
  return formatDateTimeOffset(ms);
}

// Documented as a comma-separated string, sent as an array in the example: accept both.
function rbacGroupNames(body: Record<string, unknown>): string[] {
  const v = body.rbacGroupNames;
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return [...(v as string[])];
  throw bad('InvalidRequestBody', 'Field rbacGroupNames must be a list of strings.');
}

function rbacGroupIds(body: Record<string, unknown>): (string | number)[] {
  const v = body.rbacGroupIds;
  if (v === undefined || v === null) return [];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number')) return [...(v as (string | number)[])];
  throw bad('InvalidRequestBody', 'Field rbacGroupIds must be a list.');
}

/** .NET DateTimeOffset style: whole seconds print without a fraction. */
export function formatDateTimeOffset(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}

/** Server-stamped times carry 7 fractional digits, like `2019-12-19T09:09:46.9139216Z`. */
export function formatServerTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$10000Z');
}
