/**
 * ProxyServer is the client-facing listener. For each request (or WebSocket handshake)
 * it gathers the routing facts, asks the router, and forwards to the chosen backend; it
 * never decides where a request goes itself. It also answers malformed requests (400),
 * oversize headers (431), and closes gracefully: stop accepting, let in-flight requests
 * finish within a grace period, then cut what is left.
 *
 * The HTTP request path and shutdown live here; the rest is in its own file: routing facts,
 * decisions and their side effects in placement.ts, the WebSocket upgrade path in
 * websocket-upgrade.ts, per-backend in-flight counts in backend-in-flight.ts, and writing
 * the balancer's own pages in error-pages.ts. The listener is the raw-socket one
 * (src/proxy/front/): it parses requests with the strict codec, and FrontRelay forwards
 * them over the backend pools of src/proxy/upstream/.
 */
import { listenOn } from './listen.js';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Pool } from '../pool/pool.js';
import { judgePath } from '../routing/path-rules.js';
import type { Decision } from '../routing/types.js';
import type { SessionContext } from '../sessions/session-context.js';
import { type ErrorPage, type ErrorPages, type ErrorStatus, missingPartitionKeyPage } from './error-pages.js';
import type { ExchangeOutcome } from './exchange-outcome.js';
import { backendHeadLimit, type ProxySettings } from './proxy-settings.js';
import { requestIdOf, upstreamHeaders } from './request-headers.js';
import type { AccessLog } from './access-log.js';
import type { TrustedProxies } from './trusted-proxies.js';
import { ConnectionLimit, type ConnectionCounts } from './connection-limit.js';
import { gateProxyProtocol } from './proxy-protocol-gate.js';
import { BackendInFlight } from './backend-in-flight.js';
import { isSessionless, Placement } from './placement.js';
import { WebSocketUpgrade } from './websocket-upgrade.js';
import { FrontRelay, type RelayHost } from './front/relay.js';
import type { FrontSettings } from './front/front-connection.js';
import type { FrontRequest } from './front/front-request.js';
import { RawListener } from './front/raw-listener.js';
import { RawRequestView } from './front/request-view.js';
import type { Server as NetServer } from 'node:net';
import type { UpstreamPools } from './upstream/pools.js';
import { healthAnswer, isHealthPath } from './health-path.js';
import { statusText } from './status-text.js';

/**
 * ProxyObserver hears what happened to forwarded requests, so outlier detection, Servoy
 * maintenance handling and metrics can react without the proxy knowing them.
 */
export interface ProxyObserver {
  /** One exchange ended (not called for the balancer's own 503 when no backend was chosen). */
  requestFinished(backendId: string, outcome: ExchangeOutcome, seconds: number): void;
  /** A backend refused or could not be reached (counts as a proxy error). */
  backendFailed(backendId: string): void;
  /** A backend answered a new session with Servoy's maintenance 503. */
  backendInMaintenance(backendId: string): void;
}

/** ProxyDeps are the collaborators a ProxyServer is built from (all owned by the Balancer). */
export interface ProxyDeps {
  readonly pool: Pool;
  /** The backend connection pools (raw sockets). */
  readonly pools: UpstreamPools;
  readonly sessions: SessionContext;
  trusted: TrustedProxies;
  pages: ErrorPages;
  readonly logger: Logger;
  /** Where access-log lines go (stdout or log.file, in log.format). */
  readonly access: AccessLog;
  readonly settings: ProxySettings;
  readonly observer?: ProxyObserver;
  /**
   * Partition mode: the state store makes a new assignment (in one process through the
   * Balancer's PartitionAdmin, with `--workers` through the primary). Resolves true when the
   * key is now durably on the decision's backend (forward as decided), false when it lives
   * elsewhere (the partition view was updated: route again); a rejection answers 503. See
   * src/control/partition-admin.ts and src/cluster/worker-partitions.ts.
   */
  readonly resolvePartition?: (key: string, backendId: string) => Promise<boolean>;
}

/** ListenOptions say where and how the proxy listens. */
export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  readonly maxHeaderBytes: number;
  readonly maxConnections: number;
  readonly clientIdle: number;
}

/** ProxyServer forwards client traffic; see the file comment. */
export class ProxyServer implements RelayHost {
  settings: ProxySettings;
  readonly #deps: ProxyDeps;
  /** In-flight HTTP exchanges and open tunnels, for graceful shutdown. */
  #inFlight = 0;
  /** Open tunnels: client socket to backend id. */
  readonly #tunnels = new Map<Duplex, string>();
  #closing = false;
  #idleWaiters: (() => void)[] = [];
  readonly #missingKeyPage: ErrorPage = missingPartitionKeyPage();
  readonly #connections: ConnectionLimit;
  /** HTTP requests in flight per backend (see BackendInFlight). */
  readonly #backendInFlight = new BackendInFlight();
  /** Routing facts, decisions and their side effects, shared with the upgrade path. */
  readonly #placement: Placement;
  readonly #upgrades: WebSocketUpgrade;
  readonly #raw: RawListener;

  constructor(deps: ProxyDeps, listen: ListenOptions) {
    this.#deps = deps;
    this.settings = deps.settings;
    const proxy = this;
    const front: FrontSettings = {
      maxHeaderBytes: listen.maxHeaderBytes,
      // A whole request may take as long as it needs (gigabyte uploads), but its headers must arrive within a minute.
      headersTimeout: Math.min(listen.clientIdle, 60_000),
      keepAliveTimeout: listen.clientIdle,
      get bodyIdleTimeout() {
        return proxy.settings.clientIdle;
      },
      get pages() {
        return proxy.#deps.pages;
      },
      get closing() {
        return proxy.#closing;
      },
    };
    this.#raw = new RawListener(listen.tls, front, {
      request: (req) => this.#onRawRequest(req),
      upgrade: (head, socket, rest) => this.#upgrades.onUpgrade(head, socket, rest),
      malformed: (status, reason) => deps.logger.debug({ status, reason }, 'malformed request'),
    });
    const listener = this.#listener;
    this.#connections = new ConnectionLimit(listener, listen.maxConnections, deps.logger);
    // After every 'connection' listener (TLS's, ConnectionLimit's): they run once a PROXY header is read.
    gateProxyProtocol(listener, {
      enabled: () => this.settings.proxyProtocol,
      trusts: (address) => this.#deps.trusted.trusts(address),
      rejected: (peer, reason) => deps.logger.debug({ peer, reason }, 'PROXY protocol: connection closed'),
    });
    this.#placement = new Placement(deps, this.#backendInFlight.of);
    // Made once: the upgrade path reads settings and shutdown state through it at each handshake.
    this.#upgrades = new WebSocketUpgrade({
      get settings() {
        return proxy.settings;
      },
      get closing() {
        return proxy.#closing;
      },
      deps,
      placement: this.#placement,
      connections: this.#connections,
      access: deps.access,
      missingKeyPage: this.#missingKeyPage,
      trackTunnel: (socket, backendId) => {
        this.#tunnels.set(socket, backendId);
      },
      untrackTunnel: (socket, closed) => {
        if (this.#tunnels.delete(socket) && closed && this.#inFlight === 0 && this.#tunnels.size === 0) this.#wakeIdleWaiters();
      },
    });
  }

  /** #listener is the server that listens. */
  get #listener(): NetServer {
    return this.#raw.server;
  }

  /** listen binds the port; resolves with the address actually bound (port 0 picks one). */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const bound = await listenOn(this.#listener, host, port);
    this.#connections.checkOpenFileLimit();
    return bound;
  }

  /** setSecureContext applies a reloaded certificate (listen.tls) to new connections. */
  setSecureContext(options: { cert: Buffer; key: Buffer }): void {
    this.#raw.setSecureContext({ ...options, minVersion: 'TLSv1.2' });
  }

  /** connections are the client listener's connection figures (open, refused, dropped). */
  get connections(): ConnectionCounts {
    return this.#connections.counts;
  }

  /** reconfigure applies reloaded settings; requests in flight finish with the old ones. */
  reconfigure(update: { settings: ProxySettings; trusted: TrustedProxies; pages: ErrorPages }): void {
    this.settings = update.settings;
    this.#deps.trusted = update.trusted;
    this.#deps.pages = update.pages;
  }

  // ---- HTTP ----------------------------------------------------------------------------

  /** #onRawRequest takes a request the raw listener parsed (the codec already refused malformed heads). */
  #onRawRequest(req: FrontRequest): void {
    const pages = this.#deps.pages;
    if (this.#connections.refuses(req.socket)) {
      req.keepAlive = false;
      req.sendPage(pages[503]);
      return;
    }
    const { head } = req;
    if (isHealthPath(head.target, this.settings.healthPath)) {
      const answer = healthAnswer(head.method, this.#deps.pool.snapshot, this.settings.stateHealth, this.#closing);
      if (req.body !== undefined) req.keepAlive = false;
      const headers: string[] = [];
      for (const [name, value] of Object.entries(answer.headers)) headers.push(name, String(value));
      req.writeHead(answer.status, statusText(answer.status), headers, Buffer.byteLength(answer.text), true);
      req.end(Buffer.from(answer.text));
      return;
    }
    const startedAt = performance.now();
    if (this.#closing) req.keepAlive = false;
    const peer = req.socket.remoteAddress ?? '';
    const view = new RawRequestView(peer, head.target, head.headers);
    const facts = this.#placement.factsOf(view, this.settings);
    const headers = upstreamHeaders(head.headers, { peerAddress: peer, clientAddress: facts.clientAddress, trusted: this.#deps.trusted.trusts(peer), proto: this.settings.proto });
    const relay = new FrontRelay(this, req, facts, headers, startedAt, view);
    this.#inFlight++;
    this.#route(relay, head.target, view.cookie);
  }

  /**
   * #route is the request path once a request is parsed and counted in flight: path rules,
   * partition-key checks, routing and dispatch.
   */
  #route(exchange: FrontRelay, url: string, cookie: string | undefined): void {
    const { facts } = exchange;
    const rules = this.settings.paths;
    if (rules !== undefined) {
      // Path rules come before any routing (SPEC "Path rules").
      const verdict = judgePath(rules, url, facts.clientAddress);
      switch (verdict.kind) {
        case 'bad-path':
          this.#deps.logger.debug({ path: url, why: verdict.reason }, 'path cannot be normalised safely: 400');
          exchange.pathVerdict = 'bad-path';
          exchange.fail(400, 'bad-request');
          return;
        case 'denied':
          exchange.pathVerdict = 'path-denied';
          exchange.fail(403, 'ok');
          return;
        case 'stateless':
          this.#dispatch(exchange, this.#placement.routeStateless());
          return;
        case 'allowed': {
          const choice = this.#placement.choice(url, cookie, verdict.rule, this.settings);
          if (choice === undefined) break;
          exchange.choiceCookie = choice.cookie;
          if (choice.decision === undefined) break;
          this.#dispatch(exchange, choice.decision);
          return;
        }
        case 'none':
          break;
      }
    }
    if (this.settings.partitionKeyRequired && facts.partitionKey === undefined) {
      exchange.answerPage(this.#missingKeyPage, 'bad-request');
      return;
    }
    this.#dispatch(exchange, this.#placement.route(facts));
  }

  #dispatch(exchange: FrontRelay, decision: Decision, attempt = 0): void {
    if (decision.kind === 'unavailable') {
      exchange.fail(503, 'ok');
      return;
    }
    const resolving = this.#placement.resolvePartition(decision, exchange.facts, exchange.refused, attempt, (next) => this.#dispatch(exchange, next, attempt + 1));
    if (resolving) {
      resolving.catch(() => exchange.fail(503, 'ok'));
      return;
    }
    const { backend } = decision;
    const clientId = isSessionless(decision) ? this.#placement.countRequest(backend.id) : this.#placement.commit(decision, exchange.facts, exchange.clientId);
    if (this.settings.paths?.hasStateless === true || exchange.inFlightOn !== undefined) this.#backendInFlight.enter(exchange, backend.id);
    exchange.backend = backend;
    exchange.reason = decision.reason;
    exchange.setCookie = decision.setCookie;
    exchange.clientId = clientId;
    exchange.dispatch(this.#deps.pools.get(backend, backendHeadLimit(this.settings)));
  }

  retry(exchange: FrontRelay): boolean {
    // Only a new session (or a partition assigned this instant, or a stateless request) may move, and only if no byte of its body was read.
    if (exchange.reason !== 'new-session' && exchange.reason !== 'replaced' && exchange.reason !== 'partition-new' && exchange.reason !== 'stateless') return false;
    if (exchange.bodyTouched) return false;
    const { backend } = exchange;
    const skip = new Set(exchange.refused).add(backend.id);
    const decision = this.#placement.reroute(exchange.reason, exchange.facts, skip);
    if (decision.kind === 'unavailable') return false;
    // The refused attempt ends here: count it against its backend (finished() counts the last one).
    this.#deps.sessions.accounting.counters(backend.id).errors++;
    this.#deps.observer?.backendFailed(backend.id);
    this.#deps.logger.warn({ backend: backend.id }, 'backend refused the connection; request sent to the next backend');
    exchange.prepareRetry();
    this.#dispatch(exchange, decision);
    return true;
  }

  resourceFailure(code: string): void {
    this.#connections.resourceFailure(code);
  }

  maintenance(exchange: FrontRelay): boolean {
    const { backend } = exchange;
    this.#deps.observer?.backendInMaintenance(backend.id);
    const skip = new Set(exchange.refused).add(backend.id);
    return this.#placement.route(exchange.facts, skip).kind === 'backend';
  }

  retryUnavailable(exchange: FrontRelay): boolean {
    if (exchange.unavailableRetried) return false;
    const skip = new Set(exchange.refused).add(exchange.backend.id);
    if (this.#placement.routeStateless(skip).kind !== 'backend') return false;
    exchange.unavailableRetried = true;
    this.#deps.logger.debug({ backend: exchange.backend.id }, 'a stateless request was answered 503; sent to another backend once');
    return true;
  }

  redispatch(exchange: FrontRelay): void {
    exchange.prepareRetry();
    const decision = this.#placement.reroute(exchange.reason, exchange.facts, exchange.refused);
    if (decision.kind === 'unavailable') exchange.fail(503, 'ok');
    else this.#dispatch(exchange, decision);
  }

  responseHeaders(exchange: FrontRelay, headers: string[]): void {
    if (exchange.setCookie) headers.push('set-cookie', this.#deps.sessions.setCookieHeader(exchange.clientId, exchange.backend.id));
    if (exchange.choiceCookie !== undefined) headers.push('set-cookie', exchange.choiceCookie);
  }

  get sessionCookiePrefix(): string {
    return this.settings.sessionCookiePrefix;
  }

  learnSetCookie(exchange: FrontRelay, value: string): void {
    this.#deps.sessions.learned.learnFromSetCookie(value, this.settings.sessionCookieName, exchange.backend.id);
  }

  sendError(exchange: FrontRelay, status: ErrorStatus): void {
    exchange.sendPage(this.#deps.pages[status]);
  }

  finished(exchange: FrontRelay, outcome: ExchangeOutcome): void {
    this.#backendInFlight.leave(exchange);
    const backendId = exchange.backend?.id;
    const elapsedMs = performance.now() - exchange.startedAt; // read once: the metrics and the access log agree
    if (backendId !== undefined) {
      const counters = this.#deps.sessions.accounting.counters(backendId);
      counters.bytesOut += exchange.bytesOut;
      if (outcome === 'client-abort' || outcome === 'client-timeout') counters.clientAborts++;
      else if (outcome === 'backend-error' || outcome === 'timeout') counters.errors++;
      this.#deps.observer?.requestFinished(backendId, outcome, elapsedMs / 1000);
    }
    if (this.settings.accessLog) {
      this.#deps.access.write({
        client: exchange.facts.clientAddress,
        ...exchange.accessFields(),
        status: exchange.status,
        backend: backendId,
        route: exchange.reason ?? exchange.pathVerdict,
        ms: Math.round(elapsedMs * 100) / 100,
        bytesOut: exchange.bytesOut,
        requestId: requestIdOf(exchange.upstreamHeaders),
        outcome,
        websocket: false,
      });
    }
    this.#requestDone();
  }

  #requestDone(): void {
    this.#inFlight--;
    if (this.#inFlight === 0 && this.#tunnels.size === 0) this.#wakeIdleWaiters();
  }

  // ---- shutdown ------------------------------------------------------------------------

  /**
   * close stops accepting, lets in-flight requests and open tunnels finish for up to
   * graceMs, then destroys whatever is left. Idle keep-alive connections close at once.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    this.#connections.stop();
    const closed = new Promise<void>((resolve) => this.#listener.close(() => resolve()));
    this.#raw.closeIdle();
    const idle = new Promise<void>((resolve) => {
      if (this.#inFlight === 0 && this.#tunnels.size === 0) resolve();
      else this.#idleWaiters.push(resolve);
    });
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([idle, grace]);
    clearTimeout(timer);
    for (const socket of this.#tunnels.keys()) socket.destroy();
    this.#raw.destroyAll();
    await closed;
  }

  /**
   * closeTunnels closes every open WebSocket tunnel to a backend (`disable ID --close`):
   * disabling alone leaves them open until they end. Closing the client side closes the
   * backend side too; the client sees the connection drop and reconnects through the
   * balancer, to another backend. Returns how many were closed.
   */
  closeTunnels(backendId: string): number {
    let closed = 0;
    for (const [socket, id] of this.#tunnels) {
      if (id !== backendId) continue;
      socket.destroy();
      closed++;
    }
    return closed;
  }

  /** inFlight is the number of HTTP requests being served right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
    if (this.#closing) this.#raw.closeIdle();
  }
}

