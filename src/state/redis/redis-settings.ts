/**
 * What to connect to, from a validated `state.redis`: ioredis options for a plain URL or
 * for Redis Sentinel, the key prefix of the pool, and a short address for messages
 * ("Redis at 10.0.0.5:6379"). Pure: the connection (redis-connection.ts) does the I/O.
 */
import type { RedisSettings } from '../../config/schema.js';

/** DEFAULT_POOL names the pool when state.redis does not: keys start with `servoy-lb:default:`. */
export const DEFAULT_POOL = 'default';

/** RedisTarget is where the shared state lives, ready for ioredis. */
export interface RedisTarget {
  /** Connection options for ioredis (host/port/db/tls or sentinels/name); timeouts are added by the connection. */
  readonly options: TargetOptions;
  /** For messages: `127.0.0.1:6379`, or `master mymaster via sentinels a:26379, b:26379`. */
  readonly address: string;
  /** Every key of this pool starts with it: `servoy-lb:<pool>:`. */
  readonly prefix: string;
}

/** TargetOptions is the part of ioredis's options a target decides. */
export interface TargetOptions {
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  db?: number;
  tls?: object;
  sentinels?: { host: string; port: number }[];
  name?: string;
  sentinelPassword?: string;
}

/** redisTarget turns a validated `state.redis` into a target, or one sentence saying what is wrong with it. */
export function redisTarget(settings: RedisSettings): { ok: true; target: RedisTarget } | { ok: false; error: string } {
  if (typeof settings === 'string') return fromUrl(settings, DEFAULT_POOL);
  if ('url' in settings) return fromUrl(settings.url, settings.pool ?? DEFAULT_POOL);
  const sentinels = settings.sentinels.map(parseHostPort);
  const options: TargetOptions = { sentinels, name: settings.masterName, db: settings.db };
  if (settings.username !== undefined) options.username = settings.username;
  if (settings.password !== undefined) options.password = settings.password;
  if (settings.sentinelPassword !== undefined) options.sentinelPassword = settings.sentinelPassword;
  if (settings.tls) options.tls = {};
  const address = `master ${settings.masterName} via sentinels ${settings.sentinels.join(', ')}`;
  return { ok: true, target: { options, address, prefix: keyPrefix(settings.pool ?? DEFAULT_POOL) } };
}

/** keyPrefix is the start of every key of a pool. */
export function keyPrefix(pool: string): string {
  return `servoy-lb:${pool}:`;
}

function fromUrl(text: string, pool: string): { ok: true; target: RedisTarget } | { ok: false; error: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, error: `state.redis: ${redact(text)} is not a valid URL` };
  }
  if (url.hostname === '') return { ok: false, error: `state.redis: ${redact(text)} names no host` };
  const port = url.port === '' ? 6379 : Number(url.port);
  const path = url.pathname.replace(/^\//, '');
  const db = path === '' ? 0 : Number(path);
  if (!/^\d{0,5}$/.test(path) || !Number.isInteger(db)) return { ok: false, error: `state.redis: the database in ${redact(text)} must be a number (redis://host:port/0)` };
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const options: TargetOptions = { host, port, db };
  if (url.username !== '') options.username = decodeURIComponent(url.username);
  if (url.password !== '') options.password = decodeURIComponent(url.password);
  if (url.protocol === 'rediss:') options.tls = { servername: host };
  return { ok: true, target: { options, address: `${url.hostname}:${port}`, prefix: keyPrefix(pool) } };
}

/** parseHostPort reads a schema-checked "host:port" (IPv6 in brackets). */
export function parseHostPort(text: string): { host: string; port: number } {
  const at = text.lastIndexOf(':');
  return { host: text.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(text.slice(at + 1)) };
}

/** redact hides a URL's password, so messages and logs never carry it. */
export function redact(text: string): string {
  return text.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}
