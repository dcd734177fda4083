// Public entry point of the Defender for Endpoint simulator; the implementation lives in ./defender/.

export { DefenderSimulator, MDE_AUDIENCES } from './defender/server.js';
export type { DefenderSimulatorOptions, FailNextOptions, RequestLogEntry, TokenValidator } from './defender/server.js';
export type { Indicator, Caller } from './defender/indicators.js';
export type { IndicatorType, IndicatorAction, Severity } from './defender/indicator-validation.js';
export { DEFENDER_QUOTAS } from './defender/ratelimit.js';
export type { Quota } from './defender/ratelimit.js';
export type { DownMode } from './defender/faults.js';
