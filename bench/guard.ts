// node dist/bench/guard.js: cost of the guard and the cap on the delivery path.
// - guard verdicts per second against the built-in list plus 10,000 user domains and 1,000 CIDRs;
// - one cap decision at a full 15,000-indicator tenant for a 500-item import (SQLite).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Observable } from '../src/core/types.js';
import { BUILTIN_PROTECTED } from '../src/guard/builtin.js';
import { DEFENDER_GATE_ACTIONS, guardVerdict } from '../src/guard/guard.js';
import { ProtectedValues } from '../src/guard/protected-values.js';
import { createLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { IndicatorCap } from '../src/sinks/defender/cap.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { OutboxItem } from '../src/core/types.js';

function guardThroughput(n: number) {
  const entries = [
    ...BUILTIN_PROTECTED.map((b) => ({ value: b.value, origin: 'builtin' })),
    ...Array.from({ length: 10_000 }, (_, i) => ({ value: `corp${i}.example.com`, origin: 'bench' })),
    ...Array.from({ length: 1_000 }, (_, i) => ({ value: `100.${i >> 8}.${i & 255}.0/24`, origin: 'bench' })),
  ];
  const built = process.hrtime.bigint();
  const protectedValues = new ProtectedValues(entries);
  const buildMs = Number(process.hrtime.bigint() - built) / 1e6;
  const input: Observable[] = Array.from({ length: n }, (_, i) => {
    switch (i % 4) {
      case 0: return { type: 'ipv4', value: `203.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` };
      case 1: return { type: 'domain', value: `host${i}.bad${i % 97}.example.net` };
      case 2: return { type: 'url', value: `http://bad${i}.example.net:8080/p/${i}` };
      default: return { type: 'ipv6', value: `2001:db8:${(i & 0xffff).toString(16)}::1` };
    }
  });
  const policy = { enabled: true, protectedValues, onProtected: 'audit' as const, specialAddresses: 'audit' as const, paused: new Set<string>(), actions: DEFENDER_GATE_ACTIONS };
  const started = process.hrtime.bigint();
  let hits = 0;
  for (const o of input) if (guardVerdict(o, 'Block', { system: 'opencti', id: 'x' }, policy).outcome !== 'allow') hits++;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { entries: protectedValues.size, buildMs: Math.round(buildMs), verdicts: n, verdictsPerSecond: Math.round(n / seconds), hits };
}

async function capAtFullTenant() {
  const store = new SqliteStore(mkdtempSync(join(tmpdir(), 'tb-bench-cap-')));
  const now = Date.now();
  await store.putHeld('defender', Array.from({ length: 15_000 }, (_, i) => ({
    key: `ipv4:198.18.${i >> 8}.${i & 255}`, externalId: String(i + 1), score: i % 100, expiresAt: now + (1 + (i % 30)) * 86_400_000, updatedAt: now,
  })));
  // Newcomers scored 0..99 like the held ones: about half are worth more than the weakest held.
  await store.commit({ source: 'bench', checkpoint: null, claimDeletes: [], ops: [], deadLetters: [], claimUpserts: Array.from({ length: 500 }, (_, i) => ({
    key: `ipv4:203.0.${i >> 8}.${i & 255}`, sourceId: `s${i}`, updatedAt: now,
    change: { observable: { type: 'ipv4' as const, value: `203.0.${i >> 8}.${i & 255}` }, score: (i * 7) % 100, labels: [], tlp: null, title: '', description: '',
      validFrom: null, validUntil: null, sourceRef: { system: 'opencti' as const, id: `s${i}` } },
  })) });
  const cap = new IndicatorCap('defender', 15_000, store, createLogger('silent'), new Metrics());
  const items: OutboxItem[] = Array.from({ length: 500 }, (_, i) => ({ sink: 'defender', key: `ipv4:203.0.${i >> 8}.${i & 255}`, op: 'upsert', seq: i,
    attempts: 0, enqueuedAt: now, unconfirmedSend: false, sourceRef: { system: 'opencti', id: `s${i}` }, payload: { action: 'Block', expirationTime: new Date(now + 86_400_000).toISOString() } }));
  const started = process.hrtime.bigint();
  const held = await cap.active(now);
  const plan = await cap.plan(items, held, now);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  await store.close();
  return { held: held.size, batch: items.length, admitted: plan.admit.length, evicted: plan.evict.length, refused: plan.refuse.length, ms: Math.round(ms) };
}

console.log(JSON.stringify({ guard: guardThroughput(200_000), cap: await capAtFullTenant() }, null, 2));
