/**
 * The balancer's affinity cookie: `<clientId>.<backendId>.<mac>`, where mac is the first
 * 22 base64url characters (132 bits) of HMAC-SHA256(secret, "<clientId>.<backendId>").
 * The cookie names a backend by id, never by address, and cannot be forged to reach a
 * backend the balancer did not choose. Whether the backend still exists is the router's
 * business: a valid cookie for an unknown backend is simply ignored there.
 */
import { timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { KeyedMac } from './keyed-mac.js';
import { RandomIds } from './random-ids.js';
import type { AffinityToken } from './types.js';

/** MAC_LENGTH is the number of base64url characters of the HMAC kept in the cookie. */
const MAC_LENGTH = 22;
/** MAX_COOKIE_LENGTH: 64 + 1 + 64 + 1 + 22 = 152; anything longer is rejected unread. */
const MAX_COOKIE_LENGTH = 200;
const CLIENT_ID = /^[A-Za-z0-9_-]{8,64}$/;
const BACKEND_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAC = /^[A-Za-z0-9_-]{22}$/;

/** CookieAttributes are the Set-Cookie attributes the config controls. */
export interface CookieAttributes {
  readonly name: string;
  readonly secure: boolean;
  readonly sameSite: 'Strict' | 'Lax' | 'None';
  /** Makes the cookie persistent (Max-Age); omitted: a browser-session cookie (SPEC default). */
  readonly maxAgeMs?: number | undefined;
}

/** AffinityCookieCodecOptions tune the verification cache. */
export interface AffinityCookieCodecOptions {
  /** Verified cookies remembered, so the hot path skips the HMAC; default 10,000. */
  readonly cacheSize?: number;
}

/**
 * AffinityCookieCodec signs and verifies affinity cookies. It signs with the first secret
 * and accepts any of them, so a secret can be rotated without logging anybody out: put
 * the new one first, keep the old one until the old cookies are gone.
 */
export class AffinityCookieCodec {
  /** One prepared HMAC per secret, the signing one first. */
  readonly #macs: readonly KeyedMac[];
  /** Client ids: 12 random bytes (96 bits) each. */
  readonly #clientIds = new RandomIds(12);
  /**
   * Verified cookies by raw value. Verification runs on every request; the HMAC costs a
   * few microseconds, a cache hit well under one. Only valid cookies are cached: a forged
   * one costs its HMAC every time, but cannot push genuine entries out of the cache.
   */
  readonly #verified: LRUCache<string, AffinityToken>;

  constructor(secrets: readonly string[], options: AffinityCookieCodecOptions = {}) {
    if (secrets.length === 0) throw new Error('AffinityCookieCodec needs at least one secret');
    for (const secret of secrets) {
      if (typeof secret !== 'string' || secret.length === 0) throw new Error('AffinityCookieCodec secrets must be non-empty strings');
    }
    this.#macs = secrets.map((secret) => new KeyedMac(secret));
    this.#verified = new LRUCache({ max: options.cacheSize ?? 10_000 });
  }

  /** sign returns the cookie value pinning clientId to backendId, signed with the first secret. */
  sign(clientId: string, backendId: string): string {
    if (!CLIENT_ID.test(clientId)) throw new Error(`invalid affinity client id: ${JSON.stringify(clientId)}`);
    if (!BACKEND_ID.test(backendId)) throw new Error(`invalid backend id for the affinity cookie: ${JSON.stringify(backendId)}`);
    const payload = `${clientId}.${backendId}`;
    return `${payload}.${mac(this.#macs[0]!, payload)}`;
  }

  /** verify returns the token of a genuine cookie value, or undefined for a malformed, forged or oversized one. */
  verify(raw: string): AffinityToken | undefined {
    if (raw.length > MAX_COOKIE_LENGTH) return undefined;
    const cached = this.#verified.get(raw);
    if (cached !== undefined) return cached;

    const firstDot = raw.indexOf('.');
    const lastDot = raw.lastIndexOf('.');
    if (firstDot <= 0 || lastDot === firstDot) return undefined;
    const clientId = raw.slice(0, firstDot);
    const backendId = raw.slice(firstDot + 1, lastDot);
    const given = raw.slice(lastDot + 1);
    if (!CLIENT_ID.test(clientId) || !BACKEND_ID.test(backendId) || !MAC.test(given)) return undefined;

    if (!this.#anySecretSigned(raw.slice(0, lastDot), given)) return undefined;

    const token: AffinityToken = Object.freeze({ clientId, backendId });
    this.#verified.set(raw, token);
    return token;
  }

  /**
   * signText returns the MAC of any text under the signing secret, for the balancer's other
   * signed cookies (the backend choice of src/routing/backend-choice.ts). Such texts must
   * not be mistakable for an affinity payload (`<clientId>.<backendId>`): give them a
   * label with a character a client id cannot hold, such as ":".
   */
  signText(text: string): string {
    return mac(this.#macs[0]!, text);
  }

  /** verifyText checks a MAC made by signText with any of the secrets (in constant time for each). */
  verifyText(text: string, given: string): boolean {
    return MAC.test(given) && this.#anySecretSigned(text, given);
  }

  /**
   * anySecretSigned says whether given is text's MAC under one of the secrets. It checks
   * every secret, not just until the first match, each in constant time: the time taken
   * does not tell which secret signed it.
   */
  #anySecretSigned(text: string, given: string): boolean {
    const givenBytes = Buffer.from(given, 'latin1');
    let valid = false;
    for (const keyed of this.#macs) {
      if (timingSafeEqual(Buffer.from(mac(keyed, text), 'latin1'), givenBytes)) valid = true;
    }
    return valid;
  }

  /** newClientId mints a random browser-session id (96 bits, 16 base64url characters). The proxy calls it, never route(). */
  newClientId(): string {
    return this.#clientIds.next();
  }

  /**
   * serialize builds the Set-Cookie header value for a cookie value made by sign():
   * `NAME=value; Path=/; HttpOnly; SameSite=Lax[; Secure][; Max-Age=N]`. SameSite=None
   * always gets Secure, because browsers drop a SameSite=None cookie without it.
   */
  serialize(value: string, attributes: CookieAttributes): string {
    let header = `${attributes.name}=${value}; Path=/; HttpOnly; SameSite=${attributes.sameSite}`;
    if (attributes.secure || attributes.sameSite === 'None') header += '; Secure';
    if (attributes.maxAgeMs !== undefined) header += `; Max-Age=${Math.max(0, Math.floor(attributes.maxAgeMs / 1000))}`;
    return header;
  }
}

/** mac is the cookie's MAC of payload: the first MAC_LENGTH base64url characters of its HMAC. */
function mac(keyed: KeyedMac, payload: string): string {
  return keyed.digest(payload).slice(0, MAC_LENGTH);
}
