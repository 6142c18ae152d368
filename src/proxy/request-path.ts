/**
 * RequestPath is the proxy's HTTP request path, from a parsed request to its end: the
 * request entry (connection limit, the health path, routing facts, the backend's headers),
 * path rules and partition-key checks, the router's decision and its dispatch to a backend
 * pool, and the relay's host (RelayHost): retry on refusal, Servoy maintenance and
 * stateless 503 redispatch, the affinity cookie, session-id learning, and the one
 * finished() per request that counts it and writes its access-log line. It never decides
 * where a request goes itself: Placement asks the router. ProxyServer (proxy-server.ts)
 * owns the listener and shutdown and hands every request here.
 */
import type { Decision } from '../routing/types.js';
import { judgePath } from '../routing/path-rules.js';
import type { BackendInFlight } from './backend-in-flight.js';
import type { ConnectionLimit } from './connection-limit.js';
import type { ErrorPage, ErrorStatus } from './error-pages.js';
import type { ExchangeOutcome } from './exchange-outcome.js';
import { accessRecord } from './access-log.js';
import { healthAnswer, isHealthPath } from './health-path.js';
import { isSessionless, type Placement } from './placement.js';
import type { ProxyDeps } from './proxy-server.js';
import { backendHeadLimit, type ProxySettings } from './proxy-settings.js';
import { requestIdOf, upstreamHeaders } from './request-headers.js';
import { statusText } from './status-text.js';
import { FrontRelay, type RelayHost } from './front/relay.js';
import type { FrontRequest } from './front/front-request.js';
import { RawRequestView } from './front/request-view.js';

/** RequestPathHost is what the request path reads of the proxy server that owns it. */
export interface RequestPathHost {
  /** The settings in force (a reload replaces them; requests in flight keep theirs). */
  readonly settings: ProxySettings;
  /** The balancer shuts down: answers close their connections. */
  readonly closing: boolean;
  /** The last request in flight ended (shutdown waits for it). */
  requestsIdle(): void;
}

/** RequestPathParts are the collaborators a RequestPath shares with the rest of the proxy. */
export interface RequestPathParts {
  readonly deps: ProxyDeps;
  readonly connections: ConnectionLimit;
  readonly placement: Placement;
  readonly backendInFlight: BackendInFlight;
  readonly missingKeyPage: ErrorPage;
}

/** RequestPath serves HTTP requests for one ProxyServer; see the file comment. */
export class RequestPath implements RelayHost {
  readonly #host: RequestPathHost;
  readonly #deps: ProxyDeps;
  readonly #connections: ConnectionLimit;
  /** Routing facts, decisions and their side effects, shared with the upgrade path. */
  readonly #placement: Placement;
  /** HTTP requests in flight per backend (see BackendInFlight). */
  readonly #backendInFlight: BackendInFlight;
  readonly #missingKeyPage: ErrorPage;
  /** The access-log entry finished() fills in for each request (AccessLog.write keeps no reference). */
  readonly #accessEntry = accessRecord();
  /** HTTP requests in flight, for graceful shutdown. */
  #inFlight = 0;

  constructor(host: RequestPathHost, parts: RequestPathParts) {
    this.#host = host;
    this.#deps = parts.deps;
    this.#connections = parts.connections;
    this.#placement = parts.placement;
    this.#backendInFlight = parts.backendInFlight;
    this.#missingKeyPage = parts.missingKeyPage;
  }

  /** settings are the proxy server's, read at each request. */
  get settings(): ProxySettings {
    return this.#host.settings;
  }

  get #closing(): boolean {
    return this.#host.closing;
  }

  /** inFlight is the number of HTTP requests being served right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** onRawRequest takes a request the raw listener parsed (the codec already refused malformed heads). */
  onRawRequest(req: FrontRequest): void {
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
      const entry = this.#accessEntry;
      entry.client = exchange.facts.clientAddress;
      exchange.fillAccessFields(entry);
      entry.status = exchange.status;
      entry.backend = backendId;
      entry.route = exchange.reason ?? exchange.pathVerdict;
      entry.ms = Math.round(elapsedMs * 100) / 100;
      entry.bytesOut = exchange.bytesOut;
      entry.requestId = requestIdOf(exchange.upstreamHeaders);
      entry.outcome = outcome;
      this.#deps.access.write(entry);
    }
    this.#requestDone();
  }

  #requestDone(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) this.#host.requestsIdle();
  }
}

