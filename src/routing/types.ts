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
       * partition-down: the partition's server is down or disabled (never sent elsewhere);
       * failover-hold: the session's server is down but within affinity.failoverDelay, so
       * the session waits for it (Servoy takes a client back for 60 s after a drop).
       */
      readonly reason: UnavailableReason;
    };

/** UnavailableReason says why no backend was chosen (see Decision). */
export type UnavailableReason = 'no-backend' | 'pool-full' | 'partition-down' | 'failover-hold';

/**
 * RouteStep is one rule the router tried for a request, in the order it tried them. The
 * router records steps only when asked (route explanations), from the very code path that
 * decides, so an explanation cannot drift from what really happens.
 */
export interface RouteStep {
  /** The rule: partition (1), affinity-cookie / route-suffix / learned-session (2), new-session (3). */
  readonly rule: 'partition' | 'affinity-cookie' | 'route-suffix' | 'learned-session' | 'new-session';
  /** applied: this rule decided; skipped: it did not apply (see detail); lost: it named a backend that cannot take the session. */
  readonly outcome: 'applied' | 'skipped' | 'lost' | 'held' | 'unavailable';
  /** The backend the rule named, if any. */
  readonly backend?: string;
  /** One sentence for an administrator. */
  readonly detail: string;
}

/** CandidateStep is one backend new-session placement considered, as placement saw it. */
export interface CandidateStep {
  readonly id: string;
  readonly state: BackendView['state'];
  /** Weighted rendezvous score of the key on this backend; higher wins. */
  readonly score: number;
  /** Load placement counted: active sessions (partitions, for a new partition). */
  readonly load: number;
  /** Bounded-load cap for one more: ceil(balanceFactor x (total + 1) x weight / totalWeight); null when unbounded. */
  readonly cap: number | null;
  /** Whether placement could use it now; `skipped` says why not when it was passed over before scoring. */
  readonly fits: boolean;
  readonly skipped?: 'excluded' | 'max-sessions';
}

/** RouteTrace collects the steps of one route() call; pass an empty one to have it filled. */
export interface RouteTrace {
  readonly steps: RouteStep[];
  /** Set when placement ran: every candidate in score order (highest first). */
  candidates?: CandidateStep[];
}
