// The CAR sink's route (pure): a Defender asset record change → CAR operations, one outbox key per
// CAR object we own, so that a newer operation supersedes a waiting one (see delivery.ts).
import { RECORD_TYPES, type AlertSnapshot, type AssetsRunEnd, type MachineGone, type MachineSnapshot } from '../../core/records.js';
import type { RecordRoute } from '../../core/router.js';
import type { RecordChange, SinkOp } from '../../core/types.js';

export const MODEL_STATE_KEY = 'model-state';
export const machineKey = (id: string) => `machine:${id}`;
export const alertKey = (id: string) => `alert:${id}`;

/** The outbox payloads of the CAR sink. */
export type CarOpPayload =
  | { kind: 'machine'; snapshot: MachineSnapshot }
  | { kind: 'alert'; snapshot: AlertSnapshot }
  | { kind: 'delete-machine'; machineId: string; reason: string }
  | { kind: 'model-state'; modelStateId: string };

export function carRoute(sink: string): RecordRoute {
  const op = (key: string, kind: 'upsert' | 'delete', payload: CarOpPayload): SinkOp<CarOpPayload> => ({ sink, key, op: kind, payload, sourceRef: null });
  return {
    sink,
    types: [RECORD_TYPES.machine, RECORD_TYPES.machineAlert, RECORD_TYPES.assetsRun],
    route(change: RecordChange): SinkOp[] {
      switch (change.type) {
        case RECORD_TYPES.machine:
          return [change.op === 'delete'
            ? op(machineKey(change.id), 'delete', { kind: 'delete-machine', machineId: change.id, reason: (change.record as MachineGone).reason })
            : op(machineKey(change.id), 'upsert', { kind: 'machine', snapshot: change.record as MachineSnapshot })];
        case RECORD_TYPES.machineAlert:
          return [op(alertKey(change.id), 'upsert', { kind: 'alert', snapshot: change.record as AlertSnapshot })];
        case RECORD_TYPES.assetsRun:
          return [op(MODEL_STATE_KEY, 'upsert', { kind: 'model-state', modelStateId: (change.record as AssetsRunEnd).runId })];
        default:
          return [];
      }
    },
  };
}
