/**
 * UpstreamConnection is one raw keep-alive socket to a backend and its small state
 * machine: connecting, idle (in its pool), leased (carrying one exchange), closed. The
 * socket's listeners are attached once, at creation, and forward to whoever holds the
 * lease (a ConnectionUser): no closure per request. Its response and idle timers are
 * created once and re-armed with refresh() (the idle one is re-made only when a backend's
 * Keep-Alive timeout changes its length).
 *
 * While idle, any byte or end of stream from the backend retires the socket at once (an
 * unsolicited byte is a framing error; an end means the backend closed it), so a socket
 * that died idle is never handed out.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/** ConnectionUser receives the socket's events while it holds the lease (one exchange). */
export interface ConnectionUser {
  onData(buf: Buffer): void;
  /** The backend ended its side (FIN). */
  onEnd(): void;
  /** The socket failed (ECONNRESET, EPIPE, ...) or closed: called once, last. */
  onClose(err: Error | undefined): void;
  /** The socket's write buffer drained. */
  onDrain(): void;
  /** timeouts.response passed without progress while not paused. */
  onTimeout(): void;
}

/** ConnectionHost is what a connection tells its pool. */
export interface ConnectionHost {
  readonly responseTimeout: number;
  connected(conn: UpstreamConnection): void;
  /** Connecting failed (err undefined: timed out); the connection is gone. */
  connectFailed(conn: UpstreamConnection, err: Error | undefined, timedOut: boolean): void;
  /** An established connection closed, idle or leased (after its user's onClose). */
  closed(conn: UpstreamConnection, was: ConnState): void;
}

/** ConnState: where a connection is in its life; the pool and the socket events move it on. */
export const enum ConnState {
  Connecting,
  Idle,
  Leased,
  Closed,
}

/** UpstreamConnection: see the module comment. */
export class UpstreamConnection {
  state = ConnState.Connecting;
  user: ConnectionUser | undefined;
  /** Exchanges started on this socket: more than one means it was reused from the pool. */
  exchanges = 0;
  /** The response is paused for the client's backpressure: the response timeout waits. */
  paused = false;
  #connectTimer: NodeJS.Timeout | undefined;
  #responseTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #idleMs = 0;
  #error: Error | undefined;
  readonly #readyEvent: 'connect' | 'secureConnect';

  constructor(
    readonly socket: Socket,
    readonly host: ConnectionHost,
    connectTimeout: number,
  ) {
    // A TLS socket is ready when the handshake is done (a certificate error is a connect failure).
    this.#readyEvent = socket instanceof TLSSocket ? 'secureConnect' : 'connect';
    socket.on(this.#readyEvent, this.#onConnect);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
    this.#connectTimer = setTimeout(this.#onConnectTimeout, connectTimeout);
  }

  /** usable: idle, and the socket can still carry a request (no end, no error seen). */
  get usable(): boolean {
    const s = this.socket;
    return this.state === ConnState.Idle && !s.destroyed && s.writable && !s.readableEnded;
  }

  /** lease hands the connection to a user; the response timeout starts now. */
  lease(user: ConnectionUser): void {
    this.state = ConnState.Leased;
    this.user = user;
    this.exchanges++;
    this.paused = false;
    this.touch();
  }

  /** park puts a leased connection back to idle; it closes after idleMs without a request. */
  park(idleMs: number): void {
    this.state = ConnState.Idle;
    this.user = undefined;
    // Never paused here: a paused response reads nothing more, so it cannot have completed.
    if (this.#idleTimer !== undefined && this.#idleMs === idleMs) {
      this.#idleTimer.refresh();
      return;
    }
    clearTimeout(this.#idleTimer);
    this.#idleMs = idleMs;
    this.#idleTimer = setTimeout(this.#onIdleTimeout, idleMs).unref();
  }

  /** touch records progress: the response timeout starts over. */
  touch(): void {
    if (this.#responseTimer === undefined) this.#responseTimer = setTimeout(this.#onResponseTimeout, this.host.responseTimeout).unref();
    else this.#responseTimer.refresh();
  }

  /** pause stops reading the response until resume() (client backpressure). */
  pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  /** resume reads again after pause(); the response timeout starts over. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
    this.touch();
  }

  /** detach gives the socket up (a protocol switch): no listener of ours stays on it. */
  detach(): Socket {
    const s = this.socket;
    s.off(this.#readyEvent, this.#onConnect);
    s.off('data', this.#onData);
    s.off('end', this.#onEnd);
    s.off('error', this.#onError);
    s.off('close', this.#onClose);
    s.off('drain', this.#onDrain);
    this.#stopTimers();
    this.state = ConnState.Closed;
    this.user = undefined; // never paused here: a 101 comes before any body
    return s;
  }

  /** destroy closes the socket; the user, if any, still gets onClose. */
  destroy(): void {
    this.socket.destroy();
  }

  #stopTimers(): void {
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#responseTimer);
    clearTimeout(this.#idleTimer);
  }

  readonly #onConnect = (): void => {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.socket.setNoDelay(true);
    this.host.connected(this);
  };

  readonly #onConnectTimeout = (): void => {
    if (this.state !== ConnState.Connecting) return;
    this.state = ConnState.Closed;
    this.socket.destroy();
    this.host.connectFailed(this, undefined, true);
  };

  readonly #onResponseTimeout = (): void => {
    if (this.state === ConnState.Leased && !this.paused) this.user?.onTimeout();
  };

  readonly #onIdleTimeout = (): void => {
    if (this.state === ConnState.Idle) this.socket.destroy();
  };

  readonly #onData = (buf: Buffer): void => {
    if (this.user !== undefined) this.user.onData(buf);
    else this.socket.destroy(); // unsolicited bytes on an idle socket: a framing error
  };

  readonly #onEnd = (): void => {
    if (this.user !== undefined) this.user.onEnd();
    else this.socket.destroy();
  };

  readonly #onError = (err: Error): void => {
    this.#error ??= err;
  };

  readonly #onDrain = (): void => {
    this.user?.onDrain();
  };

  readonly #onClose = (): void => {
    const was = this.state;
    this.state = ConnState.Closed;
    this.#stopTimers();
    if (was === ConnState.Closed) return; // the connect timeout, already reported
    if (was === ConnState.Connecting) {
      this.host.connectFailed(this, this.#error, false);
      return;
    }
    const user = this.user;
    this.user = undefined;
    user?.onClose(this.#error);
    this.host.closed(this, was);
  };
}
