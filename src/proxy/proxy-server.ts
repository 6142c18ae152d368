/**
 * ProxyServer is the client-facing listener. For each request (or WebSocket handshake)
 * it gathers the routing facts, asks the router, and forwards to the chosen backend; it
 * never decides where a request goes itself. It also answers malformed requests (400),
 * oversize headers (431), and closes gracefully: stop accepting, let in-flight requests
 * finish within a grace period, then cut what is left.
 */
import { listenOn } from './listen.js';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Pool } from '../pool/pool.js';
import type { BackendView } from '../pool/snapshot.js';
import { route } from '../routing/router.js';
import { choiceFromCookies, choiceFromQuery, choiceSetCookie, routeChosen, signChoice } from '../routing/backend-choice.js';
import { judgePath, type PathRule } from '../routing/path-rules.js';
import { routeStateless } from '../routing/stateless.js';
import { readCookies, sessionIdFromPath } from '../routing/request-cookies.js';
import type { Decision, RequestFacts } from '../routing/types.js';
import type { SessionContext } from '../sessions/session-context.js';
import { type ErrorPage, type ErrorPages, type ErrorStatus, missingPartitionKeyPage, rawErrorResponse } from './error-pages.js';
import { HttpExchange, NO_RESOURCES, type ExchangeHost, type ExchangeOutcome } from './http-exchange.js';
import type { ProxySettings } from './proxy-settings.js';
import { upstreamHeaders } from './request-headers.js';
import type { TrustedProxies } from './trusted-proxies.js';
import type { Upstreams } from './upstreams.js';
import { ConnectionLimit, type ConnectionCounts, descriptorsNeeded, openFileLimit } from './connection-limit.js';
import { openTunnel, type HandshakeFailure } from './websocket-tunnel.js';
import { closeAfter } from './close-socket.js';
import { malformedRequest, refusedUpgrade } from './request-checks.js';

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
  readonly upstreams: Upstreams;
  readonly sessions: SessionContext;
  trusted: TrustedProxies;
  pages: ErrorPages;
  readonly logger: Logger;
  readonly settings: ProxySettings;
  readonly observer?: ProxyObserver;
  /** Partition mode: makes a new assignment durable before the request is forwarded. */
  readonly assignPartition?: (key: string, backendId: string) => void;
  /**
   * Partition mode with `--workers` (instead of assignPartition): the primary makes a new
   * assignment. Resolves true when the key is now durably on the decision's backend (forward
   * as decided), false when it lives elsewhere (the worker's partition view was updated:
   * route again); a rejection answers 503. See src/cluster/worker-partitions.ts.
   */
  readonly resolvePartition?: (key: string, backendId: string) => Promise<boolean>;
}

/** The log line for each way a backend can fail a WebSocket handshake. */
const HANDSHAKE_FAILURES: Record<HandshakeFailure, string> = {
  timeout: 'backend did not answer a websocket handshake in time',
  closed: 'backend closed the connection before answering a websocket handshake',
  'not-http': 'backend answered a websocket handshake with something that is not HTTP',
  'not-websocket': 'backend answered a websocket handshake with a switch to another protocol (or a 1xx): not relayed',
};

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
export class ProxyServer implements ExchangeHost {
  readonly server: Server;
  settings: ProxySettings;
  readonly #deps: ProxyDeps;
  readonly #access: Logger;
  /** In-flight HTTP exchanges and open tunnels, for graceful shutdown. */
  #inFlight = 0;
  readonly #tunnels = new Set<Duplex>();
  #closing = false;
  #idleWaiters: (() => void)[] = [];
  readonly #missingKeyPage: ErrorPage = missingPartitionKeyPage();
  readonly #connections: ConnectionLimit;
  /**
   * HTTP requests in flight per backend (stateless placement reads it): counted from
   * dispatch to the end of the exchange, moved on a retry. Kept only while some path rule
   * is stateless. WebSocket tunnels are not counted: one open for hours is no request
   * in flight, and would keep its server from stateless calls all that time.
   */
  readonly #backendInFlight = new Map<string, number>();
  /** Turn number for stateless placement: ties among the least busy are taken in turn. */
  #turn = 0;
  /** Answers after which the connection closes because a later pipelined request was malformed. */
  readonly #closingAfterAnswers = new WeakSet<ServerResponse>();

  constructor(deps: ProxyDeps, listen: ListenOptions) {
    this.#deps = deps;
    this.settings = deps.settings;
    this.#access = deps.logger.child({ log: 'access' });
    const options = {
      maxHeaderSize: listen.maxHeaderBytes,
      // Idle keep-alive connections close after clientIdle; a whole request may take as long
      // as it needs (gigabyte uploads), but its headers must arrive within a minute.
      keepAliveTimeout: listen.clientIdle,
      headersTimeout: Math.min(listen.clientIdle, 60_000),
      requestTimeout: 0,
      connectionsCheckingInterval: 5_000,
      // A missing Host gets the balancer's 400 page (#onRequest), not Node's bare 400.
      requireHostHeader: false,
    };
    this.server = listen.tls
      ? createHttpsServer({ ...options, cert: listen.tls.cert, key: listen.tls.key, minVersion: 'TLSv1.2' })
      : createHttpServer(options);
    this.#connections = new ConnectionLimit(this.server, listen.maxConnections, deps.logger);
    this.server.timeout = 0;
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
    // CONNECT asks for a raw tunnel to any address: this is not a forward proxy (without a
    // listener Node would drop the connection without an answer).
    this.server.on('connect', (_req: IncomingMessage, socket: Duplex) => closeAfter(socket, rawErrorResponse(this.#deps.pages[400])));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#onClientError(err, socket));
    // An Expect other than 100-continue: the balancer's 417 page instead of Node's bare one.
    this.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => this.#answerSelf(req, res, this.#deps.pages[417]));
  }

  /** listen binds the port; resolves with the address actually bound (port 0 picks one). */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const bound = await listenOn(this.server, host, port);
    const limit = openFileLimit();
    const { max, hardMax } = this.#connections;
    const needed = descriptorsNeeded(max);
    if (limit !== undefined && limit < hardMax + 256) {
      this.#deps.logger.warn(
        { openFileLimit: limit, needed, maxConnections: max },
        'the open-file limit is too low for limits.maxConnections: client connections will fail before the limit is reached (raise the hard limit, `ulimit -Hn` / LimitNOFILE, or lower limits.maxConnections)',
      );
    } else if (limit !== undefined && limit < needed) {
      this.#deps.logger.debug(
        { openFileLimit: limit, needed, maxConnections: max },
        'the open-file limit is below two descriptors per client connection: if every client holds a WebSocket (one backend connection each), descriptors run out before limits.maxConnections',
      );
    }
    return bound;
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

  // ---- routing -------------------------------------------------------------------------

  #facts(req: IncomingMessage): RequestFacts {
    const { settings } = this;
    const peer = req.socket.remoteAddress;
    const trusted = this.#deps.trusted;
    const xff = req.headers['x-forwarded-for'];
    const clientAddress = trusted.empty ? (peer ?? '') : trusted.clientAddress(peer, typeof xff === 'string' ? xff : undefined);
    const cookieHeader = req.headers.cookie;
    const cookies = readCookies(cookieHeader, settings.affinityCookieName, settings.sessionCookieName);
    const url = req.url ?? '/';
    const sessionId = cookies.session ?? (url.includes(';') ? sessionIdFromPath(url, settings.sessionCookieName) : undefined);
    if (settings.partitionKey === undefined) return { clientAddress, affinityCookie: cookies.affinity, sessionId };
    const partitionKey = settings.partitionKey({ host: req.headers.host, url, headers: req.headersDistinct, cookieHeader, clientAddress });
    return { clientAddress, affinityCookie: cookies.affinity, sessionId, partitionKey };
  }

  /**
   * place applies a decision's side effects before anything is forwarded: a new partition
   * assignment is made durable (so the answer the client gets is backed by it), and the
   * session is counted. Returns the client id, or undefined if the assignment failed.
   */
  #commit(decision: Extract<Decision, { kind: 'backend' }>, facts: RequestFacts, existingClientId: string | undefined): string | undefined {
    const { backend } = decision;
    const sessions = this.#deps.sessions;
    if (decision.assignPartition !== undefined) {
      try {
        this.#deps.assignPartition?.(decision.assignPartition, backend.id);
      } catch (err) {
        this.#deps.logger.error({ key: decision.assignPartition, err: (err as Error).message }, 'cannot store a new partition assignment; answering 503');
        return undefined;
      }
      this.#deps.logger.info({ key: decision.assignPartition, backend: backend.id }, 'partition assigned');
    }
    const clientId = decision.clientId ?? existingClientId ?? sessions.codec.newClientId();
    // A session counts as confirmed once its client presents the balancer's cookie.
    sessions.accounting.touch(clientId, backend.id, facts.partitionKey, decision.clientId !== undefined);
    if (facts.partitionKey !== undefined) sessions.partitions?.seen(facts.partitionKey);
    sessions.accounting.counters(backend.id).requests++;
    return clientId;
  }

  #route(facts: RequestFacts, exclude?: ReadonlySet<string>): Decision {
    return route(facts, this.#deps.pool.snapshot, this.#deps.sessions, exclude);
  }

  /** #reroute is where a request goes after its backend refused it (or, stateless, answered 503): by the rule that placed it. */
  #reroute(reason: string, facts: RequestFacts, exclude: ReadonlySet<string> | undefined): Decision {
    return reason === 'stateless' ? this.#routeStateless(exclude) : this.#route(facts, exclude);
  }

  #routeStateless(exclude?: ReadonlySet<string>): Decision {
    return routeStateless(this.#deps.pool.snapshot, this.#inFlightOf, this.#turn++, exclude);
  }

  readonly #inFlightOf = (backendId: string): number => this.#backendInFlight.get(backendId) ?? 0;

  /**
   * #choice is the backend an allowed client chose under an `allow` rule: from
   * `?servoy-lb-backend=ID` (the response then sets the choice cookie; an empty value
   * clears it), else from a genuine choice cookie for the rule's prefix. Undefined: no
   * choice, normal routing.
   */
  #choice(target: string, cookieHeader: string | undefined, rule: PathRule): { decision: Decision | undefined; cookie: string | undefined } | undefined {
    const { settings } = this;
    const codec = this.#deps.sessions.codec;
    const secure = this.#deps.sessions.cookie.secure;
    const asked = choiceFromQuery(target);
    if (asked === '') return { decision: undefined, cookie: `${settings.choiceCookieName}=; Path=${encodeURI(rule.prefix)}; Max-Age=0; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}` };
    if (asked !== undefined) {
      const decision = routeChosen(asked, this.#deps.pool.snapshot);
      const cookie = decision.kind === 'backend' ? choiceSetCookie(settings.choiceCookieName, signChoice(codec, rule.prefix, asked), rule.prefix, secure) : undefined;
      return { decision, cookie };
    }
    const chosen = choiceFromCookies(codec, cookieHeader, settings.choiceCookieName, rule.prefix);
    return chosen === undefined ? undefined : { decision: routeChosen(chosen, this.#deps.pool.snapshot), cookie: undefined };
  }

  /**
   * With `--workers`, a new partition's assignment is the primary's: ask it, then go on
   * with the decision (assigned as decided) or a new one (the key lives elsewhere). Returns
   * undefined when there is nothing to ask; the promise rejects when the primary cannot
   * answer (or keeps answering otherwise: at most 3 rounds).
   */
  #resolvePartition(decision: Extract<Decision, { kind: 'backend' }>, facts: RequestFacts, refused: ReadonlySet<string> | undefined, attempt: number, go: (next: Decision) => void): Promise<void> | undefined {
    const key = decision.assignPartition;
    const resolve = this.#deps.resolvePartition;
    if (key === undefined || resolve === undefined) return undefined;
    if (attempt >= 3) return Promise.reject(new Error('partition assignment did not settle'));
    return resolve(key, decision.backend.id).then((accepted) => go(accepted ? { ...decision, assignPartition: undefined } : this.#route(facts, refused)));
  }

  // ---- HTTP ----------------------------------------------------------------------------

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (this.#connections.refuses(req.socket)) {
      // Over limits.maxConnections: answered at once, nothing forwarded (see ConnectionLimit).
      this.#answerSelf(req, res, this.#deps.pages[503]);
      return;
    }
    const startedAt = performance.now();
    if (this.#closing) res.shouldKeepAlive = false;
    const facts = this.#facts(req);
    const peer = req.socket.remoteAddress ?? '';
    const headers = upstreamHeaders(req.rawHeaders, {
      peerAddress: peer,
      clientAddress: facts.clientAddress,
      trusted: this.#deps.trusted.trusts(peer),
      proto: this.settings.proto,
    });
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
    const exchange = new HttpExchange(this, req, res, facts, headers, hasBody, startedAt);
    this.#inFlight++;
    if (malformedRequest(req)) {
      exchange.fail(400, 'bad-request');
      return;
    }
    const url = req.url!;
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
          if (hasBody) exchange.watchBody(this.settings.clientIdle);
          this.#dispatch(exchange, this.#routeStateless());
          return;
        case 'allowed': {
          const choice = this.#choice(url, req.headers.cookie, verdict.rule);
          if (choice === undefined) break;
          exchange.choiceCookie = choice.cookie;
          if (choice.decision === undefined) break;
          if (hasBody) exchange.watchBody(this.settings.clientIdle);
          this.#dispatch(exchange, choice.decision);
          return;
        }
        case 'none':
          break;
      }
    }
    if (this.settings.partitionKeyRequired && facts.partitionKey === undefined) {
      exchange.status = 400;
      this.#sendPage(exchange, this.#missingKeyPage);
      exchange.end('bad-request');
      return;
    }
    if (hasBody) exchange.watchBody(this.settings.clientIdle);
    this.#dispatch(exchange, this.#route(facts));
  }

  #dispatch(exchange: HttpExchange, decision: Decision, attempt = 0): void {
    if (decision.kind === 'unavailable') {
      exchange.fail(503, 'ok');
      return;
    }
    const resolving = this.#resolvePartition(decision, exchange.facts, exchange.refused, attempt, (next) => this.#dispatch(exchange, next, attempt + 1));
    if (resolving) {
      resolving.catch(() => exchange.fail(503, 'ok'));
      return;
    }
    const { backend } = decision;
    const clientId = isSessionless(decision) ? this.#countRequest(backend.id) : this.#commit(decision, exchange.facts, exchange.clientId);
    if (clientId === undefined) {
      exchange.fail(503, 'ok');
      return;
    }
    if (this.settings.paths?.hasStateless === true || exchange.inFlightOn !== undefined) this.#enter(exchange, backend.id);
    exchange.backend = backend;
    exchange.reason = decision.reason;
    exchange.setCookie = decision.setCookie;
    exchange.clientId = clientId;
    const { req } = exchange;
    this.#deps.upstreams.get(backend, this.#backendHeadLimit()).dispatch(
      {
        origin: backend.url,
        path: req.url!,
        method: req.method!,
        headers: exchange.upstreamHeaders,
        body: exchange.hasBody ? req : null,
      },
      exchange,
    );
  }

  /**
   * #countRequest counts a request that is no session (stateless, or on a chosen server):
   * nothing is touched in the session tables, bounded load or maxSessions. Returns the
   * (empty) client id the exchange carries.
   */
  #countRequest(backendId: string): string {
    this.#deps.sessions.accounting.counters(backendId).requests++;
    return '';
  }

  /** #enter counts the exchange in flight on a backend (and no longer on the one it left, after a retry). */
  #enter(exchange: HttpExchange, backendId: string): void {
    this.#leave(exchange);
    this.#backendInFlight.set(backendId, (this.#backendInFlight.get(backendId) ?? 0) + 1);
    exchange.inFlightOn = backendId;
  }

  #leave(exchange: HttpExchange): void {
    const on = exchange.inFlightOn;
    if (on === undefined) return;
    exchange.inFlightOn = undefined;
    const n = (this.#backendInFlight.get(on) ?? 1) - 1;
    if (n > 0) this.#backendInFlight.set(on, n);
    else this.#backendInFlight.delete(on);
  }

  retry(exchange: HttpExchange): boolean {
    // Only a new session (or a partition assigned this instant, or a stateless request) may move, and only if no byte of its body was read.
    if (exchange.reason !== 'new-session' && exchange.reason !== 'replaced' && exchange.reason !== 'partition-new' && exchange.reason !== 'stateless') return false;
    if (exchange.hasBody && exchange.req.readableDidRead) return false;
    const { backend } = exchange;
    const skip = new Set(exchange.refused).add(backend.id);
    const decision = this.#reroute(exchange.reason, exchange.facts, skip);
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

  maintenance(exchange: HttpExchange): boolean {
    const { backend } = exchange;
    this.#deps.observer?.backendInMaintenance(backend.id);
    const skip = new Set(exchange.refused).add(backend.id);
    return this.#route(exchange.facts, skip).kind === 'backend';
  }

  retryUnavailable(exchange: HttpExchange): boolean {
    if (exchange.unavailableRetried) return false;
    const skip = new Set(exchange.refused).add(exchange.backend.id);
    if (this.#routeStateless(skip).kind !== 'backend') return false;
    exchange.unavailableRetried = true;
    this.#deps.logger.debug({ backend: exchange.backend.id }, 'a stateless request was answered 503; sent to another backend once');
    return true;
  }

  redispatch(exchange: HttpExchange): void {
    exchange.prepareRetry();
    const decision = this.#reroute(exchange.reason, exchange.facts, exchange.refused);
    if (decision.kind === 'unavailable') exchange.fail(503, 'ok');
    else this.#dispatch(exchange, decision);
  }

  responseHeaders(exchange: HttpExchange, headers: string[]): void {
    if (exchange.setCookie) headers.push('set-cookie', this.#deps.sessions.setCookieHeader(exchange.clientId, exchange.backend.id));
    if (exchange.choiceCookie !== undefined) headers.push('set-cookie', exchange.choiceCookie);
  }

  get sessionCookiePrefix(): string {
    return this.settings.sessionCookiePrefix;
  }

  learnSetCookie(exchange: HttpExchange, value: string): void {
    this.#deps.sessions.learned.learnFromSetCookie(value, this.settings.sessionCookieName, exchange.backend.id);
  }

  sendError(exchange: HttpExchange, status: ErrorStatus): void {
    this.#sendPage(exchange, this.#deps.pages[status]);
  }

  #sendPage(exchange: HttpExchange, page: ErrorPage): void {
    const { res } = exchange;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const headers: Record<string, string | number> = {
      'content-type': 'text/html; charset=utf-8',
      'content-length': page.body.length,
      'cache-control': 'no-store',
    };
    if (page.status === 503) headers['retry-after'] = 10;
    // The rest of the request (body, pipelined requests) is not read: the connection ends.
    if (page.status === 400 || page.status === 408 || page.status === 417 || (page.status === 403 && exchange.hasBody)) headers.connection = 'close';
    res.writeHead(page.status, headers);
    res.end(exchange.req.method === 'HEAD' ? undefined : page.body);
  }

  /** answerSelf answers a request that has no exchange (refused connection, bad Expect) and closes. */
  #answerSelf(req: IncomingMessage, res: ServerResponse, page: ErrorPage): void {
    res.shouldKeepAlive = false;
    const headers: Record<string, string | number> = {
      'content-type': 'text/html; charset=utf-8',
      'content-length': page.body.length,
      'cache-control': 'no-store',
      connection: 'close',
    };
    if (page.status === 503) headers['retry-after'] = 10;
    res.writeHead(page.status, headers);
    res.end(req.method === 'HEAD' ? undefined : page.body);
  }

  finished(exchange: HttpExchange, outcome: ExchangeOutcome): void {
    this.#leave(exchange);
    const backendId = exchange.backend?.id;
    if (backendId !== undefined) {
      const counters = this.#deps.sessions.accounting.counters(backendId);
      counters.bytesOut += exchange.bytesOut;
      if (outcome === 'client-abort' || outcome === 'client-timeout') counters.clientAborts++;
      else if (outcome === 'backend-error' || outcome === 'timeout') counters.errors++;
      this.#deps.observer?.requestFinished(backendId, outcome, (performance.now() - exchange.startedAt) / 1000);
    }
    if (this.settings.accessLog) {
      this.#access.info({
        method: exchange.req.method,
        path: exchange.req.url,
        status: exchange.status,
        backend: backendId,
        route: exchange.reason ?? exchange.pathVerdict,
        ms: Math.round((performance.now() - exchange.startedAt) * 100) / 100,
        bytes: exchange.bytesOut,
        outcome,
      });
    }
    this.#requestDone();
  }

  #requestDone(): void {
    this.#inFlight--;
    if (this.#inFlight === 0 && this.#tunnels.size === 0) this.#wakeIdleWaiters();
  }

  // ---- WebSocket -----------------------------------------------------------------------

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node's parser has let go of the socket: nothing else will handle its errors.
    socket.on('error', () => socket.destroy());
    const refused = this.#closing || this.#connections.refuses(req.socket);
    if (refused || refusedUpgrade(req)) {
      closeAfter(socket, rawErrorResponse(this.#deps.pages[refused ? 503 : 400]));
      return;
    }
    const facts = this.#facts(req);
    const url = req.url!;
    const startedAt = performance.now();
    let decision: Decision | undefined;
    let choiceCookie: string | undefined;
    const rules = this.settings.paths;
    if (rules !== undefined) {
      const verdict = judgePath(rules, url, facts.clientAddress);
      if (verdict.kind === 'bad-path' || verdict.kind === 'denied') {
        const status = verdict.kind === 'bad-path' ? 400 : 403;
        if (this.settings.accessLog) this.#access.info({ method: req.method, path: url, status, route: verdict.kind === 'bad-path' ? 'bad-path' : 'path-denied', ms: Math.round((performance.now() - startedAt) * 100) / 100, websocket: true });
        closeAfter(socket, rawErrorResponse(this.#deps.pages[status]));
        return;
      }
      if (verdict.kind === 'stateless') decision = this.#routeStateless();
      else if (verdict.kind === 'allowed') {
        const choice = this.#choice(url, req.headers.cookie, verdict.rule);
        decision = choice?.decision;
        choiceCookie = choice?.cookie;
      }
    }
    if (decision === undefined && this.settings.partitionKeyRequired && facts.partitionKey === undefined) {
      closeAfter(socket, rawErrorResponse(this.#missingKeyPage));
      return;
    }
    const peer = req.socket.remoteAddress ?? '';
    const headers = upstreamHeaders(req.rawHeaders, { peerAddress: peer, clientAddress: facts.clientAddress, trusted: this.#deps.trusted.trusts(peer), proto: this.settings.proto }, true);
    let requestHead = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) requestHead += `${headers[i]}: ${headers[i + 1]}\r\n`;
    requestHead += '\r\n';
    // The tunnel keeps only what it needs (not the request object) for as long as it is open.
    this.#tunnel(socket, requestHead, head, { path: url, startedAt, choiceCookie }, facts, decision ?? this.#route(facts), undefined);
  }

  /** `log` is what the tunnel keeps of the handshake request: its path and start (access log), and a backend-choice cookie to set. */
  #tunnel(socket: Duplex, requestHead: string, head: Buffer, log: { path: string; startedAt: number; choiceCookie?: string | undefined }, facts: RequestFacts, decision: Decision, refused: Set<string> | undefined, attempt = 0): void {
    if (decision.kind === 'unavailable') {
      closeAfter(socket, rawErrorResponse(this.#deps.pages[503]));
      return;
    }
    const resolving = this.#resolvePartition(decision, facts, refused, attempt, (next) => {
      if (!socket.destroyed) this.#tunnel(socket, requestHead, head, log, facts, next, refused, attempt + 1);
    });
    if (resolving) {
      resolving.catch(() => closeAfter(socket, rawErrorResponse(this.#deps.pages[503])));
      return;
    }
    const { backend } = decision;
    const sessions = this.#deps.sessions;
    // A stateless or chosen-server tunnel is no session: not counted (nor its WebSocket).
    const sessionless = isSessionless(decision);
    const clientId = sessionless ? this.#countRequest(backend.id) : this.#commit(decision, facts, undefined);
    if (clientId === undefined) {
      closeAfter(socket, rawErrorResponse(this.#deps.pages[503]));
      return;
    }
    let opened = false;
    this.#tunnels.add(socket);
    const untrack = (): void => {
      if (this.#tunnels.delete(socket) && this.#inFlight === 0 && this.#tunnels.size === 0) this.#wakeIdleWaiters();
    };
    socket.once('close', untrack);
    openTunnel(socket as Socket, requestHead, head, this.#tunnelTarget(backend), {
      onConnectError: (err) => {
        if (NO_RESOURCES.has(err.code ?? '')) {
          // The balancer is out of descriptors: not the backend's fault, and no retry helps.
          this.#connections.resourceFailure(err.code!);
          closeAfter(socket, rawErrorResponse(this.#deps.pages[503]));
          return true;
        }
        sessions.accounting.counters(backend.id).errors++;
        this.#deps.observer?.backendFailed(backend.id);
        this.#deps.logger.warn({ backend: backend.id, code: err.code }, 'websocket backend unreachable');
        if ((decision.reason === 'new-session' || decision.reason === 'replaced' || decision.reason === 'partition-new' || decision.reason === 'stateless') && err.code === 'ECONNREFUSED') {
          const skip = (refused ??= new Set()).add(backend.id);
          const next = this.#reroute(decision.reason, facts, skip);
          if (next.kind === 'backend') {
            socket.off('close', untrack);
            this.#tunnels.delete(socket);
            this.#tunnel(socket, requestHead, head, log, facts, next, skip);
            return true;
          }
        }
        closeAfter(socket, rawErrorResponse(this.#deps.pages[err.code === 'ETIMEDOUT' ? 504 : 502]));
        return true;
      },
      onHandshake: (status, extra) => {
        if (status === 101 && !sessionless) {
          opened = true;
          sessions.accounting.websocketOpened(clientId, backend.id, facts.partitionKey, decision.clientId !== undefined);
        }
        if (decision.setCookie) extra.push('set-cookie', sessions.setCookieHeader(clientId, backend.id));
        if (log.choiceCookie !== undefined) extra.push('set-cookie', log.choiceCookie);
        if (this.settings.accessLog) {
          this.#access.info({ method: 'GET', path: log.path, status, backend: backend.id, route: decision.reason, ms: Math.round((performance.now() - log.startedAt) * 100) / 100, websocket: true });
        }
      },
      onBadResponse: (why) => {
        sessions.accounting.counters(backend.id).errors++;
        this.#deps.observer?.backendFailed(backend.id);
        this.#deps.logger.warn(
          { backend: backend.id },
          HANDSHAKE_FAILURES[why],
        );
        closeAfter(socket, rawErrorResponse(this.#deps.pages[why === 'timeout' ? 504 : 502]));
      },
      onClose: (bytesIn, bytesOut, idledOut) => {
        const counters = sessions.accounting.counters(backend.id);
        counters.bytesOut += bytesOut;
        counters.bytesIn += bytesIn;
        if (opened) sessions.accounting.websocketClosed(clientId, backend.id);
        if (idledOut) this.#deps.logger.debug({ backend: backend.id }, 'websocket closed after idle timeout');
      },
    });
  }

  #tunnelTarget(backend: BackendView) {
    return {
      url: backend.url,
      connectTimeout: this.settings.connectTimeout,
      handshakeTimeout: this.settings.responseTimeout,
      idleTimeout: this.settings.websocketIdle,
      maxHeaderBytes: this.#backendHeadLimit(),
    };
  }

  /** The largest response head taken from a backend: limits.maxHeaderBytes, at least undici's 16 KiB default. */
  #backendHeadLimit(): number {
    return Math.max(this.settings.maxHeaderBytes, 16384);
  }

  // ---- malformed input -----------------------------------------------------------------

  #onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const code = err.code ?? '';
    // A response in progress whose request was parsed whole: the error is in a later,
    // pipelined request. A 400 now would reach the client ahead of the earlier answer (and
    // be read as it), so the answers in progress go out and the connection closes after them.
    // (_httpMessage is Node's response in progress on the socket.)
    const answering = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (code !== 'ECONNRESET' && answering?.req?.complete === true && !answering.writableEnded) {
      this.#closeAfterAnswers(code, answering);
      return;
    }
    if (code === 'ECONNRESET' || !socket.writable || (socket as Socket).bytesWritten > 0) {
      socket.destroy();
      return;
    }
    // ERR_HTTP_REQUEST_TIMEOUT: the request head did not arrive within headersTimeout (slowloris).
    const status: ErrorStatus = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    this.#deps.logger.debug({ code }, 'malformed request');
    socket.end(rawErrorResponse(this.#deps.pages[status]));
  }

  /**
   * After a parse error in a pipelined request: nothing more is read as a request, the
   * answer in progress goes out, and the connection closes after it. Bytes after a request
   * that closes the connection (HPE_CLOSED_CONNECTION, e.g. after HTTP/1.0 without
   * keep-alive) change nothing: the connection already ends after that request's answer.
   */
  #closeAfterAnswers(code: string, answering: ServerResponse): void {
    // The parser stays in error: every later chunk from the client reports it again.
    if (code === 'HPE_CLOSED_CONNECTION' || this.#closingAfterAnswers.has(answering)) return;
    this.#closingAfterAnswers.add(answering);
    if (!answering.headersSent) answering.shouldKeepAlive = false;
    else answering.once('finish', () => (answering.socket as Socket | null)?.destroySoon());
  }

  // ---- shutdown ------------------------------------------------------------------------

  /**
   * close stops accepting, lets in-flight requests and open tunnels finish for up to
   * graceMs, then destroys whatever is left. Idle keep-alive connections close at once.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    this.#connections.stop();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
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
    for (const socket of this.#tunnels) socket.destroy();
    this.server.closeAllConnections();
    await closed;
  }

  /** inFlight is the number of HTTP requests being served right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
    if (this.#closing) this.server.closeIdleConnections();
  }
}

/** isSessionless: a stateless request, or one on the server its client chose; neither is a session. */
function isSessionless(decision: Extract<Decision, { kind: 'backend' }>): boolean {
  return decision.reason === 'stateless' || decision.reason === 'chosen-backend';
}
