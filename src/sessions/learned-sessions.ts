/**
 * Learned sessions: servlet session ids seen in a backend's Set-Cookie, mapped to that
 * backend (SPEC rule 2, third source). It catches the sessions whose id carries no Tomcat
 * route suffix and whose client has no affinity cookie yet (or dropped it). The table is
 * bounded (least recently used entries go first) and forgets a session idle longer than
 * `affinity.sessionIdle`, as the backend itself would.
 */
import { LRUCache } from 'lru-cache';

/** LearnedSessionsOptions size the table: usually `affinity.learnedSessions` and `affinity.sessionIdle`. */
export interface LearnedSessionsOptions {
  /** Most session ids kept; 0 turns learning off. */
  readonly max: number;
  /** Idle time (ms) after which an unused entry is forgotten; 0 keeps entries until evicted. */
  readonly ttlMs: number;
  /** Clock in ms for the idle time; tests pass a fake one. Defaults to performance.now(). */
  readonly now?: () => number;
  /**
   * Called when a backend's Set-Cookie teaches (backendId) or ends (undefined) a session id;
   * with `--workers` a worker passes it on, so every worker knows what one learned.
   * Not called for learn() and forget() themselves.
   */
  readonly onChange?: (sessionId: string, backendId: string | undefined) => void;
}

/** LearnedSessions maps servlet session id -> backend id, bounded and idle-expiring. */
export class LearnedSessions {
  readonly #cache: LRUCache<string, string> | undefined;
  readonly #onChange: ((sessionId: string, backendId: string | undefined) => void) | undefined;

  constructor(options: LearnedSessionsOptions) {
    this.#onChange = options.onChange;
    if (options.max <= 0) return;
    this.#cache = new LRUCache<string, string>({
      max: options.max,
      ttl: options.ttlMs > 0 ? options.ttlMs : undefined,
      updateAgeOnGet: true,
      // A given clock is read on every check (ttlResolution 0), so tests can step it.
      ...(options.now !== undefined ? { perf: { now: options.now }, ttlResolution: 0 } : {}),
    });
  }

  /** learn records that sessionId lives on backendId (a later learn overrides). */
  learn(sessionId: string, backendId: string): void {
    if (sessionId.length === 0) return;
    this.#cache?.set(sessionId, backendId);
  }

  /** backendOf returns the backend id learned for sessionId, and counts as a use of it. */
  backendOf(sessionId: string): string | undefined {
    return this.#cache?.get(sessionId);
  }

  /** forget drops sessionId (the backend ended the session). */
  forget(sessionId: string): void {
    this.#cache?.delete(sessionId);
  }

  /** entries lists [session id, backend id] pairs, most recently used first (to seed a restarted worker). */
  entries(): [string, string][] {
    return this.#cache === undefined ? [] : [...this.#cache.entries()];
  }

  /** size is the number of session ids held (expired ones may count until touched). */
  get size(): number {
    return this.#cache?.size ?? 0;
  }

  /**
   * learnFromSetCookie reads a backend response's Set-Cookie header(s) for the servlet
   * session cookie: a new session id is learned for backendId; one being deleted
   * (`Max-Age=0` or negative, or an `Expires` in the past) is forgotten. Returns the
   * session id it learned, if any. Cookie names are compared case-sensitively (RFC 6265).
   */
  learnFromSetCookie(setCookie: string | readonly string[] | undefined, sessionCookieName: string, backendId: string): string | undefined {
    if (setCookie === undefined) return undefined;
    if (typeof setCookie === 'string') return this.#fromOne(setCookie, sessionCookieName, backendId);
    let learned: string | undefined;
    for (const header of setCookie) learned = this.#fromOne(header, sessionCookieName, backendId) ?? learned;
    return learned;
  }

  #fromOne(header: string, name: string, backendId: string): string | undefined {
    const parsed = parseSetCookie(header, name);
    if (parsed === undefined || parsed.value.length === 0) return undefined;
    if (parsed.deleting) {
      this.forget(parsed.value);
      if (this.#cache !== undefined) this.#onChange?.(parsed.value, undefined);
      return undefined;
    }
    if (this.#cache === undefined) return undefined;
    this.learn(parsed.value, backendId);
    this.#onChange?.(parsed.value, backendId);
    return parsed.value;
  }
}

/** DELETING_ATTRIBUTE finds the attribute names that may delete a cookie, anywhere in the attribute list. */
const DELETING_ATTRIBUTE = /max-age|expires/i;

/** parseSetCookie returns the value of a Set-Cookie header for cookie `name`, and whether it deletes the cookie. */
function parseSetCookie(header: string, name: string): { value: string; deleting: boolean } | undefined {
  const semicolon = header.indexOf(';');
  const pair = semicolon === -1 ? header : header.slice(0, semicolon);
  const equals = pair.indexOf('=');
  if (equals === -1 || pair.slice(0, equals).trim() !== name) return undefined;
  let value = pair.slice(equals + 1).trim();
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  let deleting = false;
  // Only a Max-Age or Expires attribute can delete: most headers have neither, and skip the split.
  if (semicolon !== -1 && DELETING_ATTRIBUTE.test(header.slice(semicolon + 1))) {
    for (const attribute of header.slice(semicolon + 1).split(';')) {
      const eq = attribute.indexOf('=');
      const key = (eq === -1 ? attribute : attribute.slice(0, eq)).trim().toLowerCase();
      const arg = eq === -1 ? '' : attribute.slice(eq + 1).trim();
      if (key === 'max-age') {
        // RFC 6265 5.2.2: Max-Age wins over Expires; zero or negative deletes.
        const seconds = Number(arg);
        if (/^-?\d+$/.test(arg)) return { value, deleting: seconds <= 0 };
      } else if (key === 'expires') {
        const time = Date.parse(arg);
        if (!Number.isNaN(time) && time <= Date.now()) deleting = true;
      }
    }
  }
  return { value, deleting };
}
