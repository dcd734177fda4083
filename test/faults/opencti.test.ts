// Fault suite, OpenCTI → Defender: 10,000-event runs (creates, rescoring, deletes) under one kind of
// fault each; every run ends with Defender compared to the expected state (0 lost, 0 duplicated,
// 0 stale, 0 extra). Seeds are fixed so a failure repeats; FAULT_SEED changes them all.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { waitFor } from '../../sim/service-process.js';
import { dropSchema, freshSchemaName, requirePostgres, TEST_PG_URL } from '../support/postgres.js';
import { faultPoints, killAt, printReports, runScenario } from './harness.js';
import { OpenCtiFlow } from './opencti-flow.js';
import { sentinelCreatedChanges } from './sentinel-sink.js';

const EVENTS = Number(process.env['FAULT_EVENTS'] ?? 10_000);
const SEED = Number(process.env['FAULT_SEED'] ?? 20261123);

describe('fault suite: OpenCTI → Defender', function () {
  this.timeout(600_000);
  let flow: OpenCtiFlow;
  after(() => printReports());
  afterEach(async () => { await flow?.stop(); });

  const startFlow = async (seed: number, labOptions = {}) => {
    flow = new OpenCtiFlow(seed, EVENTS, labOptions);
    await flow.start();
    return flow;
  };

  it('kill -9 at random points of the run', async () => {
    await startFlow(SEED + 1);
    const kill = killAt(faultPoints(SEED + 1, EVENTS, 5));
    await runScenario(flow, { name: 'kill -9 ×5', events: EVENTS, seed: SEED + 1, env: { PIPELINE_BATCH_SIZE: '200' }, before: kill.before });
    expect(kill.kills()).to.equal(5);
  });

  it('kill -9 at random points of the run, on the PostgreSQL store', async function () {
    await requirePostgres(this);
    await startFlow(SEED + 7);
    const schema = freshSchemaName();
    const kill = killAt(faultPoints(SEED + 7, EVENTS, 5));
    try {
      await runScenario(flow, {
        name: 'kill -9 ×5 (PostgreSQL store)', events: EVENTS, seed: SEED + 7,
        env: { PIPELINE_BATCH_SIZE: '200', STORE_ENGINE: 'postgres', STORE_URL: TEST_PG_URL, STORE_SCHEMA: schema, STORE_SOURCE_LOCK_RETRY: '1' },
        before: kill.before,
      });
      expect(kill.kills()).to.equal(5);
    } finally {
      await dropSchema(schema).catch(() => undefined);
    }
  });

  it('a Defender outage of minutes (time-scaled ×60)', async () => {
    await startFlow(SEED + 2);
    let downAt = 0;
    await runScenario(flow, {
      name: 'Defender down 10 simulated minutes', events: EVENTS, seed: SEED + 2,
      before: (i) => {
        if (i === Math.floor(EVENTS * 0.3)) { flow.lab.defender.setDown(true); downAt = Date.now(); }
      },
      afterEmit: async () => {
        // 10 minutes at time scale 60 = 10 s real, counted from when it went down.
        await new Promise((r) => setTimeout(r, Math.max(0, downAt + 10_000 - Date.now())));
        flow.lab.defender.setDown(false);
      },
    });
    // The service did call during the outage (and was refused), rather than the outage missing it.
    expect(flow.lab.defender.requestLog.filter((e) => e.fault === 'down').length, 'deliveries hit the outage').to.be.greaterThan(0);
  });

  it('429 storms', async () => {
    await startFlow(SEED + 3);
    await runScenario(flow, {
      // Every call in a storm is answered 429; the service waits Retry-After before each next call.
      name: '429 storms (3 × 12 answers, Retry-After 1 s)', events: EVENTS, seed: SEED + 3,
      before: (i) => {
        if (i % Math.floor(EVENTS / 3) === 100) flow.lab.defender.failNext(12, 429, { retryAfter: 1 });
      },
    });
    expect(flow.lab.defender.requestLog.filter((e) => e.status === 429).length).to.be.greaterThanOrEqual(36);
  });

  it('token expiry and revocation', async () => {
    await startFlow(SEED + 4);
    await runScenario(flow, {
      name: 'tokens revoked ×4', events: EVENTS, seed: SEED + 4,
      before: async (i) => {
        if (i > 0 && i % Math.floor(EVENTS / 4) === 0) flow.lab.entra.revokeAll();
      },
    });
    // Each revocation made the service fetch a new token (a 401 on the old one, or a refresh first).
    expect(flow.lab.entra.tokensIssued).to.be.greaterThan(1);
  });

  it('SSE disconnects', async () => {
    await startFlow(SEED + 5);
    let drops = 0;
    await runScenario(flow, {
      name: 'stream dropped ×10', events: EVENTS, seed: SEED + 5, noRepeats: true,
      before: (i) => {
        if (i > 0 && i % Math.floor(EVENTS / 10) === 0) drops += flow.lab.opencti.dropConnections();
      },
    });
    expect(drops).to.be.greaterThan(0);
  });

  describe('a full disk for the state directory', () => {
    let mountPoint: string | null = null;
    before(function () {
      mountPoint = mkdtempSync(join(tmpdir(), 'tb-fulldisk-'));
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountPoint], { stdio: 'pipe' });
      } catch (err) {
        console.log(`      (skipping: cannot mount a small tmpfs here: ${(err as Error).message.split('\n')[0]})`);
        mountPoint = null;
        this.skip();
      }
    });
    after(() => { if (mountPoint) execFileSync('umount', ['-l', mountPoint]); });

    it('stops committing with a clear error, loses nothing and corrupts nothing', async () => {
      await startFlow(SEED + 6);
      const dir = join(mountPoint!, 'state');
      mkdirSync(dir);
      let filled = false;
      await runScenario(flow, {
        name: 'state directory full', events: EVENTS, seed: SEED + 6, env: { STORE_DIR: dir },
        afterEmit: async (ctx) => {
          await waitFor(() => ctx.service.lines.some((l) => /SQLITE_FULL|disk is full|ENOSPC/i.test(JSON.stringify(l))),
            'the service reports the full disk', 120_000);
          filled = true;
          const fullFrom = Date.now();
          const ready = await fetch(`http://127.0.0.1:${ctx.service.healthPort}/readyz`);
          expect(ready.status).to.equal(503);
          expect(JSON.stringify(await ready.json())).to.match(/disk is full|SQLITE_FULL|ENOSPC/i);
          expect(ctx.service.exitCode).to.equal(null, 'still running');
          execFileSync('mount', ['-o', 'remount,size=256m', mountPoint!]);
          // Answers that came while the disk was full could not be recorded: their items are sent again.
          ctx.interruptions.push({ from: fullFrom, to: Date.now() });
        },
      });
      expect(filled).to.equal(true);
      const db = new Database(join(dir, 'threatbridge.db'), { readonly: true });
      expect(db.pragma('integrity_check', { simple: true })).to.equal('ok');
      db.close();
    });
  });
});

describe('fault suite: OpenCTI → Sentinel', function () {
  this.timeout(600_000);
  const SENTINEL_EVENTS = Number(process.env['FAULT_SENTINEL_EVENTS'] ?? 10_000);
  let flow: OpenCtiFlow;
  after(() => printReports());
  afterEach(async () => { await flow?.stop(); });

  it('kill -9 at random points, 500 and 429 storms, token revocation', async () => {
    flow = new OpenCtiFlow(SEED + 11, SENTINEL_EVENTS, {}, undefined, 'sentinel');
    await flow.start();
    const step = Math.floor(SENTINEL_EVENTS / 5);
    const kill = killAt(new Set([step, Math.floor(1.5 * step), 3 * step, Math.floor(4.5 * step)]));
    await runScenario(flow, {
      name: 'kill -9 ×4, 500 and 429 storms, tokens revoked', events: SENTINEL_EVENTS, seed: SEED + 11,
      env: { OPENCTI_TARGETS: 'sentinel' },
      before: async (i, ctx) => {
        await kill.before(i, ctx);
        if (i === 2 * step) flow.lab.sentinel!.failNext(6, 500);
        if (i === 2 * step + 50) flow.lab.entra.revokeAll();
        if (i === 4 * step) flow.lab.sentinel!.failNext(6, 429, { retryAfter: 1 });
      },
    });
    const statuses = flow.lab.sentinel!.requestLog.map((e) => e.status);
    expect(statuses.filter((s) => s === 500).length, 'the 500 storm was met').to.be.greaterThan(0);
    expect(statuses.filter((s) => s === 429).length, 'the 429 storm was met').to.be.greaterThan(0);
    expect(flow.lab.defender.indicators(), 'only Sentinel is targeted').to.have.length(0);
    // Through kills that lose answers, retries and revocations, each id keeps its first created.
    expect(sentinelCreatedChanges(flow.lab.sentinel!), 'ids sent with a changed created').to.deep.equal([]);
    expect(kill.kills()).to.equal(4);
  });
});
