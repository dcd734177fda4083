export { OpenCtiSimulator } from './server.js';
export type { OpenCtiSimulatorOptions, ConnectionLogEntry, EmitOptions } from './server.js';
export type { ConnectorRecord } from './graphql.js';
export type { StixObject } from './stix.js';
export { OCTI_EXT, SCO_EXT, MITRE_EXT, TLP_IDS, tlpId, tlpMarking, organization } from './stix.js';
export { comparePatch, applyPatch, type PatchOp } from './json-patch.js';
