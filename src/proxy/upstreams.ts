/**
 * Upstreams keeps one undici Pool (keep-alive HTTP/1.1 connections) per backend, created
 * on first use and replaced when a backend's URL changes. Closing is graceful: in-flight
 * requests finish, idle connections go. It serves the node:http data plane
 * (SERVOY_LB_DATA_PLANE=node); the default raw plane has src/proxy/upstream/pools.ts.
 */
import { Pool } from 'undici';
import type { BackendView } from '../pool/snapshot.js';

/** UpstreamTimeouts are the config's timeouts that apply to backend connections. */
export interface UpstreamTimeouts {
  readonly connect: number;
  readonly response: number;
}

/** Upstreams maps backend ids to connection pools. */
export class Upstreams {
  readonly #pools = new Map<string, { url: string; maxHeaderSize: number; pool: Pool }>();

  constructor(private timeouts: UpstreamTimeouts) {}

  /**
   * get returns the pool of a backend, creating it (or replacing it if its URL or the
   * largest accepted response head changed). maxHeaderSize: the largest response head
   * (status line and headers, bytes) accepted from the backend; a larger one fails the
   * request (502) rather than being buffered without bound.
   */
  get(backend: BackendView, maxHeaderSize = 16384): Pool {
    const entry = this.#pools.get(backend.id);
    if (entry !== undefined && entry.url === backend.url && entry.maxHeaderSize === maxHeaderSize) return entry.pool;
    if (entry !== undefined) void entry.pool.close().catch(() => undefined);
    const pool = new Pool(backend.url, {
      connect: { timeout: this.timeouts.connect },
      headersTimeout: this.timeouts.response,
      bodyTimeout: this.timeouts.response,
      keepAliveTimeout: 4000,
      pipelining: 1,
      maxHeaderSize,
    });
    this.#pools.set(backend.id, { url: backend.url, maxHeaderSize, pool });
    return pool;
  }

  /** setTimeouts applies new timeouts to pools created from now on (reload). */
  setTimeouts(timeouts: UpstreamTimeouts): void {
    this.timeouts = timeouts;
    for (const [id, entry] of this.#pools) {
      this.#pools.delete(id);
      void entry.pool.close().catch(() => undefined);
    }
  }

  /** drop closes the pool of a removed backend gracefully. */
  async drop(backendId: string): Promise<void> {
    const entry = this.#pools.get(backendId);
    this.#pools.delete(backendId);
    await entry?.pool.close().catch(() => undefined);
  }

  /** close lets in-flight requests finish, then closes every pool. */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((entry) => entry.pool.close().catch(() => undefined)));
  }

  /** destroy drops every connection at once. */
  async destroy(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((entry) => entry.pool.destroy().catch(() => undefined)));
  }
}
