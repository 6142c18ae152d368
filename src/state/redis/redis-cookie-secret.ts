/**
 * The affinity cookie's secret when the config names none: with several instances, a
 * cookie issued by one must be accepted by the others, so they share one generated
 * secret. The first instance to store its random secret wins (SET NX); every instance,
 * the first included, then uses what Redis holds.
 */
import { randomBytes } from 'node:crypto';
import type { RedisConnection } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';

/** newCookieSecret is a fresh random secret (32 bytes, base64url), as the file store generates. */
export function newCookieSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * sharedCookieSecret stores `candidate` unless an instance stored a secret before, and
 * returns the secret every instance uses. Throws SharedStateUnreachableError when Redis
 * is down (the caller falls back to its local copy, or refuses to start).
 */
export async function sharedCookieSecret(conn: RedisConnection, keys: RedisKeys, candidate: string = newCookieSecret()): Promise<string> {
  return conn.run(async (c) => {
    await c.set(keys.cookieSecret, candidate, 'NX');
    const stored = await c.get(keys.cookieSecret);
    // Only a key deleted between the two calls leaves nothing: then ours is as good as any.
    return stored ?? candidate;
  });
}
