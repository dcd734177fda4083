// Defender alerts held by the simulator, per tenant: seeded by tests, changed like the portal or
// PATCH would (lastUpdateTime bumps, resolvedTime on Resolved). Evidence is stored in full and
// only shown when the request asks for `$expand=evidence`.

export interface AlertEvidence {
  entityType: string;
  evidenceCreationTime: string | null;
  sha1: string | null;
  sha256: string | null;
  fileName: string | null;
  filePath: string | null;
  processId: number | null;
  processCommandLine: string | null;
  processCreationTime: string | null;
  parentProcessId: number | null;
  parentProcessCreationTime: string | null;
  parentProcessFileName: string | null;
  parentProcessFilePath: string | null;
  ipAddress: string | null;
  url: string | null;
  registryKey: string | null;
  registryHive: string | null;
  registryValueType: string | null;
  registryValue: string | null;
  accountName: string | null;
  domainName: string | null;
  userSid: string | null;
  aadUserId: string | null;
  userPrincipalName: string | null;
  detectionStatus: string | null;
}

export interface Alert {
  id: string;
  incidentId: number | null;
  investigationId: number | null;
  investigationState: string;
  assignedTo: string | null;
  severity: string;
  status: string;
  classification: string | null;
  determination: string | null;
  detectionSource: string;
  detectorId: string;
  category: string;
  threatFamilyName: string | null;
  threatName: string | null;
  title: string;
  description: string;
  alertCreationTime: string;
  firstEventTime: string;
  lastEventTime: string;
  lastUpdateTime: string;
  resolvedTime: string | null;
  machineId: string | null;
  computerDnsName: string | null;
  rbacGroupName: string | null;
  aadTenantId: string;
  mitreTechniques: string[];
  relatedUser: { userName: string; domainName: string } | null;
  comments: { comment: string; createdBy: string; createdTime: string }[];
  evidence: AlertEvidence[];
  [extra: string]: unknown;
}

const EMPTY_EVIDENCE: AlertEvidence = {
  entityType: 'File', evidenceCreationTime: null, sha1: null, sha256: null, fileName: null, filePath: null, processId: null,
  processCommandLine: null, processCreationTime: null, parentProcessId: null, parentProcessCreationTime: null,
  parentProcessFileName: null, parentProcessFilePath: null, ipAddress: null, url: null, registryKey: null, registryHive: null,
  registryValueType: null, registryValue: null, accountName: null, domainName: null, userSid: null, aadUserId: null,
  userPrincipalName: null, detectionStatus: null,
};

/** Every evidence field present, null when not applicable (as the API returns them). */
export function evidence(fields: Partial<AlertEvidence> & { entityType: string }): AlertEvidence {
  return { ...EMPTY_EVIDENCE, ...fields };
}

export class AlertStore {
  private readonly byTenant = new Map<string, Map<string, Alert>>();
  /** alert id → when its current version reaches the API, and the version shown until then (null: none yet). */
  private readonly ingesting = new Map<string, { at: number; shown: Alert | null }>();
  private counter = 0;
  /**
   * Defender's ingestion delay: an alert (or a change) reaches the API this long after its
   * `lastUpdateTime`, so a poller sees it with a lastUpdateTime already in the past.
   */
  ingestionDelayMs = 0;

  constructor(private readonly now: () => number = Date.now) {}

  private tenant(tenantId: string): Map<string, Alert> {
    let m = this.byTenant.get(tenantId);
    if (!m) this.byTenant.set(tenantId, (m = new Map()));
    return m;
  }

  /** Adds an alert with realistic defaults for what `fields` leaves out; returns it. */
  add(tenantId: string, fields: Partial<Alert> = {}): Alert {
    const n = ++this.counter;
    const t = new Date(this.now()).toISOString();
    const alert: Alert = {
      id: `da${String(637_472_900_382_838_869n + BigInt(n))}_${1_364_969_609 + n}`,
      incidentId: 1000 + n, investigationId: null, investigationState: 'Queued', assignedTo: null,
      severity: 'Medium', status: 'New', classification: null, determination: null,
      detectionSource: 'WindowsDefenderAtp', detectorId: `det-${n}`, category: 'Execution',
      threatFamilyName: null, threatName: null, title: `Suspicious activity ${n}`, description: `Simulated alert ${n}`,
      alertCreationTime: t, firstEventTime: t, lastEventTime: t, lastUpdateTime: t, resolvedTime: null,
      machineId: (n.toString(16).padStart(8, '0') + 'a'.repeat(32)).slice(0, 40), computerDnsName: `host${n}.contoso.local`,
      rbacGroupName: null, aadTenantId: tenantId, mitreTechniques: [], relatedUser: null, comments: [], evidence: [],
      ...fields,
    };
    this.tenant(tenantId).set(alert.id, alert);
    if (this.ingestionDelayMs > 0) this.ingesting.set(alert.id, { at: this.now() + this.ingestionDelayMs, shown: null });
    return structuredClone(alert);
  }

  /** Changes an alert as Defender would: lastUpdateTime moves, Resolved sets resolvedTime. */
  update(tenantId: string, id: string, changes: Partial<Alert>): Alert {
    const alert = this.tenant(tenantId).get(id);
    if (!alert) throw new Error(`no alert ${id} in tenant ${tenantId}`);
    if (this.ingestionDelayMs > 0) {
      const waiting = this.ingesting.get(id);
      const shown = waiting && waiting.at > this.now() ? waiting.shown : structuredClone(alert);
      this.ingesting.set(id, { at: this.now() + this.ingestionDelayMs, shown });
    }
    const comment = (changes as { comment?: string }).comment;
    delete (changes as { comment?: string }).comment;
    Object.assign(alert, changes);
    const t = new Date(Math.max(this.now(), Date.parse(alert.lastUpdateTime) + 1)).toISOString();
    if (comment) alert.comments.push({ comment, createdBy: 'simulator', createdTime: t });
    if (changes.status === 'Resolved' && !alert.resolvedTime) alert.resolvedTime = t;
    alert.lastUpdateTime = changes.lastUpdateTime ?? t;
    return structuredClone(alert);
  }

  get(tenantId: string, id: string): Alert | undefined {
    const a = this.tenant(tenantId).get(id);
    return a ? structuredClone(a) : undefined;
  }

  list(tenantId: string): Alert[] {
    return [...this.tenant(tenantId).values()];
  }

  /** What the API shows now: each alert as of its last change whose ingestion delay has passed. */
  visible(tenantId: string): Alert[] {
    const now = this.now();
    const out: Alert[] = [];
    for (const a of this.list(tenantId)) {
      const waiting = this.ingesting.get(a.id);
      if (!waiting || waiting.at <= now) out.push(a);
      else if (waiting.shown) out.push(waiting.shown);
    }
    return out;
  }

  clear(): void {
    this.byTenant.clear();
    this.ingesting.clear();
  }
}

/**
 * What Defender raises when a custom indicator (Audit/alerting) fires on a device: detection source
 * `CustomTI`, the indicator's title and severity, and the value as evidence of its kind (Ip, Url,
 * File). The alert carries no indicator id (microsoft.md §4).
 */
export function customTiAlert(indicator: { indicatorValue: string; indicatorType: string; title?: string | null; severity?: string | null }, fields: Partial<Alert> = {}): Partial<Alert> {
  const v = indicator.indicatorValue;
  const ev = indicator.indicatorType === 'IpAddress' ? evidence({ entityType: 'Ip', ipAddress: v })
    : indicator.indicatorType === 'Url' || indicator.indicatorType === 'DomainName' ? evidence({ entityType: 'Url', url: v })
      : indicator.indicatorType === 'FileSha256' ? evidence({ entityType: 'File', sha256: v, fileName: 'sample.exe', filePath: 'C:\\Users\\Public' })
        : evidence({ entityType: 'File', sha1: v, fileName: 'sample.exe', filePath: 'C:\\Users\\Public' });
  return {
    detectionSource: 'CustomTI', category: 'SuspiciousActivity', title: indicator.title ?? v,
    severity: indicator.severity ?? 'Medium', description: `A custom indicator matched activity on the device.`,
    evidence: [ev], ...fields,
  };
}
