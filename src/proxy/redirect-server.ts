/**
 * RedirectServer is the plain-HTTP listener of `listen.tls.redirectPort`: it answers every
 * request with a permanent redirect to the same path and query over HTTPS, on the
 * balancer's own HTTPS port (`listen.port`), and forwards nothing. GET and HEAD get 301;
 * every other method 308, so a client repeats the method and body. Every answer closes
 * the connection.
 *
 * The target host is the client's `Host` header without its port. The header is checked
 * strictly (a DNS name, an IPv4 address or a bracketed IPv6 address, an optional port):
 * a missing, repeated or malformed Host gets 400, so nothing a client sends can put CR/LF
 * or other bytes into the Location header. Bytes outside printable ASCII in the path are
 * percent-encoded. A WebSocket handshake gets the same 301 (or 400) as raw bytes, then
 * the socket is closed.
 */
import { listenOn } from './listen.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/** RedirectOptions configure a RedirectServer. */
export interface RedirectOptions {
  /** The HTTPS port clients are sent to (listen.port as bound); 443 is left out of the URL. */
  readonly httpsPort: number;
  readonly maxHeaderBytes: number;
  readonly maxConnections: number;
}

/** A DNS name or IPv4 address: labels of letters, digits, '-' and '_', dot-separated, an optional trailing dot. */
const NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const PORT = /^\d{0,5}$/;

/**
 * redirectHost returns the host part of a Host header value (port removed, lower-cased,
 * IPv6 kept in brackets), or undefined when the value is not a valid host.
 */
export function redirectHost(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let host: string;
  let port: string | undefined;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close === -1) return undefined;
    host = value.slice(0, close + 1);
    const rest = value.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      port = rest.slice(1);
    }
    // No zone ids ("%25eth0"): they mean nothing to another machine.
    if (host.includes('%') || !isIPv6(host.slice(1, -1))) return undefined;
  } else {
    const colon = value.indexOf(':');
    host = colon === -1 ? value : value.slice(0, colon);
    if (colon !== -1) port = value.slice(colon + 1);
    if (!NAME.test(host)) return undefined;
  }
  if (port !== undefined && (!PORT.test(port) || Number(port) > 65535)) return undefined;
  return host.toLowerCase();
}

/** encodePath percent-encodes every byte of the request target outside printable ASCII. */
function encodePath(target: string): string {
  // The HTTP parser hands the target over as latin1: one character per byte.
  return /[^\x21-\x7e]/.test(target) ? target.replace(/[^\x21-\x7e]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`) : target;
}

/**
 * redirectLocation is the https: URL a request is sent to, or undefined when the request
 * cannot be redirected (no valid single Host, or a target that is not origin-form).
 */
export function redirectLocation(rawHeaders: readonly string[], target: string | undefined, httpsPort: number): string | undefined {
  let hostValue: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'host') continue;
    if (hostValue !== undefined) return undefined; // more than one Host: RFC 9112 says 400
    hostValue = rawHeaders[i + 1]!;
  }
  const host = redirectHost(hostValue);
  if (host === undefined || target === undefined || target.charCodeAt(0) !== 47 /* / */) return undefined;
  return `https://${host}${httpsPort === 443 ? '' : `:${httpsPort}`}${encodePath(target)}`;
}

const BAD_REQUEST = Buffer.from('400 Bad Request: this address only redirects to HTTPS, and the request has no valid Host header.\n');

function redirectBody(location: string): Buffer {
  return Buffer.from(`This site is served over HTTPS: ${location}\n`, 'latin1');
}

function rawResponse(status: number, reason: string, body: Buffer, location?: string): Buffer {
  let head = `HTTP/1.1 ${status} ${reason}\r\n`;
  if (location !== undefined) head += `location: ${location}\r\n`;
  head += `content-type: text/plain; charset=utf-8\r\nx-content-type-options: nosniff\r\ncontent-length: ${body.length}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** RedirectServer answers plain-HTTP clients with a redirect to HTTPS; see the file comment. */
export class RedirectServer {
  readonly server: Server;
  httpsPort: number;

  constructor(options: RedirectOptions) {
    this.httpsPort = options.httpsPort;
    this.server = createServer({
      maxHeaderSize: options.maxHeaderBytes,
      // Every answer closes the connection: a client gets little time to send its headers.
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      keepAliveTimeout: 1_000,
      // A missing Host is answered by this class (400), not by Node's parser.
      requireHostHeader: false,
    });
    this.server.maxConnections = options.maxConnections;
    // An accept error once listening (EMFILE when the process is out of descriptors): Node
    // goes on accepting, but without a listener the 'error' event would end the process.
    // (A listen error is reported by listenOn.)
    this.server.on('error', () => undefined);
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex) => this.#onUpgrade(req, socket));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (err.code === 'ECONNRESET' || !socket.writable || (socket as Socket).bytesWritten > 0) {
        socket.destroy();
        return;
      }
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      socket.end(rawResponse(status, status === 431 ? 'Request Header Fields Too Large' : 'Bad Request', Buffer.from(`${status}\n`)));
    });
  }

  /** listen binds the port; resolves with the address actually bound (port 0 picks one). */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return listenOn(this.server, host, port);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    res.shouldKeepAlive = false;
    const location = redirectLocation(req.rawHeaders, req.url, this.httpsPort);
    const head = req.method === 'HEAD';
    if (location === undefined) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff', 'content-length': BAD_REQUEST.length, 'cache-control': 'no-store', connection: 'close' });
      res.end(head ? undefined : BAD_REQUEST);
      return;
    }
    const permanent = req.method === 'GET' || head;
    const body = redirectBody(location);
    res.writeHead(permanent ? 301 : 308, {
      location,
      'content-type': 'text/plain; charset=utf-8',
      'x-content-type-options': 'nosniff',
      'content-length': body.length,
      connection: 'close',
    });
    res.end(head ? undefined : body);
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex): void {
    socket.on('error', () => socket.destroy());
    const location = redirectLocation(req.rawHeaders, req.url, this.httpsPort);
    socket.end(location === undefined ? rawResponse(400, 'Bad Request', BAD_REQUEST) : rawResponse(301, 'Moved Permanently', redirectBody(location), location));
  }

  /**
   * close stops accepting; requests being answered finish (every answer closes its
   * connection) for up to graceMs, then whatever is left is cut.
   */
  async close(graceMs: number): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([closed, grace]);
    clearTimeout(timer);
    this.server.closeAllConnections();
    await closed;
  }
}
