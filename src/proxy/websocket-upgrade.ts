/**
 * The WebSocket upgrade path of the proxy: a handshake is checked (connection limit,
 * shutdown, malformed upgrade, path rules, partition key), routed like an HTTP request,
 * and handed to a tunnel to the chosen backend (src/proxy/websocket-tunnel.ts). It lives
 * apart from ProxyServer so that the listener does not also carry the tunnel's routing,
 * retry and accounting; what it needs of the proxy is the narrow UpgradeHost.
 *
 * It reads the handshake as a ParsedRequest (the raw listener hands over its codec's
 * RequestHead as it is). Routing facts and the access log's fields come from one
 * RawRequestView over the header list, as for HTTP requests.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { bytesInOf, type AccessLog, type AccessEntry } from './access-log.js';
import type { BackendView } from '../pool/snapshot.js';
import { judgePath } from '../routing/path-rules.js';
import type { Decision, RequestFacts } from '../routing/types.js';
import { closeAfter } from './close-socket.js';
import type { ConnectionLimit } from './connection-limit.js';
import { type ErrorPage, rawErrorResponse } from './error-pages.js';
import { isSessionless, type Placement } from './placement.js';
import type { ProxyDeps } from './proxy-server.js';
import { backendHeadLimit, type ProxySettings } from './proxy-settings.js';
import { requestIdOf, upstreamHeaders } from './request-headers.js';
import { type ParsedRequest, refusedUpgrade } from './request-checks.js';
import { RawRequestView } from './front/request-view.js';
import { openTunnel, type HandshakeFailure } from './websocket-tunnel.js';
import { NO_RESOURCES_ERRNO } from './upstream/errors.js';

/** The log line for each way a backend can fail a WebSocket handshake. */
const HANDSHAKE_FAILURES: Record<HandshakeFailure, string> = {
  timeout: 'backend did not answer a websocket handshake in time',
  closed: 'backend closed the connection before answering a websocket handshake',
  'not-http': 'backend answered a websocket handshake with something that is not HTTP',
  'not-websocket': 'backend answered a websocket handshake with a switch to another protocol (or a 1xx): not relayed',
};

/**
 * UpgradeHost is what the upgrade path needs of the proxy server that took the handshake.
 * `settings` and `closing` are read at each handshake (a reload or a shutdown is seen at once).
 */
export interface UpgradeHost {
  readonly settings: ProxySettings;
  /** The proxy is shutting down: new handshakes are answered 503. */
  readonly closing: boolean;
  /** The proxy's collaborators (the same object: a reload's pages and trusted proxies are seen at once). */
  readonly deps: Pick<ProxyDeps, 'pages' | 'trusted' | 'sessions' | 'observer' | 'logger'>;
  readonly placement: Placement;
  readonly connections: ConnectionLimit;
  readonly access: AccessLog;
  readonly missingKeyPage: ErrorPage;
  /** trackTunnel counts an open tunnel to a backend, for graceful shutdown and `disable --close`. */
  trackTunnel(socket: Duplex, backendId: string): void;
  /**
   * untrackTunnel stops counting it: `closed`, the socket closed for good (shutdown may now
   * find the proxy idle); otherwise it is about to be tunnelled to another backend.
   */
  untrackTunnel(socket: Duplex, closed: boolean): void;
}

/** WebSocketUpgrade answers the WebSocket handshakes the raw listener hands over; see the file comment. */
export class WebSocketUpgrade {
  readonly #host: UpgradeHost;

  constructor(host: UpgradeHost) {
    this.#host = host;
  }

  /**
   * onUpgrade serves one handshake: `socket` is the client connection, no parser's any
   * more; `head` holds the bytes the client sent past the request head, written to the
   * backend only once it has switched protocols.
   */
  onUpgrade(req: ParsedRequest, socket: Socket, head: Buffer): void {
    const host = this.#host;
    const { settings } = host;
    // The parser has let go of the socket: nothing else will handle its errors.
    socket.on('error', () => socket.destroy());
    const refused = host.closing || host.connections.refuses(socket);
    if (refused || refusedUpgrade(req)) {
      closeAfter(socket, rawErrorResponse(host.deps.pages[refused ? 503 : 400]));
      return;
    }
    const peer = socket.remoteAddress ?? '';
    const url = req.target;
    const view = new RawRequestView(peer, url, req.headers);
    const facts = host.placement.factsOf(view, settings);
    const startedAt = performance.now();
    let decision: Decision | undefined;
    let choiceCookie: string | undefined;
    const rules = settings.paths;
    if (rules !== undefined) {
      const verdict = judgePath(rules, url, facts.clientAddress);
      if (verdict.kind === 'bad-path' || verdict.kind === 'denied') {
        const status = verdict.kind === 'bad-path' ? 400 : 403;
        if (settings.accessLog) host.access.write(handshakeEntry(req, view, socket, facts.clientAddress, startedAt, status, verdict.kind === 'bad-path' ? 'bad-path' : 'path-denied', undefined));
        closeAfter(socket, rawErrorResponse(host.deps.pages[status]));
        return;
      }
      if (verdict.kind === 'stateless') decision = host.placement.routeStateless();
      else if (verdict.kind === 'allowed') {
        const choice = host.placement.choice(url, view.cookie, verdict.rule, settings);
        decision = choice?.decision;
        choiceCookie = choice?.cookie;
      }
    }
    if (decision === undefined && settings.partitionKeyRequired && facts.partitionKey === undefined) {
      closeAfter(socket, rawErrorResponse(host.missingKeyPage));
      return;
    }
    const headers = upstreamHeaders(req.headers, { peerAddress: peer, clientAddress: facts.clientAddress, trusted: host.deps.trusted.trusts(peer), proto: settings.proto }, true);
    let requestHead = `${req.method} ${url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) requestHead += `${headers[i]}: ${headers[i + 1]}\r\n`;
    requestHead += '\r\n';
    // The tunnel keeps only what it needs (not the request or its view) for as long as it is open.
    const entry = settings.accessLog ? handshakeEntry(req, view, socket, facts.clientAddress, startedAt, 0, undefined, requestIdOf(headers)) : undefined;
    this.#tunnel(socket, requestHead, head, { startedAt, choiceCookie, entry }, facts, decision ?? host.placement.route(facts), undefined);
  }

  /** `log` is what the tunnel keeps of the handshake request: its start and access-log entry (filled in at the answer), and a backend-choice cookie to set. */
  #tunnel(socket: Socket, requestHead: string, head: Buffer, log: { startedAt: number; choiceCookie?: string | undefined; entry: AccessEntry | undefined }, facts: RequestFacts, decision: Decision, refused: Set<string> | undefined, attempt = 0): void {
    const host = this.#host;
    const { deps, placement } = host;
    if (decision.kind === 'unavailable') {
      closeAfter(socket, rawErrorResponse(deps.pages[503]));
      return;
    }
    const resolving = placement.resolvePartition(decision, facts, refused, attempt, (next) => {
      if (!socket.destroyed) this.#tunnel(socket, requestHead, head, log, facts, next, refused, attempt + 1);
    });
    if (resolving) {
      resolving.catch(() => closeAfter(socket, rawErrorResponse(deps.pages[503])));
      return;
    }
    const { backend } = decision;
    const sessions = deps.sessions;
    // A stateless or chosen-server tunnel is no session: not counted (nor its WebSocket).
    const sessionless = isSessionless(decision);
    const clientId = sessionless ? placement.countRequest(backend.id) : placement.commit(decision, facts, undefined);
    let opened = false;
    host.trackTunnel(socket, backend.id);
    const untrack = (): void => host.untrackTunnel(socket, true);
    socket.once('close', untrack);
    openTunnel(socket, requestHead, head, this.#tunnelTarget(backend), {
      onConnectError: (err) => {
        if (NO_RESOURCES_ERRNO.has(err.code ?? '')) {
          // The balancer is out of descriptors: not the backend's fault, and no retry helps.
          host.connections.resourceFailure(err.code!);
          closeAfter(socket, rawErrorResponse(deps.pages[503]));
          return true;
        }
        sessions.accounting.counters(backend.id).errors++;
        deps.observer?.backendFailed(backend.id);
        deps.logger.warn({ backend: backend.id, code: err.code }, 'websocket backend unreachable');
        if ((decision.reason === 'new-session' || decision.reason === 'replaced' || decision.reason === 'partition-new' || decision.reason === 'stateless') && err.code === 'ECONNREFUSED') {
          const skip = (refused ??= new Set()).add(backend.id);
          const next = placement.reroute(decision.reason, facts, skip);
          if (next.kind === 'backend') {
            socket.off('close', untrack);
            host.untrackTunnel(socket, false);
            this.#tunnel(socket, requestHead, head, log, facts, next, skip);
            return true;
          }
        }
        closeAfter(socket, rawErrorResponse(deps.pages[err.code === 'ETIMEDOUT' ? 504 : 502]));
        return true;
      },
      onHandshake: (status, extra) => {
        if (status === 101 && !sessionless) {
          opened = true;
          sessions.accounting.websocketOpened(clientId, backend.id, facts.partitionKey, decision.clientId !== undefined);
        }
        if (decision.setCookie) extra.push('set-cookie', sessions.setCookieHeader(clientId, backend.id));
        if (log.choiceCookie !== undefined) extra.push('set-cookie', log.choiceCookie);
        if (host.settings.accessLog && log.entry !== undefined) {
          host.access.write({ ...log.entry, status, backend: backend.id, route: decision.reason, ms: Math.round((performance.now() - log.startedAt) * 100) / 100 });
        }
      },
      onBadResponse: (why) => {
        sessions.accounting.counters(backend.id).errors++;
        deps.observer?.backendFailed(backend.id);
        deps.logger.warn(
          { backend: backend.id },
          HANDSHAKE_FAILURES[why],
        );
        closeAfter(socket, rawErrorResponse(deps.pages[why === 'timeout' ? 504 : 502]));
      },
      onClose: (bytesIn, bytesOut, idledOut) => {
        const counters = sessions.accounting.counters(backend.id);
        counters.bytesOut += bytesOut;
        counters.bytesIn += bytesIn;
        if (opened) sessions.accounting.websocketClosed(clientId, backend.id);
        if (idledOut) deps.logger.debug({ backend: backend.id }, 'websocket closed after idle timeout');
      },
    });
  }

  #tunnelTarget(backend: BackendView) {
    const { settings } = this.#host;
    return {
      url: backend.url,
      connectTimeout: settings.connectTimeout,
      handshakeTimeout: settings.responseTimeout,
      idleTimeout: settings.websocketIdle,
      maxHeaderBytes: backendHeadLimit(settings),
    };
  }
}

/**
 * handshakeEntry is the access-log entry of a WebSocket handshake (bytes in: the handshake's
 * head). Its version is 1.1: refusedUpgrade lets no other through.
 */
function handshakeEntry(req: ParsedRequest, view: RawRequestView, socket: Socket, client: string, startedAt: number, status: number, route: string | undefined, requestId: string | undefined): AccessEntry {
  return {
    client,
    method: req.method,
    host: view.host,
    path: req.target,
    httpVersion: '1.1',
    status,
    backend: undefined,
    route,
    ms: Math.round((performance.now() - startedAt) * 100) / 100,
    bytesIn: bytesInOf(socket),
    bytesOut: 0,
    userAgent: view.userAgent,
    referer: view.referer,
    requestId,
    outcome: undefined,
    websocket: true,
  };
}
