/**
 * A strict HTTP/1.1 response-head parser for the raw-socket data plane's backend side,
 * and the body framing of RFC 9112 §6.3: every backend response is read by it.
 *
 * Hand-written on purpose, like the request codec: every proxied response goes through it,
 * so it is one forward scan over the bytes with table lookups, no regular expressions and
 * no allocation but the result and its strings (common header names and the `OK` reason
 * are shared strings). Strict by construction: a response two parsers could frame two ways
 * is refused (`bad-response`: the answer to the client is 502 and the backend socket is
 * destroyed), never interpreted. test/codec-response-differential.test.ts holds it to
 * this against Node's own parser in response mode.
 */
import { CR, HTAB, LF, SP, TOKEN, VALUE } from './bytes.js';
import { CONN_CLOSE, CONN_KEEP_ALIVE, connectionFlags, decimalLength, internedName, nameIs, namesByLength } from './fields.js';

/**
 * How a response body is delimited (RFC 9112 §6.3): `none` (HEAD, 1xx, 204, 304, or
 * `Content-Length: 0`), a length, chunked, or `close`: the body is every byte up to the
 * backend's end of stream, and the connection cannot be reused.
 */
export type ResponseBody = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

/** Why a response head was refused: the exchange fails with the same code. */
export type ResponseErrorCode = 'bad-response' | 'too-large';

/** A complete, accepted response head. */
export interface ResponseHead {
  kind: 'head';
  status: number;
  reason: string;
  /** 0 or 1: HTTP/1.0 or HTTP/1.1. */
  versionMinor: number;
  /** Names and values as sent (latin1), alternating, like node's rawHeaders. */
  headers: string[];
  /** Offset just after the CRLFCRLF that ends the head. */
  headEnd: number;
  body: ResponseBody;
  /** The connection may carry another request once this body has ended. */
  keepAlive: boolean;
  /** A 1xx other than 101 (100 Continue, 103 Early Hints): the final head follows at headEnd. */
  interim: boolean;
  /** 101 Switching Protocols: from headEnd on, the connection speaks the other protocol. */
  upgrade: boolean;
  /** The `timeout=` of a Keep-Alive header (seconds): how long the backend keeps the connection idle. */
  keepAliveTimeout?: number;
}

/** The outcome of one parse: more bytes needed, a refusal, or the head. */
export type ResponseParseResult = { kind: 'incomplete' } | { kind: 'error'; code: ResponseErrorCode; reason: string } | ResponseHead;

/** Most header lines a response head may have. */
export const MAX_RESPONSE_HEADER_LINES = 100;

const INCOMPLETE: ResponseParseResult = Object.freeze({ kind: 'incomplete' }) as ResponseParseResult;
const NONE: ResponseBody = Object.freeze({ kind: 'none' }) as ResponseBody;
const CHUNKED: ResponseBody = Object.freeze({ kind: 'chunked' }) as ResponseBody;
const CLOSE: ResponseBody = Object.freeze({ kind: 'close' }) as ResponseBody;

/** Reason-phrase bytes: HTAB, SP, VCHAR, obs-text (no other control character, unlike Node). */
const REASON = VALUE;

/** Header names backends send on most responses, as sent: reused instead of a new string. */
const NAMES = namesByLength([
  'Date', 'ETag', 'Vary', 'Server', 'Expires', 'Location', 'Set-Cookie', 'Connection', 'Keep-Alive',
  'Content-Type', 'Cache-Control', 'Last-Modified', 'Accept-Ranges', 'Content-Length', 'Content-Encoding',
  'Content-Language', 'Transfer-Encoding', 'X-Frame-Options', 'X-Content-Type-Options', 'Pragma',
  'Content-Disposition', 'Strict-Transport-Security', 'Content-Security-Policy', 'Upgrade',
  'Sec-WebSocket-Accept', 'Sec-WebSocket-Extensions', 'Sec-WebSocket-Protocol', 'Access-Control-Allow-Origin',
  'content-type', 'content-length', 'date', 'server', 'set-cookie', 'connection', 'vary', 'etag',
  'cache-control', 'transfer-encoding', 'last-modified', 'keep-alive', 'upgrade',
]);

function fail(code: ResponseErrorCode, reason: string): ResponseParseResult {
  return { kind: 'error', code, reason };
}

/**
 * parseResponseHead parses the response head that starts at `start` in `buf`, the answer
 * to a request whose method was HEAD when `toHead` is true (RFC 9112 §6.3 rule 1: then no
 * body, whatever the head says). Call again with more bytes after `incomplete`; errors are
 * found in byte order, so a prefix never contradicts the whole. A head whose bytes pass
 * `maxHeaderBytes` (status line included) is `too-large`.
 */
export function parseResponseHead(buf: Buffer, start: number, maxHeaderBytes: number, toHead: boolean): ResponseParseResult {
  const limit = Math.min(buf.length, start + maxHeaderBytes);
  const tooLarge = buf.length >= start + maxHeaderBytes;
  let p = start;

  // Status line: HTTP/1.0 or HTTP/1.1, SP, three digits (100-599), then SP reason or nothing.
  const version = 'HTTP/1.';
  for (let i = 0; i < version.length; i++, p++) {
    if (p === limit) return tooLarge ? fail('too-large', 'status line too long') : INCOMPLETE;
    if (buf[p] !== version.charCodeAt(i)) return fail('bad-response', 'malformed version');
  }
  if (p === limit) return tooLarge ? fail('too-large', 'status line too long') : INCOMPLETE;
  const minor = buf[p]! - 0x30;
  if (minor !== 0 && minor !== 1) return fail('bad-response', 'unsupported version');
  p++;
  if (p === limit) return tooLarge ? fail('too-large', 'status line too long') : INCOMPLETE;
  if (buf[p] !== SP) return fail('bad-response', 'malformed status line');
  p++;
  let status = 0;
  for (let i = 0; i < 3; i++, p++) {
    if (p === limit) return tooLarge ? fail('too-large', 'status line too long') : INCOMPLETE;
    const d = buf[p]! - 0x30;
    if (d < 0 || d > 9) return fail('bad-response', 'malformed status code');
    status = status * 10 + d;
  }
  if (status < 100 || status > 599) return fail('bad-response', 'status code out of range');
  if (p === limit) return tooLarge ? fail('too-large', 'status line too long') : INCOMPLETE;
  let rs = p;
  if (buf[p] === SP) rs = ++p;
  else if (buf[p] !== CR) return fail('bad-response', 'malformed status code');
  while (p < limit && REASON[buf[p]!]) p++;
  if (p === limit) return tooLarge ? fail('too-large', 'status line too long') : INCOMPLETE;
  if (buf[p] === LF) return fail('bad-response', 'bare LF');
  if (buf[p] !== CR) return fail('bad-response', 'control character in reason phrase');
  const re = p++;
  if (p === limit) return tooLarge ? fail('too-large', 'status line too long') : INCOMPLETE;
  if (buf[p] !== LF) return fail('bad-response', 'bare CR');
  p++;

  const headers: string[] = [];
  let lines = 0;
  let contentLength = -1;
  let chunked = false;
  let connection = 0;
  let keepAliveSeconds = -1;

  for (;;) {
    if (p === limit) return tooLarge ? fail('too-large', 'head too large') : INCOMPLETE;
    const c = buf[p]!;
    if (c === CR) {
      if (p + 1 === limit) return tooLarge ? fail('too-large', 'head too large') : INCOMPLETE;
      if (buf[p + 1] !== LF) return fail('bad-response', 'bare CR');
      p += 2;
      break;
    }
    if (c === SP || c === HTAB) return fail('bad-response', 'obs-fold');
    if (++lines > MAX_RESPONSE_HEADER_LINES) return fail('too-large', 'too many header lines');

    // Name: a token up to the colon (no whitespace before it).
    const ns = p;
    while (p < limit && TOKEN[buf[p]!]) p++;
    if (p === limit) return tooLarge ? fail('too-large', 'head too large') : INCOMPLETE;
    if (buf[p] !== 0x3a) return fail('bad-response', p === ns && buf[p] === LF ? 'bare LF' : 'malformed header name');
    if (p === ns) return fail('bad-response', 'empty header name');
    const ne = p++;

    // Value: leading and trailing SP/HTAB are not part of it; CRLF ends it.
    while (p < limit && (buf[p] === SP || buf[p] === HTAB)) p++;
    const vs = p;
    let ve = p;
    while (p < limit && VALUE[buf[p]!]) {
      if (buf[p] !== SP && buf[p] !== HTAB) ve = p + 1;
      p++;
    }
    if (p === limit) return tooLarge ? fail('too-large', 'head too large') : INCOMPLETE;
    if (buf[p] === LF) return fail('bad-response', 'bare LF');
    if (buf[p] !== CR) return fail('bad-response', 'control character in header value');
    if (p + 1 === limit) return tooLarge ? fail('too-large', 'head too large') : INCOMPLETE;
    if (buf[p + 1] !== LF) return fail('bad-response', 'bare CR');
    p += 2;

    headers.push(internedName(NAMES, buf, ns, ne), buf.toString('latin1', vs, ve));

    switch (ne - ns) {
      case 10:
        if (nameIs(buf, ns, ne, 'connection')) connection |= connectionFlags(buf, vs, ve);
        else if (nameIs(buf, ns, ne, 'keep-alive')) {
          const seconds = keepAliveTimeout(buf, vs, ve);
          if (seconds >= 0) keepAliveSeconds = seconds;
        }
        break;
      case 14:
        if (nameIs(buf, ns, ne, 'content-length')) {
          if (contentLength !== -1) return fail('bad-response', 'more than one Content-Length');
          contentLength = decimalLength(buf, vs, ve);
          if (contentLength === -1) return fail('bad-response', 'malformed Content-Length');
        }
        break;
      case 17:
        if (nameIs(buf, ns, ne, 'transfer-encoding')) {
          if (minor === 0) return fail('bad-response', 'Transfer-Encoding in HTTP/1.0');
          if (chunked) return fail('bad-response', 'more than one Transfer-Encoding');
          // Exactly `chunked`: no HTAB and no trailing whitespace (parsers differ on both).
          for (let i = ne + 1; i < p - 2; i++) if (buf[i] === HTAB) return fail('bad-response', 'HTAB in Transfer-Encoding');
          if (ve !== p - 2) return fail('bad-response', 'whitespace after Transfer-Encoding');
          if (!nameIs(buf, vs, ve, 'chunked')) return fail('bad-response', 'Transfer-Encoding other than chunked');
          chunked = true;
        }
        break;
    }
  }

  if (chunked && contentLength !== -1) return fail('bad-response', 'Content-Length with Transfer-Encoding');
  const informational = status < 200;
  // RFC 9110 §8.6 and §6.1: no framing on a 1xx, none but `Content-Length: 0` on a 204,
  // no Transfer-Encoding on a 304 (its Content-Length describes the selected representation).
  if (informational && (chunked || contentLength !== -1)) return fail('bad-response', 'framing header on a 1xx');
  if (status === 204 && (chunked || contentLength > 0)) return fail('bad-response', 'framing header on a 204');
  if (status === 304 && chunked) return fail('bad-response', 'Transfer-Encoding on a 304');

  let body: ResponseBody;
  if (toHead || informational || status === 204 || status === 304) body = NONE;
  else if (chunked) body = CHUNKED;
  else if (contentLength > 0) body = { kind: 'length', length: contentLength };
  else if (contentLength === 0) body = NONE;
  else body = CLOSE;

  const upgrade = status === 101;
  // `close` wins over `keep-alive` when both are listed; a close-delimited body or a
  // protocol switch ends the connection's HTTP life too, and so does an answer to HEAD
  // without Content-Length or Transfer-Encoding (Node's client closes after one: we match it).
  const keepAlive =
    body !== CLOSE && !upgrade && !(toHead && !informational && status !== 204 && status !== 304 && !chunked && contentLength === -1) &&
    (minor === 1 ? (connection & CONN_CLOSE) === 0 : (connection & (CONN_CLOSE | CONN_KEEP_ALIVE)) === CONN_KEEP_ALIVE);
  // An interim answer that closes the connection leaves the final one nowhere to go.
  if (informational && !upgrade && !keepAlive) return fail('bad-response', 'interim response closes the connection');
  const head: ResponseHead = {
    kind: 'head',
    status,
    reason: re - rs === 2 && buf[rs] === 0x4f && buf[rs + 1] === 0x4b ? 'OK' : buf.toString('latin1', rs, re),
    versionMinor: minor,
    headers,
    headEnd: p,
    body,
    keepAlive,
    interim: informational && !upgrade,
    upgrade,
  };
  if (keepAliveSeconds >= 0) head.keepAliveTimeout = keepAliveSeconds;
  return head;
}

/** The N of a `timeout=N` parameter in a Keep-Alive value buf[s, e) (RFC 2068 §19.7.1.1), or -1. */
function keepAliveTimeout(buf: Buffer, s: number, e: number): number {
  for (let p = s; p + 8 <= e; p++) {
    if ((p === s || buf[p - 1] === 0x2c || buf[p - 1] === SP || buf[p - 1] === HTAB) && nameIs(buf, p, p + 7, 'timeout') && buf[p + 7] === 0x3d) {
      let q = p + 8;
      while (q < e && buf[q]! >= 0x30 && buf[q]! <= 0x39) q++;
      return decimalLength(buf, p + 8, q);
    }
  }
  return -1;
}
