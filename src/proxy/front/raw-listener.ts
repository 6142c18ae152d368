/**
 * RawListener is the client listener of the raw-socket data plane: a `net` server (or a
 * `tls` one for listen.tls) whose every connection is a FrontConnection, and the set of
 * them, so a shutdown can close the idle ones at once and cut the rest after the grace
 * period (what node:http's closeIdleConnections / closeAllConnections do for its servers).
 */
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type SecureContextOptions } from 'node:tls';
import { FrontConnection, type FrontHandler, type FrontSettings } from './front-connection.js';

/** RawListener: see the file comment. */
export class RawListener {
  readonly server: Server;
  readonly #connections = new Set<FrontConnection>();

  constructor(
    tls: { readonly cert: Buffer; readonly key: Buffer } | undefined,
    readonly settings: FrontSettings,
    readonly handler: FrontHandler,
  ) {
    if (tls === undefined) {
      this.server = createTcpServer({ noDelay: true }, this.#onSocket);
    } else {
      const server = createTlsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, this.#onSocket);
      // A failed handshake is the client's affair: nothing to answer, nothing to log.
      server.on('tlsClientError', (_err, socket) => socket.destroy());
      this.server = server;
    }
  }

  readonly #onSocket = (socket: Socket): void => {
    const conn = new FrontConnection(socket, this.settings, this.handler);
    this.#connections.add(conn);
    socket.once('close', () => this.#connections.delete(conn));
  };

  /** setSecureContext applies a reloaded certificate to new TLS connections. */
  setSecureContext(options: SecureContextOptions): void {
    (this.server as Server & { setSecureContext?(o: SecureContextOptions): void }).setSecureContext?.(options);
  }

  /** closeIdle ends the connections that wait for a next request. */
  closeIdle(): void {
    for (const conn of this.#connections) if (conn.idle) conn.socket.destroy();
  }

  /** destroyAll cuts every connection. */
  destroyAll(): void {
    for (const conn of this.#connections) conn.socket.destroy();
  }
}
