import type { DefenderMapping } from '../src/sinks/defender/mapper.js';

/** The service's default Defender mapping, as the benchmarks use it. */
export const benchMapping: DefenderMapping = {
  expireDays: 30, expireDaysByType: {}, defaultAction: 'Alert', passiveOnly: false, minScore: 0,
  application: 'ThreatBridge', rbacGroupNames: [], tags: [],
};
