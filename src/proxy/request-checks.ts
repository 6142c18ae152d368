/**
 * The checks a request head passes before the balancer routes it (pure: they read the
 * parsed head only). Node's parser already refuses ambiguous framing; these refuse what it
 * lets through but a reverse proxy must not forward: a target that is not origin-form, a
 * version other than HTTP/1.x, a missing or repeated Host, and every upgrade but a plain
 * WebSocket handshake.
 */
import type { IncomingMessage } from 'node:http';

/**
 * hostHeaderCount is how many Host header lines a request has. Node keeps only the first
 * in `req.headers`, so a second one would otherwise go unseen here and reach the backend,
 * which might read the other one (RFC 9112 3.2: more than one Host is a 400).
 */
export function hostHeaderCount(raw: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

/**
 * malformedRequest says whether a request gets the balancer's 400 before routing:
 * an absolute-form or "*" target (this is not a forward proxy), a version other than 1.x
 * (llhttp takes a line without one, "GET /a\n", as HTTP/0.9 and goes on to parse headers
 * after it), more than one Host, or HTTP/1.1 without Host (RFC 9112 3.2).
 */
export function malformedRequest(req: IncomingMessage): boolean {
  if ((req.url ?? '').charCodeAt(0) !== 47 /* / */ || req.httpVersionMajor !== 1) return true;
  const hosts = hostHeaderCount(req.rawHeaders);
  return hosts > 1 || (hosts === 0 && req.httpVersionMinor === 1);
}

/**
 * refusedUpgrade says whether an upgrade request gets 400 instead of a tunnel: anything but
 * an HTTP/1.1 `GET` asking for `Upgrade: websocket` (RFC 6455 4.1), or one with a body.
 * An upgrade to another protocol (h2c) is not served either: Node's parser has handed the
 * connection over by now, and the balancer speaks HTTP/1.1 to its backends only. A body
 * would sit between the handshake and the tunnel, unframed for the backend.
 */
export function refusedUpgrade(req: IncomingMessage): boolean {
  if (malformedRequest(req) || req.method !== 'GET' || req.httpVersionMinor !== 1) return true;
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return true;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
