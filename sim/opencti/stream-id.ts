// Redis stream ids (`<epoch_ms>-<seq>`) and the platform's conversion of the start/recover
// parameters (sseMiddleware `convertParameterToStreamId` / `convertParameterToDate`).

export interface StreamId {
  ms: number;
  seq: number;
}

export const FROM_START_ISO = '1970-01-01T00:00:00.000Z';

const ID_RE = /^(\d+)-(\d+)$/;

/** A well-formed Redis id, or null (Redis would refuse it with "Invalid stream ID"). */
export function parseStreamId(id: string): StreamId | null {
  const m = ID_RE.exec(id);
  if (!m) return null;
  const ms = Number(m[1]);
  const seq = Number(m[2]);
  return Number.isSafeInteger(ms) && Number.isSafeInteger(seq) ? { ms, seq } : null;
}

export function formatStreamId(id: StreamId): string {
  return `${id.ms}-${id.seq}`;
}

export function compareStreamIds(a: StreamId, b: StreamId): number {
  return a.ms !== b.ms ? a.ms - b.ms : a.seq - b.seq;
}

/** The id of a recovered element (`streamEventId(updated_at, index)` in utils/format.js). */
export function streamEventId(ms: number, index = 0): string {
  return `${ms}-${index}`;
}

/** The platform's "exactly one dash" test: anything shaped like that is taken as a stream id as is. */
function isEventFormat(param: string): boolean {
  return param.includes('-') && param.split('-').length === 2;
}

/** moment.utc(param): ISO 8601 first, a missing offset meaning UTC; else the Date parser. */
function parseDate(param: string): number | null {
  const local = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(param);
  const ms = Date.parse(local ? `${param.replace(' ', 'T')}Z` : param);
  return Number.isNaN(ms) ? null : ms;
}

/**
 * The ISO date of a start/recover parameter; undefined when absent or unparseable.
 * Throws, as the platform does (RangeError from toISOString), on an event-format value whose
 * time part is not a number: the stream handler turns that into a 500.
 */
export function convertParameterToDate(param: string | undefined): string | undefined {
  if (!param) return undefined;
  if (param === '0' || param === '0-0') return FROM_START_ISO;
  if (isEventFormat(param)) {
    const ms = parseInt(param.split('-')[0] ?? '', 10);
    return new Date(ms).toISOString();
  }
  const ms = parseDate(param);
  return ms === null ? undefined : new Date(ms).toISOString();
}

/** The Redis id to read after; undefined when absent or unparseable (then: live only). */
export function convertParameterToStreamId(param: string | undefined): string | undefined {
  if (!param) return undefined;
  if (param === '0' || param === '0-0') return '0-0';
  if (isEventFormat(param)) return param;
  const ms = parseDate(param);
  return ms === null ? undefined : `${ms}-0`;
}

/** The ms part of an id, for the heartbeat's ISO date. */
export function idTimeMs(id: string): number {
  return parseInt(id.split('-')[0] ?? '', 10);
}
