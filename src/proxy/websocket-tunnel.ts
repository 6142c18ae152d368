/**
 * WebSocket tunnel: after the router has picked a backend for an upgrade request, open a
 * TCP (or TLS) connection to it, replay the handshake with forwarded headers, relay the
 * backend's answer (adding the affinity cookie when needed), then pipe bytes both ways
 * until either side closes or the tunnel idles out.
 *
 * Hand-written on net.connect + pipe rather than http-proxy-3: a tunnel holds only the
 * two sockets and their stream state (measured in bench/websockets), it parses nothing
 * once open, and closing one side always destroys the other, so no socket or listener
 * outlives its peer.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';


/** TunnelTarget is where and how to open the backend connection. */
export interface TunnelTarget {
  readonly url: string;
  readonly connectTimeout: number;
  /** How long the backend may take to answer the handshake once connected (ms; 0: no limit). */
  readonly handshakeTimeout: number;
  readonly idleTimeout: number;
  /** Largest backend handshake response accepted (bytes). */
  readonly maxHeaderBytes: number;
}

/** TunnelEvents report what happened, so the proxy can count and log without knowing sockets. */
export interface TunnelEvents {
  /** The backend could not be reached; nothing was sent. Return true if the caller took over (retry). */
  onConnectError(err: NodeJS.ErrnoException): boolean;
  /** The backend answered the handshake; extra headers (Set-Cookie) may be appended. */
  onHandshake(status: number, extraHeaders: string[]): void;
  /**
   * The backend was reached but gave no usable handshake answer: something that is not
   * (well-formed) HTTP, or it closed the connection first, or it did not answer within
   * handshakeTimeout. The backend connection is closed; the client's is left to the caller,
   * to answer 502 / 504 as for any other request.
   */
  onBadResponse(why: HandshakeFailure): void;
  /** The tunnel is closed on both sides (exactly once, after onHandshake). */
  onClose(bytesIn: number, bytesOut: number, idledOut: boolean): void;
}

/** Why a reached backend gave no usable handshake answer. */
export type HandshakeFailure = 'not-http' | 'closed' | 'timeout';

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * openTunnel connects to the backend and replays the handshake request. `requestHead`
 * is the request line and headers (ending with CRLF CRLF); `head` is what the client sent
 * after its headers (usually empty).
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

  let connected = false;
  let handshaken = false;
  let closed = false;
  let idledOut = false;
  let pending: Buffer[] = [];
  let pendingBytes = 0;

  const onConnectTimeout = (): void => {
    const err = Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }) as NodeJS.ErrnoException;
    upstream.destroy(err);
  };
  upstream.once('timeout', onConnectTimeout);

  const failHandshake = (why: HandshakeFailure): void => {
    if (closed) return;
    closed = true;
    upstream.destroy();
    events.onBadResponse(why);
  };
  const onHandshakeTimeout = (): void => failHandshake('timeout');

  upstream.once(secure ? 'secureConnect' : 'connect', () => {
    connected = true;
    upstream.off('timeout', onConnectTimeout);
    upstream.setTimeout(target.handshakeTimeout);
    if (target.handshakeTimeout > 0) upstream.once('timeout', onHandshakeTimeout);
    upstream.write(requestHead, 'latin1');
    if (head.length > 0) upstream.write(head);
  });

  const onHandshakeData = (chunk: Buffer): void => {
    pending.push(chunk);
    pendingBytes += chunk.length;
    const joined = pending.length === 1 ? chunk : Buffer.concat(pending, pendingBytes);
    pending = [joined];
    const end = joined.indexOf(HEADER_END);
    if (end === -1) {
      if (pendingBytes > target.maxHeaderBytes) failHandshake('not-http');
      return;
    }
    upstream.off('data', onHandshakeData);
    const headText = joined.subarray(0, end).toString('latin1');
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(headText);
    if (match === null || !wellFormedHead(headText)) {
      failHandshake('not-http');
      return;
    }
    upstream.off('timeout', onHandshakeTimeout);
    upstream.setTimeout(0);
    const extra: string[] = [];
    events.onHandshake(Number(match[1]), extra);
    handshaken = true;
    let out = headText;
    for (let i = 0; i < extra.length; i += 2) out += `\r\n${extra[i]}: ${extra[i + 1]}`;
    client.write(`${out}\r\n\r\n`, 'latin1');
    const rest = joined.subarray(end + HEADER_END.length);
    if (rest.length > 0) client.write(rest);
    pending = [];
    startPiping();
  };
  upstream.on('data', onHandshakeData);

  const startPiping = (): void => {
    client.pipe(upstream);
    upstream.pipe(client);
    const onIdle = (): void => {
      idledOut = true;
      destroyBoth();
    };
    if (target.idleTimeout > 0) {
      client.setTimeout(target.idleTimeout, onIdle);
      upstream.setTimeout(target.idleTimeout, onIdle);
    }
  };

  const destroyBoth = (): void => {
    if (closed) return;
    closed = true;
    upstream.destroy();
    client.destroy();
    // Byte counts come from the sockets themselves: no per-chunk listener on an idle tunnel.
    if (handshaken) events.onClose(client.bytesRead, upstream.bytesRead, idledOut);
  };

  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (!connected && !closed) {
      closed = true;
      upstream.destroy();
      if (!events.onConnectError(err)) client.destroy();
      return;
    }
    if (!handshaken) failHandshake('closed');
    else destroyBoth();
  });
  upstream.on('close', () => (connected && !handshaken ? failHandshake('closed') : destroyBoth()));
  client.on('error', destroyBoth);
  client.on('close', destroyBoth);
  // A half-close from either side ends the tunnel. Once piping, pipe() passes the FIN on
  // with end(), which lets data already queued for the other side drain first; whichever
  // side then lingers is destroyed after a short grace (WebSocket has its own close
  // handshake, so nothing useful travels on a half-open tunnel).
  const onEnd = (): void => {
    if (!handshaken) destroyBoth();
    else setTimeout(destroyBoth, HALF_CLOSE_GRACE_MS).unref();
  };
  client.on('end', onEnd);
  upstream.on('end', () => (handshaken ? onEnd() : failHandshake('closed')));
}

/** How long a tunnel may stay half-closed before both sockets are destroyed. */
const HALF_CLOSE_GRACE_MS = 5000;

/** One header line: a token, a colon, then no CR, LF, NUL or other control character but tab. */
const HEADER_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*$/;

/**
 * wellFormedHead says whether a backend's handshake answer may be relayed verbatim: a bare
 * CR or LF, a NUL or an obs-fold line would otherwise reach the client as a header of its
 * own (response splitting), the way Node refuses to write for ordinary responses.
 */
function wellFormedHead(head: string): boolean {
  const lines = head.split('\r\n');
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(lines[0]!)) return false;
  for (let i = 1; i < lines.length; i++) if (!HEADER_LINE.test(lines[i]!)) return false;
  return true;
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
