// One tenant's indicator store: upsert on (type, lower-cased value) or on a body id, the active
// cap, and expiry. Expired indicators are kept (an upsert can revive them) but are neither
// counted against the cap nor listed.

import { MdeError } from './errors.js';
import { formatServerTimestamp, type IndicatorAction, type IndicatorInput, type IndicatorType, type Severity } from './indicator-validation.js';

export interface Indicator {
  id: string;
  indicatorValue: string;
  indicatorType: IndicatorType;
  action: IndicatorAction;
  application: string | null;
  source: string;
  sourceType: 'AadApp' | 'User';
  createdBy: string;
  createdByDisplayName: string;
  createdBySource: string;
  severity: Severity | null;
  category: string | null;
  title: string;
  description: string;
  recommendedActions: string | null;
  creationTimeDateTimeUtc: string;
  expirationTime: string | null;
  lastUpdateTime: string;
  lastUpdatedBy: string | null;
  rbacGroupNames: string[];
  rbacGroupIds: (string | number)[];
  generateAlert: boolean;
  externalId: string | null;
  educateUrl: string | null;
  mitreTechniques: string[] | null;
  [extra: string]: unknown;
}

/** The authenticated application acting on the store. */
export interface Caller {
  tenantId: string;
  clientId: string;
  displayName: string;
  /** `Ti.ReadWrite.All`: sees every indicator; plain `Ti.ReadWrite` sees only its own. */
  seesAll: boolean;
  /** A person in the portal (clientId is then the UPN) rather than an application. */
  kind?: 'AadApp' | 'User';
}

export interface StoreOptions {
  maxIndicators: number;
  capError: { status: number; code: string };
  /** Wall clock (ms) used for timestamps and expiry. */
  now: () => number;
  /** Ids are unique across tenants, like the real numeric ids. */
  nextId: () => string;
  /** Called with indicatorKey() whenever an indicator leaves the store. */
  onRemoved?: (key: string) => void;
}

interface Entry {
  ind: Indicator;
  expiresAt: number | null;
}

export function indicatorKey(type: string, value: string): string {
  return `${type}\u0000${value.toLowerCase()}`;
}

export class IndicatorStore {
  private readonly byId = new Map<string, Entry>(); // insertion order = creation order = id order
  private readonly byKey = new Map<string, string>();
  // Active count, valid until the earliest expiry among active indicators.
  private countCache: { count: number; validUntil: number } | null = null;

  constructor(private readonly opts: StoreOptions) {}

  upsert(input: IndicatorInput, caller: Caller): { indicator: Indicator; created: boolean } {
    const now = this.opts.now();
    const key = indicatorKey(input.indicatorType, input.indicatorValue);
    let existing: Entry | undefined;
    if (input.id !== null) {
      existing = this.byId.get(input.id);
      if (!existing || !visible(existing.ind, caller)) throw new MdeError(404, 'ResourceNotFound', `Indicator ${input.id} was not found.`);
      const clash = this.byKey.get(key);
      if (clash !== undefined && clash !== input.id) {
        throw new MdeError(400, 'BadRequest', `An indicator with the same indicatorType and indicatorValue already exists (id ${clash}).`);
      }
    } else {
      const id = this.byKey.get(key);
      existing = id === undefined ? undefined : this.byId.get(id);
    }

    const expiresAt = input.expirationTime === null ? null : Date.parse(input.expirationTime);
    const willBeActive = expiresAt === null || expiresAt > now;
    const wasActive = existing !== undefined && isActive(existing, now);
    if (willBeActive && !wasActive && this.activeCount(now) >= this.opts.maxIndicators) {
      throw new MdeError(
        this.opts.capError.status,
        this.opts.capError.code,
        `The maximum number of active indicators (${this.opts.maxIndicators}) for this tenant has been reached. Delete indicators or let them expire before adding new ones.`,
      );
    }

    const stamp = formatServerTimestamp(now);
    const prev = existing?.ind;
    const ind: Indicator = {
      id: prev?.id ?? this.opts.nextId(),
      indicatorValue: input.indicatorValue,
      indicatorType: input.indicatorType,
      action: input.action,
      // `application` "only works for new indicators".
      application: prev ? prev.application : input.application,
      source: prev?.source ?? (caller.kind === 'User' ? caller.clientId : caller.displayName),
      sourceType: prev?.sourceType ?? caller.kind ?? 'AadApp',
      createdBy: prev?.createdBy ?? caller.clientId,
      createdByDisplayName: prev?.createdByDisplayName ?? caller.displayName,
      createdBySource: prev?.createdBySource ?? (caller.kind === 'User' ? 'Portal' : 'PublicApi'),
      severity: input.severity,
      category: input.category,
      title: input.title,
      description: input.description,
      recommendedActions: input.recommendedActions,
      creationTimeDateTimeUtc: prev?.creationTimeDateTimeUtc ?? stamp,
      expirationTime: input.expirationTime,
      lastUpdateTime: stamp,
      lastUpdatedBy: prev ? caller.clientId : null,
      rbacGroupNames: input.rbacGroupNames,
      rbacGroupIds: input.rbacGroupIds,
      generateAlert: input.generateAlert,
      externalId: input.externalId,
      educateUrl: input.educateUrl,
      mitreTechniques: input.mitreTechniques,
      ...input.extras,
    };
    if (prev) this.byKey.delete(indicatorKey(prev.indicatorType, prev.indicatorValue));
    this.byId.set(ind.id, { ind, expiresAt });
    this.byKey.set(key, ind.id);
    this.adjustCount(wasActive, willBeActive, expiresAt);
    return { indicator: ind, created: prev === undefined };
  }

  /** Active indicators visible to the caller (all active ones when caller is omitted), in id order. */
  list(caller?: Caller): Indicator[] {
    const now = this.opts.now();
    const out: Indicator[] = [];
    for (const e of this.byId.values()) if (isActive(e, now) && (!caller || visible(e.ind, caller))) out.push(e.ind);
    return out;
  }

  find(type: string, value: string): Indicator | undefined {
    const id = this.byKey.get(indicatorKey(type, value));
    const e = id === undefined ? undefined : this.byId.get(id);
    return e && isActive(e, this.opts.now()) ? e.ind : undefined;
  }

  /** Deletes one indicator the caller can see; false when there is none. */
  remove(id: string, caller: Caller): boolean {
    const e = this.byId.get(id);
    if (!e || !visible(e.ind, caller)) return false;
    this.drop(e);
    return true;
  }

  /** All or nothing: returns the ids that were not found (and then deletes nothing). */
  removeAll(ids: readonly string[], caller: Caller): string[] {
    const missing = ids.filter((id) => {
      const e = this.byId.get(id);
      return !e || !visible(e.ind, caller);
    });
    if (missing.length > 0) return [...new Set(missing)];
    for (const id of new Set(ids)) {
      const e = this.byId.get(id);
      if (e) this.drop(e);
    }
    return [];
  }

  activeCount(now = this.opts.now()): number {
    if (!this.countCache || now >= this.countCache.validUntil) {
      let count = 0;
      let validUntil = Infinity;
      for (const e of this.byId.values()) {
        if (!isActive(e, now)) continue;
        count++;
        if (e.expiresAt !== null) validUntil = Math.min(validUntil, e.expiresAt);
      }
      this.countCache = { count, validUntil };
    }
    return this.countCache.count;
  }

  clear(): void {
    this.byId.clear();
    this.byKey.clear();
    this.countCache = null;
  }

  private drop(e: Entry): void {
    const wasActive = isActive(e, this.opts.now());
    this.byId.delete(e.ind.id);
    const key = indicatorKey(e.ind.indicatorType, e.ind.indicatorValue);
    // A duplicate (see duplicate()) does not own the key; the original keeps it.
    if (this.byKey.get(key) === e.ind.id) this.byKey.delete(key);
    this.adjustCount(wasActive, false, null);
    this.opts.onRemoved?.(key);
  }

  /**
   * A second indicator with the same type and value, as the real service has been seen to create
   * on updates ("always create[s] a new one"). Returns it, or undefined when the id is unknown.
   */
  duplicate(id: string): Indicator | undefined {
    const e = this.byId.get(id);
    if (!e) return undefined;
    const ind: Indicator = { ...e.ind, id: this.opts.nextId() };
    this.byId.set(ind.id, { ind, expiresAt: e.expiresAt });
    this.adjustCount(false, isActive(e, this.opts.now()), e.expiresAt);
    return ind;
  }

  /** Deletes an indicator whoever created it (an administrator in the portal); false when unknown. */
  removeAsAdmin(id: string): boolean {
    const e = this.byId.get(id);
    if (!e) return false;
    this.drop(e);
    return true;
  }

  private adjustCount(wasActive: boolean, isNowActive: boolean, expiresAt: number | null): void {
    if (!this.countCache) return;
    if (isNowActive && !wasActive) this.countCache.count++;
    if (!isNowActive && wasActive) this.countCache.count--;
    if (isNowActive && expiresAt !== null) this.countCache.validUntil = Math.min(this.countCache.validUntil, expiresAt);
  }
}

function isActive(e: Entry, now: number): boolean {
  return e.expiresAt === null || e.expiresAt > now;
}

function visible(ind: Indicator, caller: Caller): boolean {
  return caller.seesAll || ind.createdBy === caller.clientId;
}
