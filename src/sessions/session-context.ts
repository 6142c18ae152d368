/**
 * SessionContext gathers the mutable session state the router may read (verified affinity
 * cookies, learned session ids, active-session counts) behind the read-only
 * RoutingContext interface, and the writes the proxy makes after a decision (learn a
 * session id, count a request). The router never sees the writers.
 */
import type { AffinityToken, PartitionLookup, RoutingContext } from '../routing/types.js';
import type { AffinityCookieCodec, CookieAttributes } from '../routing/affinity-cookie.js';
import type { LearnedSessions } from './learned-sessions.js';
import type { SessionAccounting } from './accounting.js';

/**
 * PartitionView is what routing and the proxy need of the partition directory: the
 * PartitionDirectory itself in one process, a worker's cache of the primary's directory
 * with `--workers`.
 */
export interface PartitionView {
  lookup(key: string): PartitionLookup | undefined;
  count(backendId: string): number;
  seen(key: string): void;
}

/**
 * ClusterLoad is what a worker knows of the rest of the cluster: the active sessions the
 * other workers hold on a backend (from the primary's last totals).
 */
export interface ClusterLoad {
  sessionsElsewhere(backendId: string): number;
}

/** SessionContext implements RoutingContext over the balancer's session tables. */
export class SessionContext implements RoutingContext {
  /** The last cookie verified (worker mode only): see sessionBackend(). */
  #lastToken: AffinityToken | undefined;

  constructor(
    public codec: AffinityCookieCodec,
    readonly learned: LearnedSessions,
    readonly accounting: SessionAccounting,
    public balanceFactor: number,
    public cookie: CookieAttributes,
    /** Partition mode only. */
    readonly partitions?: PartitionView,
    /** With `--workers`: sessions held by the other workers, for bounded load and maxSessions. */
    readonly cluster?: ClusterLoad,
  ) {}

  verifyCookie(raw: string): AffinityToken | undefined {
    const token = this.codec.verify(raw);
    if (this.cluster !== undefined) this.#lastToken = token;
    return token;
  }

  learnedBackend(sessionId: string): string | undefined {
    return this.learned.backendOf(sessionId);
  }

  activeSessions(backendId: string): number {
    const local = this.accounting.activeSessions(backendId);
    return this.cluster === undefined ? local : local + this.cluster.sessionsElsewhere(backendId);
  }

  partitionOf(key: string): PartitionLookup | undefined {
    return this.partitions?.lookup(key);
  }

  partitionCount(backendId: string): number {
    return this.partitions?.count(backendId) ?? 0;
  }

  /**
   * sessionBackend is where an active session was last seen. A worker has seen only the
   * requests it accepted; a session it has not seen, whose signed cookie (just verified by
   * the router, same client id) names a backend, is taken at the cookie's word: the
   * balancer itself pinned that client there (this matters for `partitions move --drain`).
   */
  sessionBackend(clientId: string): string | undefined {
    const seen = this.accounting.sessionBackend(clientId);
    if (seen !== undefined || this.cluster === undefined) return seen;
    return this.#lastToken?.clientId === clientId ? this.#lastToken.backendId : undefined;
  }

  /** setCookieHeader is the Set-Cookie value that pins clientId to backendId. */
  setCookieHeader(clientId: string, backendId: string): string {
    return this.codec.serialize(this.codec.sign(clientId, backendId), this.cookie);
  }
}
