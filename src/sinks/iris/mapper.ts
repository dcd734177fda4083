// Pure mapping of a Defender alert to IRIS's /alerts/add and /alerts/update bodies: a readable
// description (story, evidence, recommended actions, link), severity by name, tags, context, the raw
// alert as source content, IOCs and the affected machine as an asset.
import type { DefenderAlertChange } from '../../core/records.js';
import type { AssetKind, IocKind, IrisRefs } from './reference.js';

export interface IrisMapping {
  alertSource: string;
}

export interface IrisIocBody {
  ioc_value: string;
  ioc_type_id?: number;
  ioc_tlp_id?: number;
  ioc_description: string;
  ioc_tags: string;
}

export interface IrisAssetBody {
  asset_name: string;
  asset_type_id: number;
  asset_description: string;
  asset_ip?: string;
  asset_domain?: string;
  asset_tags: string;
  asset_enrichment: Record<string, unknown>;
}

const tagSafe = (s: string) => s.replace(/,/g, ' ').trim();

export function irisTags(a: DefenderAlertChange): string {
  const tags = ['defender', a.category, a.detectionSource, ...a.mitreTechniques].filter((t): t is string => !!t).map(tagSafe);
  return [...new Set(tags)].join(',');
}

/** The human story of the alert, in the order an analyst reads it. */
export function irisDescription(a: DefenderAlertChange): string {
  const lines: string[] = [];
  if (a.description) lines.push(a.description, '');
  lines.push(`Severity: ${a.severity} | Status: ${a.status}${a.classification ? ` | Classification: ${a.classification}${a.determination ? ` (${a.determination})` : ''}` : ''}`);
  if (a.category || a.detectionSource) lines.push(`Category: ${a.category ?? '-'} | Detection source: ${a.detectionSource ?? '-'}`);
  if (a.threatName || a.threatFamilyName) lines.push(`Threat: ${[a.threatName, a.threatFamilyName].filter(Boolean).join(' / ')}`);
  if (a.machine) {
    const m = a.machine;
    lines.push(`Machine: ${m.dnsName ?? '-'} (id ${m.id ?? '-'})${m.rbacGroupName ? `, device group ${m.rbacGroupName}` : ''}`);
    const more = [m.osPlatform && `OS ${m.osPlatform}${m.osVersion ? ` ${m.osVersion}` : ''}`, m.lastIpAddress && `IP ${m.lastIpAddress}`,
      m.lastExternalIpAddress && `external IP ${m.lastExternalIpAddress}`, m.healthStatus && `health ${m.healthStatus}`,
      m.riskScore && `risk ${m.riskScore}`, m.exposureLevel && `exposure ${m.exposureLevel}`, m.machineTags?.length && `tags ${m.machineTags.join(', ')}`].filter(Boolean);
    if (more.length) lines.push(`  ${more.join(' | ')}`);
  }
  if (a.relatedUser) lines.push(`User: ${a.relatedUser.domainName ? `${a.relatedUser.domainName}\\` : ''}${a.relatedUser.userName}`);
  if (a.incidentId) lines.push(`Defender incident: ${a.incidentId}`);
  if (a.mitreTechniques.length) lines.push(`MITRE ATT&CK: ${a.mitreTechniques.join(', ')}`);
  // A custom-indicator alert: which pushed indicator fired, and where it lives (doc/sightings.md).
  if (a.hits?.length) {
    lines.push('', 'Indicator that fired (pushed by ThreatBridge):');
    for (const h of a.hits) lines.push(`- ${h.title} (${h.value}) from ${h.system === 'opencti' ? 'OpenCTI' : 'MISP'}${h.url ? `: ${h.url}` : ` ${h.sourceId}`}`);
  }

  lines.push('', 'Timeline:');
  const story: [string | null, string][] = [
    [a.firstEventTime, 'first activity'], [a.lastEventTime, 'last activity'], [a.alertCreationTime, 'alert raised'],
    ...a.evidence.processes.map((p): [string | null, string] => [p.createdAt, `process ${p.fileName ?? '?'}${p.processId !== null ? ` (pid ${p.processId})` : ''}${p.parentFileName ? ` started by ${p.parentFileName}` : ''}${p.commandLine ? `: ${p.commandLine}` : ''}`]),
    ...a.comments.map((c): [string | null, string] => [c.createdTime, `comment by ${c.createdBy ?? 'unknown'}: ${c.comment}`]),
    [a.resolvedTime, 'resolved'],
  ];
  for (const [t, what] of story.filter(([t]) => t !== null).sort(([x], [y]) => Date.parse(x!) - Date.parse(y!))) lines.push(`- ${t}: ${what}`);
  for (const [t, what] of story.filter(([t, what]) => t === null && what.startsWith('process'))) lines.push(`- ${t ?? '(time unknown)'}: ${what}`);

  const ev = a.evidence;
  if (ev.files.length + ev.ips.length + ev.urls.length + ev.users.length + ev.registry.length > 0) {
    lines.push('', 'Evidence:');
    for (const f of ev.files) lines.push(`- file ${f.filePath ? `${f.filePath.replace(/[\\/]+$/, '')}\\` : ''}${f.fileName ?? ''}${f.sha256 ? ` sha256 ${f.sha256}` : ''}${f.sha1 ? ` sha1 ${f.sha1}` : ''}`);
    for (const ip of ev.ips) lines.push(`- IP ${ip}`);
    for (const u of ev.urls) lines.push(`- URL ${u}`);
    for (const u of ev.users) lines.push(`- user ${u.domainName ? `${u.domainName}\\` : ''}${u.accountName ?? ''}${u.userPrincipalName ? ` (${u.userPrincipalName})` : ''}`);
    for (const r of ev.registry) lines.push(`- registry ${r.key}${r.value ? ` = ${r.value}` : ''}`);
  }
  lines.push('', 'Recommended actions:', a.recommendedActions ?? `Review the alert and its recommended actions in Microsoft Defender: ${a.link}`);
  lines.push('', `Defender alert ${a.id}: ${a.link}`);
  return lines.join('\n');
}

export function irisIocs(a: DefenderAlertChange, refs: IrisRefs): IrisIocBody[] {
  const out: IrisIocBody[] = [];
  const seen = new Set<string>();
  const add = (kind: IocKind, value: string | null, description: string) => {
    if (!value) return;
    const type = refs.iocTypeId(kind);
    const key = `${type}|${value}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({
      ioc_value: value,
      ...(type !== null ? { ioc_type_id: type } : {}),
      ...(refs.tlpId !== null ? { ioc_tlp_id: refs.tlpId } : {}),
      ioc_description: description,
      ioc_tags: `defender,${kind}`,
    });
  };
  for (const ip of a.evidence.ips) add('ip', ip, `IP address in Defender alert ${a.id}`);
  for (const url of a.evidence.urls) {
    add('url', url, `URL in Defender alert ${a.id}`);
    try {
      const host = new URL(url).hostname;
      if (host && !/^[\d.]+$|:/.test(host)) add('domain', host, `Domain of a URL in Defender alert ${a.id}`);
    } catch {
      // not a parseable URL: kept as the url IOC only
    }
  }
  for (const f of a.evidence.files) {
    add('sha256', f.sha256, `SHA-256 of ${f.fileName ?? 'a file'} in Defender alert ${a.id}`);
    add('sha1', f.sha1, `SHA-1 of ${f.fileName ?? 'a file'} in Defender alert ${a.id}`);
    add('filename', f.fileName, `File name in Defender alert ${a.id}${f.filePath ? ` (${f.filePath})` : ''}`);
  }
  for (const u of a.evidence.users) add('account', u.userPrincipalName ?? (u.domainName ? `${u.domainName}\\${u.accountName}` : u.accountName), `Account in Defender alert ${a.id}`);
  if (a.machine?.dnsName) add('hostname', a.machine.dnsName, `Machine of Defender alert ${a.id}`);
  if (a.machine?.id) add('other', a.machine.id, `Defender machine id of ${a.machine.dnsName ?? 'the affected machine'}`);
  add('other', a.id, 'Defender alert id');
  return out;
}

export function irisAssets(a: DefenderAlertChange, refs: IrisRefs): IrisAssetBody[] {
  if (!a.machine) return [];
  const name = a.machine.dnsName ?? a.machine.id!;
  const dot = a.machine.dnsName?.indexOf('.') ?? -1;
  const type = refs.assetTypeId(assetKind(a.machine.osPlatform ?? null));
  if (type === null) return [];
  const m = a.machine;
  return [{
    asset_name: name,
    asset_type_id: type,
    asset_description: `Machine of Defender alert ${a.id}${a.machine.id ? ` (Defender machine id ${a.machine.id})` : ''}`,
    ...(m.lastIpAddress ? { asset_ip: m.lastIpAddress } : {}),
    ...(dot > 0 ? { asset_domain: a.machine.dnsName!.slice(dot + 1) } : {}),
    asset_tags: 'defender',
    asset_enrichment: { defender: { ...m } },
  }];
}

/** Defender's osPlatform (Windows10, Windows11, WindowsServer2019, Linux, macOS, …) → IRIS asset kind. */
export function assetKind(osPlatform: string | null): AssetKind {
  const os = (osPlatform ?? '').toLowerCase();
  if (os.startsWith('windowsserver')) return 'windows-server';
  if (os.startsWith('windows')) return 'windows-computer';
  if (os.includes('linux') || os.includes('ubuntu') || os.includes('redhat') || os.includes('centos') || os.includes('debian')) return 'linux-computer';
  if (os.includes('mac')) return 'mac-computer';
  return 'windows-computer';
}

function context(a: DefenderAlertChange): Record<string, unknown> {
  return {
    defender_alert_id: a.id, tenant_id: a.tenantId, incident_id: a.incidentId, status: a.status, severity: a.severity,
    category: a.category, detection_source: a.detectionSource, classification: a.classification, determination: a.determination,
    machine_id: a.machine?.id ?? null, mitre_techniques: a.mitreTechniques.join(','), last_update_time: a.lastUpdateTime,
  };
}

/** Fields shared by create and update (scalars only: IRIS 2.4 cannot change IOCs or assets by update). */
function scalars(a: DefenderAlertChange, refs: IrisRefs, m: IrisMapping): Record<string, unknown> {
  return {
    alert_title: a.title,
    alert_description: irisDescription(a),
    alert_source: m.alertSource,
    alert_source_ref: a.id,
    alert_source_link: a.link,
    alert_source_content: a.raw,
    alert_source_event_time: (a.firstEventTime ?? a.alertCreationTime ?? a.lastUpdateTime).replace(/(\.\d{6})\d*/, '$1'),
    alert_severity_id: refs.severityId(a.severity),
    alert_context: context(a),
    alert_tags: irisTags(a),
  };
}

/** A resolved alert's classification as IRIS's resolution, when both sides know it. */
function resolution(a: DefenderAlertChange, refs: IrisRefs): Record<string, number> {
  const id = a.status === 'Resolved' ? refs.resolutionId(a.classification) : null;
  return id === null ? {} : { alert_resolution_status_id: id };
}

export function irisCreateBody(a: DefenderAlertChange, refs: IrisRefs, m: IrisMapping, customerId: number): Record<string, unknown> {
  return {
    ...scalars(a, refs, m),
    alert_status_id: a.status === 'Resolved' ? refs.resolvedStatusId : refs.newStatusId,
    ...resolution(a, refs),
    alert_customer_id: customerId,
    alert_note: `Imported from Microsoft Defender by ThreatBridge (tenant ${a.tenantId}).`,
    alert_iocs: irisIocs(a, refs),
    alert_assets: irisAssets(a, refs),
  };
}

/**
 * Update body: the alert's own fields; the status only when Defender resolved the alert (the IRIS
 * workflow belongs to its analysts otherwise); `alert_owner_id: -1` when the alert has no owner, or
 * IRIS would make the API user its owner.
 */
export function irisUpdateBody(a: DefenderAlertChange, refs: IrisRefs, m: IrisMapping, current: { alert_owner_id: number | null }): Record<string, unknown> {
  return {
    ...scalars(a, refs, m),
    ...(a.status === 'Resolved' ? { alert_status_id: refs.resolvedStatusId, ...resolution(a, refs) } : {}),
    ...(current.alert_owner_id === null || current.alert_owner_id === undefined ? { alert_owner_id: -1 } : {}),
  };
}
