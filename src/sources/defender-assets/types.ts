// The snapshot the assets poller hands to the CAR sink: what CAR should hold for one machine or alert.
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
