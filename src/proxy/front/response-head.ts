/**
 * Serialising the head of a response to a client on the raw-socket data plane: status
 * line, the caller's headers as given, a Date when the caller has none (as node:http adds
 * one), the Connection / Keep-Alive pair node:http writes today, and the framing of a body
 * whose length the caller does not know (chunked to HTTP/1.1 clients; to HTTP/1.0 ones the
 * body runs until the connection closes, as node:http does).
 *
 * Pure: it decides and renders, the connection writes. The head is one Buffer
 * (encodeHead), written in one go.
 */
import { lowerName } from '../codec/fields.js';
import { encodeHead } from '../codec/head-bytes.js';

/** How the response body is framed on the wire. */
export const enum BodyWire {
  /** No body bytes at all (HEAD, 1xx, 204, 304). */
  None,
  /** The caller's Content-Length frames it; bytes are written as they come. */
  Length,
  /** Unknown length to an HTTP/1.1 client: re-framed as chunks. */
  Chunked,
  /** Unknown length to an HTTP/1.0 client: the end of the connection ends the body. */
  Close,
}

/** The framing decision for one response. */
export interface ResponseFraming {
  wire: BodyWire;
  keepAlive: boolean;
}

/**
 * responseFraming decides how a body goes out. bodyLength: the caller's Content-Length, or
 * -1 when unknown. A response without a body (HEAD, 1xx, 204, 304) keeps the connection
 * as asked; an unknown length to HTTP/1.0 cannot be framed, so the connection closes.
 */
export function responseFraming(method: string, versionMinor: number, status: number, bodyLength: number, keepAlive: boolean): ResponseFraming {
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) return { wire: BodyWire.None, keepAlive };
  if (bodyLength >= 0) return { wire: BodyWire.Length, keepAlive };
  if (versionMinor === 1) return { wire: BodyWire.Chunked, keepAlive };
  return { wire: BodyWire.Close, keepAlive: false };
}

let cachedDate = '';
let cachedSecond = -1;

/** utcDate is the current IMF-fixdate, rendered once per second (as node:http caches it). */
export function utcDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedDate = new Date(now).toUTCString();
  }
  return cachedDate;
}

/** True when the (name, value) list has a header spelled `date` in any case. */
function hasDate(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 4 && lowerName(name) === 'date') return true;
  }
  return false;
}

/**
 * renderResponseHead renders a head (latin1 bytes: encodeHead). Header values must hold no
 * CR or LF: the response codec guarantees it for what a backend sent, the balancer's own
 * never do. keepAliveSeconds: the client's idle timeout, announced in Keep-Alive as
 * node:http does.
 */
export function renderResponseHead(status: number, reason: string, headers: readonly string[], framing: ResponseFraming, keepAliveSeconds: number): Buffer {
  let tail = framing.keepAlive ? `Connection: keep-alive\r\nKeep-Alive: timeout=${keepAliveSeconds}\r\n` : 'Connection: close\r\n';
  if (!hasDate(headers)) tail += `Date: ${utcDate()}\r\n`;
  if (framing.wire === BodyWire.Chunked) tail += 'Transfer-Encoding: chunked\r\n';
  return encodeHead(`HTTP/1.1 ${status} ${reason}\r\n`, headers, `${tail}\r\n`);
}
