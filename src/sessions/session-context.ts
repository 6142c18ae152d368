/**
 * SessionContext gathers the mutable session state the router may read (verified affinity
 * cookies, learned session ids, active-session counts) behind the read-only
 * RoutingContext interface, and the writes the proxy makes after a decision (learn a
 * session id, count a request). The router never sees the writers.
 */
import type { AffinityToken, PartitionLookup, RoutingContext } from '../routing/types.js';
import type { PartitionDirectory } from '../state/partition-directory.js';
import type { AffinityCookieCodec, CookieAttributes } from '../routing/affinity-cookie.js';
import type { LearnedSessions } from './learned-sessions.js';
import type { SessionAccounting } from './accounting.js';

/** SessionContext implements RoutingContext over the balancer's session tables. */
export class SessionContext implements RoutingContext {
  constructor(
    public codec: AffinityCookieCodec,
    readonly learned: LearnedSessions,
    readonly accounting: SessionAccounting,
    public balanceFactor: number,
    public cookie: CookieAttributes,
    /** Partition mode only. */
    readonly partitions?: PartitionDirectory,
  ) {}

  verifyCookie(raw: string): AffinityToken | undefined {
    return this.codec.verify(raw);
  }

  learnedBackend(sessionId: string): string | undefined {
    return this.learned.backendOf(sessionId);
  }

  activeSessions(backendId: string): number {
    return this.accounting.activeSessions(backendId);
  }

  partitionOf(key: string): PartitionLookup | undefined {
    return this.partitions?.lookup(key);
  }

  partitionCount(backendId: string): number {
    return this.partitions?.count(backendId) ?? 0;
  }

  sessionBackend(clientId: string): string | undefined {
    return this.accounting.sessionBackend(clientId);
  }

  /** setCookieHeader is the Set-Cookie value that pins clientId to backendId. */
  setCookieHeader(clientId: string, backendId: string): string {
    return this.codec.serialize(this.codec.sign(clientId, backendId), this.cookie);
  }
}
