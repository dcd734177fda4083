// Pure mapping of a claim to a Defender indicator: type, action, severity, expiry.
// It never produces a combination Defender rejects (legacy actions, Audit without alert,
// actions a type does not take); such cases become a removal with a reason instead.
import { expandIpv6 } from '../../core/observables.js';
import type { IndicatorChange, ObservableType } from '../../core/types.js';
import { DEFENDER_ACTIONS, type DefenderActionInput } from '../../microsoft/defender/types.js';

export type DefenderIndicatorType =
  | 'FileSha1' | 'FileMd5' | 'FileSha256' | 'CertificateThumbprint' | 'IpAddress' | 'DomainName' | 'Url';
export type DefenderAction = 'Audit' | 'Warn' | 'Block' | 'BlockAndRemediate' | 'Allowed';
export type DefenderSeverity = 'Informational' | 'Low' | 'Medium' | 'High';

/** The body of one indicator as sent to POST /api/indicators/import. */
export interface DefenderIndicatorBody {
  indicatorValue: string;
  indicatorType: DefenderIndicatorType;
  action: DefenderAction;
  title: string;
  description: string;
  severity: DefenderSeverity;
  expirationTime: string;
  generateAlert: boolean;
  application: string;
  externalId?: string;
  recommendedActions?: string;
  rbacGroupNames?: string[];
  educateUrl?: string;
}

export interface DefenderMapping {
  expireDays: number;
  expireDaysByType: Partial<Record<ObservableType, number>>;
  action?: DefenderActionInput;
  defaultAction: DefenderActionInput;
  passiveOnly: boolean;
  minScore: number;
  application: string;
  recommendedActions?: string;
  educateUrl?: string;
  rbacGroupNames: string[];
  /** Extra tags; the source system's name and the object's labels are always added. */
  tags: string[];
}

export type DefenderMapResult =
  | { kind: 'upsert'; body: DefenderIndicatorBody; reason: string }
  | { kind: 'delete'; reason: string }
  | { kind: 'unsupported'; reason: string };

const TYPE_MAP: Record<ObservableType, DefenderIndicatorType | null> = {
  ipv4: 'IpAddress', ipv6: 'IpAddress', domain: 'DomainName', hostname: 'DomainName', url: 'Url',
  md5: 'FileMd5', sha1: 'FileSha1', sha256: 'FileSha256', 'cert-sha1': 'CertificateThumbprint', email: null,
};

export function defenderTypeOf(type: ObservableType): DefenderIndicatorType | null {
  return TYPE_MAP[type] ?? null;
}

const FILE_TYPES = new Set<DefenderIndicatorType>(['FileSha1', 'FileMd5', 'FileSha256']);

/** Actions each indicator type takes (Defender indicators overview). */
function allowedActions(type: DefenderIndicatorType): readonly DefenderAction[] {
  if (FILE_TYPES.has(type)) return ['Allowed', 'Audit', 'Warn', 'Block', 'BlockAndRemediate'];
  if (type === 'CertificateThumbprint') return ['Allowed', 'BlockAndRemediate'];
  return ['Allowed', 'Audit', 'Warn', 'Block'];
}

function isActionInput(a: string): a is DefenderActionInput {
  return (DEFENDER_ACTIONS as readonly string[]).includes(a);
}

/** Score bands of the seed connector: ≥60 Block/High, 30–59 Alert/Medium, 1–29 Warn/Low, 0 Audit/Informational. */
export function actionForScore(score: number): DefenderActionInput {
  if (score >= 60) return 'Block';
  if (score >= 30) return 'Alert';
  if (score >= 1) return 'Warn';
  return 'Audit';
}

export function severityForScore(score: number | null): DefenderSeverity {
  if (score === null) return 'Medium';
  if (score >= 60) return 'High';
  if (score >= 30) return 'Medium';
  if (score >= 1) return 'Low';
  return 'Informational';
}

/** Legacy names (Alert, AlertAndBlock) and per-type variants resolved to what this type accepts. */
export function resolveAction(input: DefenderActionInput, type: DefenderIndicatorType): DefenderAction | null {
  let action: DefenderAction;
  switch (input) {
    case 'Alert': action = 'Audit'; break;
    case 'AlertAndBlock': action = 'BlockAndRemediate'; break;
    default: action = input;
  }
  const allowed = allowedActions(type);
  if (allowed.includes(action)) return action;
  if (action === 'BlockAndRemediate' && allowed.includes('Block')) return 'Block';
  if (action === 'Block' && allowed.includes('BlockAndRemediate')) return 'BlockAndRemediate';
  return null;
}

let lastTime = { ms: NaN, text: '' };

/** Defender wants second precision: 2020-12-12T00:00:00Z. */
export function defenderTime(ms: number): string {
  // A batch maps every claim with the same `now`, so most calls ask for the previous instant again.
  if (ms !== lastTime.ms) lastTime = { ms, text: new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') };
  return lastTime.text;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * What a claim becomes in Defender, without the indicator body: routing needs only this (the
 * outbox keeps a reference to the claim, and the body is made again at delivery).
 */
export type DefenderVerdict =
  | DefenderUpsertVerdict
  | { kind: 'delete'; reason: string }
  | { kind: 'unsupported'; reason: string };

export interface DefenderUpsertVerdict {
  kind: 'upsert';
  type: DefenderIndicatorType;
  action: DefenderAction;
  severity: DefenderSeverity;
  expires: number;
  reason: string;
}

export function defenderVerdict(change: IndicatorChange, m: DefenderMapping, now: number): DefenderVerdict {
  const type = TYPE_MAP[change.observable.type];
  if (!type) return { kind: 'unsupported', reason: `Defender indicators have no ${change.observable.type} type` };
  if (change.score !== null && change.score < m.minScore) {
    return { kind: 'delete', reason: `score ${change.score} below min_score ${m.minScore}` };
  }
  const hints = change.hints ?? {};
  const days = m.expireDaysByType[change.observable.type] ?? m.expireDays;
  let expires = now + days * 86_400_000;
  const validUntil = change.validUntil ? Date.parse(change.validUntil) : NaN;
  if (!Number.isNaN(validUntil) && (validUntil < expires || hints.ownExpiry)) expires = validUntil;
  if (expires <= now) return { kind: 'delete', reason: `expired (valid_until ${change.validUntil})` };

  let why: string;
  let wanted: DefenderActionInput;
  if (m.passiveOnly) { wanted = 'Audit'; why = 'passive_only'; }
  else if (m.action) { wanted = m.action; why = 'configured action'; }
  else if (hints.action && isActionInput(hints.action)) { wanted = hints.action; why = `${change.sourceRef.system} rule`; }
  else if (change.score === null) { wanted = m.defaultAction; why = 'no score: default_action'; }
  else { wanted = actionForScore(change.score); why = `score ${change.score}`; }
  const action = resolveAction(wanted, type);
  if (!action) {
    return { kind: 'delete', reason: `${type} indicators do not take action ${wanted} (${why}); Defender accepts ${allowedActions(type).join('/')}` };
  }
  const severity = hints.severity ?? severityForScore(change.score);
  return { kind: 'upsert', type, action, severity, expires, reason: `${action}/${severity} (${why})` };
}

/** The indicator body of a claim whose verdict is an upsert. */
export function defenderBody(change: IndicatorChange, m: DefenderMapping, verdict: DefenderUpsertVerdict): DefenderIndicatorBody {
  const { type, action, severity, expires } = verdict;
  const hints = change.hints ?? {};
  const value = change.observable.type === 'ipv6' ? expandIpv6(change.observable.value) : change.observable.value;
  const tags = [...new Set([change.sourceRef.system, ...m.tags, ...change.labels])];
  const lines = [
    change.description || change.title,
    `Tags: ${tags.join(', ')}`,
    change.tlp ? `TLP: ${change.tlp}` : '',
    change.sourceRef.url ? `Source: ${change.sourceRef.url}` : `Source: ${change.sourceRef.system} ${change.sourceRef.id}`,
  ].filter(Boolean);
  const body: DefenderIndicatorBody = {
    indicatorValue: value,
    indicatorType: type,
    action,
    title: truncate(change.title || value, 200),
    description: truncate(lines.join('\n'), 1000),
    severity,
    expirationTime: defenderTime(expires),
    // Audit is only accepted with an alert; Allowed never alerts; the others alert as the seed
    // connector did unless the source's config says otherwise.
    generateAlert: action === 'Audit' || (action !== 'Allowed' && hints.generateAlert !== false),
    application: hints.application ?? m.application,
    externalId: change.sourceRef.id,
  };
  const recommended = hints.recommendedActions ?? m.recommendedActions;
  if (recommended) body.recommendedActions = recommended;
  if (m.rbacGroupNames.length > 0) body.rbacGroupNames = m.rbacGroupNames;
  if (m.educateUrl && type === 'Url' && (action === 'Block' || action === 'Warn')) body.educateUrl = m.educateUrl;
  return body;
}

export function mapToDefender(change: IndicatorChange, m: DefenderMapping, now: number): DefenderMapResult {
  const verdict = defenderVerdict(change, m, now);
  if (verdict.kind !== 'upsert') return verdict;
  return { kind: 'upsert', body: defenderBody(change, m, verdict), reason: verdict.reason };
}
