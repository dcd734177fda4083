// The contract between the Defender server (auth, throttling, faults) and the per-entity route
// modules (indicators now; alerts and machines later).

import type http from 'node:http';
import type { Caller } from './indicators.js';

export interface RouteContext {
  req: http.IncomingMessage;
  url: URL;
  /** Captured path groups of the route's pattern. */
  params: string[];
  caller: Caller;
  /** Parsed JSON body (throws MdeError 400/415 when unreadable). */
  body(): Promise<unknown>;
  /** Base URL for @odata.context / nextLink, without trailing slash. */
  baseUrl: string;
}

export interface RouteResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Items carried by the request or response, for the request log. */
  items?: number;
  /** Items the request wrote (key within the tenant, content as received), for the send log. */
  sent?: { key: string; content: string }[];
}

export interface Route {
  method: string;
  /** Matched against the path with the optional `/api/v1.0` prefix folded to `/api`. Use the `i` flag. */
  pattern: RegExp;
  /** Rate-limit and fault-injection key, e.g. `indicators.import`. */
  endpoint: string;
  /** The token needs one of these roles. */
  roles: readonly string[];
  handle(ctx: RouteContext): Promise<RouteResult> | RouteResult;
}

export interface RouteMatch {
  route: Route;
  params: string[];
}

/** Defender routes are case-insensitive (ASP.NET); `/api/v1.0/...` is the versioned alias of `/api/...`. */
export function matchRoute(routes: readonly Route[], method: string, pathname: string): RouteMatch | 'method-not-allowed' | null {
  const path = pathname.replace(/^\/api\/v1\.0(?=\/|$)/i, '/api').replace(/\/+$/, '');
  let pathMatched = false;
  for (const route of routes) {
    const m = route.pattern.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (route.method === method) return { route, params: m.slice(1).map((p) => decodeURIComponent(p ?? '')) };
  }
  return pathMatched ? 'method-not-allowed' : null;
}
