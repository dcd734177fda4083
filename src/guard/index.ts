// Wiring of the guard for one sink: protected list (watched file), breaker (polled for resumes)
// and the gate the sink's delivery calls; plus the service part that keeps the last two fresh.
import type { Config } from '../config/schema.js';
import type { ServicePart } from '../core/parts.js';
import { errorFields, type Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/types.js';
import { Breaker } from './breaker.js';
import { GuardGate } from './gate.js';
import { ProtectedList } from './list.js';
import { specialAddress } from './addresses.js';
import type { Observable } from '../core/types.js';

/**
 * `recheck(matches)`: the sink re-sends what it holds and the list now protects (so a Block that is
 * already out gets downgraded when its value becomes protected), at start and after each reload.
 */
export function createGuard(config: Config, sink: string, store: Store, log: Logger, metrics: Metrics,
  recheck?: (isProtected: (o: Observable) => boolean) => Promise<number>): { gate: GuardGate; part: ServicePart } {
  const g = config.guard;
  const list = new ProtectedList(g, log);
  const pollMs = g.breaker_poll_seconds * 1000;
  const breaker = new Breaker(store, log, metrics, g.breaker_max_blocks_per_hour, pollMs);
  const gate = new GuardGate({ sink, enabled: g.enabled, onProtected: g.on_protected, specialAddresses: g.special_addresses, holdMs: pollMs },
    list, breaker, store, log, metrics);
  const runRecheck = async () => {
    if (!recheck || !g.enabled) return;
    const values = list.current;
    const n = await recheck((o) => values.match(o) !== null || ((o.type === 'ipv4' || o.type === 'ipv6') && specialAddress(o.value) !== null))
      .catch((err) => { log.warn({ sink, ...errorFields(err) }, 'cannot re-check held indicators against the protected list'); return 0; });
    if (n > 0) log.warn({ sink, requeued: n }, 'indicators already held touch protected values: re-sent through the guard');
  };
  list.onReload = () => { void runRecheck(); };
  let timer: NodeJS.Timeout | null = null;
  let pruner: NodeJS.Timeout | null = null;
  const prune = () => store.pruneDecisions(Date.now() - g.decisions_retention_days * 86_400_000)
    .then((n) => { if (n > 0) log.info({ removed: n, retentionDays: g.decisions_retention_days }, 'old guard decisions pruned'); })
    .catch((err) => log.warn(errorFields(err), 'cannot prune guard decisions'));
  const part: ServicePart = {
    name: `${sink}-guard`,
    kind: 'sink',
    start: async () => {
      list.watch();
      await breaker.refresh(true);
      if (breaker.paused.size) log.error({ sources: [...breaker.paused] }, 'breaker open: enforcing actions of these sources stay paused until `threatbridge resume`');
      log.info({ sink, protectedValues: list.current.size, listFile: g.list_file ?? null, breakerPerHour: g.breaker_max_blocks_per_hour }, 'guard ready');
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
  };
  return { gate, part };
}
