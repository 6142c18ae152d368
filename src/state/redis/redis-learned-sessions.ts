/**
 * Learned session ids shared between instances: the servlet session id a backend set
 * (Set-Cookie: JSESSIONID=...) and which backend set it, so that a browser whose next
 * request reaches another instance (a virtual IP moved, DNS answered the other) still
 * reaches its server when its affinity cookie is gone. One key per session with its
 * own expiry (`sessionIdle`-like), refreshed when the session is learned again; Redis
 * forgets idle sessions by itself. loadAll reads the live ones (SCAN), for an instance that
 * starts or reconnects after they were learned.
 *
 * The request path reads the instance's own table first; only a session id it has never
 * seen costs a lookup here (the failover case), and a down Redis answers "unknown" at
 * once (the session is then placed as a new one would be: the same as one instance
 * without Redis).
 */
import type { RedisConnection } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';

/** RedisLearnedSessions stores and looks up learned session ids; see the file comment. */
export class RedisLearnedSessions {
  constructor(
    readonly conn: RedisConnection,
    readonly keys: RedisKeys,
    /** How long an unrefreshed session id is kept (ms). */
    readonly ttlMs: number,
  ) {}

  /** learn records (or refreshes) that `sessionId` lives on `backend`. */
  async learn(sessionId: string, backend: string): Promise<void> {
    await this.conn.run((c) => c.set(this.keys.session(sessionId), backend, 'PX', this.ttlMs));
  }

  /** lookup is the backend of a learned session id, undefined when no instance learned it (or Redis is down). */
  async lookup(sessionId: string): Promise<string | undefined> {
    if (!this.conn.state.up) return undefined;
    try {
      return (await this.conn.run((c) => c.get(this.keys.session(sessionId)))) ?? undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * loadAll reads every live learned session id and its backend (SCAN with COUNT over the
   * session keys, then MGET per batch): what an instance that starts or reconnects later
   * needs to know. Never on the request path; rejects when Redis fails meanwhile.
   */
  async loadAll(count = 1000): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const prefixLength = this.keys.session('').length;
    let cursor = '0';
    do {
      const [next, found] = await this.conn.run((c) => c.scan(cursor, 'MATCH', this.keys.sessionPattern, 'COUNT', count));
      cursor = next;
      if (found.length === 0) continue;
      const values = await this.conn.run((c) => c.mget(...found));
      found.forEach((key, i) => {
        const backend = values[i];
        if (typeof backend === 'string') out.set(key.slice(prefixLength), backend);
      });
    } while (cursor !== '0');
    return out;
  }

  /** forget drops a session id (its backend said the session is gone). */
  async forget(sessionId: string): Promise<void> {
    await this.conn.run((c) => c.del(this.keys.session(sessionId)));
  }
}
