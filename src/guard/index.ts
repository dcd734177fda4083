// Wiring of the guard, once for every indicator sink: the protected list (watched file), the
// breaker (polled for resumes), one gate per sink in its own action vocabulary, and the service
// part that keeps the list and the breaker fresh and re-checks what the sinks already hold.
import type { Config } from '../config/schema.js';
import type { ServicePart } from '../core/parts.js';
import { errorFields, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../core/store.js';
import { Breaker } from './breaker.js';
import { GuardGate, observableOfKey } from './gate.js';
import { effectiveClaim } from '../core/claims.js';
import type { SinkRoute } from '../core/router.js';
import { ProtectedList } from './list.js';
import { ProtectedValues } from './protected-values.js';
import { specialAddress } from './addresses.js';
import type { Observable, SinkOp } from '../core/types.js';
import { publicSuffix, type SinkActions } from './guard.js';

/** What the guard needs of a sink to re-send what it holds and the list now protects. */
export interface HeldBySink {
  /** Keys the sink holds for us. */
  keys(): Promise<string[]>;
  route: SinkRoute;
  /** The wanted action of an upsert payload, in the sink's vocabulary. */
  action(payload: unknown): string;
  /** New work is in the outbox. */
  wake(): void;
}

export interface Guard {
  /**
   * The gate a sink's delivery calls (one per sink, sharing list, breaker and decision log). With
   * `held`, a Block the sink already holds is sent again through the gate when its value becomes
   * protected (at start and after each list reload). `extra`: values protected in this sink only
   * (a Defender tenant's own list), on top of the shared list.
   */
  gate(sink: string, actions: SinkActions, held?: HeldBySink, extra?: readonly string[]): GuardGate;
  part: ServicePart;
}

/** Routes again the claims of held keys the list now protects; the gate decides on delivery. */
async function requeueProtected(store: Store, held: HeldBySink, actions: SinkActions, isProtected: (o: Observable) => boolean): Promise<number> {
  const keys = (await held.keys()).filter((k) => isProtected(observableOfKey(k)));
  if (keys.length === 0) return 0;
  const claims = await store.loadClaims(keys, []);
  const takes = (c: (typeof claims)[number]) => held.route.accepts?.(c) ?? true;
  const ops = keys.map((k) => held.route.route(k, effectiveClaim(claims.filter((c) => c.key === k && takes(c))), Date.now()).op)
    .filter((op): op is SinkOp => op !== null && op.op === 'upsert' && actions.enforcing.has(held.action(op.payload)));
  const n = await store.enqueue(ops);
  if (n > 0) held.wake();
  return n;
}

/** A sink's own protected values (a tenant's list); entries that cannot be read are reported once. */
function ownList(sink: string, values: readonly string[], log: Logger): ProtectedValues {
  const list = new ProtectedValues(values.map((value) => ({ value, origin: `config of ${sink}` })));
  for (const bad of list.invalid) log.warn({ sink, entry: bad.entry, reason: bad.reason }, 'protected value of this sink not understood; ignored');
  return list;
}

export function createGuard(config: Config, store: Store, log: Logger, metrics: Metrics): Guard {
  const g = config.guard;
  const list = new ProtectedList(g, log);
  const pollMs = g.breaker_poll_seconds * 1000;
  const breaker = new Breaker(store, log, metrics, g.breaker_max_blocks_per_hour, pollMs);
  const rechecks = new Map<string, { held: HeldBySink; actions: SinkActions; own: ProtectedValues | null }>();
  const gates = new Map<string, GuardGate>();
  const runRecheck = async () => {
    if (!g.enabled) return;
    const values = list.current;
    const isProtected = (o: Observable) => values.match(o) !== null || publicSuffix(o) !== null
      || ((o.type === 'ipv4' || o.type === 'ipv6') && specialAddress(o.value) !== null);
    for (const [sink, { held, actions, own }] of rechecks) {
      const n = await requeueProtected(store, held, actions, (o) => isProtected(o) || (own?.match(o) ?? null) !== null)
        .catch((err) => { log.warn({ sink, ...errorFields(err) }, 'cannot re-check held indicators against the protected list'); return 0; });
      if (n > 0) log.warn({ sink, requeued: n }, 'indicators already held touch protected values: re-sent through the guard');
    }
  };
  list.onReload = () => { void runRecheck(); };
  let timer: NodeJS.Timeout | null = null;
  let pruner: NodeJS.Timeout | null = null;
  const prune = () => store.pruneDecisions(Date.now() - g.decisions_retention_days * 86_400_000)
    .then((n) => { if (n > 0) log.info({ removed: n, retentionDays: g.decisions_retention_days }, 'old guard decisions pruned'); })
    .catch((err) => log.warn(errorFields(err), 'cannot prune guard decisions'));
  return {
    gate(sink, actions, held, extra) {
      const own = extra?.length ? ownList(sink, extra, log) : null;
      if (held) rechecks.set(sink, { held, actions, own });
      let gate = gates.get(sink);
      if (!gate) {
        gate = new GuardGate({ sink, enabled: g.enabled, onProtected: g.on_protected, specialAddresses: g.special_addresses, holdMs: pollMs, actions, own,
          withdrawalShare: g.withdrawal_breaker_percent / 100, withdrawalMin: g.withdrawal_breaker_min }, list, breaker, store, log, metrics);
        gates.set(sink, gate);
      }
      return gate;
    },
    part: {
      name: 'guard',
      kind: 'sink',
      start: async () => {
        list.watch();
        await breaker.refresh(true);
        if (breaker.paused.size) log.error({ sources: [...breaker.paused] }, 'breaker open: enforcing actions of these sources stay paused until `threatbridge resume`');
        log.info({ sinks: [...gates.keys()], protectedValues: list.current.size, listFile: g.list_file ?? null, breakerPerHour: g.breaker_max_blocks_per_hour,
          withdrawalPercent: g.withdrawal_breaker_percent }, 'guard ready');
        timer = setInterval(() => { breaker.refresh(true).catch((err) => log.warn(errorFields(err), 'cannot read breaker state')); }, pollMs);
        timer.unref();
        await prune();
        await runRecheck();
        pruner = setInterval(() => void prune(), 86_400_000);
        pruner.unref();
      },
      stop: async () => {
        if (timer) clearInterval(timer);
        if (pruner) clearInterval(pruner);
        list.unwatch();
      },
    },
  };
}
