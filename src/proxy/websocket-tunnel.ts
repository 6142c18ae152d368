/**
 * WebSocket tunnel: after the router has picked a backend for an upgrade request, open a
 * TCP (or TLS) connection to it, replay the handshake with forwarded headers, and read the
 * backend's answer (see handshake-answer.ts):
 * - `101` with `Upgrade: websocket`: relay it (adding the affinity cookie when needed),
 *   then pipe bytes both ways until either side closes or the tunnel idles out;
 * - any other final answer (403, 404, 426, ...): relay it with `connection: close`, its
 *   body delimited by Content-Length (or until the backend closes), then end the client
 *   connection; the backend connection is destroyed, never reused;
 * - no usable answer: the caller answers 502 / 504.
 *
 * Until the 101 arrives nothing of the client's is read: what it sent after its request
 * head (`head`) is held and written to the backend only once the backend has switched
 * protocols, and later bytes wait in the socket. So a client can never get bytes to a
 * backend that did not accept a WebSocket ("WebSocket smuggling": a second request hidden
 * behind a refused upgrade, reaching the backend unparsed, without X-Forwarded-For or an
 * access-log line).
 *
 * Hand-written on net.connect + pipe rather than http-proxy-3: a tunnel holds only the
 * two sockets and their stream state (measured in bench/websockets), it parses nothing
 * once open, and closing one side always destroys the other, so no socket or listener
 * outlives its peer.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { closeAfter } from './close-socket.js';
import { readHandshakeAnswer, type RefusalBody } from './handshake-answer.js';

/** TunnelTarget is where and how to open the backend connection. */
export interface TunnelTarget {
  readonly url: string;
  readonly connectTimeout: number;
  /** How long the backend may take to answer the handshake once connected (ms; 0: no limit). Also bounds relaying a refusal. */
  readonly handshakeTimeout: number;
  readonly idleTimeout: number;
  /** Largest backend handshake response accepted (bytes). */
  readonly maxHeaderBytes: number;
}

/** TunnelEvents report what happened, so the proxy can count and log without knowing sockets. */
export interface TunnelEvents {
  /** The backend could not be reached; nothing was sent. Return true if the caller took over (retry). */
  onConnectError(err: NodeJS.ErrnoException): boolean;
  /** The backend answered the handshake (101, or a refusal to relay); extra headers (Set-Cookie) may be appended. */
  onHandshake(status: number, extraHeaders: string[]): void;
  /**
   * The backend was reached but gave no usable handshake answer: something that is not
   * (well-formed) HTTP, a switch to something other than WebSocket, or it closed the
   * connection first, or it did not answer within handshakeTimeout. The backend connection
   * is closed; the client's is left to the caller, to answer 502 / 504 as for any other
   * request.
   */
  onBadResponse(why: HandshakeFailure): void;
  /** The tunnel (or the relay of a refusal) is over on both sides (exactly once, after onHandshake). */
  onClose(bytesIn: number, bytesOut: number, idledOut: boolean): void;
}

/** Why a reached backend gave no usable handshake answer. */
export type HandshakeFailure = 'not-http' | 'not-websocket' | 'closed' | 'timeout';

/** How long relaying a refusal may take when handshakeTimeout is 0 (no limit) (ms). */
const REFUSAL_LIMIT_MS = 30_000;

/**
 * openTunnel connects to the backend and replays the handshake request. `requestHead`
 * is the request line and headers (ending with CRLF CRLF); `head` is what the client sent
 * after its headers (usually empty), forwarded only after the backend's 101.
 */
export function openTunnel(client: Socket, requestHead: string, head: Buffer, target: TunnelTarget, events: TunnelEvents): void {
  const url = new URL(target.url);
  const secure = url.protocol === 'https:';
  const port = Number(url.port) || (secure ? 443 : 80);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const upstream: Socket = secure
    ? tlsConnect({ host, port, servername: isIp(host) ? undefined : host, ALPNProtocols: ['http/1.1'] })
    : netConnect({ host, port });
  upstream.setNoDelay(true);
  upstream.setTimeout(target.connectTimeout);

  /** connecting → handshake → open (piping) or refusing (relaying a non-101 answer) → closed. */
  let phase: 'connecting' | 'handshake' | 'open' | 'refusing' | 'closed' = 'connecting';
  let idledOut = false;
  let pending: Buffer[] = [];
  let pendingBytes = 0;

  const onConnectTimeout = (): void => {
    const err = Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }) as NodeJS.ErrnoException;
    upstream.destroy(err);
  };
  upstream.once('timeout', onConnectTimeout);

  const failHandshake = (why: HandshakeFailure): void => {
    if (phase === 'closed') return;
    phase = 'closed';
    upstream.destroy();
    events.onBadResponse(why);
  };
  const onHandshakeTimeout = (): void => failHandshake('timeout');

  upstream.once(secure ? 'secureConnect' : 'connect', () => {
    phase = 'handshake';
    upstream.off('timeout', onConnectTimeout);
    upstream.setTimeout(target.handshakeTimeout);
    if (target.handshakeTimeout > 0) upstream.once('timeout', onHandshakeTimeout);
    upstream.write(requestHead, 'latin1');
  });

  const onHandshakeData = (chunk: Buffer): void => {
    pending.push(chunk);
    pendingBytes += chunk.length;
    const joined = pending.length === 1 ? chunk : Buffer.concat(pending, pendingBytes);
    pending = [joined];
    const answer = readHandshakeAnswer(joined, target.maxHeaderBytes);
    if (answer.kind === 'incomplete') return;
    upstream.off('data', onHandshakeData);
    pending = [];
    if (answer.kind === 'invalid') {
      failHandshake(answer.why);
      return;
    }
    const rest = joined.subarray(answer.headEnd);
    upstream.off('timeout', onHandshakeTimeout);
    const extra: string[] = [];
    let extraLines = '';
    events.onHandshake(answer.kind === 'switch' ? 101 : answer.status, extra);
    for (let i = 0; i < extra.length; i += 2) extraLines += `\r\n${extra[i]}: ${extra[i + 1]}`;
    if (answer.kind === 'switch') {
      upstream.setTimeout(0);
      phase = 'open';
      client.write(`${answer.head}${extraLines}\r\n\r\n`, 'latin1');
      if (rest.length > 0) client.write(rest);
      startPiping();
    } else {
      phase = 'refusing';
      client.write(`${answer.head}${extraLines}\r\nconnection: close\r\n\r\n`, 'latin1');
      relayRefusal(answer.body, rest);
    }
  };
  upstream.on('data', onHandshakeData);

  const startPiping = (): void => {
    // Only now may the client's bytes reach the backend: first what came with its request head.
    if (head.length > 0) upstream.write(head);
    relayBytes(client, upstream);
    relayBytes(upstream, client);
    const onIdle = (): void => {
      idledOut = true;
      destroyBoth();
    };
    if (target.idleTimeout > 0) {
      client.setTimeout(target.idleTimeout, onIdle);
      upstream.setTimeout(target.idleTimeout, onIdle);
    }
  };

  /**
   * Relays a refusal's body (Content-Length bytes, or all until the backend closes, within
   * the handshake timeout), then ends the client connection. The client is never read.
   */
  const relayRefusal = (body: RefusalBody, rest: Buffer): void => {
    let remaining = body === 'until-close' ? Infinity : body;
    const finish = (): void => {
      if (phase !== 'refusing') return;
      phase = 'closed';
      upstream.destroy();
      closeAfter(client);
      events.onClose(client.bytesRead, upstream.bytesRead, false);
    };
    const relay = (chunk: Buffer): void => {
      if (phase !== 'refusing') return;
      const part = chunk.length > remaining ? chunk.subarray(0, remaining) : chunk;
      remaining -= part.length;
      if (part.length > 0 && !client.write(part)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
      if (remaining === 0) finish();
    };
    upstream.setTimeout(target.handshakeTimeout > 0 ? target.handshakeTimeout : REFUSAL_LIMIT_MS, finish);
    upstream.on('data', relay);
    relay(rest);
  };

  const destroyBoth = (): void => {
    if (phase === 'closed') return;
    const handshaken = phase === 'open' || phase === 'refusing';
    phase = 'closed';
    upstream.destroy();
    client.destroy();
    // Byte counts come from the sockets themselves: no per-chunk listener on an idle tunnel.
    if (handshaken) events.onClose(client.bytesRead, upstream.bytesRead, idledOut);
  };

  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (phase === 'connecting') {
      phase = 'closed';
      upstream.destroy();
      if (!events.onConnectError(err)) client.destroy();
      return;
    }
    if (phase === 'handshake') failHandshake('closed');
    else if (phase === 'refusing') upstreamGone();
    else destroyBoth();
  });
  // A refusal delimited by the backend's close ends when it closes; one cut short ends there too.
  const upstreamGone = (): void => {
    if (phase !== 'refusing') return;
    phase = 'closed';
    closeAfter(client);
    events.onClose(client.bytesRead, upstream.bytesRead, false);
  };
  upstream.on('close', () => {
    if (phase === 'handshake') failHandshake('closed');
    else if (phase === 'refusing') upstreamGone();
    else destroyBoth();
  });
  client.on('error', destroyBoth);
  client.on('close', destroyBoth);
  // A half-close from either side ends the tunnel. Once open, the FIN is passed on with
  // end(), which lets data already queued for the other side drain first; whichever side
  // then lingers is destroyed after a short grace (WebSocket has its own close handshake,
  // so nothing useful travels on a half-open tunnel).
  client.on('end', () => {
    if (phase !== 'open') return;
    upstream.end();
    setTimeout(destroyBoth, HALF_CLOSE_GRACE_MS).unref();
  });
  upstream.on('end', () => {
    if (phase === 'handshake') failHandshake('closed');
    else if (phase === 'refusing') upstreamGone();
    else if (phase === 'open') {
      client.end();
      setTimeout(destroyBoth, HALF_CLOSE_GRACE_MS).unref();
    }
  });
}

/**
 * relayBytes copies what `from` reads to `to`, pausing `from` while `to`'s buffer is full.
 * Hand-rolled rather than pipe(): pipe() hangs seven listeners and their closures on both
 * sockets of every tunnel, a cost each idle WebSocket pays in memory; the FIN and errors
 * are handled once for both directions by openTunnel.
 */
function relayBytes(from: Socket, to: Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  // The client socket may have been paused by the listener before the handshake.
  from.resume();
}

/** How long a tunnel may stay half-closed before both sockets are destroyed. */
const HALF_CLOSE_GRACE_MS = 5000;

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
