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
  /** Partition mode only: the request's partition key (already normalised), if it has one. */
  readonly partitionKey?: string | undefined;
}

/** PartitionLookup is where a partition lives: a config pin or a durable assignment. */
export interface PartitionLookup {
  readonly backend: string;
  readonly pinned: boolean;
  /** After `partitions move --drain`: the old server, which keeps its live sessions. */
  readonly previous?: string | undefined;
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
  /** Partition mode: the pin or durable assignment of a key, if any. */
  partitionOf?(key: string): PartitionLookup | undefined;
  /** Partition mode: how many partitions a backend holds (bounded load for new partitions). */
  partitionCount?(backendId: string): number;
  /** The backend an active session (by client id) was last seen on, if it is still active. */
  sessionBackend?(clientId: string): string | undefined;
}

/** RouteReason says which rule decided; shown by `servoy-lb route` and in the access log. */
export type RouteReason =
  | 'affinity-cookie'
  | 'route-suffix'
  | 'learned-session'
  | 'new-session'
  /** The session's backend is down or disabled: placed anew (rule 3). */
  | 'replaced'
  /** Rule 1: the partition's pinned or assigned backend. */
  | 'partition'
  /** Rule 1: a partition seen for the first time, assigned now (the proxy must persist it before forwarding). */
  | 'partition-new'
  /** Rule 1: a live session on the server a partition was moved away from with --drain. */
  | 'partition-previous'
  /** A path rule with affinity "none": fewest requests in flight, no session (src/routing/stateless.ts). */
  | 'stateless'
  /** A path rule with `allow`: the server the client chose with ?servoy-lb-backend=ID (src/routing/backend-choice.ts). */
  | 'chosen-backend';

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
      /** With reason partition-new: the key to assign durably to `backend` before forwarding. */
      readonly assignPartition?: string;
    }
  | {
      readonly kind: 'unavailable';
      /**
       * no-backend: none up; pool-full: every candidate at maxSessions / bounded-load cap;
       * partition-down: the partition's server is down or disabled (never sent elsewhere).
       */
      readonly reason: 'no-backend' | 'pool-full' | 'partition-down';
    };
