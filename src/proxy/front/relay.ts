/**
 * FrontRelay is one client request (a FrontRequest) forwarded to one backend over the
 * raw-socket upstream pool, reporting to its host (RelayHost: retry on refusal, Servoy
 * maintenance and stateless 503 redispatch, Set-Cookie learning, the affinity cookie, one
 * finished() per request). It is the ResponseSink of the upstream exchange and the
 * listener of the client request: the response streams back with backpressure both ways
 * (a full client socket pauses the backend socket until it drains), a client that leaves
 * aborts the backend exchange, and every failure becomes its status page
 * (src/proxy/upstream/errors.ts), or a cut connection once the response
 * has started.
 */
import { statusText } from '../status-text.js';
import { isIP } from 'node:net';
import type { BackendView } from '../../pool/snapshot.js';
import type { RequestFacts, RouteReason } from '../../routing/types.js';
import type { ResponseHead } from '../codec/response-head.js';
import type { ErrorPage, ErrorStatus } from '../error-pages.js';
import { bytesInOf, type RequestAccessFields } from '../access-log.js';
import type { RawRequestView } from './request-view.js';
import type { ExchangeOutcome } from '../exchange-outcome.js';
import { relayedResponseHeaders, type SessionCookieListener } from '../response-headers.js';
import { statusFor, type UpstreamError } from '../upstream/errors.js';
import { exchange, type ResponseSink, type UpstreamExchange, type UpstreamRequest } from '../upstream/exchange.js';
import type { UpstreamPool } from '../upstream/pool.js';
import type { AbortReason, FrontRequest, FrontRequestListener } from './front-request.js';

/** RelayHost is what a relay needs from the request path that started it (src/proxy/request-path.ts). */
export interface RelayHost {
  readonly sessionCookiePrefix: string;
  /** Response headers to add (the affinity cookie). */
  responseHeaders(relay: FrontRelay, headers: string[]): void;
  learnSetCookie(relay: FrontRelay, value: string): void;
  /** The backend refused before any byte was sent: true when the relay was sent elsewhere. */
  retry(relay: FrontRelay): boolean;
  /** A stateless body-less request was answered 503: true when another backend will take it. */
  retryUnavailable(relay: FrontRelay): boolean;
  /** A new session's body-less request was answered 503 (Servoy maintenance): true when it goes elsewhere. */
  maintenance(relay: FrontRelay): boolean;
  redispatch(relay: FrontRelay): void;
  resourceFailure(code: string): void;
  /** Answer with one of the balancer's own pages. */
  sendError(relay: FrontRelay, status: ErrorStatus): void;
  /** Called exactly once when the relay ends, however it ends. */
  finished(relay: FrontRelay, outcome: ExchangeOutcome): void;
}

/** FrontRelay: see the file comment. */
export class FrontRelay implements ResponseSink, FrontRequestListener, SessionCookieListener {
  backend!: BackendView;
  reason!: RouteReason;
  clientId!: string;
  setCookie = false;
  /** Backends that refused this request, skipped on retry. */
  refused: Set<string> | undefined;
  status = 0;
  unavailableRetried = false;
  choiceCookie: string | undefined;
  /** Path rules: the balancer answered itself (400 bad path, 403 denied); for the access log. */
  pathVerdict: 'bad-path' | 'path-denied' | undefined;
  /** The backend this request counts as in flight on (BackendInFlight). */
  inFlightOn: string | undefined;
  #upstream: UpstreamExchange | undefined;
  #pool: UpstreamPool | undefined;
  /** A reused backend socket was found closed before it answered: sent once more on a fresh one. */
  #staleRetried = false;
  #discarding = false;
  #clientGone = false;
  #done = false;

  constructor(
    readonly host: RelayHost,
    readonly req: FrontRequest,
    readonly facts: RequestFacts,
    /** The headers for the backend (already rewritten: upstreamHeaders()). */
    readonly upstreamHeaders: string[],
    readonly startedAt: number,
    /** The request's routing and logging view (the access log reads host, user agent, referer). */
    readonly view?: RawRequestView,
  ) {
    req.listener = this;
    // The raw exchange sends the framing it is told, and the headers must say it: a
    // Content-Length passes through upstreamHeaders(); Transfer-Encoding (hop-by-hop) does not.
    if (req.head.body.kind === 'chunked') upstreamHeaders.push('transfer-encoding', 'chunked');
  }

  get hasBody(): boolean {
    return this.req.body !== undefined;
  }

  get done(): boolean {
    return this.#done;
  }

  /** Response body bytes sent to the client. */
  get bytesOut(): number {
    return this.req.bytesOut;
  }

  /** bodyTouched: a byte of the request body was read (the request can no longer move). */
  get bodyTouched(): boolean {
    return this.req.body?.readableDidRead ?? false;
  }

  /** sendPage answers with one of the balancer's pages (a started response is cut). */
  sendPage(page: ErrorPage): void {
    this.req.sendPage(page);
  }

  /** answerPage answers with `page` and ends the relay (the proxy answered itself). */
  answerPage(page: ErrorPage, outcome: ExchangeOutcome): void {
    this.status = page.status;
    this.req.sendPage(page);
    this.#finish(outcome);
  }

  /** fillAccessFields writes the request's fields of the access-log line into `record` (the proxy's reused one). */
  fillAccessFields(record: RequestAccessFields): void {
    const { head, socket } = this.req;
    const view = this.view;
    record.method = head.method;
    record.host = view?.host;
    record.path = head.target;
    record.httpVersion = head.versionMinor === 1 ? '1.1' : '1.0';
    record.bytesIn = bytesInOf(socket);
    record.userAgent = view?.userAgent;
    record.referer = view?.referer;
  }

  /** dispatch sends the request to `backend` through its pool (again, after a retry). */
  dispatch(pool: UpstreamPool): void {
    const { head, body } = this.req;
    let headers = this.upstreamHeaders;
    if (this.view !== undefined && this.view.host === undefined) {
      // HTTP/1.0 without Host: the backend gets an HTTP/1.1 request, which needs one (undici
      // adds the origin's, as here).
      const { host, port } = pool.options;
      headers = [...headers, 'host', isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`];
    }
    const request: UpstreamRequest = { method: head.method, target: head.target, headers, body: head.body, source: body };
    this.#pool = pool;
    this.#upstream = exchange(pool, request, this);
  }

  /** prepareRetry resets per-attempt state before the relay is dispatched again. */
  prepareRetry(): void {
    (this.refused ??= new Set()).add(this.backend.id);
    this.#upstream = undefined;
  }

  /** fail ends a relay that never reached a backend (no backend, partition store failed). */
  fail(status: ErrorStatus, outcome: ExchangeOutcome): void {
    this.status = status;
    this.host.sendError(this, status);
    this.#finish(outcome);
  }

  // FrontRequestListener

  aborted(why: AbortReason): void {
    // A stalled body before the answer: the front connection answers the 408 page itself.
    if (why === 'client-timeout' && !this.req.headersSent) this.status = 408;
    this.#clientGone = true;
    this.#upstream?.abort();
    this.#finish(why);
  }

  // ResponseSink

  head(h: ResponseHead, bodyFollows: boolean): void {
    const status = h.status;
    if (status === 503 && !this.hasBody && ((this.reason === 'stateless' && this.host.retryUnavailable(this)) || (this.#isNewToServer() && this.host.maintenance(this)))) {
      // Read this page to the end (the backend connection stays reusable), then go elsewhere.
      this.#discarding = true;
      return;
    }
    const headers = relayedResponseHeaders(h.headers, this.host.sessionCookiePrefix, this);
    this.host.responseHeaders(this, headers);
    this.status = status;
    const length = h.body.kind === 'length' ? h.body.length : h.body.kind === 'none' ? 0 : -1;
    this.req.writeHead(status, h.reason || statusText(status), headers, length, bodyFollows);
  }

  /** sessionCookieSet: the backend set the session cookie on this response (learned for stickiness). */
  sessionCookieSet(value: string): void {
    this.host.learnSetCookie(this, value);
  }

  data(chunk: Buffer): boolean {
    if (this.#discarding) return true;
    if (this.req.write(chunk)) return true;
    this.req.onDrain(this.#upstream!.resume);
    return false;
  }

  end(): void {
    if (this.#discarding) {
      this.#discarding = false;
      this.host.redispatch(this);
      return;
    }
    this.req.end();
    this.#finish('ok');
  }

  upgrade(): void {
    // Never asked for on this path (the request carries no upgrade): the exchange refuses a 101 first.
  }

  error(err: UpstreamError, responseStarted: boolean): void {
    if (this.#done) return;
    if (this.#discarding) {
      // The maintenance page broke off; the request goes elsewhere all the same.
      this.#discarding = false;
      this.host.redispatch(this);
      return;
    }
    if (responseStarted) {
      // The response has started: the only honest signal left is a cut connection.
      this.req.destroy();
      this.#finish(err.code === 'response-timeout' ? 'timeout' : 'backend-error');
      return;
    }
    const bodyUntouched = !(this.req.body?.readableDidRead ?? false);
    if (err.code === 'reset-before-response' && err.retryable && bodyUntouched && !this.#staleRetried) {
      // A pooled socket the backend had closed as we wrote to it: nothing was processed.
      this.#staleRetried = true;
      this.dispatch(this.#pool!);
      return;
    }
    if (err.retryable && bodyUntouched && this.host.retry(this)) return;
    let status: ErrorStatus = statusFor(err.code);
    let outcome: ExchangeOutcome = 'backend-error';
    if (err.code === 'no-resources') {
      this.host.resourceFailure(err.errno ?? 'EMFILE');
      outcome = 'no-resources';
    } else if (err.code === 'request-body' || (!this.req.bodyComplete && err.code !== 'connect-refused' && err.code !== 'connect-timeout')) {
      // The client still owes body bytes (or sent a broken body): its fault, not the backend's.
      status = 400;
      outcome = 'bad-request';
    } else if (status === 504) {
      outcome = 'timeout';
    }
    this.status = status;
    this.host.sendError(this, status);
    this.#finish(outcome);
  }

  /**
   * isNewToServer: the request opens a session on its backend, so Servoy's maintenance 503
   * (which refuses only requests without a session) may send it elsewhere. Besides new
   * sessions, that is a request whose affinity cookie names the server but that carries no
   * servlet session id at all: the browser kept our cookie, the server's session is gone.
   */
  #isNewToServer(): boolean {
    const reason = this.reason;
    return reason === 'new-session' || reason === 'replaced' || reason === 'partition-new' || (reason === 'affinity-cookie' && this.facts.sessionId === undefined);
  }

  #finish(outcome: ExchangeOutcome): void {
    if (this.#done) return;
    this.#done = true;
    this.host.finished(this, outcome);
  }
}
