/**
 * Request path normalisation for path rules (SPEC "Path rules"): the path as Tomcat's
 * CoyoteAdapter sees it before it maps a request to a servlet, so a rule matches exactly
 * what the backend will serve. Tomcat, in this order:
 * 1. sets path parameters aside (`;name=value` up to the next `/`, before decoding, so an
 *    encoded `%3b` stays a literal `;` of the segment);
 * 2. percent-decodes once (`%252e` becomes the text `%2e`, never `.`); an encoded `/`
 *    (`%2f`) is refused (encodedSolidusHandling "reject", its default), a bad escape too;
 * 3. normalises: refuses `\` and NUL (ALLOW_BACKSLASH false), merges `//`, resolves `.`
 *    and `..` (a `..` that climbs above the root is refused; a trailing `/.` or `/..`
 *    leaves a trailing `/`);
 * 4. decodes the bytes as UTF-8, refusing malformed and overlong sequences (`%c0%ae`).
 * Stricter than Tomcat on purpose: a decoded control character (`%09`, `%7f`) and a raw
 * `#` are refused too: no Servoy page has one, and "refuse what cannot be matched safely"
 * is the rule. Matching is case-sensitive, as Tomcat's mapper is.
 *
 * Hand-written rather than built on `URL` or `decodeURIComponent` because it must match
 * Tomcat exactly (WHATWG URL parsing resolves `%2e` differently, keeps `\` as `/`,
 * and `decodeURIComponent` decodes `%2f`), and because it runs on every request when
 * `paths` is set: the common path (no `%`, `;`, `//` or `/.`) is one scan, no allocation.
 */

/** NormalisedPath is a request path as the backend will map it, or why it cannot be. */
export type NormalisedPath =
  | {
      readonly ok: true;
      /** Decoded, normalised path (no query): what path rules are matched against. */
      readonly path: string;
      /** The `;name=value` path parameters set aside (such as `jsessionid=ABC.servoy-a`), raw. */
      readonly parameters: readonly string[];
    }
  | { readonly ok: false; /** Why the path cannot be normalised safely (for logs and explanations). */ readonly reason: string };

const NO_PARAMETERS: readonly string[] = Object.freeze([]);
const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const SEMICOLON = 0x3b;
const BACKSLASH = 0x5c;
const HASH = 0x23;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** bad is a failed normalisation. */
function bad(reason: string): NormalisedPath {
  return { ok: false, reason };
}

/**
 * normalisePath normalises the path of a request target (origin-form: `/path?query`) the
 * way Tomcat does (see the file comment). A target that does not start with `/` is
 * refused: absolute-form and `*` never reach a path rule.
 */
export function normalisePath(target: string): NormalisedPath {
  if (target.charCodeAt(0) !== SLASH) return bad('the path does not start with "/"');
  let end = target.indexOf('?');
  if (end === -1) end = target.length;
  // Fast path: nothing to decode, set aside or resolve.
  let plain = true;
  let previous = 0;
  for (let i = 0; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === PERCENT || c === SEMICOLON || c === BACKSLASH || c === HASH || (previous === SLASH && (c === SLASH || c === DOT))) {
      plain = false;
      break;
    }
    previous = c;
  }
  const raw = end === target.length ? target : target.slice(0, end);
  if (plain) return { ok: true, path: raw, parameters: NO_PARAMETERS };
  return normaliseSlow(raw);
}

function normaliseSlow(raw: string): NormalisedPath {
  const rawSegments = raw.slice(1).split('/');
  const out: string[] = [];
  let parameters: string[] | undefined;
  // Whether the normalised path ends with "/": set by an empty, "." or ".." last segment.
  let trailingSlash = false;
  for (let s = 0; s < rawSegments.length; s++) {
    let segment = rawSegments[s]!;
    // 1. Path parameters: from the first ";" of the segment to its end (Tomcat removes each
    //    ";param" up to the next ";" or "/": the same thing).
    const semicolon = segment.indexOf(';');
    if (semicolon !== -1) {
      (parameters ??= []).push(...segment.slice(semicolon + 1).split(';').filter((p) => p !== ''));
      segment = segment.slice(0, semicolon);
    }
    // 2. + 4. Percent-decoding, then UTF-8.
    const decoded = decodeSegment(segment);
    if (typeof decoded !== 'string') return decoded;
    // 3. Normalisation.
    const last = s === rawSegments.length - 1;
    if (decoded === '' || decoded === '.') {
      if (last) trailingSlash = true;
      continue;
    }
    if (decoded === '..') {
      if (out.length === 0) return bad('".." climbs above the root');
      out.pop();
      if (last) trailingSlash = true;
      continue;
    }
    out.push(decoded);
  }
  let path = `/${out.join('/')}`;
  if (trailingSlash && out.length > 0) path += '/';
  return { ok: true, path, parameters: parameters ?? NO_PARAMETERS };
}

/** decodeSegment percent-decodes one segment (no "/" in it) and checks every character; a failure is returned as such. */
function decodeSegment(segment: string): string | NormalisedPath {
  let hasEscape = false;
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c === BACKSLASH) return bad('a backslash in the path');
    if (c === HASH) return bad('a "#" in the request target');
    if (c <= 0x20 || c >= 0x7f) return bad('a control, space or non-ASCII character in the request target');
    if (c === PERCENT) hasEscape = true;
  }
  if (!hasEscape) return segment;
  const bytes = new Uint8Array(segment.length);
  let n = 0;
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c !== PERCENT) {
      bytes[n++] = c;
      continue;
    }
    const high = hexValue(segment.charCodeAt(i + 1));
    const low = hexValue(segment.charCodeAt(i + 2));
    if (high < 0 || low < 0) return bad('an invalid percent escape');
    const byte = (high << 4) | low;
    if (byte === SLASH) return bad('an encoded "/" (%2f)');
    if (byte === BACKSLASH) return bad('an encoded backslash (%5c)');
    if (byte === 0) return bad('a NUL byte (%00)');
    if (byte < 0x20 || byte === 0x7f) return bad('an encoded control character');
    bytes[n++] = byte;
    i += 2;
  }
  try {
    return utf8.decode(bytes.subarray(0, n));
  } catch {
    return bad('invalid or overlong UTF-8 in a percent escape');
  }
}

/** hexValue is 0-15 for a hex digit (either case), -1 otherwise (NaN past the end included). */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}
