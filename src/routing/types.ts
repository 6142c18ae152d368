/**
 * The routing contract. route() in router.ts is a pure function of RequestFacts, a
 * PoolSnapshot and a read-only RoutingContext; the proxy gathers the facts, asks, and
 * acts on the Decision. Nothing here does I/O.
 */
import type { BackendView } from '../pool/snapshot.js';

/** RequestFacts are what the proxy extracted from one request (or WebSocket handshake). */
export interface RequestFacts {
  /** Client address (after trustedProxies): the hash key for new sessions. */
  readonly clientAddress: string;
  /** Raw value of the balancer's affinity cookie, if the request carried one. */
  readonly affinityCookie: string | undefined;
  /** Servlet session id (JSESSIONID cookie, or ;jsessionid= in the path), if any. */
  readonly sessionId: string | undefined;
}

/** AffinityToken is a verified affinity cookie: which client, pinned to which backend. */
export interface AffinityToken {
  /** Random id of this browser session, chosen by the balancer; counts active sessions. */
  readonly clientId: string;
  readonly backendId: string;
}

/** RoutingContext gives the router read-only access to what changes between snapshots. */
export interface RoutingContext {
  /** Verify a raw affinity cookie; undefined for forged, malformed or unknown ones. */
  verifyCookie(raw: string): AffinityToken | undefined;
  /** Backend id learned from a backend's Set-Cookie for this servlet session id. */
  learnedBackend(sessionId: string): string | undefined;
  /** Active sessions (seen within sessionIdle, or with an open WebSocket) on a backend. */
  activeSessions(backendId: string): number;
  /** Bounded load: no backend takes more than balanceFactor x its weighted share. */
  readonly balanceFactor: number;
}

/** RouteReason says which rule decided; shown by `servoy-lb route` and in the access log. */
export type RouteReason =
  | 'affinity-cookie'
  | 'route-suffix'
  | 'learned-session'
  | 'new-session'
  /** The session's backend is down or disabled: placed anew (rule 3). */
  | 'replaced';

/** Decision is the router's answer. */
export type Decision =
  | {
      readonly kind: 'backend';
      readonly backend: BackendView;
      readonly reason: RouteReason;
      /** Client id from a valid affinity cookie; undefined when the proxy must mint one. */
      readonly clientId: string | undefined;
      /** True when the response must carry a (new) affinity cookie. */
      readonly setCookie: boolean;
    }
  | {
      readonly kind: 'unavailable';
      /** no-backend: none up; pool-full: every candidate at maxSessions / bounded-load cap. */
      readonly reason: 'no-backend' | 'pool-full';
    };
