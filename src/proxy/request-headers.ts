/**
 * Builds the header list sent upstream from a client request's raw headers, in one pass
 * (hot path: hand-written, no intermediate objects): hop-by-hop headers removed (RFC 9110
 * 7.6.1, including those named in Connection), Expect removed (Node answers
 * 100-continue itself), Host and Origin kept as sent (like ProxyPreserveHost On: Servoy
 * compares a WebSocket's Origin with its Host), and X-Forwarded-For / -Proto / -Host set
 * (kept and extended only when the peer is a trusted proxy).
 *
 * Other headers that claim to name the client are only believed from a trusted proxy:
 * `Forwarded` (RFC 7239) and the CDN/proxy conventions in CLIENT_ADDRESS_HEADERS are
 * dropped from anyone else. `X-Real-IP` is always set, to the address the balancer routes
 * on (the peer, or behind trusted proxies the client they name), unless a trusted proxy
 * sent one: a backend reading it (as behind nginx) gets the truth, never a client's claim.
 *
 * `X-Request-Id` is kept from a trusted proxy (when it is a short token), else replaced by
 * a generated one (src/proxy/request-id.ts); it is always the last header of the list, so
 * the access log finds it without a search (requestIdOf).
 */
import { lowerName } from './codec/fields.js';
import { acceptableRequestId, nextRequestId } from './request-id.js';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  // h2c's settings for the upgraded connection (RFC 7540 3.2.1): connection-specific, and
  // the balancer never upgrades to h2c.
  'http2-settings',
]);

/**
 * Headers in which proxies and CDNs pass on the client's address. A client can send any
 * of them to pose as another address (to an application that logs, rate-limits or
 * allow-lists on it): kept only from a trusted proxy.
 */
const CLIENT_ADDRESS_HEADERS = new Set([
  'forwarded',
  'true-client-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-originating-ip',
  'x-remote-ip',
  'x-remote-addr',
]);

/** ForwardFacts are what the X-Forwarded-* headers say about the client. */
export interface ForwardFacts {
  /** The TCP peer (the client, or a trusted proxy). */
  readonly peerAddress: string;
  /** The client's address as routed on (behind trusted proxies, the client they name); default the peer. */
  readonly clientAddress?: string;
  /** Whether the peer's own X-Forwarded-* headers are believed. */
  readonly trusted: boolean;
  /** "http" or "https": how the client reached the balancer. */
  readonly proto: string;
}

/**
 * upstreamHeaders returns a flat [name, value, ...] list for undici. With keepUpgrade
 * (WebSocket handshakes) Connection: Upgrade and Upgrade are kept. The last pair is
 * always X-Request-Id (see requestIdOf).
 */
export function upstreamHeaders(raw: readonly string[], facts: ForwardFacts, keepUpgrade = false): string[] {
  const out: string[] = [];
  let connectionTokens: string | undefined;
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let host: string | undefined;
  let realIp: string | undefined;
  let requestId: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = lowerName(name);
    if (lower === 'connection') {
      connectionTokens = connectionTokens === undefined ? value : `${connectionTokens},${value}`;
      continue;
    }
    if (lower === 'host') host = value;
    if (lower.startsWith('x-forwarded-')) {
      if (facts.trusted) {
        if (lower === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        else if (lower === 'x-forwarded-proto') forwardedProto ??= value;
        else if (lower === 'x-forwarded-host') forwardedHost ??= value;
        else out.push(name, value);
      }
      continue;
    }
    if (lower === 'x-request-id') {
      if (facts.trusted && requestId === undefined && acceptableRequestId(value)) requestId = value;
      continue;
    }
    if (lower === 'x-real-ip') {
      if (facts.trusted) realIp ??= value;
      continue;
    }
    if (!facts.trusted && CLIENT_ADDRESS_HEADERS.has(lower)) continue;
    if (HOP_BY_HOP.has(lower)) {
      if (keepUpgrade && lower === 'upgrade') out.push(name, value);
      continue;
    }
    out.push(name, value);
  }
  if (connectionTokens !== undefined) removeConnectionTokens(out, connectionTokens);
  if (keepUpgrade) out.push('connection', 'upgrade');
  out.push('x-forwarded-for', forwardedFor === undefined ? facts.peerAddress : `${forwardedFor}, ${facts.peerAddress}`);
  out.push('x-forwarded-proto', forwardedProto ?? facts.proto);
  if (forwardedHost !== undefined || host !== undefined) out.push('x-forwarded-host', (forwardedHost ?? host)!);
  out.push('x-real-ip', realIp ?? facts.clientAddress ?? facts.peerAddress);
  out.push('x-request-id', requestId ?? nextRequestId());
  return out;
}

/** requestIdOf is the X-Request-Id of a list built by upstreamHeaders (always its last value). */
export function requestIdOf(headers: readonly string[]): string {
  return headers[headers.length - 1]!;
}

/** Removes headers the client listed in Connection (they are hop-by-hop too). */
function removeConnectionTokens(out: string[], tokens: string): void {
  const names = new Set<string>();
  for (const token of tokens.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade') names.add(t);
  }
  if (names.size === 0) return;
  for (let i = out.length - 2; i >= 0; i -= 2) {
    const lower = out[i]!.toLowerCase();
    if (names.has(lower) && lower !== 'host') out.splice(i, 2);
  }
}
