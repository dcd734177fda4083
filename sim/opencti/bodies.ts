// Event bodies as the platform stores them in its stream (section 5 of the API notes) and the
// init bodies of recovery and dependency events, with generate-message.ts style messages.
import type { PatchOp } from './json-patch.js';
import { entityTypeOf, representativeName, SIM_USER_ID, type StixObject } from './stix.js';

export const EVENT_VERSION = '4';

export type Origin = Record<string, unknown>;

export function defaultOrigin(): Origin {
  return { ip: '::ffff:127.0.0.1', user_id: SIM_USER_ID, referer: 'http://127.0.0.1/dashboard', socket: 'query' };
}

const quote = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return `\`${s.length > 80 ? `${s.slice(0, 77)}...` : s}\``;
};

export function createMessage(obj: StixObject): string {
  return `creates a ${entityTypeOf(obj)} ${quote(representativeName(obj))}`;
}

export function deleteMessage(obj: StixObject): string {
  return `deletes a ${entityTypeOf(obj)} ${quote(representativeName(obj))}`;
}

export function mergeMessage(target: StixObject, sources: StixObject[]): string {
  return `merges ${entityTypeOf(target)} ${sources.map((s) => quote(representativeName(s))).join(', ')} in ${quote(representativeName(target))}`;
}

const HOUSEKEEPING = new Set(['modified', 'updated_at']);

/** "replaces `80` in `score`" for each changed field, bookkeeping dates left out. */
export function updateMessage(patch: readonly PatchOp[]): string {
  const parts: string[] = [];
  for (const op of patch) {
    const segs = op.path.split('/').slice(1);
    const field = segs[0] === 'extensions' ? segs[2] : segs[0];
    if (!field || HOUSEKEEPING.has(field)) continue;
    const verb = op.op === 'add' ? 'adds' : op.op === 'remove' ? 'removes' : 'replaces';
    parts.push(op.op === 'remove' ? `${verb} ${quote(field)}` : `${verb} ${quote(op.value)} in ${quote(field)}`);
  }
  if (parts.length === 0) return 'updates nothing significant';
  return parts.length > 3 ? `${parts.slice(0, 3).join(', ')} and ${parts.length - 3} more` : parts.join(', ');
}

export interface LiveBodyParts {
  type: 'create' | 'update' | 'delete' | 'merge';
  scope: string;
  message: string;
  origin: Origin;
  data: StixObject;
  context?: Record<string, unknown>;
}

/** A live body, keys in the platform's order. */
export function liveBody(p: LiveBodyParts): Record<string, unknown> {
  const body: Record<string, unknown> = { version: EVENT_VERSION, type: p.type, scope: p.scope, message: p.message, origin: p.origin, data: p.data };
  if (p.context) body['context'] = p.context;
  return body;
}

/** Recovery (`init-create`) and dependency (`init-dependencies`) bodies: no `type`, no `scope`. */
export function initBody(data: StixObject, referer: 'init-create' | 'init-dependencies'): Record<string, unknown> {
  return { data, message: createMessage(data), origin: { referer }, version: EVENT_VERSION };
}

/** Adds `"event_id"` to a stored JSON body without re-serialising it. */
export function withEventId(bodyJson: string, eventId: string): string {
  const end = bodyJson.lastIndexOf('}');
  if (end < 0) return bodyJson;
  const sep = bodyJson.slice(0, end).trimEnd().endsWith('{') ? '' : ',';
  return `${bodyJson.slice(0, end)}${sep}"event_id":${JSON.stringify(eventId)}${bodyJson.slice(end)}`;
}
