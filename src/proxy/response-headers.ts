/**
 * Which response headers of a backend reach the client (front/relay.ts relays them):
 * hop-by-hop headers are dropped (RFC 9110 7.6.1), and so are those a backend names in its
 * Connection header.
 */
import { lowerName } from './codec/fields.js';

/** Response headers never relayed to the client (hop-by-hop, RFC 9110 7.6.1). */
const HOP_BY_HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer', 'te', 'proxy-authenticate']);

/** A Connection header value that lists no other header (the common case: skip the token scan). */
const KEEP_ALIVE_OR_CLOSE = /^\s*(?:keep-alive|close)\s*$/i;

/** removeConnectionOptions removes the headers a backend named in its Connection header: they are hop-by-hop too (RFC 9110 7.6.1). */
function removeConnectionOptions(headers: string[], tokens: string): void {
  const names = new Set<string>();
  for (const token of tokens.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive') names.add(t);
  }
  if (names.size === 0) return;
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (names.has(headers[i]!.toLowerCase())) headers.splice(i, 2);
  }
}

/**
 * SessionCookieListener hears the Set-Cookie values that carry the session cookie. An
 * object with a method rather than a callback, so a relay passes itself and no closure is
 * made per response.
 */
export interface SessionCookieListener {
  sessionCookieSet(value: string): void;
}

/**
 * relayedResponseHeaders is the list of a backend's response headers (names and values,
 * strings) that goes to the client; `listener` hears each Set-Cookie whose value starts
 * with `sessionCookiePrefix` (lower-case `name=`), for session-id learning.
 */
export function relayedResponseHeaders(raw: readonly string[], sessionCookiePrefix: string, listener: SessionCookieListener): string[] {
  const headers: string[] = [];
  let connectionTokens: string | undefined;
  const prefix = sessionCookiePrefix;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = lowerName(name);
    if (HOP_BY_HOP_RESPONSE.has(lower)) {
      if (lower === 'connection' && !KEEP_ALIVE_OR_CLOSE.test(value)) connectionTokens = `${connectionTokens ?? ''},${value}`;
      continue;
    }
    if (lower === 'set-cookie' && value.length > prefix.length && value.slice(0, prefix.length).toLowerCase() === prefix) listener.sessionCookieSet(value);
    headers.push(name, value);
  }
  if (connectionTokens !== undefined) removeConnectionOptions(headers, connectionTokens);
  return headers;
}
