/**
 * Reading a request's partition key (affinity.partitionKey; SPEC "Routing rules", rule 1).
 *
 * compilePartitionKey turns the config once into a reader; the reader runs on every
 * request in partition mode, so it is hand-written rather than built on URL,
 * URLSearchParams or a cookie parser, all of which would allocate objects for parts of the
 * request we do not need:
 *  - the query and path are scanned in place with charCodeAt; only the one value wanted is
 *    sliced (and decoded only if it contains an escape);
 *  - the Cookie header is searched with indexOf for the one name and the match's
 *    boundaries are checked, instead of splitting every cookie;
 *  - percent-escapes are validated by hand before decodeURIComponent, which then never
 *    throws (an exception per bad escape would be a cheap CPU attack);
 *  - the path is normalised as Tomcat does (dot-segments, empty segments, ";params")
 *    with a depth counter instead of a segment array.
 * Every loop is linear in the input (no indexOf-inside-a-loop that can rescan), since a
 * URL may be as long as limits.maxHeaderBytes allows.
 *
 * What a key is (decided here; the router, the state store and the admin API all rely on it):
 *  - a string of 1 to MAX_KEY_LENGTH (256) UTF-16 code units after trimming spaces and tabs
 *    (HTTP's optional whitespace); an empty or longer value is no key. Never truncated:
 *    two tenants that share a 256-character prefix must not collide.
 *  - no control characters (U+0000-U+001F, U+007F) anywhere, so "acme\n" is no key rather
 *    than an alias of "acme" (only spaces and tabs are trimmed, not JavaScript's trim()).
 *  - well-formed UTF-16 (no lone surrogate), so a key survives UTF-8 storage (state file,
 *    Redis) unchanged instead of two keys collapsing into U+FFFD. Node hands headers and
 *    the URL over as Latin-1 strings, so raw bytes >= 0x80 arrive as U+0080-U+00FF and are
 *    kept; only percent-decoded query and path values are UTF-8 decoded.
 *  - `host` keys are lower-cased (host names are case-insensitive). `ip` keys lower-case
 *    IPv6 hex digits (the same address). Every other source keeps case: header, cookie,
 *    query and path values are opaque, so "Acme" and "acme" are two partitions.
 *  - the value a source yields is at most MAX_SOURCE_LENGTH (4096) code units before
 *    decoding and before the pattern runs; a longer one is no key. This bounds the work of
 *    the operator's regular expression on attacker-chosen input.
 *  - with `pattern`, the key is capture group 1 of the first match in the source value
 *    (trimmed, decoded, host lower-cased); no match, or group 1 not taking part, is no key.
 *    The pattern is compiled once, without flags (as cross-checks.ts validated it), and is
 *    neither global nor sticky, so exec() keeps no state between requests.
 * A reader never throws for any request; undefined means "no partition key" (rule 2 then
 * applies, or 400 when partitionKey.required).
 */
import type { Config } from '../config/schema.js';

/** PartitionKeySpec is the validated affinity.partitionKey config. */
export type PartitionKeySpec = NonNullable<Config['affinity']['partitionKey']>;

/** PartitionRequest is what a reader needs of a request (or WebSocket handshake). */
export interface PartitionRequest {
  /** The Host header (HTTP/2: :authority), with any port. */
  readonly host: string | undefined;
  /** The request target as received: origin-form `/p?q` (absolute-form is accepted too). */
  readonly url: string;
  /**
   * Headers with lower-case names. A repeated header given as an array yields its first
   * value; a string is taken whole (RawRequestView gives every header as an array).
   */
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** The Cookie header (Node joins repeated Cookie headers with "; "). */
  readonly cookieHeader: string | undefined;
  /** Client address, after trustedProxies. */
  readonly clientAddress: string;
}

/** PartitionKeyReader returns the request's partition key, or undefined when it has none. */
export type PartitionKeyReader = (req: PartitionRequest) => string | undefined;

/** Longest key, in UTF-16 code units. Longer values are no key (never truncated). */
export const MAX_KEY_LENGTH = 256;
/** Longest source value (before decoding and pattern), in UTF-16 code units. */
export const MAX_SOURCE_LENGTH = 4096;

const TAB = 0x09;
const SPACE = 0x20;
const HASH = 0x23;
const PERCENT = 0x25;
const PLUS = 0x2b;
const DOT = 0x2e;
const SLASH = 0x2f;
const COLON = 0x3a;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const QUESTION = 0x3f;
const BRACKET_OPEN = 0x5b;
const BRACKET_CLOSE = 0x5d;
const AMPERSAND = 0x26;
const QUOTE = 0x22;

type SourceReader = (req: PartitionRequest) => string | undefined;

/**
 * compilePartitionKey builds the reader for a partitionKey config. It throws only for a
 * config that cross-checks.ts would have refused (missing name/segment, bad pattern).
 */
export function compilePartitionKey(spec: PartitionKeySpec): PartitionKeyReader {
  const read = sourceReader(spec);
  if (spec.pattern === undefined) {
    return (req) => {
      const value = read(req);
      return value === undefined ? undefined : normalizePartitionKey(value);
    };
  }
  const pattern = new RegExp(spec.pattern);
  if (new RegExp(`(?:${spec.pattern})|`).exec('')!.length !== 2) {
    throw new Error(`partitionKey.pattern must have exactly one capture group: ${spec.pattern}`);
  }
  return (req) => {
    const value = read(req);
    if (value === undefined) return undefined;
    const match = pattern.exec(trimOws(value));
    const key = match === null ? undefined : match[1];
    return key === undefined ? undefined : normalizePartitionKey(key);
  };
}

function sourceReader(spec: PartitionKeySpec): SourceReader {
  switch (spec.from) {
    case 'host':
      return (req) => hostName(req.host);
    case 'header': {
      const name = required(spec.name, 'name', spec.from).toLowerCase();
      return (req) => headerValue(req.headers[name]);
    }
    case 'cookie': {
      // Cookie names are tokens: surrounding whitespace is never part of one, and a name
      // with ";" or "=" can never match (such a reader always answers undefined).
      const name = trimOws(required(spec.name, 'name', spec.from));
      if (name.length === 0 || name.includes(';') || name.includes('=')) return () => undefined;
      return (req) => cookieValue(req.cookieHeader, name);
    }
    case 'query': {
      const name = required(spec.name, 'name', spec.from);
      return (req) => queryValue(req.url, name);
    }
    case 'path': {
      const segment = required(spec.segment, 'segment', spec.from);
      if (!Number.isInteger(segment) || segment < 1) throw new Error(`partitionKey.segment must be a whole number >= 1, not ${segment}`);
      return (req) => pathSegment(req.url, segment);
    }
    case 'ip':
      return (req) => ipKey(req.clientAddress);
    default:
      throw new Error(`partitionKey.from ${JSON.stringify((spec as { from: unknown }).from)} is not supported`);
  }
}

function required<T>(value: T | undefined, field: string, from: string): T {
  if (value === undefined) throw new Error(`partitionKey.${field} is required when from is "${from}"`);
  return value;
}

/**
 * normalizePartitionKey applies the key rules (see the top of this file) to a candidate:
 * spaces/tabs trimmed, then empty, longer than MAX_KEY_LENGTH, containing a control
 * character or a lone surrogate is undefined. Exported so that pins and admin commands
 * can judge keys the same way.
 */
export function normalizePartitionKey(value: string): string | undefined {
  let start = 0;
  let end = value.length;
  let c: number;
  while (start < end && ((c = value.charCodeAt(start)) === SPACE || c === TAB)) start++;
  while (end > start && ((c = value.charCodeAt(end - 1)) === SPACE || c === TAB)) end--;
  if (start === end || end - start > MAX_KEY_LENGTH) return undefined;
  for (let i = start; i < end; i++) {
    c = value.charCodeAt(i);
    if (c < SPACE || c === 0x7f) return undefined;
    if (c >= 0xd800 && c <= 0xdfff) {
      // A surrogate must be the first half of a pair followed by the second half.
      if (c >= 0xdc00 || i + 1 === end || (c = value.charCodeAt(i + 1)) < 0xdc00 || c > 0xdfff) return undefined;
      i++;
    }
  }
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  let c: number;
  while (start < end && ((c = value.charCodeAt(start)) === SPACE || c === TAB)) start++;
  while (end > start && ((c = value.charCodeAt(end - 1)) === SPACE || c === TAB)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/**
 * hostName is the host of a Host header: optional whitespace trimmed, the port removed
 * (it must be digits, possibly none: RFC 3986 `port = *DIGIT`), an IPv6 literal's brackets
 * removed (`[::1]:8080` -> `::1`), one trailing dot removed (`acme.example.com.` is the
 * same FQDN), lower-cased. A malformed Host (bad port, unclosed bracket) has no host.
 */
function hostName(raw: string | undefined): string | undefined {
  if (typeof raw !== 'string') return undefined;
  let start = 0;
  let end = raw.length;
  let c: number;
  while (start < end && ((c = raw.charCodeAt(start)) === SPACE || c === TAB)) start++;
  while (end > start && ((c = raw.charCodeAt(end - 1)) === SPACE || c === TAB)) end--;
  if (start === end || end - start > MAX_SOURCE_LENGTH) return undefined;
  // The scan for the port also notes whether anything needs lower-casing (A-Z or
  // non-ASCII); browsers send the host lower-case, so toLowerCase is usually skipped.
  let upper = false;
  if (raw.charCodeAt(start) === BRACKET_OPEN) {
    let close = start + 1;
    while (close < end && (c = raw.charCodeAt(close)) !== BRACKET_CLOSE) {
      if ((c >= 0x41 && c <= 0x5a) || c >= 0x80) upper = true;
      close++;
    }
    if (close === end || !isPort(raw, close + 1, end)) return undefined;
    start++;
    end = close;
  } else {
    let colon = start;
    while (colon < end && (c = raw.charCodeAt(colon)) !== COLON) {
      if ((c >= 0x41 && c <= 0x5a) || c >= 0x80) upper = true;
      colon++;
    }
    if (colon < end) {
      if (!isPort(raw, colon, end)) return undefined;
      end = colon;
    }
    if (end > start && raw.charCodeAt(end - 1) === DOT) end--;
  }
  if (start === end) return undefined;
  const host = start === 0 && end === raw.length ? raw : raw.slice(start, end);
  return upper ? host.toLowerCase() : host;
}

/** isPort: [from, end) is empty or ":" followed by digits only. */
function isPort(text: string, from: number, end: number): boolean {
  if (from === end) return true;
  if (text.charCodeAt(from) !== COLON) return false;
  for (let i = from + 1; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function headerValue(value: string | readonly string[] | undefined): string | undefined {
  const first = typeof value === 'string' ? value : Array.isArray(value) ? (value as readonly unknown[])[0] : undefined;
  return typeof first === 'string' && first.length <= MAX_SOURCE_LENGTH ? first : undefined;
}

/**
 * cookieValue is the first `name` cookie's value (as readCookies in request-cookies.ts:
 * exact, case-sensitive name; whitespace around it ignored; one pair of double quotes
 * removed; not percent-decoded, as Tomcat does not decode cookie values). indexOf finds
 * candidates; one counts only if, skipping spaces and tabs, it is preceded by the start or
 * ";" and followed by "=", so a name inside another name or a value never matches.
 */
function cookieValue(header: string | undefined, name: string): string | undefined {
  if (typeof header !== 'string') return undefined;
  const length = header.length;
  let at = header.indexOf(name);
  while (at !== -1) {
    let before = at - 1;
    let c = 0;
    while (before >= 0 && ((c = header.charCodeAt(before)) === SPACE || c === TAB)) before--;
    let after = at + name.length;
    while (after < length && ((c = header.charCodeAt(after)) === SPACE || c === TAB)) after++;
    if ((before < 0 || header.charCodeAt(before) === SEMICOLON) && after < length && header.charCodeAt(after) === EQUALS) {
      let start = after + 1;
      let end = header.indexOf(';', start);
      if (end === -1) end = length;
      while (start < end && ((c = header.charCodeAt(start)) === SPACE || c === TAB)) start++;
      while (end > start && ((c = header.charCodeAt(end - 1)) === SPACE || c === TAB)) end--;
      if (end - start >= 2 && header.charCodeAt(start) === QUOTE && header.charCodeAt(end - 1) === QUOTE) {
        start++;
        end--;
      }
      return end - start > MAX_SOURCE_LENGTH ? undefined : header.slice(start, end);
    }
    // Not a cookie name here. A real one must follow a ";" (names never start with
    // whitespace or ";"), so resume after the next ";": at most one indexOf per pair.
    const semicolon = header.indexOf(';', at + 1);
    if (semicolon === -1) return undefined;
    at = header.indexOf(name, semicolon + 1);
  }
  return undefined;
}

/**
 * queryValue is the first `name` parameter's value in the query (after "?", before "#"),
 * decoded as application/x-www-form-urlencoded ("+" is a space, then %XX as UTF-8), as
 * servlet containers decode it. Names are compared decoded too (`ten%61nt` is `tenant`)
 * but only decoded when they contain "%" or "+" and are short enough to match. A
 * parameter without "=" has the empty value. A malformed escape or invalid UTF-8 is no
 * value (not U+FFFD as URLSearchParams would, which could merge distinct keys).
 */
function queryValue(url: string, name: string): string | undefined {
  if (typeof url !== 'string') return undefined;
  const question = url.indexOf('?');
  if (question === -1) return undefined;
  const length = url.length;
  let pairStart = question + 1;
  let equals = -1;
  let escaped = false; // the name part contains "%" or "+"
  for (let i = pairStart; i <= length; i++) {
    const c = i < length ? url.charCodeAt(i) : AMPERSAND;
    if (c === AMPERSAND || c === HASH) {
      const nameEnd = equals === -1 ? i : equals;
      if (nameEnd > pairStart && nameMatches(url, pairStart, nameEnd, name, escaped)) {
        if (equals === -1) return '';
        return decodeRange(url, equals + 1, i, true);
      }
      if (c === HASH) return undefined;
      pairStart = i + 1;
      equals = -1;
      escaped = false;
    } else if (equals === -1) {
      if (c === EQUALS) equals = i;
      else if (c === PERCENT || c === PLUS) escaped = true;
    }
  }
  return undefined;
}

function nameMatches(url: string, start: number, end: number, name: string, escaped: boolean): boolean {
  const length = end - start;
  if (length === name.length && url.startsWith(name, start)) return true;
  // Escaped, a UTF-16 unit of the name takes at most 9 characters (3 UTF-8 bytes as %XX).
  if (!escaped || length > 9 * name.length) return false;
  return decodeRange(url, start, end, true) === name;
}

/**
 * decodeRange percent-decodes text[start, end) (and "+" as space when plus is set), or is
 * undefined when too long or malformed. The escapes are checked first (utf8Escape), so
 * decodeURIComponent is only called when it will not throw: a URIError costs microseconds
 * (a stack trace), and a URL with thousands of bad escapes must not cost thousands of
 * them. The try/catch stays as a guard. A value without "%" is not decoded at all.
 */
function decodeRange(text: string, start: number, end: number, plus: boolean): string | undefined {
  if (end - start > MAX_SOURCE_LENGTH) return undefined;
  let escapes = false;
  let plusses = false;
  for (let i = start; i < end; ) {
    const c = text.charCodeAt(i);
    if (c === PERCENT) {
      i = utf8Escape(text, i, end);
      if (i === -1) return undefined;
      escapes = true;
    } else {
      if (c === PLUS) plusses = true;
      i++;
    }
  }
  let value = text.slice(start, end);
  if (plus && plusses) value = value.replaceAll('+', ' ');
  if (!escapes) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/**
 * utf8Escape reads one percent-encoded character at text[i] ("%"): an ASCII byte, or a
 * lead byte and its continuation bytes, each as %XX, forming well-formed UTF-8 (no
 * overlong form, no surrogate, nothing above U+10FFFF: the table in RFC 3629 section 4,
 * which is exactly what decodeURIComponent accepts). Returns the index after it, or -1.
 */
function utf8Escape(text: string, i: number, end: number): number {
  const lead = hexByte(text, i, end);
  if (lead < 0x80) return lead < 0 ? -1 : i + 3;
  let more: number;
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) more = 1;
  else if (lead >= 0xe0 && lead <= 0xef) {
    more = 2;
    if (lead === 0xe0) low = 0xa0; // overlong
    else if (lead === 0xed) high = 0x9f; // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    more = 3;
    if (lead === 0xf0) low = 0x90; // overlong
    else if (lead === 0xf4) high = 0x8f; // above U+10FFFF
  } else return -1;
  let j = i + 3;
  for (; more > 0; more--, j += 3) {
    const b = hexByte(text, j, end);
    if (b < low || b > high) return -1;
    low = 0x80;
    high = 0xbf;
  }
  return j;
}

/** hexByte is the byte of "%XX" at text[i] (i < end), or -1. */
function hexByte(text: string, i: number, end: number): number {
  if (i + 3 > end || text.charCodeAt(i) !== PERCENT) return -1;
  const high = hexDigit(text.charCodeAt(i + 1));
  const low = hexDigit(text.charCodeAt(i + 2));
  return high < 0 || low < 0 ? -1 : (high << 4) | low;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  c |= 0x20;
  return c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
}

/**
 * pathSegment is the `n`th (1-based) segment of the path, percent-decoded, as the
 * backend (Tomcat) sees it, so that the key picks the server that will serve the path:
 * path parameters (";jsessionid=...") are cut from every segment, empty segments are
 * dropped ("//acme" is "/acme"), "." segments are dropped and ".." removes the segment
 * before it, also in escaped form (%2e) and with parameters ("..;x"). ".." above the root
 * (Tomcat answers 400) or a malformed escape in the chosen segment is no key, and so is a
 * chosen segment containing an escaped "/" (Tomcat refuses %2F by default).
 * Only a depth counter and one [start, end) are kept, no array: the path's segment n is
 * the last one pushed at depth n - 1 (a ".." from depth n removes it, and only a later
 * push at depth n - 1 can replace it; nothing at other depths can touch it).
 */
function pathSegment(url: string, n: number): string | undefined {
  if (typeof url !== 'string') return undefined;
  const length = url.length;
  let i = 0;
  if (length === 0) return undefined;
  if (url.charCodeAt(0) !== SLASH) {
    // absolute-form (http://host/path): a scheme, "://", an authority, then the path.
    let c = 0;
    while (i < length && (c = url.charCodeAt(i)) !== COLON && c !== SLASH && c !== QUESTION && c !== HASH) i++;
    if (c !== COLON || !url.startsWith('//', i + 1)) return undefined; // "*" or garbage
    i += 3;
    while (i < length && (c = url.charCodeAt(i)) !== SLASH && c !== QUESTION && c !== HASH) i++;
    if (i === length || url.charCodeAt(i) !== SLASH) return undefined;
  }
  let depth = 0;
  let keyStart = 0;
  let keyEnd = 0;
  // i is at a "/": each turn reads the segment after it.
  while (i < length && url.charCodeAt(i) === SLASH) {
    const start = i + 1;
    let end = start;
    let paramsAt = -1;
    let c = 0;
    while (end < length && (c = url.charCodeAt(end)) !== SLASH && c !== QUESTION && c !== HASH) {
      if (c === SEMICOLON && paramsAt === -1) paramsAt = end;
      end++;
    }
    const segmentEnd = paramsAt === -1 ? end : paramsAt;
    i = end;
    if (segmentEnd === start) continue;
    const dots = dotSegment(url, start, segmentEnd);
    if (dots === 1) continue;
    if (dots === 2) {
      if (depth === 0) return undefined;
      depth--;
      continue;
    }
    if (depth === n - 1) {
      keyStart = start;
      keyEnd = segmentEnd;
    }
    depth++;
  }
  if (depth < n) return undefined;
  const value = decodeRange(url, keyStart, keyEnd, false);
  return value === undefined || value.includes('/') ? undefined : value;
}

/** dotSegment: 1 for "." and 2 for ".." (each dot also as %2e/%2E), else 0. */
function dotSegment(text: string, start: number, end: number): number {
  let dots = 0;
  let i = start;
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c === DOT) i++;
    else if (c === PERCENT && end - i >= 3 && text.charCodeAt(i + 1) === 0x32 && (text.charCodeAt(i + 2) | 0x20) === 0x65) i += 3;
    else return 0;
    if (++dots > 2) return 0;
  }
  return dots;
}

/**
 * ipKey is the client address with an IPv4-mapped IPv6 address as plain IPv4
 * (`::ffff:1.2.3.4` -> `1.2.3.4`, the same client on a dual-stack socket) and IPv6 hex
 * digits lower-cased. It is not otherwise canonicalised: the proxy supplies Node's
 * canonical form (or the trusted X-Forwarded-For entry).
 */
function ipKey(address: string): string | undefined {
  if (typeof address !== 'string' || address.length > MAX_SOURCE_LENGTH) return undefined;
  if (address.indexOf(':') === -1) return address;
  if (address.length > 7 && address.charCodeAt(0) === COLON && address.charCodeAt(1) === COLON && (address.charCodeAt(2) | 0x20) === 0x66
    && (address.charCodeAt(3) | 0x20) === 0x66 && (address.charCodeAt(4) | 0x20) === 0x66 && (address.charCodeAt(5) | 0x20) === 0x66
    && address.charCodeAt(6) === COLON && address.indexOf('.', 7) !== -1 && address.indexOf(':', 7) === -1) {
    return address.slice(7);
  }
  return address.toLowerCase();
}
