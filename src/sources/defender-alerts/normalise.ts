// A Defender alert (as /api/alerts returns it with $expand=evidence) → DefenderAlertChange, the
// system-neutral form sinks map from. Pure and total: malformed input is a Rejection, never a throw.
import type { AlertFile, AlertMachine, AlertProcess, AlertRegistry, AlertUser, DefenderAlertChange } from '../../core/records.js';
import type { Rejection } from '../../core/types.js';

/** Machine entity fields worth showing in IRIS (Defender's machine resource type). */
export function machineDetails(raw: unknown): Partial<AlertMachine> {
  if (typeof raw !== 'object' || raw === null) return {};
  const m = raw as Record<string, unknown>;
  return {
    osPlatform: str(m.osPlatform), osVersion: str(m.version) ?? idText(m.osBuild),
    lastIpAddress: str(m.lastIpAddress), lastExternalIpAddress: str(m.lastExternalIpAddress), healthStatus: str(m.healthStatus),
    riskScore: str(m.riskScore), exposureLevel: str(m.exposureLevel),
    machineTags: Array.isArray(m.machineTags) ? (m.machineTags as unknown[]).map(str).filter((t): t is string => t !== null) : [],
    ...(str(m.rbacGroupName) ? { rbacGroupName: str(m.rbacGroupName) } : {}),
  };
}

const str = (v: unknown): string | null => (typeof v === 'string' && v.trim() !== '' ? v.trim().toWellFormed() : null);
/** An id Defender sends as a number or a string; anything else is no id (never `String(v)` on an object). */
export const idText = (v: unknown): string | null => (typeof v === 'number' && Number.isFinite(v) ? String(v) : str(v));
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const uniq = <T>(xs: T[], key: (x: T) => string): T[] => {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
};
const isoOrNull = (v: unknown): string | null => {
  const s = str(v);
  return s && !Number.isNaN(Date.parse(s)) ? s : null;
};

/** `mitreTechniques` is documented as a string but arrives as an array: accept both. */
function techniques(v: unknown): string[] {
  const items = Array.isArray(v) ? v : typeof v === 'string' ? v.split(/[,;\s]+/) : [];
  return uniq(items.map(str).filter((t): t is string => t !== null && /^T\d{4}(\.\d{3})?$/i.test(t)).map((t) => t.toUpperCase()), (t) => t);
}

export function normaliseAlert(raw: unknown, tenantId: string, portalUrl: string): { change: DefenderAlertChange } | { rejected: Rejection } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { rejected: { code: 'not_an_object', detail: 'alert is not a JSON object' } };
  const a = raw as Record<string, unknown>;
  const id = str(a.id);
  if (!id) return { rejected: { code: 'missing_id', detail: 'alert has no id' } };
  const lastUpdateTime = isoOrNull(a.lastUpdateTime);
  if (!lastUpdateTime) return { rejected: { code: 'missing_last_update_time', detail: `alert ${id} has no valid lastUpdateTime` } };

  const evidence = Array.isArray(a.evidence) ? (a.evidence.filter((e) => typeof e === 'object' && e !== null) as Record<string, unknown>[]) : [];
  const files: AlertFile[] = [];
  const processes: AlertProcess[] = [];
  const ips: string[] = [];
  const urls: string[] = [];
  const users: AlertUser[] = [];
  const registry: AlertRegistry[] = [];
  for (const e of evidence) {
    const type = (str(e.entityType) ?? '').toLowerCase();
    const sha1 = str(e.sha1)?.toLowerCase() ?? null;
    const sha256 = str(e.sha256)?.toLowerCase() ?? null;
    if (type === 'process') {
      processes.push({ fileName: str(e.fileName), filePath: str(e.filePath), commandLine: str(e.processCommandLine), processId: num(e.processId), parentFileName: str(e.parentProcessFileName), createdAt: isoOrNull(e.processCreationTime) });
    }
    // A process's image is a file too (its hashes are what one hunts for).
    if (sha1 || sha256 || (type === 'file' && (str(e.fileName) || str(e.filePath)))) {
      files.push({ fileName: str(e.fileName), filePath: str(e.filePath), sha1: sha1 && /^[0-9a-f]{40}$/.test(sha1) ? sha1 : null, sha256: sha256 && /^[0-9a-f]{64}$/.test(sha256) ? sha256 : null });
    }
    const ip = str(e.ipAddress);
    if (ip) ips.push(ip);
    const url = str(e.url);
    if (url) urls.push(url);
    if (type === 'user' || str(e.accountName) || str(e.userPrincipalName)) {
      if (str(e.accountName) || str(e.userPrincipalName)) users.push({ accountName: str(e.accountName), domainName: str(e.domainName), userPrincipalName: str(e.userPrincipalName), userSid: str(e.userSid) });
    }
    const regKey = str(e.registryKey);
    if (regKey) registry.push({ key: [str(e.registryHive), regKey].filter(Boolean).join('\\'), valueName: str(e.registryValueType), value: str(e.registryValue) });
  }

  const machineId = str(a.machineId);
  const dnsName = str(a.computerDnsName);
  const related = typeof a.relatedUser === 'object' && a.relatedUser !== null ? (a.relatedUser as Record<string, unknown>) : null;
  const relatedName = related ? str(related.userName) : null;
  const comments = Array.isArray(a.comments)
    ? (a.comments as unknown[]).filter((c): c is Record<string, unknown> => typeof c === 'object' && c !== null && str((c as Record<string, unknown>).comment) !== null)
        .map((c) => ({ comment: str(c.comment)!, createdBy: str(c.createdBy), createdTime: isoOrNull(c.createdTime) }))
    : [];
  const recommended = Array.isArray(a.recommendedActions) ? (a.recommendedActions as unknown[]).map(str).filter(Boolean).join('\n') : str(a.recommendedActions);

  return {
    change: {
      // The tenant polled (whose credentials read it) decides the routing, not a field of the payload.
      tenantId,
      id,
      title: str(a.title) ?? `Defender alert ${id}`,
      description: str(a.description) ?? '',
      severity: str(a.severity) ?? 'UnSpecified',
      status: str(a.status) ?? 'Unknown',
      classification: str(a.classification),
      determination: str(a.determination),
      category: str(a.category),
      detectionSource: str(a.detectionSource),
      threatName: str(a.threatName),
      threatFamilyName: str(a.threatFamilyName),
      incidentId: idText(a.incidentId),
      assignedTo: str(a.assignedTo),
      alertCreationTime: isoOrNull(a.alertCreationTime),
      firstEventTime: isoOrNull(a.firstEventTime),
      lastEventTime: isoOrNull(a.lastEventTime),
      lastUpdateTime,
      resolvedTime: isoOrNull(a.resolvedTime),
      machine: machineId || dnsName ? { id: machineId, dnsName, rbacGroupName: str(a.rbacGroupName) } : null,
      relatedUser: relatedName ? { userName: relatedName, domainName: related ? str(related.domainName) : null } : null,
      mitreTechniques: techniques(a.mitreTechniques),
      evidence: {
        files: uniq(files, (f) => `${f.fileName}|${f.filePath}|${f.sha1}|${f.sha256}`),
        processes: uniq(processes, (p) => `${p.processId}|${p.commandLine}|${p.fileName}`),
        ips: uniq(ips, (x) => x),
        urls: uniq(urls, (x) => x),
        users: uniq(users, (u) => `${u.domainName}\\${u.accountName}|${u.userPrincipalName}`),
        registry: uniq(registry, (r) => `${r.key}|${r.valueName}|${r.value}`),
      },
      comments,
      recommendedActions: recommended ?? null,
      link: `${portalUrl.replace(/\/+$/, '')}/alerts/${encodeURIComponent(id)}`,
      raw: a,
    },
  };
}

/** Lowest first; unknown names rank as UnSpecified. */
export function severityRank(severity: string): number {
  const i = ['unspecified', 'informational', 'low', 'medium', 'high'].indexOf(severity.toLowerCase());
  return i < 0 ? 0 : i;
}
