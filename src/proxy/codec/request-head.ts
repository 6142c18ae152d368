/**
 * A strict HTTP/1.1 request-head parser for the raw-socket data plane: every client
 * request is read by it.
 *
 * Hand-written on purpose: this is the hot path of every request, so it is one forward
 * scan over the bytes with table lookups, no regular expressions and no allocation but
 * the result and its strings. Strict by construction: anything two HTTP parsers could
 * read two ways (the request-smuggling classes) is rejected, never interpreted. The
 * differential fuzz in test/codec-differential.test.ts holds it to this: nothing it
 * accepts is rejected by Node's own parser, and nothing it accepts is framed otherwise.
 */
import { CR, HTAB, LF, SP, TOKEN, VALUE } from './bytes.js';
import { connectionFlags, internedName, nameIs, namesByLength } from './fields.js';

/** How a request's body is delimited; `none` also for `Content-Length: 0`. */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' };

/** Why a head was refused: the answer is 400, 431 or 501 and the connection closes. */
export type HeadErrorCode = 'bad-request' | 'too-large' | 'not-implemented';

/** A complete, accepted request head. */
export interface RequestHead {
  kind: 'head';
  method: string;
  target: string;
  /** 0 or 1: HTTP/1.0 or HTTP/1.1. */
  versionMinor: number;
  /** Names and values as sent (latin1), alternating, like node's rawHeaders. */
  headers: string[];
  /** Offset just after the CRLFCRLF that ends the head. */
  headEnd: number;
  body: BodyFraming;
  keepAlive: boolean;
  /** The Upgrade header's value when Connection also lists `upgrade`. */
  upgrade?: string;
  /** The Expect header: `continue` for 100-continue only, `other` for any other expectation (417). */
  expect?: 'continue' | 'other';
}

/** The outcome of one parse: more bytes needed, a refusal, or the head. */
export type ParseResult =
  | { kind: 'incomplete' }
  | { kind: 'error'; code: HeadErrorCode; reason: string }
  | RequestHead;

/** Most header lines a head may have. */
export const MAX_HEADER_LINES = 100;
/** Most digits of a Content-Length (10^15 is below 2^53: every accepted length is exact). */
const MAX_LENGTH_DIGITS = 15;

/** Methods we implement, by length; CONNECT is refused: this is no forward proxy. */
const METHODS: readonly string[] = ['GET', 'PUT', 'HEAD', 'POST', 'PATCH', 'TRACE', 'DELETE', 'OPTIONS'];

/** Target bytes: visible ASCII but `#` (no fragments); origin-form checks the first byte. */
const TARGET = new Uint8Array(256);
for (let b = 0x21; b <= 0x7e; b++) TARGET[b] = 1;
TARGET[0x23] = 0;

const INCOMPLETE: ParseResult = Object.freeze({ kind: 'incomplete' }) as ParseResult;
const NONE: BodyFraming = Object.freeze({ kind: 'none' }) as BodyFraming;
const CHUNKED: BodyFraming = Object.freeze({ kind: 'chunked' }) as BodyFraming;

function fail(code: HeadErrorCode, reason: string): ParseResult {
  return { kind: 'error', code, reason };
}

/** The known method spelled by buf[s, e), or undefined. */
function knownMethod(buf: Buffer, s: number, e: number): string | undefined {
  outer: for (const m of METHODS) {
    if (m.length !== e - s) continue;
    for (let i = 0; i < m.length; i++) if (buf[s + i] !== m.charCodeAt(i)) continue outer;
    return m;
  }
  return undefined;
}

/** Header names browsers send on every request, as sent: reused instead of a new string. */
const COMMON_NAMES: readonly string[] = [
  'Host', 'Accept', 'Cookie', 'Origin', 'Pragma', 'Referer', 'Upgrade', 'Connection', 'User-Agent',
  'Content-Type', 'Cache-Control', 'Content-Length', 'Accept-Encoding', 'Accept-Language', 'X-Forwarded-For',
  'Sec-Fetch-Dest', 'Sec-Fetch-Mode', 'Sec-Fetch-Site', 'Sec-Fetch-User', 'Sec-WebSocket-Key',
  'Sec-WebSocket-Version', 'Sec-WebSocket-Extensions', 'Upgrade-Insecure-Requests', 'Transfer-Encoding',
  'If-None-Match', 'If-Modified-Since', 'Authorization', 'X-Requested-With', 'sec-ch-ua', 'sec-ch-ua-mobile',
  'sec-ch-ua-platform', 'Priority', 'DNT',
];
const NAMES_BY_LENGTH = namesByLength(COMMON_NAMES);

/**
 * Parses the request head that starts at `start` in `buf`. Call again with more bytes
 * after `incomplete`; the answer for a prefix never contradicts the answer for the
 * whole (errors are found in byte order, so feeding byte by byte gives the same result).
 * A head whose bytes pass `maxHeaderBytes` (request line included) is `too-large`.
 */
export function parseRequestHead(buf: Buffer, start: number, maxHeaderBytes: number): ParseResult {
  const limit = Math.min(buf.length, start + maxHeaderBytes);
  const tooLarge = buf.length >= start + maxHeaderBytes;
  let p = start;

  // Method: a token, then exactly one SP.
  while (p < limit && TOKEN[buf[p]!]) p++;
  if (p === limit) return tooLarge ? fail('too-large', 'request line too long') : INCOMPLETE;
  if (buf[p] !== SP || p === start) return fail('bad-request', 'malformed method');
  const method = knownMethod(buf, start, p);
  if (method === undefined) return fail('not-implemented', 'unknown method');
  const ts = ++p;

  // Target: origin-form, or `*` for OPTIONS; no absolute-form, no authority-form.
  if (p === limit) return tooLarge ? fail('too-large', 'request line too long') : INCOMPLETE;
  const first = buf[p]!;
  if (first !== 0x2f && !(first === 0x2a && method === 'OPTIONS')) {
    return fail('bad-request', 'target not in origin-form');
  }
  while (p < limit && TARGET[buf[p]!]) p++;
  if (p === limit) return tooLarge ? fail('too-large', 'request line too long') : INCOMPLETE;
  if (buf[p] !== SP) return fail('bad-request', 'malformed target');
  const te = p;
  if (first === 0x2a && te - ts !== 1) return fail('bad-request', 'malformed target');

  // Version: exactly HTTP/1.0 or HTTP/1.1, then CRLF.
  p++;
  const version = 'HTTP/1.';
  for (let i = 0; i < version.length; i++, p++) {
    if (p === limit) return tooLarge ? fail('too-large', 'request line too long') : INCOMPLETE;
    if (buf[p] !== version.charCodeAt(i)) return fail('bad-request', 'malformed version');
  }
  if (p === limit) return tooLarge ? fail('too-large', 'request line too long') : INCOMPLETE;
  const minor = buf[p]! - 0x30;
  if (minor !== 0 && minor !== 1) return fail('bad-request', 'unsupported version');
  p++;
  if (p === limit) return tooLarge ? fail('too-large', 'request line too long') : INCOMPLETE;
  if (buf[p] !== CR) return fail('bad-request', 'malformed request line');
  p++;
  if (p === limit) return tooLarge ? fail('too-large', 'request line too long') : INCOMPLETE;
  if (buf[p] !== LF) return fail('bad-request', 'bare CR');
  p++;

  const headers: string[] = [];
  let lines = 0;
  let contentLength = -1;
  let chunked = false;
  let hosts = 0;
  let connection = 0;
  let upgrade: string | undefined;
  let expect: 'continue' | 'other' | undefined;

  for (;;) {
    if (p === limit) return tooLarge ? fail('too-large', 'head too large') : INCOMPLETE;
    const c = buf[p]!;
    if (c === CR) {
      if (p + 1 === limit) return tooLarge ? fail('too-large', 'head too large') : INCOMPLETE;
      if (buf[p + 1] !== LF) return fail('bad-request', 'bare CR');
      p += 2;
      break;
    }
    if (c === SP || c === HTAB) return fail('bad-request', 'obs-fold');
    if (++lines > MAX_HEADER_LINES) return fail('too-large', 'too many header lines');

    // Name: a token up to the colon.
    const ns = p;
    while (p < limit && TOKEN[buf[p]!]) p++;
    if (p === limit) return tooLarge ? fail('too-large', 'head too large') : INCOMPLETE;
    if (buf[p] !== 0x3a) return fail('bad-request', p === ns && buf[p] === LF ? 'bare LF' : 'malformed header name');
    if (p === ns) return fail('bad-request', 'empty header name');
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
    if (buf[p] === LF) return fail('bad-request', 'bare LF');
    if (buf[p] !== CR) return fail('bad-request', 'control character in header value');
    if (p + 1 === limit) return tooLarge ? fail('too-large', 'head too large') : INCOMPLETE;
    if (buf[p + 1] !== LF) return fail('bad-request', 'bare CR');
    p += 2;

    const name = internedName(NAMES_BY_LENGTH, buf, ns, ne);
    const value = buf.toString('latin1', vs, ve);
    headers.push(name, value);

    switch (ne - ns) {
      case 4:
        if (nameIs(buf, ns, ne, 'host') && ++hosts > 1) return fail('bad-request', 'more than one Host');
        break;
      case 6:
        if (nameIs(buf, ns, ne, 'expect')) {
          if (!nameIs(buf, vs, ve, '100-continue')) expect = 'other';
          else expect ??= 'continue';
        }
        break;
      case 7:
        if (nameIs(buf, ns, ne, 'upgrade')) {
          if (upgrade !== undefined) return fail('bad-request', 'more than one Upgrade');
          if (value === '') return fail('bad-request', 'empty Upgrade');
          upgrade = value;
        }
        break;
      case 10:
        if (nameIs(buf, ns, ne, 'connection')) connection |= connectionFlags(buf, vs, ve);
        break;
      case 14:
        if (nameIs(buf, ns, ne, 'content-length')) {
          if (contentLength !== -1) return fail('bad-request', 'more than one Content-Length');
          const digits = ve - vs;
          if (digits === 0 || digits > MAX_LENGTH_DIGITS) return fail('bad-request', 'malformed Content-Length');
          let n = 0;
          for (let i = vs; i < ve; i++) {
            const d = buf[i]! - 0x30;
            if (d < 0 || d > 9) return fail('bad-request', 'malformed Content-Length');
            n = n * 10 + d;
          }
          contentLength = n;
        }
        break;
      case 17:
        if (nameIs(buf, ns, ne, 'transfer-encoding')) {
          if (minor === 0) return fail('bad-request', 'Transfer-Encoding in HTTP/1.0');
          if (chunked) return fail('bad-request', 'more than one Transfer-Encoding');
          // Exactly `chunked`, no HTAB anywhere (parsers differ on it). Trailing spaces are
          // optional whitespace (RFC 9110 §5.5) that Node accepts too: safe, as the balancer
          // never passes Transfer-Encoding on but re-frames the body itself.
          for (let i = ne + 1; i < p - 2; i++) if (buf[i] === HTAB) return fail('bad-request', 'HTAB in Transfer-Encoding');
          if (!nameIs(buf, vs, ve, 'chunked')) return fail('not-implemented', 'Transfer-Encoding other than chunked');
          chunked = true;
        }
        break;
    }
  }

  if (chunked && contentLength !== -1) return fail('bad-request', 'Content-Length with Transfer-Encoding');
  if (minor === 1 && hosts === 0) return fail('bad-request', 'missing Host');
  const upgrading = upgrade !== undefined && (connection & 4) !== 0;
  // A body before the protocol switch: parsers disagree on where the new protocol starts.
  if (upgrading && (chunked || contentLength > 0)) return fail('bad-request', 'Upgrade with a body');

  const head: RequestHead = {
    kind: 'head',
    method,
    target: buf.toString('latin1', ts, te),
    versionMinor: minor,
    headers,
    headEnd: p,
    body: chunked ? CHUNKED : contentLength > 0 ? { kind: 'length', length: contentLength } : NONE,
    // `close` wins over `keep-alive` when both are listed (node keeps an HTTP/1.0 one open).
    keepAlive: minor === 1 ? (connection & 1) === 0 : (connection & 3) === 2,
  };
  if (upgrading) head.upgrade = upgrade;
  if (expect !== undefined) head.expect = expect;
  return head;
}
