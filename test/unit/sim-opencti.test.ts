import { expect } from 'chai';
import { EventSource } from 'eventsource';
import http from 'node:http';
import { applyPatch, OpenCtiSimulator, TLP_IDS, type OpenCtiSimulatorOptions, type PatchOp, type StixObject } from '../../sim/opencti/index.js';
import { makeIndicator, makeObservable, observableValuesOf, randomIndicatorMix, StixFixtures } from '../../sim/opencti/fixtures.js';

const TOKEN = 'sim-token';
const STREAM = 'stream-1';
const OCTI = 'extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba';
const SCO = 'extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82';
const AUTHOR = 'identity--11111111-2222-5333-8444-555555555555';

interface Frame {
  id?: string;
  event: string;
  data: string;
  lines: string[];
}

/** A bare SSE reader: raw frames, so framing itself can be asserted. */
class Reader {
  frames: Frame[] = [];
  raw = '';
  ended = false;
  private buffer = '';
  private waiters: Array<() => void> = [];

  constructor(readonly res: http.IncomingMessage, private readonly req: http.ClientRequest) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.raw += chunk;
      this.buffer += chunk;
      let at: number;
      while ((at = this.buffer.indexOf('\n\n')) >= 0) {
        const block = this.buffer.slice(0, at);
        this.buffer = this.buffer.slice(at + 2);
        const lines = block.split('\n');
        const f: Frame = { event: 'message', data: '', lines };
        for (const line of lines) {
          const i = line.indexOf(': ');
          const k = line.slice(0, i);
          const v = line.slice(i + 2);
          if (k === 'id') f.id = v;
          else if (k === 'event') f.event = v;
          else if (k === 'data') f.data = v;
        }
        this.frames.push(f);
      }
      this.wake();
    });
    const end = () => {
      this.ended = true;
      this.wake();
    };
    res.on('end', end);
    res.on('close', end);
    res.on('error', end);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Frames other than heartbeats. */
  get events(): Frame[] {
    return this.frames.filter((f) => f.event !== 'heartbeat');
  }

  async until(pred: (r: Reader) => boolean, timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this)) {
      if (this.ended) throw new Error(`stream ended; got ${JSON.stringify(this.frames.map((f) => f.event))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout; got ${JSON.stringify(this.frames.map((f) => `${f.event}@${f.id ?? ''}`))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async events$(n: number, timeoutMs?: number): Promise<Frame[]> {
    await this.until((r) => r.events.length >= n, timeoutMs);
    return this.events;
  }

  close(): void {
    this.req.destroy();
  }
}

function get(url: string, headers: Record<string, string> = {}): Promise<Reader> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => resolve(new Reader(res, req)));
    req.on('error', reject);
  });
}

async function bodyOf(res: http.IncomingMessage): Promise<string> {
  let text = '';
  res.setEncoding('utf8');
  for await (const c of res) text += c as string;
  return text;
}

function gql(url: string, query: string, variables: Record<string, unknown> = {}, token: string | null = TOKEN): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify({ query, variables });
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (token) headers['Authorization'] = `Bearer ${token}`;
    const req = http.request(`${url}/graphql`, { method: 'POST', headers }, async (res) => {
      const text = await bodyOf(res);
      resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const auth = { Authorization: `Bearer ${TOKEN}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const json = (f: Frame | undefined): any => JSON.parse(f?.data ?? 'null');

function indicator(value: string, extra: Partial<StixObject> = {}): StixObject {
  return makeIndicator({ value, createdBy: AUTHOR, markings: ['TLP:GREEN'], score: 70, ...extra } as never);
}

describe('OpenCTI simulator', function () {
  this.timeout(10_000);
  let sim: OpenCtiSimulator;
  const readers: Reader[] = [];

  async function boot(opts: Partial<OpenCtiSimulatorOptions> = {}): Promise<void> {
    sim = new OpenCtiSimulator({ token: TOKEN, streams: [STREAM], stoppedStreams: ['stopped-1'], heartbeatMs: 60_000, blockMs: 150, batchPauseMs: 5, ...opts });
    await sim.start();
  }

  async function open(path = `/stream/${STREAM}`, headers: Record<string, string> = {}): Promise<Reader> {
    const r = await get(`${sim.url}${path}`, { ...auth, ...headers });
    readers.push(r);
    return r;
  }

  afterEach(async () => {
    for (const r of readers.splice(0)) r.close();
    await sim?.stop();
  });

  describe('connection rules', () => {
    beforeEach(() => boot());

    it('answers 401 with an empty body and a status message without a valid token', async () => {
      const attempts: Array<Record<string, string>> = [{}, { Authorization: 'Bearer wrong' }, { Authorization: TOKEN }];
      for (const headers of attempts) {
        const r = await get(`${sim.url}/stream/${STREAM}`, headers);
        expect(r.res.statusCode).to.equal(401);
        expect(r.res.statusMessage).to.match(/not authenticated/);
        expect(await bodyOf(r.res)).to.equal('');
      }
    });

    it('answers 401 for an unknown stream and 410 for a stopped one', async () => {
      const unknown = await get(`${sim.url}/stream/nope`, auth);
      expect(unknown.res.statusCode).to.equal(401);
      const stopped = await get(`${sim.url}/stream/stopped-1`, auth);
      expect(stopped.res.statusCode).to.equal(410);
      expect(stopped.res.statusMessage).to.equal('This live stream is stopped');
      expect(await bodyOf(stopped.res)).to.equal('');
    });

    it('answers 500 to recover without a start point', async () => {
      const r = await get(`${sim.url}/stream/${STREAM}?recover=2024-01-01T00:00:00Z`, auth);
      expect(r.res.statusCode).to.equal(500);
      expect(r.res.statusMessage).to.match(/Recovery mode is only possible with a start date/);
      const withStart = await open(`/stream/${STREAM}?recover=2024-01-01T00:00:00Z`, { 'Last-Event-ID': '0-0' });
      expect(withStart.res.statusCode).to.equal(200);
    });

    it('answers new connections with the setDown status until cleared', async () => {
      sim.setDown(503);
      const r = await get(`${sim.url}/stream/${STREAM}`, auth);
      expect(r.res.statusCode).to.equal(503);
      expect((await gql(sim.url, 'query { about { version } }')).status).to.equal(200);
      sim.setDown(500, 'Internal Server Error', { graphql: true });
      expect((await get(`${sim.url}/stream/${STREAM}`, auth)).res.statusCode).to.equal(500);
      const down = await new Promise<number>((resolve, reject) => {
        const req = http.request(`${sim.url}/graphql`, { method: 'POST', headers: auth }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
        req.on('error', reject);
        req.end('{"query":"query { about { version } }"}');
      });
      expect(down).to.equal(500);
      sim.setDown(null);
      const ok = await open();
      expect(ok.res.statusCode).to.equal(200);
    });

    it('changes the per-connection delay through POST /stream/connection/:id', async () => {
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      const connectionId = json((await r.events$(1))[0]).connectionId as string;
      const post = (id: string) => new Promise<number>((resolve, reject) => {
        const req = http.request(`${sim.url}/stream/connection/${id}`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
        req.on('error', reject);
        req.end('{"delay":5}');
      });
      expect(await post(connectionId)).to.equal(200);
      expect(await post('not-a-connection')).to.equal(401);
    });

    it('sends the SSE headers and `connected` first, without an id', async () => {
      const first = sim.create(indicator('1.1.1.1'));
      sim.create(indicator('1.1.1.2'));
      const r = await open();
      expect(r.res.headers['content-type']).to.equal('text/event-stream; charset=utf-8');
      expect(r.res.headers['cache-control']).to.equal('no-cache, no-transform');
      expect(r.res.headers['connection']).to.equal('keep-alive');
      expect(r.res.headers['access-control-allow-origin']).to.equal('*');
      expect(r.res.headers['transfer-encoding']).to.equal('chunked');
      await r.until((x) => x.frames.length >= 1);
      const c = r.frames[0] as Frame;
      expect(c.event).to.equal('connected');
      expect(c.id).to.equal(undefined);
      expect(c.lines).to.deep.equal(['event: connected', `data: ${c.data}`]);
      const info = json(c);
      expect(Object.keys(info)).to.have.members(['lastEventId', 'firstEventId', 'firstEventDate', 'lastEventDate', 'streamSize', 'connectionId']);
      expect(info.firstEventId).to.equal(first);
      expect(info.lastEventId).to.equal(sim.lastEventId);
      expect(info.streamSize).to.equal(2);
      expect(info.firstEventDate).to.equal(new Date(Number(first.split('-')[0])).toISOString());
    });

    it('records each connection attempt with its resume headers', async () => {
      await get(`${sim.url}/stream/${STREAM}`, {});
      await open(`/stream/${STREAM}?recover=2030-01-01T00:00:00Z`, { 'Last-Event-ID': '5-0', 'listen-delete': 'false', 'no-dependencies': 'true' });
      const [refused, ok] = sim.connectionLog;
      expect(refused?.status).to.equal(401);
      expect(refused?.authorization).to.equal(false);
      expect(ok).to.include({ status: 200, authorization: true, lastEventId: '5-0', recover: '2030-01-01T00:00:00Z', listenDelete: 'false', noDependencies: 'true' });
      expect(sim.connections).to.equal(1);
    });
  });

  describe('events', () => {
    beforeEach(() => boot());

    it('frames create, update and delete exactly, with platform bodies', async () => {
      const ind = indicator('2.2.2.2');
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      const createId = sim.create(ind);
      const frames = await r.events$(4);
      const create = frames.find((f) => f.id === createId && json(f).type === 'create') as Frame;
      expect(create.lines).to.deep.equal([`id: ${createId}`, 'event: create', `data: ${create.data}`]);
      const body = json(create);
      expect(body).to.include({ version: '4', type: 'create', scope: 'external' });
      expect(body.message).to.equal('creates a Indicator `2.2.2.2`');
      expect(body.data.id).to.equal(ind.id);
      expect(body.event_id).to.match(/^\d+-0$/);
      expect(body.data.extensions[OCTI]).to.include.keys('id', 'type', 'created_at', 'updated_at', 'score', 'detection', 'main_observable_type', 'observable_values');

      const before = sim.get(ind.id) as StixObject;
      const changed = structuredClone(before);
      (changed['extensions'] as any)[OCTI].score = 20;
      changed['labels'] = ['c2', 'botnet'];
      const updateId = sim.update(changed);
      const deleteId = sim.delete(ind.id);
      await r.events$(6);
      const update = r.events.find((f) => f.id === updateId) as Frame;
      expect(update.event).to.equal('update');
      const ub = json(update);
      expect(ub.type).to.equal('update');
      expect(ub.data.modified > (before['modified'] as string)).to.equal(true);
      expect(ub.data.extensions[OCTI].updated_at > (before['extensions'] as any)[OCTI].updated_at).to.equal(true);
      expect(applyPatch(before, ub.context.patch as PatchOp[])).to.deep.equal(ub.data);
      expect(applyPatch(ub.data, ub.context.reverse_patch as PatchOp[])).to.deep.equal(before);
      const del = r.events.find((f) => f.id === deleteId) as Frame;
      expect(del.event).to.equal('delete');
      expect(json(del)).to.include({ type: 'delete', message: 'deletes a Indicator `2.2.2.2`' });
      expect(json(del).data).to.deep.equal(ub.data);
      expect(r.raw).to.not.match(/^retry:/m);
      for (const f of r.frames) expect(f.lines.filter((l) => l.startsWith('data:'))).to.have.length(1);
    });

    it('emits merge with its sources and filter exits/entries under delete/create with update bodies', async () => {
      const a = indicator('3.3.3.1');
      const b = indicator('3.3.3.2');
      sim.create(a);
      sim.create(b);
      const r = await open(undefined, { 'Last-Event-ID': sim.lastEventId });
      const mergeId = sim.merge(sim.get(a.id) as StixObject, [b]);
      const exitId = sim.filterExit({ ...(sim.get(a.id) as StixObject), confidence: 1 });
      const enterId = sim.filterEnter({ ...(sim.get(a.id) as StixObject), confidence: 90 });
      await r.until((x) => x.events.some((f) => f.id === enterId));
      // The first frames with the merge's id are the target's dependencies, new on this connection.
      const withMergeId = r.events.filter((f) => f.id === mergeId);
      expect(withMergeId.map((f) => f.event)).to.deep.equal(['create', 'create', 'merge']);
      const merge = withMergeId[2] as Frame;
      expect(json(merge).context.sources.map((s: StixObject) => s.id)).to.deep.equal([b.id]);
      expect(sim.get(b.id)).to.equal(undefined);
      const exit = r.events.find((f) => f.id === exitId) as Frame;
      expect(exit.event).to.equal('delete');
      expect(json(exit).type).to.equal('update');
      expect(json(exit).context.patch).to.deep.include({ op: 'replace', path: '/confidence', value: 1 });
      const enter = r.events.filter((f) => f.id === enterId);
      expect(enter.map((f) => f.event)).to.deep.equal(['create']);
      expect(json(enter[0]).type).to.equal('update');
    });

    it('resumes strictly after Last-Event-ID, `from` and a date start', async () => {
      const ids = [1, 2, 3, 4].map((i) => sim.create(indicator(`4.4.4.${i}`, { createdBy: null, markings: [] } as never)));
      const mid = ids[1] as string;
      const byHeader = await open(undefined, { 'Last-Event-ID': mid });
      expect((await byHeader.events$(3)).slice(1).map((f) => f.id)).to.deep.equal(ids.slice(2));
      const byQuery = await open(`/stream/${STREAM}?from=${ids[2]}`, { 'Last-Event-ID': '0-0' });
      expect((await byQuery.events$(2)).slice(1).map((f) => f.id)).to.deep.equal(ids.slice(3));
      const fromStart = await open(undefined, { 'Last-Event-ID': '0' });
      expect((await fromStart.events$(5)).slice(1).map((f) => f.id)).to.deep.equal(ids);
      const firstMs = Number((ids[0] as string).split('-')[0]);
      const byDate = await open(`/stream/${STREAM}?from=${new Date(firstMs + 1).toISOString()}`);
      await sleep(100);
      expect(byDate.events.slice(1).every((f) => Number(f.id?.split('-')[0]) > firstMs)).to.equal(true);
    });

    it('ids grow monotonically, with a sequence inside one millisecond', () => {
      const ids = Array.from({ length: 50 }, (_, i) => sim.create(indicator(`5.5.5.${i}`)));
      for (let i = 1; i < ids.length; i++) {
        const [pm, ps] = (ids[i - 1] as string).split('-').map(Number) as [number, number];
        const [cm, cs] = (ids[i] as string).split('-').map(Number) as [number, number];
        expect(cm > pm || (cm === pm && cs === ps + 1)).to.equal(true);
      }
    });

    it('sends dependencies first, with the parent id, once per connection, even with no-dependencies', async () => {
      const r = await open(undefined, { 'Last-Event-ID': '0-0', 'no-dependencies': 'true' });
      await r.events$(1);
      const first = sim.create(indicator('6.6.6.1'));
      const second = sim.create(indicator('6.6.6.2'));
      const frames = (await r.events$(5)).slice(1);
      expect(frames.map((f) => [f.event, f.id])).to.deep.equal([['create', first], ['create', first], ['create', first], ['create', second]]);
      const deps = frames.slice(0, 2).map(json);
      for (const d of deps) {
        expect(d.origin).to.deep.equal({ referer: 'init-dependencies' });
        expect(d.version).to.equal('4');
        expect(d).to.not.have.keys('type', 'scope');
      }
      expect(deps.map((d) => d.data.id)).to.have.members([AUTHOR, TLP_IDS.GREEN]);
      expect(deps.find((d) => d.data.id === TLP_IDS.GREEN).data.name).to.equal('TLP:GREEN');
      // A new connection has its own cache: the dependencies come again.
      const again = await open(undefined, { 'Last-Event-ID': '0-0' });
      const replay = (await again.events$(5)).slice(1);
      expect(replay.filter((f) => json(f).origin.referer === 'init-dependencies')).to.have.length(2);
    });

    it('suppresses deletes and filter exits only for listen-delete: false', async () => {
      const ind = indicator('7.7.7.7');
      sim.create(ind);
      const exitId = sim.filterExit({ ...(sim.get(ind.id) as StixObject), confidence: 5 });
      const enterId = sim.filterEnter(sim.get(ind.id) as StixObject);
      const delId = sim.delete(ind.id);
      const marker = sim.create(indicator('7.7.7.8'));
      const quiet = await open(undefined, { 'Last-Event-ID': '0-0', 'listen-delete': 'false' });
      await quiet.until((x) => x.events.some((f) => f.id === marker));
      expect(quiet.events.filter((f) => f.event === 'delete')).to.have.length(0);
      expect(quiet.events.some((f) => f.id === enterId)).to.equal(true);
      const loud = await open(undefined, { 'Last-Event-ID': '0-0', 'listen-delete': 'no' });
      await loud.until((x) => x.events.some((f) => f.id === marker));
      expect(loud.events.filter((f) => f.event === 'delete').map((f) => f.id)).to.deep.equal([exitId, delId]);
    });

    it('passes raw bodies and unknown event names through untouched', async () => {
      const bad = sim.publishRaw('update', '{"version":"4","data":');
      const odd = sim.publishRaw('no-recover', '{"lastEventId":"1-0"}');
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      const frames = await r.events$(3);
      expect(frames.slice(1).map((f) => [f.id, f.event, f.data])).to.deep.equal([[bad, 'update', '{"version":"4","data":'], [odd, 'no-recover', '{"lastEventId":"1-0"}']]);
    });

    it('drops internal-scope and pre-v4 events', async () => {
      sim.create(indicator('8.8.8.1'), { scope: 'internal' });
      sim.publishEvent('create', { version: '3', type: 'create', scope: 'external', data: indicator('8.8.8.2') });
      const kept = sim.create(indicator('8.8.8.3', { createdBy: null, markings: [] } as never));
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      await r.until((x) => x.events.some((f) => f.id === kept));
      await sleep(50);
      expect(r.events.slice(1).map((f) => f.id)).to.deep.equal([kept]);
    });

    it('reports trimming in `connected` and reads on from the oldest kept event', async () => {
      const ids = [1, 2, 3, 4, 5].map((i) => sim.create(indicator(`9.9.9.${i}`, { createdBy: null, markings: [] } as never)));
      sim.trim(2);
      expect(sim.eventCount).to.equal(2);
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      const frames = await r.events$(3);
      expect(json(frames[0])).to.include({ firstEventId: ids[3], streamSize: 2 });
      expect(frames.slice(1).map((f) => f.id)).to.deep.equal(ids.slice(3));
    });

    it('works with a standard EventSource client', async () => {
      const id = sim.create(indicator('10.0.0.1'));
      const es = new EventSource(`${sim.url}/stream/${STREAM}`, {
        fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...auth, 'Last-Event-ID': '0-0' } }),
      });
      try {
        const got = await new Promise<MessageEvent[]>((resolve, reject) => {
          const seen: MessageEvent[] = [];
          es.addEventListener('create', (ev) => {
            seen.push(ev);
            if (seen.length === 3) resolve(seen);
          });
          es.addEventListener('error', (e) => reject(new Error(String((e as { message?: string }).message))));
        });
        expect(got.map((e) => e.lastEventId)).to.deep.equal([id, id, id]);
        expect(JSON.parse(String(got[2]?.data)).data.name).to.equal('10.0.0.1');
      } finally {
        es.close();
      }
    });
  });

  describe('recovery', () => {
    beforeEach(() => boot());

    const at = (iso: string, value: string): StixObject => {
      const o = indicator(value);
      (o['extensions'] as any)[OCTI].updated_at = iso;
      o['modified'] = iso;
      return o;
    };

    it('replays stored objects in updated_at order with <updated_at_ms>-0 ids, then goes live from the cut-off', async () => {
      const late = at('2024-01-03T00:00:00.000Z', '11.0.0.3');
      const early = at('2024-01-01T00:00:00.000Z', '11.0.0.1');
      const mid = at('2024-01-02T00:00:00.000Z', '11.0.0.2');
      const after = at('2024-02-01T00:00:00.000Z', '11.0.0.9');
      sim.seed([late, early, mid, after]);
      const live = sim.create(indicator('11.0.0.10'));
      const r = await open(`/stream/${STREAM}?recover=2024-01-15T00:00:00Z`, { 'Last-Event-ID': '1700000000000-0' });
      const frames = (await r.events$(7)).slice(1);
      const recovered = frames.filter((f) => json(f).origin.referer === 'init-create');
      expect(recovered.map((f) => json(f).data.id)).to.deep.equal([early.id, mid.id, late.id]);
      expect(recovered.map((f) => f.id)).to.deep.equal(['2024-01-01', '2024-01-02', '2024-01-03'].map((d) => `${Date.parse(`${d}T00:00:00.000Z`)}-0`));
      for (const f of recovered) {
        expect(json(f)).to.have.all.keys('data', 'message', 'origin', 'version');
        expect(f.event).to.equal('create');
      }
      // Dependencies go first and carry the id of the element that needed them.
      expect(frames[0]?.id).to.equal(recovered[0]?.id);
      expect(json(frames[0]).origin.referer).to.equal('init-dependencies');
      expect(frames.some((f) => json(f).data.id === after.id)).to.equal(false);
      expect(frames[frames.length - 1]?.id).to.equal(live);
    });

    it('skips recovery when the cut-off is not after the start', async () => {
      sim.seed([at('2024-01-01T00:00:00.000Z', '12.0.0.1')]);
      const live = sim.create(indicator('12.0.0.2', { createdBy: null, markings: [] } as never));
      const r = await open(`/stream/${STREAM}?recover=2020-01-01T00:00:00Z`, { 'Last-Event-ID': '0-0' });
      const frames = (await r.events$(2)).slice(1);
      expect(frames.map((f) => f.id)).to.deep.equal([live]);
    });
  });

  describe('heartbeats, drops and pauses', () => {
    it('repeats the last id while idle within a read, then follows now-0 after an empty read', async () => {
      await boot({ heartbeatMs: 60, blockMs: 400 });
      const id = sim.create(indicator('13.0.0.1', { createdBy: null, markings: [] } as never));
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      await r.until((x) => x.frames.some((f) => f.event === 'heartbeat'));
      const hb = r.frames.find((f) => f.event === 'heartbeat') as Frame;
      expect(hb.id).to.equal(id);
      expect(hb.lines).to.deep.equal([`id: ${id}`, 'event: heartbeat', `data: "${new Date(Number(id.split('-')[0])).toISOString()}"`]);
      await r.until((x) => x.frames.some((f) => f.event === 'heartbeat' && f.id !== id), 2000);
      const idle = r.frames.find((f) => f.event === 'heartbeat' && f.id !== id) as Frame;
      expect(idle.id).to.match(/^\d+-0$/);
      expect(Number(idle.id?.split('-')[0])).to.be.greaterThan(Number(id.split('-')[0]));
    });

    it('can send heartbeat data as an object', async () => {
      await boot({ heartbeatMs: 50, heartbeatAsObject: true });
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      await r.until((x) => x.frames.some((f) => f.event === 'heartbeat'));
      expect(json(r.frames.find((f) => f.event === 'heartbeat'))).to.be.an('object').with.property('date');
    });

    it('drops open connections and accepts the reconnection', async () => {
      await boot();
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      await r.events$(1);
      expect(sim.connections).to.equal(1);
      expect(sim.dropConnections()).to.equal(1);
      await r.until((x) => x.ended, 2000).catch(() => undefined);
      expect(r.ended).to.equal(true);
      expect(sim.connections).to.equal(0);
      const again = await open(undefined, { 'Last-Event-ID': '0-0' });
      await again.events$(1);
      expect(sim.connections).to.equal(1);
    });

    it('sends nothing at all while paused, heartbeats included', async () => {
      await boot({ heartbeatMs: 40 });
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      await r.until((x) => x.frames.some((f) => f.event === 'heartbeat'));
      sim.pause(400);
      await sleep(20);
      const count = r.frames.length;
      const id = sim.create(indicator('14.0.0.1', { createdBy: null, markings: [] } as never));
      await sleep(250);
      expect(r.frames.length).to.equal(count);
      await r.until((x) => x.events.some((f) => f.id === id), 2000);
    });

    it('stops delivering events when the collection is stopped, without closing', async () => {
      await boot({ heartbeatMs: 50 });
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      await r.events$(1);
      sim.setStreamStopped(STREAM, true);
      await sleep(30);
      const id = sim.create(indicator('15.0.0.1'));
      await r.until((x) => x.frames.some((f) => f.event === 'heartbeat' && f.id !== undefined && f.id >= id));
      expect(r.events.some((f) => f.id === id)).to.equal(false);
      expect(r.ended).to.equal(false);
      const refused = await get(`${sim.url}/stream/${STREAM}`, auth);
      expect(refused.res.statusCode).to.equal(410);
    });
  });

  describe('connector GraphQL', () => {
    beforeEach(() => boot());
    const REGISTER = 'mutation RegisterConnector($input: RegisterConnectorInput) { registerConnector(input: $input) { id connector_state config { connection { host vhost use_ssl port user pass } listen listen_routing listen_exchange push push_routing push_exchange } connector_user_id } }';
    const PING = 'mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput) { pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id connector_state connector_info { run_and_terminate buffering queue_threshold queue_messages_size next_run_datetime last_run_datetime } } }';
    const input = { id: 'c-1', name: 'ThreatBridge', type: 'STREAM', scope: ['indicator'], auto: false };

    it('refuses calls without the token with a GraphQL-shaped error', async () => {
      const res = await gql(sim.url, 'query healthCheck { about { version } }', {}, null);
      expect(res.status).to.equal(401);
      expect(res.body.errors[0].message).to.be.a('string');
    });

    it('answers healthCheck and registerConnector with a non-null connection', async () => {
      expect((await gql(sim.url, 'query healthCheck { about { version } }')).body).to.deep.equal({ data: { about: { version: '6.8.10' } } });
      const res = await gql(sim.url, REGISTER, { input });
      expect(res.status).to.equal(200);
      const reg = res.body.data.registerConnector;
      expect(reg.id).to.equal('c-1');
      expect(reg.connector_state).to.equal(null);
      expect(reg.config.connection).to.include.keys('host', 'vhost', 'use_ssl', 'port', 'user', 'pass');
      expect(sim.connectors.get('c-1')).to.include({ name: 'ThreatBridge', type: 'STREAM' });
    });

    it('saves pinged state, and after a reset returns an empty state once without saving', async () => {
      await gql(sim.url, REGISTER, { input });
      const state1 = JSON.stringify({ start_from: '1-0' });
      const p1 = await gql(sim.url, PING, { id: 'c-1', state: state1, connectorInfo: { buffering: false } });
      expect(p1.body.data.pingConnector.connector_state).to.equal(state1);
      expect(p1.body.data.pingConnector.connector_info).to.include.keys('run_and_terminate', 'buffering', 'queue_threshold');
      expect(sim.connectors.get('c-1')?.lastPing).to.be.instanceOf(Date);
      expect(sim.resetConnectorState('c-1')).to.equal(true);
      const p2 = await gql(sim.url, PING, { id: 'c-1', state: JSON.stringify({ start_from: '2-0' }) });
      expect(p2.body.data.pingConnector.connector_state).to.equal('');
      expect(sim.connectors.get('c-1')?.state).to.equal('');
      const state3 = JSON.stringify({ start_from: '3-0' });
      const p3 = await gql(sim.url, PING, { id: 'c-1', state: state3 });
      expect(p3.body.data.pingConnector.connector_state).to.equal(state3);
      // Re-registering keeps the saved state, which is how a client learns where it was.
      expect((await gql(sim.url, REGISTER, { input })).body.data.registerConnector.connector_state).to.equal(state3);
      const unknown = await gql(sim.url, PING, { id: 'nope', state: '{}' });
      expect(unknown.body.errors[0].message).to.match(/No connector found/);
    });

    it('answers registration with errors when told to refuse', async () => {
      await sim.stop();
      await boot({ refuseRegistration: true });
      const res = await gql(sim.url, REGISTER, { input });
      expect(res.body.errors).to.have.length(1);
      expect(sim.connectors.size).to.equal(0);
    });
  });

  describe('fixtures', () => {
    const now = Date.parse('2025-06-01T00:00:00.000Z');

    it('builds indicators the way the platform emits them', () => {
      const ind = new StixFixtures(7, { now }).indicator({ observableType: 'file', value: 'a'.repeat(64), markings: ['amber+strict', 'TLP:RED'], score: 85, labels: ['x'] });
      expect(ind).to.include({ type: 'indicator', spec_version: '2.1', pattern_type: 'stix', pattern: `[file:hashes.'SHA-256' = '${'a'.repeat(64)}']` });
      expect(ind.id).to.match(/^indicator--[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(ind['object_marking_refs']).to.deep.equal([TLP_IDS.AMBER_STRICT, TLP_IDS.RED]);
      const octi = (ind['extensions'] as any)[OCTI];
      expect(octi).to.include({ type: 'Indicator', score: 85, main_observable_type: 'StixFile' });
      expect(octi.observable_values).to.deep.equal([{ type: 'StixFile', hashes: { 'SHA-256': 'a'.repeat(64) } }]);
      expect(Date.parse(ind['valid_until'] as string)).to.be.greaterThan(Date.parse(ind['valid_from'] as string));
      expect(TLP_IDS.CLEAR).to.equal('marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9');
    });

    it('escapes pattern literals and reads them back', () => {
      const ind = makeIndicator({ observableType: 'url', value: "http://x.example/o'reilly\\a?b=1&c=2" });
      expect(ind['pattern']).to.equal("[url:value = 'http://x.example/o\\'reilly\\\\a?b=1&c=2']");
      expect(observableValuesOf(ind['pattern'] as string)).to.deep.equal([{ type: 'Url', value: "http://x.example/o'reilly\\a?b=1&c=2" }]);
      expect(observableValuesOf("[ipv4-addr:value = '1.2.3.4'")).to.equal(undefined);
    });

    it('builds observables with the SCO extension', () => {
      const sco = makeObservable('ipv4-addr', '5.6.7.8', 42);
      expect(sco).to.include({ type: 'ipv4-addr', value: '5.6.7.8' });
      expect((sco['extensions'] as any)[SCO]).to.include({ score: 42 });
      expect((sco['extensions'] as any)[OCTI]).to.include({ type: 'IPv4-Addr' });
      const cert = makeObservable('x509-certificate', 'b'.repeat(40), 10);
      expect(cert['hashes']).to.deep.equal({ 'SHA-1': 'b'.repeat(40) });
    });

    it('gives a deterministic, realistic mix per seed', () => {
      const a = randomIndicatorMix(400, 42, { now });
      expect(randomIndicatorMix(400, 42, { now })).to.deep.equal(a);
      expect(randomIndicatorMix(400, 43, { now })).to.not.deep.equal(a);
      expect(new Set(a.map((i) => i.id)).size).to.equal(400);
      const patterns = a.map((i) => String(i['pattern']));
      const has = (re: RegExp) => patterns.some((p) => re.test(p));
      expect(has(/^\[ipv4-addr:value = /)).to.equal(true);
      expect(has(/^\[ipv6-addr:/)).to.equal(true);
      expect(has(/xn--|[^\x00-\x7f]/)).to.equal(true);
      expect(has(/^\[url:value = '[^']*\?[^']*=/)).to.equal(true);
      expect(has(/hashes\.MD5/) && has(/hashes\.'SHA-1'/) && has(/hashes\.'SHA-256'/)).to.equal(true);
      expect(has(/ OR /)).to.equal(true);
      expect(has(/^\[email-addr:/) && has(/^\[x509-certificate:/)).to.equal(true);
      expect(has(/^\[process:name/)).to.equal(true);
      expect(a.some((i) => i['pattern_type'] !== 'stix')).to.equal(true);
      expect(a.some((i) => !String(i['pattern']).startsWith('[') || !String(i['pattern']).endsWith(']'))).to.equal(true);
    });

    it('feeds the simulator end to end', async () => {
      await boot();
      const mix = randomIndicatorMix(30, 3);
      const ids = mix.map((i) => sim.create(i));
      const r = await open(undefined, { 'Last-Event-ID': '0-0' });
      await r.until((x) => x.events.some((f) => f.id === ids[ids.length - 1]));
      const parents = r.events.filter((f) => f.event === 'create' && json(f).type === 'create');
      expect(parents.map((f) => json(f).data.id)).to.deep.equal(mix.map((i) => i.id));
    });
  });
});
