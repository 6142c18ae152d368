/**
 * The checks a request head passes before the balancer routes it (pure: they read the
 * parsed head only). The strict codec already refuses ambiguous framing and most of what
 * a reverse proxy must not forward; these checks hold the rest as a rule of their own: a
 * target that is not origin-form, a version other than HTTP/1.x, a missing or repeated
 * Host, and every upgrade but a plain WebSocket handshake.
 */

/**
 * ParsedRequest is what the checks and the WebSocket upgrade path read of a request head:
 * the raw codec's RequestHead is one as it is.
 */
export interface ParsedRequest {
  readonly method: string;
  /** The request target as sent. */
  readonly target: string;
  /** The x of HTTP/1.x; -1 for any other version. */
  readonly versionMinor: number;
  /** Names and values as sent, alternating. */
  readonly headers: readonly string[];
}

/**
 * hostHeaderCount is how many Host header lines a request has: a reader that takes the
 * first would not see a second one, and the backend might read the other one (RFC 9112
 * 3.2: more than one Host is a 400).
 */
function hostHeaderCount(raw: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

/**
 * malformedRequest says whether a request gets the balancer's 400 before routing:
 * an absolute-form or "*" target (this is not a forward proxy), a version other than 1.x,
 * more than one Host, or HTTP/1.1 without Host (RFC 9112 3.2).
 */
export function malformedRequest(req: ParsedRequest): boolean {
  if (req.target.charCodeAt(0) !== 47 /* / */ || (req.versionMinor !== 0 && req.versionMinor !== 1)) return true;
  const hosts = hostHeaderCount(req.headers);
  return hosts > 1 || (hosts === 0 && req.versionMinor === 1);
}

/**
 * refusedUpgrade says whether an upgrade request gets 400 instead of a tunnel: anything but
 * an HTTP/1.1 `GET` asking for `Upgrade: websocket` (RFC 6455 4.1), or one with a body.
 * An upgrade to another protocol (h2c) is not served either: the parser has handed the
 * connection over by now, and the balancer speaks HTTP/1.1 to its backends only. A body
 * would sit between the handshake and the tunnel, unframed for the backend. More than one
 * Upgrade header is refused too (the codec refuses it; node would join them).
 */
export function refusedUpgrade(req: ParsedRequest): boolean {
  if (malformedRequest(req) || req.method !== 'GET' || req.versionMinor !== 1) return true;
  let upgrade: string | undefined;
  const raw = req.headers;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === 'upgrade') {
      if (upgrade !== undefined) return true;
      upgrade = value;
    } else if (name === 'transfer-encoding' || (name === 'content-length' && value !== '0')) return true;
  }
  return upgrade?.toLowerCase() !== 'websocket';
}
