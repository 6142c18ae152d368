/**
 * Reading the two cookies the router needs, and the servlet session id in a path.
 *
 * Hand-written because it runs on every request: a general cookie parser builds an
 * object of every cookie (Servoy apps and their analytics set many) and decodes every
 * value, while routing needs two values by exact name. This scans the header once,
 * allocates nothing for cookies it does not want, and stops once both are found.
 */

/** RequestCookies are the raw values of the affinity and servlet session cookies. */
export interface RequestCookies {
  readonly affinity: string | undefined;
  readonly session: string | undefined;
}

const NO_COOKIES: RequestCookies = Object.freeze({ affinity: undefined, session: undefined });

const SPACE = 0x20;
const TAB = 0x09;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const QUOTE = 0x22;

/**
 * readCookies returns the first affinityName and sessionName cookie values of a Cookie
 * header (RFC 6265 section 5.4 order: the first occurrence is the most specific path, as
 * Tomcat also picks it). Whitespace around names and values is ignored, one pair of
 * double quotes around a value is removed, and pairs without "=" are skipped.
 */
export function readCookies(header: string | undefined, affinityName: string, sessionName: string): RequestCookies {
  if (header === undefined || header.length === 0) return NO_COOKIES;
  let affinity: string | undefined;
  let session: string | undefined;
  const length = header.length;
  let i = 0;
  while (i < length) {
    // Skip separators and whitespace before the name.
    let c = header.charCodeAt(i);
    while (c === SPACE || c === TAB || c === SEMICOLON) {
      if (++i >= length) break;
      c = header.charCodeAt(i);
    }
    if (i >= length) break;
    const nameStart = i;
    while (i < length && (c = header.charCodeAt(i)) !== EQUALS && c !== SEMICOLON) i++;
    if (i >= length || c === SEMICOLON) continue; // a pair without "=": not a cookie we read
    let nameEnd = i;
    while (nameEnd > nameStart && ((c = header.charCodeAt(nameEnd - 1)) === SPACE || c === TAB)) nameEnd--;
    i++; // past "="
    let valueStart = i;
    while (i < length && header.charCodeAt(i) !== SEMICOLON) i++;
    const wantAffinity = affinity === undefined && matches(header, nameStart, nameEnd, affinityName);
    const wantSession = session === undefined && matches(header, nameStart, nameEnd, sessionName);
    if (!wantAffinity && !wantSession) continue;
    let valueEnd = i;
    while (valueStart < valueEnd && ((c = header.charCodeAt(valueStart)) === SPACE || c === TAB)) valueStart++;
    while (valueEnd > valueStart && ((c = header.charCodeAt(valueEnd - 1)) === SPACE || c === TAB)) valueEnd--;
    if (valueEnd - valueStart >= 2 && header.charCodeAt(valueStart) === QUOTE && header.charCodeAt(valueEnd - 1) === QUOTE) {
      valueStart++;
      valueEnd--;
    }
    const value = header.slice(valueStart, valueEnd);
    if (wantAffinity) affinity = value;
    if (wantSession) session = value;
    if (affinity !== undefined && session !== undefined) break;
  }
  return affinity === undefined && session === undefined ? NO_COOKIES : { affinity, session };
}

function matches(text: string, start: number, end: number, name: string): boolean {
  return end - start === name.length && text.startsWith(name, start);
}

/**
 * sessionIdFromPath returns the servlet session id of a URL path parameter such as
 * `/app/index.html;jsessionid=abc.servoy-a?x=1` (Tomcat's URL rewriting). Only the path
 * is searched (before "?" or "#"); the parameter name is matched case-insensitively, as
 * mod_proxy_balancer does; the value ends at ";", "/", "?" or "#".
 */
export function sessionIdFromPath(url: string, paramName = 'jsessionid'): string | undefined {
  let semicolon = url.indexOf(';');
  if (semicolon === -1) return undefined; // the common case: no path parameters at all
  let pathEnd = url.length;
  for (let j = 0; j < url.length; j++) {
    const c = url.charCodeAt(j);
    if (c === 0x3f /* ? */ || c === 0x23 /* # */) {
      pathEnd = j;
      break;
    }
  }
  const nameLength = paramName.length;
  while (semicolon !== -1 && semicolon < pathEnd) {
    const nameStart = semicolon + 1;
    const equals = nameStart + nameLength;
    if (equals < pathEnd && url.charCodeAt(equals) === EQUALS && equalsIgnoreCase(url, nameStart, paramName)) {
      let end = equals + 1;
      while (end < pathEnd) {
        const c = url.charCodeAt(end);
        if (c === SEMICOLON || c === 0x2f /* / */) break;
        end++;
      }
      return end > equals + 1 ? url.slice(equals + 1, end) : undefined;
    }
    semicolon = url.indexOf(';', nameStart);
  }
  return undefined;
}

/** equalsIgnoreCase compares ASCII text at start with a name, ignoring ASCII case. */
function equalsIgnoreCase(text: string, start: number, name: string): boolean {
  for (let k = 0; k < name.length; k++) {
    let a = text.charCodeAt(start + k);
    let b = name.charCodeAt(k);
    if (a >= 0x41 && a <= 0x5a) a |= 0x20;
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (a !== b) return false;
  }
  return true;
}

/**
 * routeOfSessionId returns the Tomcat jvmRoute of a servlet session id: the part after
 * the first ".", as Tomcat appends it and mod_proxy_balancer reads it
 * (`ABC123.servoy-a` -> `servoy-a`). Undefined when there is none.
 */
export function routeOfSessionId(sessionId: string): string | undefined {
  const dot = sessionId.indexOf('.');
  if (dot === -1 || dot === sessionId.length - 1) return undefined;
  return sessionId.slice(dot + 1);
}
