/**
 * ConnectionLimit enforces `limits.maxConnections` on the client listener, visibly.
 *
 * Node's own `server.maxConnections` closes excess sockets at accept without a byte, so a
 * client cannot tell a full balancer from a broken one and the administrator sees nothing.
 * Here every accepted TCP connection (plain or TLS, keep-alive or WebSocket tunnel: a
 * tunnel keeps its client socket) is counted until it closes. A connection over the limit
 * is still accepted, but marked: its first request is answered with the balancer's 503
 * page (`Retry-After`, `Connection: close`) and nothing reaches a backend; one that sends
 * no request within a few seconds is closed. The 503 is a parsed HTTP answer rather than
 * bytes written at accept, so it also works under TLS and never races the client's own
 * request (a response written before the request has been read can be lost to a reset).
 *
 * Refused connections are bounded too: beyond `max + headroom` open sockets Node's
 * `server.maxConnections` drops new ones at accept (the cheapest possible refusal, when
 * even an answer is too much). Refusals and drops are logged at most once per
 * LOG_INTERVAL_MS, with how many there were, never once per socket.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';

/** How long a refused connection may take to send the request its 503 answers. */
export const REFUSED_DEADLINE_MS = 5_000;
/** At most one log line about refused (or dropped, or failed) accepts per this many ms. */
export const LOG_INTERVAL_MS = 10_000;

/** ConnectionCounts are the listener's connection figures (for metrics and tests). */
export interface ConnectionCounts {
  /** Connections being served (counted against maxConnections). */
  readonly open: number;
  /** Connections over the limit that were (or are being) answered 503, since start. */
  readonly refused: number;
  /** Connections closed at accept without an answer (over max + headroom), since start. */
  readonly dropped: number;
  /**
   * Connections that failed for want of local resources (EMFILE, ENFILE, ...), since
   * start: accepts Node reported as failed, and connections to backends that could not be
   * opened (those requests got 503).
   */
  readonly resourceFailures: number;
}

/** ConnectionLimit counts and refuses client connections; see the file comment. */
export class ConnectionLimit {
  readonly max: number;
  /** Open sockets (served plus refused) beyond which Node drops new ones at accept. */
  readonly hardMax: number;
  #open = 0;
  #refusing = 0;
  #refused = 0;
  #dropped = 0;
  #resourceFailures = 0;
  readonly #marked = new WeakSet<Socket>();
  readonly #logger: Logger;
  /** Events since the last log line, and the timer that reports them. */
  #pending = { refused: 0, dropped: 0, failures: 0, code: '' };
  #logTimer: NodeJS.Timeout | undefined;

  constructor(server: Server, max: number, logger: Logger) {
    this.max = max;
    this.#logger = logger;
    // Refused sockets live a few seconds each; room for a burst of them, bounded.
    this.hardMax = max + Math.max(64, Math.ceil(max / 10));
    server.maxConnections = this.hardMax;
    // Prepended: the count must be right before the HTTP (or TLS) layer sees the socket.
    server.prependListener('connection', (socket: Socket) => this.#onConnection(socket));
    server.on('drop', () => {
      this.#dropped++;
      this.#pending.dropped++;
      this.#report();
    });
    // libuv answers EMFILE/ENFILE at accept itself (it frees a reserved descriptor, accepts
    // and closes the waiting connections, and goes on); only when that fails does Node
    // report the error here. Without a listener it would crash the process.
    server.on('error', (err: NodeJS.ErrnoException) => {
      if (server.listening) this.resourceFailure(err.code ?? err.message); // else a listen error: listenOn() reports it
    });
  }

  /**
   * resourceFailure counts (and logs, rate-limited) a connection that failed for want of
   * local resources: an accept, or a connection to a backend (code EMFILE, ENFILE, ...).
   */
  resourceFailure(code: string): void {
    this.#resourceFailures++;
    this.#pending.failures++;
    this.#pending.code = code;
    this.#report();
  }

  /** refuses says whether a request arriving on this socket must be answered 503. */
  refuses(socket: Socket): boolean {
    return this.#refusing !== 0 && (this.#marked.has(socket) || this.#marked.has((socket as Socket & { _parent?: Socket })._parent!));
  }

  /**
   * checkOpenFileLimit logs (once the listener is bound) when the process's open-file limit
   * is too low for `max`: a warning when connections would fail before the limit is
   * reached, a debug line when WebSocket tunnels could run out of descriptors first.
   */
  checkOpenFileLimit(): void {
    const limit = openFileLimit();
    const { max, hardMax } = this;
    const needed = descriptorsNeeded(max);
    if (limit !== undefined && limit < hardMax + 256) {
      this.#logger.warn(
        { openFileLimit: limit, needed, maxConnections: max },
        'the open-file limit is too low for limits.maxConnections: client connections will fail before the limit is reached (raise the hard limit, `ulimit -Hn` / LimitNOFILE, or lower limits.maxConnections)',
      );
    } else if (limit !== undefined && limit < needed) {
      this.#logger.debug(
        { openFileLimit: limit, needed, maxConnections: max },
        'the open-file limit is below two descriptors per client connection: if every client holds a WebSocket (one backend connection each), descriptors run out before limits.maxConnections',
      );
    }
  }

  /** counts returns the current figures. */
  get counts(): ConnectionCounts {
    return { open: this.#open, refused: this.#refused, dropped: this.#dropped, resourceFailures: this.#resourceFailures };
  }

  /** stop clears the log timer (shutdown). */
  stop(): void {
    clearTimeout(this.#logTimer);
    this.#logTimer = undefined;
  }

  #onConnection(socket: Socket): void {
    if (this.#open < this.max) {
      this.#open++;
      socket.once('close', () => this.#open--);
      return;
    }
    this.#refusing++;
    this.#refused++;
    this.#pending.refused++;
    this.#marked.add(socket);
    const deadline = setTimeout(() => socket.destroy(), REFUSED_DEADLINE_MS);
    socket.once('close', () => {
      this.#refusing--;
      clearTimeout(deadline);
    });
    this.#report();
  }

  /** Logs now if no line went out in the last interval, else once the interval ends. */
  #report(): void {
    if (this.#logTimer !== undefined) return;
    this.#flush();
  }

  #flush(): void {
    const p = this.#pending;
    this.#logTimer = undefined;
    if (p.refused + p.dropped + p.failures === 0) return;
    this.#pending = { refused: 0, dropped: 0, failures: 0, code: '' };
    if (p.refused + p.dropped > 0) {
      this.#logger.warn(
        { maxConnections: this.max, open: this.#open, refused: p.refused, dropped: p.dropped, sinceMs: LOG_INTERVAL_MS },
        'client connections over limits.maxConnections refused (503; dropped without an answer beyond the refusal headroom)',
      );
    }
    if (p.failures > 0) {
      this.#logger.error(
        { code: p.code, failures: p.failures, open: this.#open, sinceMs: LOG_INTERVAL_MS },
        p.code === 'EMFILE' || p.code === 'ENFILE'
          ? 'out of file descriptors: connections fail, requests get 503 (raise the hard limit, `ulimit -Hn` / LimitNOFILE, or lower limits.maxConnections)'
          : 'connections fail for want of local resources; requests get 503',
      );
    }
    this.#logTimer = setTimeout(() => this.#flush(), LOG_INTERVAL_MS);
    this.#logTimer.unref();
  }
}

/**
 * openFileLimit is the process's soft limit on open file descriptors, read from
 * /proc/self/limits (Linux); undefined elsewhere or when unlimited. Node raises its soft
 * limit to the hard limit at start-up, so the hard limit is what the administrator sets
 * (`ulimit -Hn` before starting, systemd `LimitNOFILE=`).
 */
export function openFileLimit(limitsFile = '/proc/self/limits'): number | undefined {
  try {
    const line = readFileSync(limitsFile, 'latin1').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return soft === undefined || !/^\d+$/.test(soft) ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

/**
 * descriptorsNeeded is how many file descriptors a balancer with this many client
 * connections may hold at once: each client connection can have an upstream connection
 * (a request in flight, or a WebSocket tunnel), plus the refusal headroom and a margin for
 * logs, state files, the admin API and health checks.
 */
export function descriptorsNeeded(maxConnections: number): number {
  return 2 * maxConnections + Math.max(64, Math.ceil(maxConnections / 10)) + 256;
}
