// A size limit in front of eventsource's parser, which buffers a line until it ends whatever its
// length (a 400 MiB line became 954 MiB of RSS). Events are passed on whole once their blank line
// arrives; an event whose lines together pass `maxBytes` loses its data as it streams in (never
// buffered) and is passed on as `OVERSIZE_MARK <bytes>` with its id and event name, so the source
// can dead-letter it at its own stream position. Lines end at LF (a CR before it is kept, as
// eventsource-parser accepts CRLF); OpenCTI and every Node SSE server end lines that way.

/** Starts the data of an event cut by the limit. JSON text cannot start with NUL, so no real event does. */
export const OVERSIZE_MARK = '\u0000threatbridge:oversize';

const LF = 10;
const CR = 13;
const encoder = new TextEncoder();
/** id: and event: lines kept from a cut event; longer ones are dropped with its data. */
const MAX_KEPT_LINE = 1024;

/** Field name of an SSE line (`data`, `id`, `event`, …) from its first bytes. */
function fieldOf(head: Uint8Array): string {
  let end = 0;
  while (end < head.length && head[end] !== 58 /* : */ && head[end] !== LF && head[end] !== CR) end++;
  return String.fromCharCode(...head.subarray(0, end));
}

const isKept = (line: Uint8Array, bytes: number): boolean => bytes <= MAX_KEPT_LINE && ['id', 'event'].includes(fieldOf(line));

export class SseEventLimiter {
  private event: Uint8Array[] = [];
  private eventBytes = 0;
  private line: Uint8Array[] = [];
  private lineBytes = 0;
  private oversize = false;
  private kept: Uint8Array[] = [];

  constructor(private readonly maxBytes: number) {}

  /** Complete events (or their cut form) contained in the input so far, in order. */
  push(chunk: Uint8Array, emit: (bytes: Uint8Array) => void): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(LF, start);
      const end = nl < 0 ? chunk.length : nl + 1;
      this.take(chunk.subarray(start, end));
      if (nl >= 0) this.endLine(emit);
      start = end;
    }
  }

  private take(piece: Uint8Array): void {
    this.eventBytes += piece.length;
    if (!this.oversize) this.line.push(piece);
    // Past the limit only a line's head is kept: enough for an id: or event: line, never the data.
    else if (this.lineBytes <= MAX_KEPT_LINE) this.line.push(piece.slice(0, MAX_KEPT_LINE + 1 - this.lineBytes));
    this.lineBytes += piece.length;
    if (!this.oversize && this.eventBytes > this.maxBytes) {
      this.oversize = true;
      // Keep what names the event; its data goes now rather than at the blank line.
      this.kept = this.event.filter((l) => isKept(l, l.length));
      this.event = [];
      this.line = [concat(this.line).slice(0, MAX_KEPT_LINE + 1)];
    }
  }

  private endLine(emit: (bytes: Uint8Array) => void): void {
    const line = concat(this.line);
    const blank = this.lineBytes === 1 || (this.lineBytes === 2 && line[0] === CR);
    const bytes = this.lineBytes;
    this.line = [];
    this.lineBytes = 0;
    if (!blank) {
      if (!this.oversize) this.event.push(line);
      else if (isKept(line, bytes)) this.kept.push(line);
      return;
    }
    if (this.oversize) {
      const size = this.eventBytes;
      emit(concat([...this.kept, encoder.encode(`data:${OVERSIZE_MARK} ${size}\n\n`)]));
    } else if (this.event.length > 0) {
      emit(concat([...this.event, line]));
    } else {
      emit(line);
    }
    this.event = [];
    this.kept = [];
    this.eventBytes = 0;
    this.oversize = false;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The limiter as a web stream stage, for the body handed to eventsource. Events are handed on one
 * at a time, and after `sliceMs` of work the event loop gets a turn: eventsource dispatches a whole
 * read synchronously, so a chunk of many costly events (patterns at their size limit) would
 * otherwise keep `/healthz` waiting for all of them.
 */
export function limitSseEvents(maxBytes: number, sliceMs = 10): TransformStream<Uint8Array, Uint8Array> {
  const limiter = new SseEventLimiter(maxBytes);
  let sliceStart = performance.now();
  return new TransformStream({
    async transform(chunk, controller) {
      const events: Uint8Array[] = [];
      limiter.push(chunk, (b) => events.push(b));
      for (const event of events) {
        controller.enqueue(event);
        await new Promise<void>((r) => queueMicrotask(r));
        if (performance.now() - sliceStart > sliceMs) {
          await new Promise<void>((r) => setImmediate(r));
          sliceStart = performance.now();
        }
      }
    },
  });
}

/** The size of the event a message stands for when the limiter cut it, else null. */
export function oversizeOf(data: string): number | null {
  if (!data.startsWith(OVERSIZE_MARK)) return null;
  const n = Number(data.slice(OVERSIZE_MARK.length + 1));
  return Number.isFinite(n) ? n : 0;
}
