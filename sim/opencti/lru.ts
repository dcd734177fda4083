// The per-connection "already sent" cache of the stream handler (lru-cache with max + ttl:
// `app:live_stream:cache_max_size` 5000, `cache_max_time` 1 h). Once an id falls out, the
// platform sends that dependency again.

export class LruCache {
  private readonly entries = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  has(key: string): boolean {
    const at = this.entries.get(key);
    if (at === undefined) return false;
    if (this.clock() - at > this.ttlMs) {
      this.entries.delete(key);
      return false;
    }
    return true;
  }

  set(key: string): void {
    this.entries.delete(key);
    this.entries.set(key, this.clock());
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
