// The records the Defender pollers produce, in the system-neutral form their sinks route and map
// from (the indicator sources' form is IndicatorChange in types.ts). Record types name them in a
// RecordChange.

/** RecordChange.type of each record. */
export const RECORD_TYPES = {
  /** A Defender alert (record: DefenderAlertChange). */
  alert: 'defender-alert',
  /** A machine to hold (upsert, record: MachineSnapshot) or to forget (delete, record: MachineGone). */
  machine: 'machine',
  /** An alert as a finding on its machine (record: AlertSnapshot). */
  machineAlert: 'machine-alert',
  /** The end of a complete assets run (record: AssetsRunEnd): what the asset sink may confirm as its save point. */
  assetsRun: 'assets-run',
} as const;

export interface AlertFile { fileName: string | null; filePath: string | null; sha1: string | null; sha256: string | null }
export interface AlertProcess { fileName: string | null; filePath: string | null; commandLine: string | null; processId: number | null; parentFileName: string | null; createdAt: string | null }
export interface AlertUser { accountName: string | null; domainName: string | null; userPrincipalName: string | null; userSid: string | null }
/** The affected machine; the details come from /api/machines/{id} when the app may read machines. */
export interface AlertMachine {
  id: string | null;
  dnsName: string | null;
  rbacGroupName: string | null;
  osPlatform?: string | null;
  osVersion?: string | null;
  lastIpAddress?: string | null;
  lastExternalIpAddress?: string | null;
  healthStatus?: string | null;
  riskScore?: string | null;
  exposureLevel?: string | null;
  machineTags?: string[];
}

export interface AlertRegistry { key: string; valueName: string | null; value: string | null }

/**
 * An indicator ThreatBridge pushed that a custom-indicator (CustomTI) alert fired on: the value the
 * alert named and the source object that asserted it (a claim), found when the alert is polled.
 */
export interface IndicatorHit {
  /** The observable key (claims.ts observableKey), e.g. "ipv4:203.0.113.7". */
  key: string;
  /** The canonical value. */
  value: string;
  system: 'opencti' | 'misp';
  /** The claim's source id: an OpenCTI STIX id, or misp:<event id>:<attribute uuid>. */
  sourceId: string;
  /** The object in its platform. */
  url: string | null;
  /** The indicator's title, as sent to Defender. */
  title: string;
  /** How it was matched: a value in the evidence, or the alert title (Audit indicators). */
  matchedBy: 'evidence' | 'title';
}

export interface DefenderAlertChange {
  tenantId: string;
  id: string;
  title: string;
  description: string;
  severity: string;
  status: string;
  classification: string | null;
  determination: string | null;
  category: string | null;
  detectionSource: string | null;
  threatName: string | null;
  threatFamilyName: string | null;
  incidentId: string | null;
  assignedTo: string | null;
  alertCreationTime: string | null;
  firstEventTime: string | null;
  lastEventTime: string | null;
  lastUpdateTime: string;
  resolvedTime: string | null;
  machine: AlertMachine | null;
  relatedUser: { userName: string; domainName: string | null } | null;
  mitreTechniques: string[];
  evidence: { files: AlertFile[]; processes: AlertProcess[]; ips: string[]; urls: string[]; users: AlertUser[]; registry: AlertRegistry[] };
  comments: { comment: string; createdBy: string | null; createdTime: string | null }[];
  /** Only Graph-style payloads carry it; MDE's alert entity has none. */
  recommendedActions: string | null;
  /** The alert in the Defender portal. */
  link: string;
  raw: Record<string, unknown>;
  /** CustomTI alerts: the pushed indicators it fired on (absent before matching, or none found). */
  hits?: IndicatorHit[];
}

/** A CAR node: required identity fields plus whatever else the collection accepts. */
export type CarNode = Record<string, unknown>;

export interface AddressSnapshot {
  ip: string | null;
  /** aa:bb:cc:dd:ee:ff */
  mac: string | null;
  /** Public addresses never get an ipaddress → macaddress edge. */
  publicIp: boolean;
}

export interface AccountSnapshot {
  user: CarNode;
  account: CarNode;
}

export interface VulnerabilitySnapshot {
  node: CarNode;
  /** The vulnerable software, `<vendor>:<product>:<version>` as the IBM connector names it (TVM rows that say). */
  applications?: string[];
}

/** Everything CAR should hold for one machine now. A null list means "not read this run: keep what CAR has". */
export interface MachineSnapshot {
  machineId: string;
  asset: CarNode;
  hostname: string | null;
  os: string | null;
  addresses: AddressSnapshot[];
  accounts: AccountSnapshot[] | null;
  vulnerabilities: VulnerabilitySnapshot[] | null;
}

/** An alert, modelled as a vulnerability of its machine (as the IBM atp connector does). */
export interface AlertSnapshot {
  alertId: string;
  machineId: string;
  node: CarNode;
  /** false once resolved: the machine → alert edge is disabled. */
  active: boolean;
}

/** A machine that left the fleet (Inactive and unseen for the configured days). */
export interface MachineGone {
  reason: string;
}

export interface AssetsRunEnd {
  /** Identifies the run (its start time, epoch ms). */
  runId: string;
}
