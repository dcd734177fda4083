// The SSE event size limit in front of eventsource: whole events pass unchanged whatever the chunk
// boundaries; an oversized one is never held and comes out as the marker with its id and name.
import { expect } from 'chai';
import fc from 'fast-check';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { OVERSIZE_MARK, SseEventLimiter, oversizeOf } from '../../src/sources/opencti/sse-limit.js';

const enc = new TextEncoder();

/** Feed `text` to a limiter in the given chunk sizes and parse its output as eventsource does. */
function run(text: string, max: number, cuts: number[] = []): EventSourceMessage[] {
  const bytes = enc.encode(text);
  const limiter = new SseEventLimiter(max);
  const out: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => out.push(e) });
  const decoder = new TextDecoder();
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    if (cut <= at) continue;
    limiter.push(bytes.subarray(at, cut), (b) => parser.feed(decoder.decode(b, { stream: true })));
    at = cut;
  }
  return out;
}

const frame = (id: string, event: string, data: string) => `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`;

describe('SSE event size limit', () => {
  it('passes events under the limit unchanged, whatever the chunking (CRLF and comments too)', () => {
    const text = `${frame('1-0', 'create', '{"a":1}')}: keep-alive\n\nid: 2-0\r\nevent: update\r\ndata: {"b":\r\ndata: 2}\r\n\r\n${frame('3-0', 'delete', 'é')}`;
    const whole = createParserEvents(text);
    fc.assert(fc.property(fc.array(fc.nat({ max: text.length * 2 }), { maxLength: 12 }), (cuts) => {
      expect(run(text, 1024, cuts)).to.deep.equal(whole);
    }), { seed: 13, numRuns: 300 });
    expect(whole.map((e) => [e.id, e.event, e.data])).to.deep.equal([['1-0', 'create', '{"a":1}'], ['2-0', 'update', '{"b":\n2}'], ['3-0', 'delete', 'é']]);
    // A CRLF blank line ends the event at once (not when a later LF blank line comes).
    expect(run('id: 4-0\r\ndata: crlf\r\n\r\n', 1024).map((e) => e.data)).to.deep.equal(['crlf']);
  });

  it('turns an oversized event into the marker with its id and name, and keeps the events around it', () => {
    const big = 'x'.repeat(10_000);
    const text = frame('1-0', 'create', 'small') + frame('2-0', 'update', big) + frame('3-0', 'create', 'after');
    fc.assert(fc.property(fc.array(fc.nat({ max: text.length }), { maxLength: 20 }), (cuts) => {
      const events = run(text, 1000, cuts);
      expect(events.map((e) => [e.id, e.event])).to.deep.equal([['1-0', 'create'], ['2-0', 'update'], ['3-0', 'create']]);
      expect(events[0]!.data).to.equal('small');
      expect(oversizeOf(events[1]!.data)).to.equal(Buffer.byteLength(frame('2-0', 'update', big)));
      expect(events[2]!.data).to.equal('after');
    }), { seed: 13, numRuns: 200 });
    // An id after the data still names the event.
    const late = run(`event: create\ndata: ${big}\nid: 9-0\n\n`, 1000, [100, 5000]);
    expect(late.map((e) => [e.id, e.event, e.data.startsWith(OVERSIZE_MARK)])).to.deep.equal([['9-0', 'create', true]]);
  });

  it('holds at most the limit of an oversized line, however long it grows', () => {
    const limiter = new SseEventLimiter(64 * 1024);
    const emitted: Uint8Array[] = [];
    limiter.push(enc.encode('id: 5-0\nevent: create\ndata: '), (b) => emitted.push(b));
    const chunk = new Uint8Array(1024 * 1024).fill(120);
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 200; i++) limiter.push(chunk, (b) => emitted.push(b)); // 200 MiB of one line
    const held = process.memoryUsage().arrayBuffers - before;
    expect(held).to.be.lessThan(8 * 1024 * 1024);
    limiter.push(enc.encode('\n\n'), (b) => emitted.push(b));
    const text = Buffer.concat(emitted).toString('utf8');
    expect(text).to.equal(`id: 5-0\nevent: create\ndata:${OVERSIZE_MARK} ${200 * 1024 * 1024 + 30}\n\n`);
  });
});

function createParserEvents(text: string): EventSourceMessage[] {
  const out: EventSourceMessage[] = [];
  createParser({ onEvent: (e) => out.push(e) }).feed(text);
  return out;
}
