// The gate on a real store: what `threatbridge resume` releases goes out in full and does not count
// again; a source removing a large share of what a sink holds waits; one summary line per interval.
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { configSchema } from '../../src/config/schema.js';
import { Breaker } from '../../src/guard/breaker.js';
import { GuardGate } from '../../src/guard/gate.js';
import { DEFENDER_GATE_ACTIONS } from '../../src/guard/guard.js';
import { ProtectedList } from '../../src/guard/list.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { OutboxItem } from '../../src/core/types.js';
import type { Store } from '../../src/core/store.js';

type Body = { action: string };
const ip = (n: number) => `ipv4:203.0.${Math.floor(n / 250)}.${(n % 250) + 1}`;

describe('guard gate on a store', () => {
  let store: Store;
  let lines: { msg: string; held?: number }[];
  const log = () => createLogger('warn', new Writable({ write(chunk, _e, done) { lines.push(JSON.parse(String(chunk))); done(); } }));
  beforeEach(() => { store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-gate-'))); lines = []; });
  afterEach(() => store.close());

  const gateWith = (over: { maxPerHour?: number; share?: number; min?: number; holdMs?: number } = {}) => {
    const l = log();
    const breaker = new Breaker(store, l, new Metrics(), over.maxPerHour ?? 0, 1000);
    return new GuardGate({ sink: 'defender', enabled: true, onProtected: 'audit', specialAddresses: 'audit', holdMs: over.holdMs ?? 1000,
      actions: DEFENDER_GATE_ACTIONS, withdrawalShare: over.share ?? 0.2, withdrawalMin: over.min ?? 10 },
    new ProtectedList(configSchema.parse({}).guard, l), breaker, store, l, new Metrics());
  };
  const item = (n: number, op: 'upsert' | 'delete', at: number, attempts = 0): OutboxItem<Body> => ({
    sink: 'defender', key: ip(n), op, payload: { action: 'Block' }, sourceRef: { system: 'opencti', id: `indicator--${n}` },
    seq: n + 1, attempts, enqueuedAt: at, unconfirmedSend: false,
  });
  const screen = (gate: GuardGate, items: OutboxItem<Body>[], now: number) =>
    gate.screen(items, new Set(), (p) => p.action, (p, action) => ({ ...p, action }), now);

  it('resume releases everything the breaker held, and the hour counts from the release', async () => {
    const gate = gateWith({ maxPerHour: 30 });
    const t0 = Date.now() - 60_000;
    const flood = Array.from({ length: 40 }, (_, n) => item(n, 'upsert', t0));
    const first = await screen(gate, flood, t0 + 1);
    expect(first.send).to.have.length(30);
    expect(first.hold).to.have.length(10);
    expect([...gate.breaker.paused]).to.deep.equal(['opencti']);

    await store.resumeBreakers('opencti', t0 + 1000);
    await gate.breaker.refresh(true, t0 + 1001);
    // The ten come back (retried), together with 29 new ones enqueued after the release.
    const again = first.hold.map((i) => ({ ...i, attempts: 1 }));
    const fresh = Array.from({ length: 29 }, (_, n) => item(100 + n, 'upsert', t0 + 2000));
    const second = await screen(gate, [...again, ...fresh], t0 + 3000);
    expect(second.hold.map((i) => i.key), 'nothing held: the released ten do not count again').to.deep.equal([]);
    expect(second.send).to.have.length(39);
    expect(gate.breaker.paused.size).to.equal(0);
    const released = (await store.listDecisions({ limit: 100 })).filter((d) => d.reason.includes('released'));
    expect(released.map((d) => d.key).sort()).to.deep.equal(first.hold.map((i) => i.key).sort());
    // The window counts from the release: 29 used, one more fits, the second trips it.
    expect((await screen(gate, [item(200, 'upsert', t0 + 4000)], t0 + 4000)).send).to.have.length(1);
    expect((await screen(gate, [item(201, 'upsert', t0 + 4000)], t0 + 4000)).hold).to.have.length(1);
  });

  it('holds removals of more than the share of what the sink holds until resume, and lets routine removals go', async () => {
    const gate = gateWith({ share: 0.2, min: 10 });
    const now = Date.now();
    const held = new Set(Array.from({ length: 100 }, (_, n) => ip(n)));
    // Routine: 5 of 100 go (below the minimum), then 10 more (15% of what was held) still go.
    expect((await gate.screenRemovals(Array.from({ length: 5 }, (_, n) => item(n, 'delete', now)), held, 100, now)).send).to.have.length(5);
    expect((await gate.screenRemovals(Array.from({ length: 10 }, (_, n) => item(5 + n, 'delete', now)), held, 95, now)).send).to.have.length(10);
    // A filter change: 75 more would make 90 of 100: all 75 wait, the breaker is open.
    const big = Array.from({ length: 75 }, (_, n) => item(15 + n, 'delete', now));
    const r = await gate.screenRemovals(big, held, 85, now);
    expect(r.send).to.have.length(0);
    expect(r.hold).to.have.length(75);
    expect([...gate.breaker.paused]).to.deep.equal(['opencti']);
    expect((await store.listBreakers())[0]!.reason).to.include('90 removals').and.include('90%');
    // Removals of what the sink does not hold cost nothing and are never held.
    expect((await gate.screenRemovals([item(999, 'delete', now)], held, 85, now)).send).to.have.length(1);

    await store.resumeBreakers(null, now + 10);
    await gate.breaker.refresh(true, now + 11);
    const after = await gate.screenRemovals(big.map((i) => ({ ...i, attempts: 1 })), held, 85, now + 20);
    expect(after.send, 'the operator released them: all go').to.have.length(75);
  });

  it('logs one summary line per interval for a held cold fill, not one per indicator', async () => {
    const gate = gateWith({ maxPerHour: 5, holdMs: 60_000 });
    const now = Date.now();
    for (let batch = 0; batch < 10; batch++) {
      await screen(gate, Array.from({ length: 50 }, (_, n) => item(batch * 50 + n, 'upsert', now)), now + batch);
    }
    const summaries = lines.filter((l) => String(l.msg).includes('wait for `threatbridge resume opencti`'));
    expect(summaries).to.have.length(1);
    expect(summaries[0]!.held).to.equal(45);
    expect(lines.length, 'trip error + one summary').to.be.at.most(3);
    expect((await store.listDecisions({ limit: 1000 })).filter((d) => d.outcome === 'breaker')).to.have.length(495);
    // The next interval brings one more line with what waited meanwhile.
    await screen(gate, [item(999, 'upsert', now)], now + 61_000);
    const next = lines.filter((l) => String(l.msg).includes('wait for `threatbridge resume opencti`'));
    expect(next).to.have.length(2);
    expect(next[1]!.held).to.equal(451);
  });
});
