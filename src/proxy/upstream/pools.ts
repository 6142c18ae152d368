/**
 * UpstreamPools keeps one raw-socket UpstreamPool per backend, created on first use and
 * replaced when the backend's URL or the largest accepted response head changes. http:
 * backends get plain `net` sockets, https: ones TLS sockets verified as undici verifies
 * them (system CAs, the host name as SNI), offered `http/1.1` by ALPN.
 */
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { UpstreamPool, type UpstreamPoolOptions } from './pool.js';

/** UpstreamTimeouts are the config's timeouts that apply to backend connections. */
export interface UpstreamTimeouts {
  readonly connect: number;
  readonly response: number;
}

/** What a pool needs to know of a backend. */
export interface UpstreamBackend {
  readonly id: string;
  readonly url: string;
}

/**
 * poolOptionsFor turns a backend URL (http: or https:, no path) into pool options.
 * `tls` adds to the TLS options of https: backends (a private CA, for instance).
 */
export function poolOptionsFor(url: string, timeouts: UpstreamTimeouts, maxHeaderBytes: number, idleTimeout: number, tls?: ConnectionOptions): UpstreamPoolOptions {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port === '' ? (secure ? 443 : 80) : Number(u.port);
  const open = secure
    ? (h: string, p: number): Socket => tlsConnect({ host: h, port: p, ALPNProtocols: ['http/1.1'], ...(isIP(h) === 0 ? { servername: h } : {}), ...tls })
    : (h: string, p: number): Socket => tcpConnect({ host: h, port: p });
  return { host, port, connectTimeout: timeouts.connect, responseTimeout: timeouts.response, idleTimeout, maxHeaderBytes, open };
}

/** UpstreamPools maps backend ids to raw-socket pools. */
export class UpstreamPools {
  readonly #pools = new Map<string, { url: string; maxHeaderBytes: number; pool: UpstreamPool }>();

  constructor(
    private timeouts: UpstreamTimeouts,
    private readonly idleTimeout = 4000,
    private readonly tls?: ConnectionOptions,
  ) {}

  /**
   * get returns the pool of a backend, creating it (or replacing it, gracefully, when its
   * URL or maxHeaderBytes changed). maxHeaderBytes: the largest response head accepted;
   * a larger one fails the request (too-large, 502) instead of being buffered.
   */
  get(backend: UpstreamBackend, maxHeaderBytes = 16384): UpstreamPool {
    const entry = this.#pools.get(backend.id);
    if (entry !== undefined && entry.url === backend.url && entry.maxHeaderBytes === maxHeaderBytes) return entry.pool;
    if (entry !== undefined) void entry.pool.close();
    const pool = new UpstreamPool(poolOptionsFor(backend.url, this.timeouts, maxHeaderBytes, this.idleTimeout, this.tls));
    this.#pools.set(backend.id, { url: backend.url, maxHeaderBytes, pool });
    return pool;
  }

  /** setTimeouts applies new timeouts to pools created from now on (reload); the old ones close gracefully. */
  setTimeouts(timeouts: UpstreamTimeouts): void {
    this.timeouts = timeouts;
    for (const entry of this.#pools.values()) void entry.pool.close();
    this.#pools.clear();
  }

  /** drop closes the pool of a removed backend gracefully. */
  async drop(backendId: string): Promise<void> {
    const entry = this.#pools.get(backendId);
    this.#pools.delete(backendId);
    await entry?.pool.close();
  }

  /** close lets in-flight requests finish, then closes every pool. */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((entry) => entry.pool.close()));
  }

  /** destroy drops every connection at once. */
  async destroy(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((entry) => entry.pool.destroy()));
  }
}
