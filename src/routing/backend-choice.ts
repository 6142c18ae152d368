/**
 * Choosing the server on an `allow` path rule (SPEC "Path rules"): an allowed client
 * (an administrator) adds `?servoy-lb-backend=ID` to a request under the rule's prefix and
 * gets a signed cookie scoped to that prefix for an hour; its requests under the prefix
 * then go to ID, so one chosen server's `/servoy-admin/` can be reached behind the
 * balancer. The request target is forwarded as sent, parameter included: Servoy ignores
 * parameters it does not know, and the access log shows the choice.
 *
 * The cookie is `<backendId>.<mac>`, the MAC (the affinity cookie's HMAC keys, see
 * AffinityCookieCodec.signText) covering a label, the rule's prefix and the id: it cannot
 * be forged, nor replayed under another rule, nor taken for an affinity cookie. It only
 * ever counts on a rule that allows the client anyway; it grants no access by itself.
 */
import type { PoolSnapshot } from '../pool/snapshot.js';
import type { AffinityCookieCodec } from './affinity-cookie.js';
import type { Decision } from './types.js';

/** CHOICE_PARAMETER is the query parameter that chooses the server. */
export const CHOICE_PARAMETER = 'servoy-lb-backend';
/** CHOICE_MAX_AGE_SECONDS: the choice lasts an hour. */
export const CHOICE_MAX_AGE_SECONDS = 3600;
const BACKEND_ID = /^[A-Za-z0-9_-]{1,64}$/;
const NO_BACKEND: Decision = Object.freeze({ kind: 'unavailable', reason: 'no-backend' });

/** choiceCookieName is the backend-choice cookie's name: the affinity cookie's with `_BACKEND` appended. */
export function choiceCookieName(affinityCookieName: string): string {
  return `${affinityCookieName}_BACKEND`;
}

/**
 * choiceFromQuery returns the value of `servoy-lb-backend` in a request target's query
 * (the first one), undefined when there is none. Ids are plain tokens, so the value is
 * taken as sent; one that is not a valid id is returned as is and names no backend.
 */
export function choiceFromQuery(target: string): string | undefined {
  const q = target.indexOf('?');
  if (q === -1) return undefined;
  let at = q + 1;
  while (at < target.length) {
    let end = target.indexOf('&', at);
    if (end === -1) end = target.length;
    if (end - at > CHOICE_PARAMETER.length && target.startsWith(CHOICE_PARAMETER, at) && target.charCodeAt(at + CHOICE_PARAMETER.length) === 0x3d /* = */) {
      return target.slice(at + CHOICE_PARAMETER.length + 1, end);
    }
    at = end + 1;
  }
  return undefined;
}

function payload(prefix: string, backendId: string): string {
  return `servoy-lb-backend:${prefix}:${backendId}`;
}

/** signChoice is the cookie value choosing backendId under a rule's prefix. */
export function signChoice(codec: AffinityCookieCodec, prefix: string, backendId: string): string {
  return `${backendId}.${codec.signText(payload(prefix, backendId))}`;
}

/**
 * choiceFromCookies returns the backend id of the first genuine choice cookie for the
 * rule's prefix in a Cookie header (a browser may send several, one per prefix), or
 * undefined. Forged or foreign values are skipped.
 */
export function choiceFromCookies(codec: AffinityCookieCodec, cookieHeader: string | undefined, name: string, prefix: string): string | undefined {
  if (cookieHeader === undefined || !cookieHeader.includes(name)) return undefined;
  for (const part of cookieHeader.split(';')) {
    const equals = part.indexOf('=');
    if (equals === -1 || part.slice(0, equals).trim() !== name) continue;
    const value = part.slice(equals + 1).trim();
    const dot = value.lastIndexOf('.');
    if (dot <= 0) continue;
    const backendId = value.slice(0, dot);
    if (BACKEND_ID.test(backendId) && codec.verifyText(payload(prefix, backendId), value.slice(dot + 1))) return backendId;
  }
  return undefined;
}

/**
 * choiceSetCookie is the Set-Cookie header value for a choice: scoped to the prefix
 * (percent-encoded as a browser compares it), an hour, HttpOnly, SameSite=Strict.
 */
export function choiceSetCookie(name: string, value: string, prefix: string, secure: boolean): string {
  return `${name}=${value}; Path=${encodeURI(prefix)}; Max-Age=${CHOICE_MAX_AGE_SECONDS}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/**
 * routeChosen is the routing decision for a request whose client chose a server: that
 * server while it serves at all (up, draining, drained, maintenance), else unavailable
 * (503: never silently another server, the administrator asked for this one).
 */
export function routeChosen(backendId: string, snapshot: PoolSnapshot): Decision {
  const backend = snapshot.byId.get(backendId);
  if (backend === undefined || !backend.servesExisting) return NO_BACKEND;
  return { kind: 'backend', backend, reason: 'chosen-backend', clientId: undefined, setCookie: false };
}
