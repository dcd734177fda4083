// MISP as an indicator source. ZeroMQ is the fast path and REST the truth: every gap (start,
// reconnect, silence, overflow, hints of changes a message does not carry) and every
// `catchup_interval` runs a restSearch from the stored attribute-timestamp watermark; every
// `full_sync_interval` a full pass withdraws what MISP no longer holds (hard deletes are
// invisible to incremental REST). The watermark advances in the same transaction as the effects.
import type { Config } from '../../config/schema.js';
import { normaliseSafely, rejectedEvent, type IngestItem } from '../../core/pipeline.js';
import type { IngestLoop } from '../../core/ingest-loop.js';
import type { NormalisedEvent, SourceRef } from '../../core/types.js';
import { errorFields, type Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Store } from '../../core/store.js';
import { SUPPORTED_MISP_TYPES } from './attribute-types.js';
import { readAttribute, readEvent, isObject, str, type MispEvent } from './model.js';
import { cutText } from '../../core/raw-copy.js';
import { attributeItem, EventCache, normaliseZmq, type MispContext, type MispItem } from './normalise.js';
import { OtxLookup } from './otx.js';
import type { MispPolicy } from './policy.js';
import { windowStart } from './filters.js';
import { MispRest, type RestSearchBody } from './rest.js';
import { sleep } from '../../net/sleep.js';
import { ZmqFeed, type ZmqMessage } from './zmq.js';
import { WarninglistCheck } from './warninglists.js';
import { clampExpiry } from './policy.js';

export const MISP_SOURCE = 'misp';

export interface MispState {
  /** Attribute timestamp (epoch seconds) the next catch-up starts from; null = never synced. */
  watermark: number | null;
  /** Epoch ms of the last completed full sync. */
  lastFullSync: number;
}

/** What ZeroMQ told us about an attribute recently, so that an older REST row cannot undo it. */
interface Freshness {
  timestamp: number;
  removedAt: number | null;
}

const OVERLAP_S = 60;
/** Attribute uuids asked per restSearch in the hard-delete sweep. */
const SWEEP_CHUNK = 500;

export class MispSource {
  private readonly rest: MispRest;
  private readonly ctx: MispContext;
  private readonly feed: ZmqFeed | null;
  private readonly otx: OtxLookup | null;
  private state: MispState = { watermark: null, lastFullSync: 0 };
  private running = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private catchUpWanted = false;
  private abort = new AbortController();
  private readonly fresh = new Map<string, Freshness>();
  private overflowing = false;
  /** Messages arrived since the last catch-up: MISP's publisher drops silently in bursts (HWM 1000). */
  private activeSinceCatchUp = false;
  /** The ZeroMQ batch being processed (stop waits for it). */
  private batch: Promise<void> = Promise.resolve();
  private readonly warninglists: WarninglistCheck | null;
  /** Why MISP's warninglists cannot be checked now (items are held meanwhile). */
  private warninglistError: string | null = null;
  /** A (re)connect of the feed: look for hard deletes too, which incremental REST cannot see. */
  private sweepWanted = false;
  /** `run --once`: a warninglist MISP cannot check fails the run instead of holding it. */
  private once = false;
  lastError: string | null = null;
  lastSyncAt = 0;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly ingest: IngestLoop,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    const m = config.misp;
    const { policy, warnings } = clampExpiry({ ...m, url: m.url! });
    for (const w of warnings) log.warn({ source: MISP_SOURCE }, w);
    this.ctx = { policy, events: new EventCache(), now: () => Date.now() };
    this.rest = new MispRest({ url: m.url!, key: m.key!, verifyTls: m.verify_cert, timeoutMs: 120_000, log, metrics });
    // Its own client, giving up after two attempts: the screen retries itself and says it holds items.
    this.warninglists = m.enforce_warninglist
      ? new WarninglistCheck(new MispRest({ url: m.url!, key: m.key!, verifyTls: m.verify_cert, timeoutMs: 60_000, log, metrics, maxAttempts: 2 }), m.warninglist_refresh * 1000)
      : null;
    this.feed = m.zmq_url
      ? new ZmqFeed({
        url: m.zmq_url, username: m.zmq_username, password: m.zmq_password, heartbeatTimeoutMs: m.zmq_heartbeat_timeout * 1000, log,
        maxMessageBytes: config.limits.zmq_message_bytes,
        ...(m.zmq_curve_server_key && m.zmq_curve_public_key && m.zmq_curve_secret_key
          ? { curve: { serverKey: m.zmq_curve_server_key, publicKey: m.zmq_curve_public_key, secretKey: m.zmq_curve_secret_key } } : {}),
        onBatch: (messages) => (this.batch = this.onBatch(messages)),
        onGap: (reason) => {
          // Hard deletes published while we were away are gone from ZeroMQ for good.
          if (reason === 'connected') this.sweepWanted = true;
          this.requestCatchUp(reason);
        },
        onState: () => this.reportReach(),
      })
      : null;
    this.otx = m.otx_exclude && config.otx.api_key
      ? new OtxLookup({ url: config.otx.url, apiKey: config.otx.api_key, cacheMs: config.otx.cache_hours * 3_600_000, timeoutMs: 15_000, log, metrics })
      : null;
  }

  /** Reports reachability from the same facts /readyz shows: a sync failing or the feed away. */
  private reportReach(): void {
    const problem = this.health();
    if (problem) this.metrics.reach.down('source', MISP_SOURCE, problem);
    else this.metrics.reach.up('source', MISP_SOURCE);
  }

  /** Ready when the last sync worked and, with ZeroMQ configured, the feed is connected. */
  health(): string | null {
    if (this.lastError) return this.lastError;
    if (this.warninglistError) return this.warninglistError;
    if (this.feed && !this.feed.connected) return `ZeroMQ feed not connected${this.feed.lastError ? `: ${this.feed.lastError}` : ''}`;
    return null;
  }

  async start(): Promise<void> {
    const saved = await this.store.getCheckpoint(MISP_SOURCE);
    if (saved) this.state = { watermark: null, lastFullSync: 0, ...(saved.state as Partial<MispState>) };
    this.log.info({ source: MISP_SOURCE, resume: this.state, zmq: !!this.feed }, saved ? 'resuming MISP' : 'first start of MISP');
    this.running = true;
    this.abort = new AbortController();
    this.feed?.start();
    this.loop = this.run();
  }

  /** `run --once`: one REST sync as the loop would run it (a full sync on the first run or when due, else a catch-up). */
  async syncOnce(): Promise<'full' | 'catch-up'> {
    const saved = await this.store.getCheckpoint(MISP_SOURCE);
    if (saved) this.state = { watermark: null, lastFullSync: 0, ...(saved.state as Partial<MispState>) };
    this.running = true;
    this.abort = new AbortController();
    const started = Date.now();
    const kind = this.fullDue(started) ? 'full' : 'catch-up';
    this.once = true;
    try {
      await this.sync(kind, started);
    } finally {
      this.running = false;
      this.once = false;
    }
    return kind;
  }

  private fullDue(now: number): boolean {
    const m = this.config.misp;
    return this.state.watermark === null || (m.full_sync_interval > 0 && now - this.state.lastFullSync >= m.full_sync_interval * 1000);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.feed?.stop();
    this.abort.abort();
    this.wakeUp?.();
    await this.loop?.catch(() => undefined);
    await this.batch.catch(() => undefined);
  }

  pause(): void { this.overflowing = true; }
  resume(): void { this.overflowing = false; }

  requestCatchUp(reason: string): void {
    this.log.debug({ source: MISP_SOURCE, reason }, 'REST catch-up requested');
    this.catchUpWanted = true;
    this.wakeUp?.();
  }

  /**
   * A batch of ZeroMQ messages, in order. A full ingest queue holds the feed here (frames wait in
   * the feed's queue and libzmq's receive buffer) instead of dropping messages.
   */
  private async onBatch(messages: ZmqMessage[]): Promise<void> {
    while (this.running && this.overflowing) await sleep(10);
    if (!this.running) return;
    const out: { item: MispItem; raw: unknown }[] = [];
    for (const { topic, payload } of messages) {
      if (topic === 'misp_json_self') {
        // The first heartbeat after traffic means MISP went idle: repair what a burst may have lost.
        if (this.activeSinceCatchUp) {
          this.log.debug({ source: MISP_SOURCE, received: this.feed?.received }, 'ZeroMQ feed idle after activity');
          this.requestCatchUp('feed idle after activity');
        }
        this.activeSinceCatchUp = false;
        continue;
      }
      this.activeSinceCatchUp = true;
      this.metrics.activity.event(MISP_SOURCE);
      const { items, catchUp, publishedEvent } = normaliseSafely(() => normaliseZmq(topic, payload, this.ctx),
        (normalised) => ({ items: [asItem(topic)(normalised)], catchUp: false, publishedEvent: undefined }));
      if (catchUp) this.requestCatchUp(`${topic} hint`);
      if (publishedEvent) this.logEvent(publishedEvent, 'published');
      this.noteFreshness(topic, payload, items);
      const raw = { topic: cutText(topic, 200), payload: cutText(payload, this.config.limits.raw_copy_bytes) };
      for (const item of items) out.push({ item, raw });
    }
    const screened = await this.screen(out.map((o) => o.item));
    for (const [i, { raw }] of out.entries()) this.push(await this.withOtx(screened[i]!), raw, null);
  }

  /**
   * Drops the values MISP's warninglists flag, holding until MISP has answered for every value
   * that would reach a sink: no path (ZeroMQ, catch-up, full sync) lets a hit through, not even
   * briefly. An attribute with a hit is withdrawn.
   */
  private async screen(items: MispItem[]): Promise<MispItem[]> {
    if (!this.warninglists) return items;
    const values = items.flatMap((i) => i.normalised.changes.map((c) => c.observable.value));
    if (values.length === 0) return items;
    let hits: Map<string, string> | null = null;
    for (let attempt = 0; hits === null; attempt++) {
      try {
        hits = await this.warninglists.hits(values, this.abort.signal);
        if (this.warninglistError) this.log.info({ source: MISP_SOURCE }, 'MISP warninglists answer again; held items go on');
        this.warninglistError = null;
      } catch (err) {
        if (!this.running || this.once) throw err;
        if (!this.warninglistError) this.log.warn({ source: MISP_SOURCE, values: values.length, ...errorFields(err) }, 'cannot check MISP warninglists; holding MISP items until MISP answers');
        this.warninglistError = `MISP warninglists unknown (items held): ${(err as Error).message}`;
        await sleep(Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5)), this.abort.signal).catch(() => undefined);
      }
    }
    if (hits.size === 0) return items;
    // One hit excludes the whole attribute (domain|ip included), as MISP's enforceWarninglist does
    // on REST: both paths then agree and nothing flips between them.
    return items.map((item) => {
      const n = item.normalised;
      const hit = n.changes.find((c) => hits.has(c.observable.value));
      if (!hit) return item;
      const skipped = [...n.skipped, { code: 'warninglist', detail: `${hit.observable.value} is on the MISP warninglist "${hits.get(hit.observable.value)}"` }];
      return { ...item, normalised: { ...n, changes: [], skipped, retractAll: true } };
    });
  }

  private noteFreshness(topic: string, payload: string, items: MispItem[]): void {
    if (topic !== 'misp_json_attribute' || items.length !== 1) return;
    try {
      const body = JSON.parse(payload) as Record<string, unknown>;
      const attr = readAttribute(body['Attribute']);
      if (!attr) return;
      this.metrics.activity.event(MISP_SOURCE, attr.timestamp * 1000);
      const removed = items[0]!.normalised.retractAll;
      this.fresh.delete(attr.uuid);
      this.fresh.set(attr.uuid, { timestamp: attr.timestamp, removedAt: removed ? Date.now() : null });
      if (this.fresh.size > 100_000) this.fresh.delete(this.fresh.keys().next().value!);
    } catch {
      // the item itself carries the rejection
    }
  }

  private push(item: MispItem, raw: unknown, checkpointState: MispState | null): void {
    const ingestItem: IngestItem = {
      normalised: item.normalised,
      raw,
      event: item.event,
      checkpoint: checkpointState ? { position: String(checkpointState.watermark ?? 0), state: { ...checkpointState } } : null,
      position: item.normalised.sourceRef?.id ?? item.event,
    };
    this.ingest.push(ingestItem);
  }

  private async withOtx(item: MispItem): Promise<MispItem> {
    if (!this.otx || item.normalised.changes.length === 0) return item;
    const kept = [];
    const skipped = [...item.normalised.skipped];
    for (const c of item.normalised.changes) {
      if (await this.otx.known(c.observable)) skipped.push({ code: 'known_to_otx', detail: `${c.observable.type} ${c.observable.value} is in AlienVault OTX` });
      else kept.push(c);
    }
    return { ...item, normalised: { ...item.normalised, changes: kept, skipped } };
  }

  private async run(): Promise<void> {
    while (this.running) {
      const m = this.config.misp;
      const started = Date.now();
      try {
        this.catchUpWanted = false;
        const sweep = this.sweepWanted;
        this.sweepWanted = false;
        if (this.fullDue(started)) await this.sync('full', started);
        else {
          await this.sync('catch-up', started);
          if (sweep) await this.sweepHardDeletes();
        }
        this.lastError = null;
        this.lastSyncAt = Date.now();
        // REST only (no ZeroMQ): what we hold is as old as the last completed sync.
        if (!this.feed) this.metrics.activity.polled(MISP_SOURCE, started);
        this.reportReach();
      } catch (err) {
        if (!this.running) break;
        this.lastError = `MISP sync failed: ${(err as Error).message}`;
        this.log.warn({ source: MISP_SOURCE, ...errorFields(err) }, 'MISP sync failed; retrying at the next interval');
        this.reportReach();
      }
      // A catch-up asked for meanwhile runs soon (debounced), else at the interval.
      await this.idle(this.catchUpWanted ? 2000 : (this.lastError ? Math.min(60_000, m.catchup_interval * 1000) : m.catchup_interval * 1000));
    }
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() { clearTimeout(t); self.wakeUp = null; resolve(); }
      // A catch-up request cuts the wait short, but not below a small debounce.
      this.wakeUp = () => { clearTimeout(t); setTimeout(done, this.running ? 2000 : 0); };
    });
  }

  private baseQuery(): RestSearchBody {
    const m = this.config.misp;
    const q: RestSearchBody = {
      type: [...SUPPORTED_MISP_TYPES], includeEventTags: 1, includeEventUuid: 1, order: 'Attribute.timestamp asc',
    };
    // Hits come back marked (not left out), so a catch-up withdraws an attribute edited onto a
    // warninglist; the live check (screen) applies the same lists to every path.
    if (m.enforce_warninglist) q['includeWarninglistHits'] = 1;
    if (m.publish_timestamp) q['publish_timestamp'] = m.publish_timestamp;
    return q;
  }

  /**
   * `full`: every live attribute that passes the server-side filters, then withdraw the rest.
   * `catch-up`: everything changed since the watermark, deletions included.
   */
  private async sync(kind: 'full' | 'catch-up', started: number): Promise<void> {
    const m = this.config.misp;
    const first = this.state.watermark === null;
    const since = first ? (m.initial_lookback ? Math.floor(windowStart(m.initial_lookback, started) / 1000) : null) : this.state.watermark;
    let maxSeen: number | null = null;
    let rows = 0;
    const seen: string[] = [];
    const eventsLogged = new Set<string>();
    const consume = async (page: unknown[], mode: 'state' | 'removed', fetchedAt: number) => {
      if (mode === 'state') await this.learnEvents(page);
      if (this.config.misp.log_events) {
        for (const row of page) {
          const id = isObject(row) ? str(row['event_id']) : '';
          const event = id && !eventsLogged.has(id) ? this.ctx.events.get(id) : undefined;
          if (event) { eventsLogged.add(id); this.logEvent(event, kind); }
        }
      }
      const out: { item: MispItem; row: unknown }[] = [];
      for (const row of page) {
        const attr = readAttribute(row);
        if (!attr) {
          out.push({ item: { normalised: rejectedEvent('malformed_attribute', 'restSearch row without uuid or event_id'), event: 'rest.attribute' }, row });
          continue;
        }
        rows++;
        this.metrics.activity.event(MISP_SOURCE);
        maxSeen = Math.max(maxSeen ?? 0, attr.timestamp);
        const f = this.fresh.get(attr.uuid);
        if (f && (f.timestamp > attr.timestamp || (f.removedAt !== null && f.removedAt >= fetchedAt && f.timestamp >= attr.timestamp))) continue;
        if (mode === 'removed' || attr.deleted) {
          out.push({ item: normaliseSafely(() => attributeItem({ ...attr, deleted: true }, null, this.ctx, 'rest.deleted'), asItem('rest.deleted')), row });
          continue;
        }
        seen.push(`misp:${attr.eventId}:${attr.uuid}`);
        const event = kind === 'full' ? 'rest.full' : 'rest.attribute';
        out.push({ item: normaliseSafely(() => attributeItem(attr, this.restEvent(row), this.ctx, event), asItem(event)), row });
      }
      const screened = await this.screen(out.map((o) => o.item));
      for (const [i, { row }] of out.entries()) this.push(await this.withOtx(screened[i]!), row, null);
      await this.room();
    };

    const base = this.baseQuery();
    if (kind === 'full') {
      const q: RestSearchBody = { ...base };
      if (m.published_only) q['published'] = 1;
      if (m.to_ids_only) q['to_ids'] = 1;
      // Only a first pass looks back a limited time (and withdraws nothing); every later full pass
      // must see the whole set, or what it does not return would be withdrawn.
      if (first && since !== null) q['timestamp'] = String(since);
      for await (const page of this.rest.pages(q, m.page_size, this.abort.signal)) await consume(page, 'state', Date.now());
    } else {
      const q: RestSearchBody = { ...base, deleted: [0, 1] };
      if (m.published_only) q['published'] = 1;
      if (since !== null) q['timestamp'] = String(since);
      for await (const page of this.rest.pages(q, m.page_size, this.abort.signal)) await consume(page, 'state', Date.now());
      if (m.published_only && since !== null) {
        // Publishing does not touch Attribute.timestamp: attributes added before their event was
        // published are found by the event's publish time (a lost misp_json, REST-only mode).
        const published: RestSearchBody = { ...base, published: 1, publish_timestamp: String(this.publishedSince(since, started)) };
        for await (const page of this.rest.pages(published, m.page_size, this.abort.signal)) await consume(page, 'state', Date.now());
      }
      if (m.published_only) {
        // Deleting an attribute unpublishes its event: removals are looked for in any event.
        const removed: RestSearchBody = { ...base, deleted: 1 };
        delete removed['publish_timestamp'];
        delete removed['includeWarninglistHits'];
        if (since !== null) removed['timestamp'] = String(since);
        for await (const page of this.rest.pages(removed, m.page_size, this.abort.signal)) await consume(page, 'removed', Date.now());
      }
    }

    const startedS = Math.floor(started / 1000) - OVERLAP_S;
    const next: MispState = {
      watermark: Math.max(this.state.watermark ?? 0, maxSeen === null ? startedS : Math.min(maxSeen, startedS)),
      lastFullSync: kind === 'full' ? started : this.state.lastFullSync,
    };
    // The checkpoint rides on the last item so it commits with (after) everything this sync produced.
    const closing: NormalisedEvent = { sourceRef: null, changes: [], retractAll: false, alsoRetract: [], skipped: [], rejected: null, ignored: null };
    if (kind === 'full' && !(first && since !== null)) {
      // Whatever MISP no longer shows (hard deletes, filters that now exclude) is withdrawn, unless
      // it was claimed after this pass began (ZeroMQ meanwhile).
      closing.retractGroup = { prefix: 'misp:', keep: seen, onlyClaimedBefore: started };
    } else {
      closing.ignored = `${kind} done`;
    }
    this.push({ normalised: closing, event: `rest.${kind}.done` }, null, next);
    this.state = next;
    this.log.info({ source: MISP_SOURCE, kind, rows, since, watermark: next.watermark, ms: Date.now() - started }, `MISP ${kind} done`);
  }

  /**
   * Hard deletes are invisible to incremental REST: after a (re)connect of the feed, ask MISP for
   * every attribute we still push, by uuid, and withdraw those it no longer has. Cheaper than a
   * full sync (one page per 500 pushed attributes), so a deletion missed on ZeroMQ does not wait
   * for it. A sweep that would withdraw more than half of what MISP pushed is left to the full
   * sync: a MISP answering wrongly must not empty the sinks.
   */
  private async sweepHardDeletes(): Promise<void> {
    const started = Date.now();
    const claimed = new Map<string, string>(); // attribute uuid → claim source id
    for (const c of await this.store.loadClaims([], [], ['misp:'])) {
      const m = /^misp:[^:]+:(.+)$/.exec(c.sourceId);
      if (m) claimed.set(m[1]!, c.sourceId);
    }
    const uuids = [...claimed.keys()];
    const gone: string[] = [];
    for (let i = 0; i < uuids.length; i += SWEEP_CHUNK) {
      const chunk = uuids.slice(i, i + SWEEP_CHUNK);
      const found = new Set<string>();
      for (let page = 1; ; page++) {
        const rows = await this.rest.searchAttributes({ uuid: chunk, deleted: [0, 1], limit: SWEEP_CHUNK, page }, this.abort.signal);
        for (const row of rows) if (isObject(row) && typeof row['uuid'] === 'string') found.add(row['uuid']);
        if (rows.length < SWEEP_CHUNK) break;
      }
      for (const u of chunk) if (!found.has(u)) gone.push(u);
    }
    if (gone.length > 10 && gone.length > uuids.length / 2) {
      this.log.warn({ source: MISP_SOURCE, gone: gone.length, pushed: uuids.length },
        'hard-delete sweep: MISP no longer shows more than half of what it pushed; leaving it to the full sync');
      return;
    }
    for (const u of gone) {
      const sourceId = claimed.get(u)!;
      const ref: SourceRef = { system: 'misp', id: sourceId, url: `${this.ctx.policy.url}/events/view/${sourceId.split(':')[1]}` };
      this.push({ normalised: { sourceRef: ref, changes: [], retractAll: true, alsoRetract: [], skipped: [], rejected: null, ignored: null }, event: 'rest.hard-deleted' }, { uuid: u }, null);
    }
    this.log.info({ source: MISP_SOURCE, pushed: uuids.length, gone: gone.length, ms: Date.now() - started }, 'MISP hard-delete sweep done');
  }

  /** MISP2Defender's write_parsed_eventid: one line per event read, when misp.log_events is on. */
  private logEvent(event: MispEvent, how: string): void {
    if (!this.config.misp.log_events) return;
    this.log.info({ source: MISP_SOURCE, eventId: event.id, info: cutText(event.info, 200), org: cutText(event.orgName, 100), how }, 'MISP event read');
  }

  /** Lower bound of a catch-up's publish-time query: the watermark, within the configured window. */
  private publishedSince(since: number, now: number): number {
    const window = this.config.misp.publish_timestamp;
    return window ? Math.max(since, Math.floor(windowStart(window, now) / 1000)) : since;
  }

  private restEvent(row: unknown): MispEvent | null {
    if (!isObject(row) || !isObject(row['Event'])) return null;
    const header = readEvent(row['Event']);
    if (!header) return null;
    const cached = this.ctx.events.get(header.id);
    // Attribute rows carry no threat level, org name or publish time: use what we know of the event.
    return { ...header, published: true, threatLevelId: cached?.threatLevelId ?? header.threatLevelId,
      orgName: header.orgName || cached?.orgName || '', publishTimestamp: cached?.publishTimestamp ?? 0 };
  }

  /**
   * Reads the headers of events a page refers to that ZeroMQ has not told us about (a restart,
   * REST-only mode), so that severity and org filters do not depend on how an attribute arrived.
   */
  private async learnEvents(page: unknown[]): Promise<void> {
    const unknown = new Set<string>();
    for (const row of page) {
      const id = isObject(row) ? String(row['event_id'] ?? '') : '';
      if (id && !this.ctx.events.get(id)) unknown.add(id);
    }
    const ids = [...unknown];
    for (let i = 0; i < ids.length; i += 100) {
      try {
        for (const raw of await this.rest.eventHeaders(ids.slice(i, i + 100), this.abort.signal)) {
          const event = readEvent(raw, isObject(raw) ? raw['EventTag'] : undefined);
          if (event?.id) this.ctx.events.set(event);
        }
      } catch (err) {
        // Severity then falls back to the sink's default, as before; the attributes still flow.
        this.log.warn({ source: MISP_SOURCE, events: ids.length, ...errorFields(err) }, 'cannot read MISP event headers; using defaults for them');
        return;
      }
    }
  }

  /** Wait while the ingest queue is more than half full: REST pages are the one source we can slow. */
  private async room(): Promise<void> {
    const limit = this.config.pipeline.queue_size / 2;
    while (this.running && this.ingest.size > limit) await sleep(20);
  }
}

/** A normaliser's throw as the item it stands for: one rejected event. */
const asItem = (event: string) => (normalised: NormalisedEvent): MispItem => ({ normalised, event });
