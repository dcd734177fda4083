// Optional AlienVault OTX exclusion (as MISP2Defender): values OTX already has pulses for are not
// pushed. Answers are cached; an OTX failure never blocks intelligence (the value goes out).
import { ApiCaller, fixedHeaders } from '../../net/call.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Observable } from '../../core/types.js';
import { isObject } from './model.js';

const SECTION: Partial<Record<Observable['type'], string>> = {
  ipv4: 'IPv4', ipv6: 'IPv6', domain: 'domain', hostname: 'hostname', url: 'url', md5: 'file', sha1: 'file', sha256: 'file',
};

export class OtxLookup {
  private readonly caller: ApiCaller;
  private readonly cache = new Map<string, { known: boolean; at: number }>();

  constructor(private readonly o: { url: string; apiKey: string; cacheMs: number; timeoutMs: number; log: Logger; maxEntries?: number; metrics?: Metrics }) {
    this.caller = new ApiCaller({ system: 'otx', baseURL: o.url, timeoutMs: o.timeoutMs, verifyTls: true, log: o.log, credentials: fixedHeaders({ 'X-OTX-API-KEY': o.apiKey }),
      ...(o.metrics ? { metrics: { metrics: o.metrics, label: 'otx' } } : {}) });
  }

  async known(obs: Observable): Promise<boolean> {
    const section = SECTION[obs.type];
    if (!section) return false;
    const key = `${obs.type}:${obs.value}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < this.o.cacheMs) return hit.known;
    let known = false;
    try {
      const res = await this.caller.call('indicator', { url: `/api/v1/indicators/${section}/${encodeURIComponent(obs.value)}/general` });
      if (res.status === 200 && isObject(res.data) && isObject(res.data['pulse_info'])) {
        known = Number(res.data['pulse_info']['count'] ?? 0) > 0;
      } else if (res.status !== 404) {
        this.o.log.warn({ system: 'otx', status: res.status }, 'OTX lookup failed; the value is not excluded');
        return false;
      }
    } catch (err) {
      this.o.log.warn({ system: 'otx', err: (err as Error).message }, 'OTX unreachable; the value is not excluded');
      return false;
    }
    this.cache.set(key, { known, at: Date.now() });
    if (this.cache.size > (this.o.maxEntries ?? 100_000)) this.cache.delete(this.cache.keys().next().value!);
    return known;
  }
}
