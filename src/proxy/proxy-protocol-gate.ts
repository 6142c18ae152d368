/**
 * The PROXY protocol on the client listener (`listen.proxyProtocol`): a gate in front of
 * the server's own 'connection' handling (node:http's parser, or TLS first), so the header
 * is read and stripped from the raw TCP socket before anything else sees a byte.
 *
 * With proxyProtocol on, each accepted socket is held (its 'connection' listeners not yet
 * called) while its first bytes arrive:
 * - from a peer in trustedProxies, a valid header must come first: the socket then takes
 *   the header's source as its remoteAddress/remotePort (so X-Forwarded-For, routing by
 *   client address, path rules and the access log all use it), the bytes after the header
 *   are put back (socket.unshift), and the held listeners run. No header, a broken one, or
 *   none within HEADER_DEADLINE_MS closes the connection.
 * - from anyone else, bytes that start like a PROXY header (`PROXY ` or the v2 signature)
 *   close the connection: a client must not name its own address. Anything else (an HTTP
 *   request, a TLS ClientHello) is put back and served as usual.
 * With it off, the gate passes each socket straight on. LOCAL (v2) and UNKNOWN (v1)
 * headers keep the peer's own address (a health check of the upstream balancer).
 */
import type { Server, Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import { parseProxyHeader, V2_SIGNATURE, type ProxiedEndpoint } from './proxy-protocol.js';

/** How long a trusted peer may take to send its whole PROXY header. */
export const HEADER_DEADLINE_MS = 10_000;

const V1_START = Buffer.from('PROXY ', 'latin1');

/** ProxyProtocolPolicy is read at each connection, so a reload changes it for the next ones. */
export interface ProxyProtocolPolicy {
  enabled(): boolean;
  /** How long a peer may take to send its first bytes (default HEADER_DEADLINE_MS). */
  readonly deadlineMs?: number;
  trusts(address: string | undefined): boolean;
  /** Told why a connection was closed (rate-limited by the caller if it logs). */
  rejected?(peer: string | undefined, reason: string): void;
}

type ConnectionListener = (this: Server, socket: Socket) => void;

/**
 * gateProxyProtocol puts the gate in front of every 'connection' listener the server has
 * now (node:http's or TLS's own, ConnectionLimit's); call it once, after those are added.
 */
export function gateProxyProtocol(server: Server, policy: ProxyProtocolPolicy): void {
  const held = server.listeners('connection') as ConnectionListener[];
  server.removeAllListeners('connection');
  const tls = server instanceof TlsServer;
  const pass = (socket: Socket): void => {
    for (const listener of held) listener.call(server, socket);
    // node:http reads from a resumed socket; TLS takes over its handle and reads what was put back itself.
    if (!tls) socket.resume();
  };
  if (tls) {
    // The TLS socket has a remote address of its own: it takes the header's, from the TCP socket it wraps.
    server.prependListener('secureConnection', (secure: TLSSocket) => {
      const source = PROXIED.get((secure as unknown as { _parent?: Socket })._parent as Socket);
      if (source !== undefined) setRemote(secure, source);
    });
  }
  server.on('connection', (socket: Socket) => {
    if (!policy.enabled()) pass(socket);
    else readHeader(socket, policy.trusts(socket.remoteAddress), policy, pass);
  });
}

/** Reads the socket's first bytes, then passes it on (header stripped) or closes it; see the file comment. */
function readHeader(socket: Socket, trusted: boolean, policy: ProxyProtocolPolicy, pass: (socket: Socket) => void): void {
  let bytes: Buffer = Buffer.alloc(0);
  const peer = socket.remoteAddress;
  const done = (): void => {
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    socket.removeListener('error', onError);
    clearTimeout(timer);
    socket.pause();
  };
  const refuse = (reason: string): void => {
    done();
    policy.rejected?.(peer, reason);
    socket.destroy();
  };
  const handOn = (rest: Buffer): void => {
    done();
    if (rest.length > 0) socket.unshift(rest);
    pass(socket);
  };
  const onData = (chunk: Buffer): void => {
    bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
    if (!trusted) {
      const looks = startsLikeHeader(bytes);
      if (looks === 'yes') refuse('a PROXY header from a peer not in trustedProxies');
      else if (looks === 'no') handOn(bytes);
      return;
    }
    const parsed = parseProxyHeader(bytes);
    // need-more holds at most a v2 header's 16 + 65,535 bytes (the parser errs past a v1 line's 107).
    if (parsed.kind === 'need-more') return;
    if (parsed.kind === 'error') {
      refuse(`no valid PROXY header from a trusted proxy: ${parsed.reason}`);
      return;
    }
    if (parsed.kind === 'proxied') {
      setRemote(socket, parsed.source);
      PROXIED.set(socket, parsed.source);
    }
    handOn(bytes.subarray(parsed.length));
  };
  const onEnd = (): void => refuse('closed before its first request');
  const onError = (): void => refuse('socket error before its first request');
  const timer = setTimeout(() => refuse(trusted ? 'no PROXY header in time' : 'no request in time'), policy.deadlineMs ?? HEADER_DEADLINE_MS);
  timer.unref();
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
}

/** TCP sockets that took a PROXY header's source (for the TLS socket that wraps one). */
const PROXIED = new WeakMap<Socket, ProxiedEndpoint>();

/** setRemote makes a socket report the header's source as its peer (own properties over net.Socket's getters). */
function setRemote(socket: Socket, source: ProxiedEndpoint): void {
  Object.defineProperty(socket, 'remoteAddress', { value: source.address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: source.port, configurable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: source.address.includes(':') ? 'IPv6' : 'IPv4', configurable: true });
}

/** startsLikeHeader: do the first bytes begin a PROXY header ('yes'), not ('no'), or is it too early to say? */
export function startsLikeHeader(bytes: Uint8Array): 'yes' | 'no' | 'need-more' {
  for (const start of [V1_START, V2_SIGNATURE]) {
    const n = Math.min(bytes.length, start.length);
    let same = true;
    for (let i = 0; i < n && same; i++) same = bytes[i] === start[i];
    if (same) return n === start.length ? 'yes' : 'need-more';
  }
  return 'no';
}
