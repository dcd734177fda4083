// Defender for Endpoint entities the assets poller reads (microsoft.md §5, §4), and the snapshot
// it hands to the CAR sink. Only the fields we use; Defender sends more and may omit some.

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

/** The outbox payloads of the CAR sink. */
export type CarOpPayload =
  | { kind: 'machine'; snapshot: MachineSnapshot }
  | { kind: 'alert'; snapshot: AlertSnapshot }
  | { kind: 'delete-machine'; machineId: string; reason: string }
  | { kind: 'model-state'; modelStateId: string };
