export { OpenCtiSimulator } from './server.js';
export type { OpenCtiSimulatorOptions, ConnectionLogEntry, EmitOptions } from './server.js';
export type { ConnectorRecord } from './graphql.js';
export type { StixObject } from './stix.js';
export { OCTI_EXT, SCO_EXT, MITRE_EXT, TLP_IDS, tlpId, tlpMarking, organization } from './stix.js';
export { comparePatch, applyPatch, type PatchOp } from './json-patch.js';
export { makeIndicator, makeObservable, randomIndicatorMix, resetFixtures, StixFixtures, observableValuesOf, patternFor, stixString } from './fixtures.js';
export type { IndicatorOptions, ObservableOptions, ObservableType, FixtureOptions } from './fixtures.js';
