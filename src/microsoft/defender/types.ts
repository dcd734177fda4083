// Defender for Endpoint entities as its API returns them (microsoft.md §4, §5), written once for
// the indicator sink and both pollers. Only the fields we use; Defender sends more and may omit some.

/** Current Defender action names; legacy ones are accepted and translated by the mapper. */
export const DEFENDER_ACTIONS = [
  'Audit', 'Warn', 'Block', 'BlockAndRemediate', 'Allowed', 'Alert', 'AlertAndBlock',
] as const;
export type DefenderActionInput = (typeof DEFENDER_ACTIONS)[number];

/** One verdict of /api/indicators/import. */
export interface ImportResult {
  id: string | null;
  indicator: string;
  isFailed: boolean;
  failureReason: string | null;
}

/** An indicator as GET /api/indicators lists it. */
export interface DefenderIndicator {
  id: string;
  indicatorValue: string;
  indicatorType: string;
  action?: string;
  application?: string | null;
  expirationTime?: string | null;
  [field: string]: unknown;
}

export interface MachineIpAddress {
  ipAddress?: string | null;
  macAddress?: string | null;
  type?: string | null;
  operationalStatus?: string | null;
}

export interface Machine {
  id: string;
  computerDnsName?: string | null;
  firstSeen?: string | null;
  lastSeen?: string | null;
  osPlatform?: string | null;
  osVersion?: string | null;
  osBuild?: number | null;
  version?: string | null;
  lastIpAddress?: string | null;
  lastExternalIpAddress?: string | null;
  healthStatus?: string | null;
  riskScore?: string | null;
  exposureLevel?: string | null;
  deviceValue?: string | null;
  rbacGroupName?: string | null;
  machineTags?: string[] | null;
  ipAddresses?: MachineIpAddress[] | null;
}

export interface LogonUser {
  id?: string | null;
  accountName?: string | null;
  accountDomain?: string | null;
  firstSeen?: string | null;
  lastSeen?: string | null;
  logonTypes?: string | null;
  isDomainAdmin?: boolean | null;
}

/** One row of GET /api/vulnerabilities/machinesVulnerabilities. */
export interface MachineVulnerability {
  id?: string;
  cveId: string;
  machineId: string;
  fixingKbId?: string | null;
  productName?: string | null;
  productVendor?: string | null;
  productVersion?: string | null;
  severity?: string | null;
}

/** One row of GET /api/vulnerabilities. */
export interface Vulnerability {
  id: string;
  name?: string | null;
  description?: string | null;
  severity?: string | null;
  cvssV3?: number | null;
  publishedOn?: string | null;
  updatedOn?: string | null;
}

export interface DefenderAlert {
  id: string;
  title?: string | null;
  description?: string | null;
  severity?: string | null;
  status?: string | null;
  machineId?: string | null;
  alertCreationTime?: string | null;
  firstEventTime?: string | null;
  lastUpdateTime?: string | null;
}
