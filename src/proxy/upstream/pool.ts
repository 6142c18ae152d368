/**
 * UpstreamPool keeps the raw keep-alive sockets to one backend origin (what undici's Pool
 * did for the last release's node:http plane): idle sockets are reused last-in first-out (the
 * warmest socket, and the oldest ones age out by the idle timeout), new ones are opened
 * up to a cap, and requests beyond the cap wait in order. A socket that closed, ended or
 * spoke while idle is never handed out; `Connection: close`, HTTP/1.0 answers and any
 * framing error retire the socket instead of returning it (the exchange decides, calling
 * release() or retire()).
 *
 * No closure per request: a request is a PoolClient (the exchange object itself), told
 * ready() or failed() once, then given the connection's events while it holds the lease.
 */
import { connect, type Socket } from 'node:net';
import { ConnState, type ConnectionHost, type ConnectionUser, UpstreamConnection } from './connection.js';
import { connectError, UpstreamError } from './errors.js';

/** UpstreamPoolOptions: where the backend is and the limits of its connections. */
export interface UpstreamPoolOptions {
  readonly host: string;
  readonly port: number;
  /** Connecting longer than this fails with connect-timeout (ms). */
  readonly connectTimeout: number;
  /** No response progress for this long fails with response-timeout (ms). */
  readonly responseTimeout: number;
  /** Idle sockets are closed after this (ms); undici's keepAliveTimeout default: 4000. */
  readonly idleTimeout?: number;
  /** Most sockets open at once (connecting, idle and busy); further requests wait. Default: no cap. */
  readonly maxSockets?: number;
  /** Largest response head accepted (bytes); default 16384, like node's maxHeaderSize. */
  readonly maxHeaderBytes?: number;
  /** Opens the socket (default: net.connect); a TLS backend would pass tls.connect here. */
  readonly open?: (host: string, port: number) => Socket;
}

/** PoolClient is one request waiting for, then holding, a connection. */
export interface PoolClient extends ConnectionUser {
  /** A connection is leased to this client (already reused or just connected). */
  ready(conn: UpstreamConnection): void;
  /** No connection: connect-refused, connect-timeout, connect-failed, no-resources. */
  failed(err: UpstreamError): void;
}

/** UpstreamPool: see the module comment. */
export class UpstreamPool implements ConnectionHost {
  readonly idleTimeout: number;
  readonly responseTimeout: number;
  readonly maxHeaderBytes: number;
  readonly #maxSockets: number;
  /** Idle connections, the most recently parked last (popped first). */
  readonly #idle: UpstreamConnection[] = [];
  /** Every connection open or opening. */
  readonly #all = new Set<UpstreamConnection>();
  /** Connections being opened, and for whom (undefined: the client gave up waiting). */
  readonly #opening = new Map<UpstreamConnection, PoolClient | undefined>();
  /** Clients waiting for a socket beyond the cap, first come first served. */
  readonly #queue: PoolClient[] = [];
  #closing = false;
  #closed: (() => void) | undefined;

  constructor(readonly options: UpstreamPoolOptions) {
    this.idleTimeout = options.idleTimeout ?? 4000;
    this.responseTimeout = options.responseTimeout;
    this.maxHeaderBytes = options.maxHeaderBytes ?? 16384;
    this.#maxSockets = options.maxSockets ?? Infinity;
  }

  /** Connections open or opening. */
  get size(): number {
    return this.#all.size;
  }

  /** Idle connections ready for reuse. */
  get idle(): number {
    return this.#idle.length;
  }

  /** Clients waiting for a connection beyond the cap. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * acquire leases a connection to `client`: the warmest usable idle one at once (ready()
   * is called before acquire returns), else a new one once connected, else (at the cap)
   * the next one released.
   */
  acquire(client: PoolClient): void {
    if (this.#closing) {
      client.failed(new UpstreamError('connect-failed', 'the backend pool is closed'));
      return;
    }
    let conn: UpstreamConnection | undefined;
    while ((conn = this.#idle.pop()) !== undefined) {
      if (conn.usable) {
        conn.lease(client);
        client.ready(conn);
        return;
      }
      conn.destroy(); // ended or failed while idle: its close event is on its way
    }
    if (this.#all.size < this.#maxSockets) this.#open(client);
    else this.#queue.push(client);
  }

  /** cancel forgets a client that has no connection yet (its request was aborted). */
  cancel(client: PoolClient): void {
    const i = this.#queue.indexOf(client);
    if (i >= 0) this.#queue.splice(i, 1);
    for (const [conn, c] of this.#opening) if (c === client) this.#opening.set(conn, undefined);
  }

  /**
   * release returns a leased connection whose exchange ended cleanly and whose framing
   * allows reuse; idleMs (at most the pool's idleTimeout) is how long it may stay idle.
   */
  release(conn: UpstreamConnection, idleMs = this.idleTimeout): void {
    if (this.#closing || conn.state !== ConnState.Leased || !conn.socket.writable || conn.socket.readableEnded) {
      this.retire(conn);
      return;
    }
    const next = this.#queue.shift();
    if (next !== undefined) {
      conn.lease(next);
      next.ready(conn);
      return;
    }
    conn.park(Math.min(idleMs, this.idleTimeout));
    this.#idle.push(conn);
  }

  /** retire closes a leased connection that must not be reused; its user hears nothing more. */
  retire(conn: UpstreamConnection): void {
    conn.user = undefined;
    conn.destroy();
  }

  /** detach takes a connection out of the pool for good (101: it speaks another protocol now). */
  detach(conn: UpstreamConnection): Socket {
    this.#all.delete(conn);
    const socket = conn.detach();
    this.#next();
    return socket;
  }

  /** close stops new requests, closes idle sockets, and resolves once busy ones have ended. */
  close(): Promise<void> {
    this.#closing = true;
    for (const c of this.#queue.splice(0)) c.failed(new UpstreamError('connect-failed', 'the backend pool is closed'));
    for (const conn of this.#idle.splice(0)) conn.destroy();
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#closed = resolve;
    });
  }

  /** destroy closes every socket at once, busy ones included (their exchanges fail). */
  destroy(): Promise<void> {
    const closed = this.close();
    for (const conn of this.#all) conn.destroy();
    return closed;
  }

  #open(client: PoolClient): void {
    const { host, port } = this.options;
    let socket: Socket;
    try {
      socket = this.options.open ? this.options.open(host, port) : connect({ host, port });
    } catch (err) {
      client.failed(connectError(err as NodeJS.ErrnoException));
      return;
    }
    const conn = new UpstreamConnection(socket, this, this.options.connectTimeout);
    this.#all.add(conn);
    this.#opening.set(conn, client);
  }

  /** Opens connections for queued clients while under the cap. */
  #next(): void {
    if (this.#closing) {
      if (this.#all.size === 0) this.#closed?.();
      return;
    }
    while (this.#queue.length > 0 && this.#all.size < this.#maxSockets) this.#open(this.#queue.shift()!);
  }

  /** ConnectionHost: a new connection is up. */
  connected(conn: UpstreamConnection): void {
    const client = this.#opening.get(conn);
    this.#opening.delete(conn);
    conn.state = ConnState.Leased;
    if (client !== undefined) {
      conn.lease(client);
      client.ready(conn);
    } else {
      this.release(conn); // its client went away: the next one, or the idle stack
    }
  }

  /** ConnectionHost: a connection could not be opened. */
  connectFailed(conn: UpstreamConnection, err: Error | undefined, timedOut: boolean): void {
    const client = this.#opening.get(conn);
    this.#opening.delete(conn);
    this.#all.delete(conn);
    if (client !== undefined) {
      client.failed(
        timedOut
          ? new UpstreamError('connect-timeout', `connecting to ${this.options.host}:${this.options.port} timed out`)
          : connectError((err ?? Object.assign(new Error('connection closed while connecting'), { code: 'ECONNRESET' })) as NodeJS.ErrnoException),
      );
    }
    this.#next();
  }

  /** ConnectionHost: an established connection closed. */
  closed(conn: UpstreamConnection, was: ConnState): void {
    this.#all.delete(conn);
    if (was === ConnState.Idle) {
      const i = this.#idle.lastIndexOf(conn);
      if (i >= 0) this.#idle.splice(i, 1);
    }
    this.#next();
  }
}
