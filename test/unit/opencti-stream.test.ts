// The OpenCTI stream connection around reconnects, against the OpenCTI simulator on loopback:
// what the source is handed must be each event once, whatever the moment the connection is
// closed and reopened (backpressure pause/resume, heartbeat-silence reconnect).
import { expect } from 'chai';
import { OpenCtiSimulator } from '../../sim/opencti/index.js';
import { makeIndicator } from '../../sim/opencti/fixtures.js';
import { OpenCtiStream, type StreamMessage } from '../../src/sources/opencti/stream.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';

const TOKEN = 'sim-token';
const STREAM = 'stream-1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('OpenCTI stream connection around reconnects', function () {
  this.timeout(60_000);
  let sim: OpenCtiSimulator;
  let stream: OpenCtiStream | null = null;

  beforeEach(async () => {
    sim = new OpenCtiSimulator({ token: TOKEN, streams: [STREAM], heartbeatMs: 200 } as never);
    await sim.start();
  });
  afterEach(async () => {
    stream?.stop();
    stream = null;
    await sim.stop();
  });

  /** A stream whose position is the last event id handed over, as the source keeps it. */
  function open(onMessage: (m: StreamMessage, s: OpenCtiStream) => void): { received: StreamMessage[] } {
    const received: StreamMessage[] = [];
    let position = '0-0';
    const s = new OpenCtiStream({
      baseUrl: sim.url, streamId: STREAM, token: TOKEN, verifyTls: false, listenDelete: true, noDependencies: true,
      withInferences: false, heartbeatTimeoutMs: 10_000, maxEventBytes: 1 << 20,
      position: () => position, recoverUntil: () => null,
      onMessage: (m) => {
        // Dependencies (identities, markings) come first under their event's id, and again on
        // each new connection: not events of their own.
        if (m.data.includes('"referer":"init-dependencies"')) return;
        position = m.id;
        if (m.name !== 'heartbeat') received.push(m);
        onMessage(m, s);
      },
      log: createLogger('silent'), metrics: new Metrics(),
    });
    stream = s;
    s.start();
    return { received };
  }

  it('a paused (closed) connection hands nothing more over, and the next one resumes right after the last event', async () => {
    const total = 3000;
    for (let i = 0; i < total; i++) sim.create(makeIndicator({ pattern: `[ipv4-addr:value = '10.1.${i >> 8}.${i & 255}']`, score: 50 }));
    let atPause = -1;
    const { received } = open((m, s) => {
      if (m.name === 'heartbeat' || atPause >= 0 || received.length < 397) return; // mid-chunk: the simulator writes events in runs
      atPause = received.length;
      s.pause(); // what the ingest loop does when its queue is full, from inside this very dispatch
    });
    const deadline = Date.now() + 10_000;
    while (atPause < 0 && Date.now() < deadline) await sleep(20);
    await sleep(500);
    // eventsource dispatches what it had already read after close(): 8 to 25 events per pause before the fix.
    expect(received.length, 'events handed over after the pause').to.equal(atPause);
    stream!.resume();
    while (new Set(received.map((m) => m.id)).size < total && Date.now() < deadline + 20_000) await sleep(50);
    await sleep(300);
    const ids = received.map((m) => m.id);
    expect(new Set(ids).size, 'distinct events').to.equal(total);
    expect(ids.length - new Set(ids).size, 'events handed over twice').to.equal(0);
  });

  it('hands over each event once across many pauses with an immediate resume (two connections at once)', async () => {
    const total = 3000;
    for (let i = 0; i < total; i++) sim.create(makeIndicator({ pattern: `[ipv4-addr:value = '10.1.${i >> 8}.${i & 255}']`, score: 50 }));
    let n = 0;
    const { received } = open((m, s) => {
      if (m.name !== 'heartbeat' && ++n % 293 === 0) { s.pause(); s.resume(); }
    });
    const deadline = Date.now() + 30_000;
    while (new Set(received.map((m) => m.id)).size < total && Date.now() < deadline) await sleep(50);
    await sleep(300);
    const ids = received.map((m) => m.id);
    expect(new Set(ids).size, 'distinct events').to.equal(total);
    expect(ids.length - new Set(ids).size, 'events handed over twice').to.equal(0);
  });
});
