/**
 * DashboardSessions are the dashboard's sign-ins: after the admin token was given once, the
 * browser holds a random session id in its cookie, never the token itself. So a cookie that
 * leaks (a copied browser profile, a proxy log) is worth one session of this admin process,
 * which sign-out, expiry or a restart ends, not the token that runs every balancer command.
 *
 * Ids are 32 random bytes (base64url). The map is keyed by the SHA-256 of the id, so a
 * lookup's timing says nothing about how much of a guess matches a real id, and the process
 * holds no id in clear. It is bounded: at most MAX_SESSIONS; when full, expired sessions go
 * first, then the oldest.
 */
import { createHash, randomBytes } from 'node:crypto';

/** How long a dashboard sign-in lasts (ms): a working day and then some. */
export const SESSION_TTL_MS = 12 * 3_600_000;

/** The most sign-ins kept at once (each a few dozen bytes). */
export const MAX_SESSIONS = 1000;

/** DashboardSessions holds the dashboard's sign-ins; see the file comment. */
export class DashboardSessions {
  /** SHA-256 of the id (base64) -> expiry (ms since the epoch), oldest first. */
  readonly #expiries = new Map<string, number>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(options: { ttlMs?: number; max?: number; now?: () => number } = {}) {
    this.#ttlMs = options.ttlMs ?? SESSION_TTL_MS;
    this.#max = options.max ?? MAX_SESSIONS;
    this.#now = options.now ?? Date.now;
  }

  /** create starts a session and returns its id (for the cookie). */
  create(): string {
    const now = this.#now();
    if (this.#expiries.size >= this.#max) this.#evict(now);
    const id = randomBytes(32).toString('base64url');
    this.#expiries.set(digest(id), now + this.#ttlMs);
    return id;
  }

  /** valid says whether `id` is a live session of this process (an expired one is dropped). */
  valid(id: string): boolean {
    const key = digest(id);
    const expiry = this.#expiries.get(key);
    if (expiry === undefined) return false;
    if (expiry > this.#now()) return true;
    this.#expiries.delete(key);
    return false;
  }

  /** delete ends a session (sign-out); an unknown id is ignored. */
  delete(id: string): void {
    this.#expiries.delete(digest(id));
  }

  /** size is the number of sessions kept (expired ones included until they are dropped). */
  get size(): number {
    return this.#expiries.size;
  }

  #evict(now: number): void {
    for (const [key, expiry] of this.#expiries) if (expiry <= now) this.#expiries.delete(key);
    // Still full: the oldest sign-ins go (insertion order is age order).
    for (const key of this.#expiries.keys()) {
      if (this.#expiries.size < this.#max) break;
      this.#expiries.delete(key);
    }
  }
}

function digest(id: string): string {
  return createHash('sha256').update(id, 'utf8').digest('base64');
}
