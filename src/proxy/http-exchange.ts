/**
 * HttpExchange is one client request forwarded to one backend: the undici dispatch
 * handler that streams the response back with backpressure, learns session ids from
 * Set-Cookie, adds the affinity cookie, and turns every failure into the right status
 * page (or a cut stream once the response has started).
 *
 * It implements undici's callback handler API (onConnect / onHeaders / onData /
 * onComplete / onError). undici 7 marks it deprecated in favour of the controller API,
 * but that API is a wrapper over this one that parses the raw headers into an object
 * on every response (undici lib/handler/unwrap-handler.js); on the hot path we keep the
 * raw header buffers and skip that work.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { BackendView } from '../pool/snapshot.js';
import type { RequestFacts, RouteReason } from '../routing/types.js';
import { type ErrorPage, type ErrorStatus, sendPage } from './error-pages.js';
import { bytesInOf, type RequestAccessFields } from './access-log.js';
import { HOP_BY_HOP_RESPONSE, KEEP_ALIVE_OR_CLOSE, removeConnectionOptions } from './response-headers.js';

/** ExchangeHost is what an exchange needs from the proxy server that started it. */
export interface ExchangeHost {
  /** Response headers to add for this exchange (the affinity cookie) and learning of session ids. */
  responseHeaders(exchange: HttpExchange, headers: string[]): void;
  learnSetCookie(exchange: HttpExchange, value: string): void;
  readonly sessionCookiePrefix: string;
  /** The backend refused the connection before any byte was sent: try the next one. */
  retry(exchange: HttpExchange): boolean;
  /**
   * A stateless request (path rule with affinity "none") without a body was answered 503.
   * Returns true when another backend will take it (once per request): the exchange then
   * discards this response and calls redispatch(). Unlike maintenance(), no state changes.
   */
  retryUnavailable(exchange: HttpExchange): boolean;
  /** A backend connection could not be opened for want of local resources (EMFILE, ...). */
  resourceFailure(code: string): void;
  /**
   * The backend answered a new session's body-less request with 503 (Servoy maintenance
   * mode). Returns true when another backend will take the request: the exchange then
   * discards this response and calls redispatch() once it has been read.
   */
  maintenance(exchange: HttpExchange): boolean;
  redispatch(exchange: HttpExchange): void;
  /** Answer with one of the balancer's own pages. */
  sendError(exchange: HttpExchange, status: ErrorStatus): void;
  /** Called exactly once when the exchange ends, however it ends. */
  finished(exchange: HttpExchange, outcome: ExchangeOutcome): void;
}

/** ExchangeOutcome classifies how an exchange ended, for counters and the access log. */
export type ExchangeOutcome = 'ok' | 'client-abort' | 'client-timeout' | 'backend-error' | 'timeout' | 'bad-request' | 'no-resources';

/** Connection errors that mean nothing reached the backend and a new session may go elsewhere. */
const REFUSED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);
const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const BAD_REQUEST = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'UND_ERR_NOT_SUPPORTED']);
/** The balancer itself is out of something (file descriptors, buffers): not the backend's fault. */
export const NO_RESOURCES = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/** HttpExchange forwards one request; see the file comment. */
export class HttpExchange implements Dispatcher.DispatchHandler {
  backend!: BackendView;
  reason!: RouteReason;
  clientId!: string;
  setCookie = false;
  /** Backends that refused this request, skipped on retry. */
  refused: Set<string> | undefined;
  status = 0;
  bytesOut = 0;
  /** Path rules: the balancer answered itself because the path was bad (400) or denied (403); for the access log. */
  pathVerdict: 'bad-path' | 'path-denied' | undefined;
  /** Path rules: the Set-Cookie value of a backend choice (?servoy-lb-backend=ID) made by this request. */
  choiceCookie: string | undefined;
  /** The backend this request counts as in flight on (see ProxyServer's in-flight tracking). */
  inFlightOn: string | undefined;
  /** A stateless request's 503 was already retried once on another backend. */
  unavailableRetried = false;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #clientGone = false;
  #done = false;
  /** Reading (and dropping) a maintenance 503 before the request goes elsewhere. */
  #discarding = false;
  /** The request-body idle check (see watchBody), and whether it fired. */
  #bodyWatch: NodeJS.Timeout | undefined;
  #bodyStalled = false;

  constructor(
    readonly host: ExchangeHost,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly facts: RequestFacts,
    readonly upstreamHeaders: string[],
    readonly hasBody: boolean,
    readonly startedAt: number,
  ) {
    res.once('close', this.#onClientClose);
  }

  /** done is true once the exchange has ended (finished() was called). */
  get done(): boolean {
    return this.#done;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#clientGone || this.#bodyStalled) abort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: Node answers 100-continue to the client itself
    if (statusCode === 503 && !this.hasBody && this.reason === 'stateless' && this.host.retryUnavailable(this)) {
      // Stateless traffic: one more backend, read this page to the end (connection reusable).
      this.#discarding = true;
      return true;
    }
    if (statusCode === 503 && !this.hasBody && this.#isNewToServer() && this.host.maintenance(this)) {
      // Read the small maintenance page to the end so the connection stays reusable.
      this.#discarding = true;
      return true;
    }
    this.#resume = resume;
    const headers: string[] = [];
    const prefix = this.host.sessionCookiePrefix;
    let connectionTokens: string | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1');
      const lower = name.toLowerCase();
      if (HOP_BY_HOP_RESPONSE.has(lower)) {
        if (lower === 'connection') {
          const value = rawHeaders[i + 1]!.toString('latin1');
          // "keep-alive" / "close" (nearly every response) name no other header: nothing to remove.
          if (!KEEP_ALIVE_OR_CLOSE.test(value)) connectionTokens = `${connectionTokens ?? ''},${value}`;
        }
        continue;
      }
      const value = rawHeaders[i + 1]!.toString('latin1');
      if (lower === 'set-cookie' && value.length > prefix.length && value.slice(0, prefix.length).toLowerCase() === prefix) {
        this.host.learnSetCookie(this, value);
      }
      headers.push(name, value);
    }
    if (connectionTokens !== undefined) removeConnectionOptions(headers, connectionTokens);
    this.host.responseHeaders(this, headers);
    this.status = statusCode;
    // An answer before the whole request body arrived (413, 401, 417 to an Expect: the
    // backend did not want the rest): undici stops sending the body and drops that backend
    // connection, and the rest of the body would hold the client connection forever. It is
    // answered with Connection: close and ends after the answer; nothing more is read as a
    // request from it.
    if (this.hasBody && !this.req.complete) this.res.shouldKeepAlive = false;
    try {
      this.res.writeHead(statusCode, statusText || undefined, headers);
    } catch {
      // A backend header Node refuses to send (invalid characters): the backend is at fault.
      this.status = 502;
      this.#abort?.();
      this.host.sendError(this, 502);
      this.#finish('backend-error');
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    // undici hands over an empty chunk on every resume after a pause: writing it would cost
    // a cork/uncork cycle and an empty write(2) per chunk of a large body.
    if (this.#discarding || chunk.length === 0) return true;
    this.bytesOut += chunk.length;
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.#resume!);
    return false;
  }

  onComplete(): void {
    if (this.#discarding) {
      this.#discarding = false;
      this.#abort = undefined;
      if (this.#clientGone) this.#finish('client-abort');
      else this.host.redispatch(this);
      return;
    }
    this.res.end();
    this.#finish('ok');
  }

  onError(err: Error): void {
    if (this.#done) return;
    if (this.#bodyStalled) {
      this.#answerStalledBody();
      return;
    }
    if (this.#discarding && !this.#clientGone) {
      // The maintenance page broke off; the request goes elsewhere all the same.
      this.#discarding = false;
      this.#abort = undefined;
      this.host.redispatch(this);
      return;
    }
    if (this.#clientGone) {
      this.#finish('client-abort');
      return;
    }
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (this.res.headersSent) {
      // The response has started: the only honest signal left is a cut stream.
      this.res.destroy();
      this.#finish(TIMEOUTS.has(code) ? 'timeout' : 'backend-error');
      return;
    }
    if (REFUSED.has(code) && this.host.retry(this)) return;
    if (NO_RESOURCES.has(code)) {
      this.host.resourceFailure(code);
      this.status = 503;
      this.host.sendError(this, 503);
      this.#finish('no-resources');
      return;
    }
    if (this.hasBody && !this.req.complete && !REFUSED.has(code)) {
      // The client still owes body bytes: the backend gave up waiting for them (closed the
      // connection, timed out reading). Its fault is the client's, so it must not count
      // against the backend — or a few stalling clients could get a healthy one ejected.
      this.status = 400;
      this.host.sendError(this, 400);
      this.#finish('bad-request');
    } else if (TIMEOUTS.has(code)) {
      this.status = 504;
      this.host.sendError(this, 504);
      this.#finish('timeout');
    } else if (BAD_REQUEST.has(code) || this.req.errored) {
      this.status = 400;
      this.host.sendError(this, 400);
      this.#finish('bad-request');
    } else {
      this.status = 502;
      this.host.sendError(this, 502);
      this.#finish('backend-error');
    }
  }

  /**
   * watchBody starts the request-body idle timeout. A client whose body makes no progress
   * for idleMs while the balancer waits for it gets 408 (or, once the response has started,
   * a cut connection), and the upstream request is aborted, so a stalled upload holds
   * neither a client slot nor a backend request. Waiting on our own backpressure (body
   * bytes buffered and not yet taken by the upstream side) is not the client's stall.
   * Checked a few times per idleMs, so it fires between idleMs and 1.25 × idleMs.
   */
  watchBody(idleMs: number): void {
    if (!this.hasBody || idleMs <= 0 || this.req.complete) return;
    const { req } = this;
    const socket = req.socket;
    let lastRead = socket.bytesRead;
    let lastProgress = performance.now();
    this.#bodyWatch = setInterval(() => {
      if (this.#done || req.complete) {
        clearInterval(this.#bodyWatch);
        return;
      }
      const now = performance.now();
      if (socket.bytesRead !== lastRead || req.readableLength > 0) {
        lastRead = socket.bytesRead;
        lastProgress = now;
      } else if (now - lastProgress >= idleMs) {
        clearInterval(this.#bodyWatch);
        this.#bodyStalled = true;
        // Connected: the abort comes back through onError. Not yet (waiting for a pooled
        // connection, or between retries): answer now, and onConnect aborts.
        if (this.#abort !== undefined) this.#abort(new Error('request body idle timeout'));
        else this.#answerStalledBody();
      }
    }, Math.max(50, Math.min(Math.floor(idleMs / 4), 5000)));
    this.#bodyWatch.unref();
  }

  #answerStalledBody(): void {
    if (this.res.headersSent) {
      this.res.destroy();
    } else {
      this.status = 408;
      this.host.sendError(this, 408);
    }
    this.#finish('client-timeout');
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

  /** bodyTouched: a byte of the request body was read (the request can no longer move). */
  get bodyTouched(): boolean {
    return this.hasBody && this.req.readableDidRead;
  }

  /** sendPage answers with one of the balancer's pages (a started response is cut). */
  sendPage(page: ErrorPage): void {
    sendPage(this.res, this.req.method, this.hasBody, page);
  }

  /** answerPage answers with `page` and ends the exchange (the proxy answered itself). */
  answerPage(page: ErrorPage, outcome: ExchangeOutcome): void {
    this.status = page.status;
    this.sendPage(page);
    this.#finish(outcome);
  }

  /** fillAccessFields writes the request's fields of the access-log line into `record`. */
  fillAccessFields(record: RequestAccessFields): void {
    const { req } = this;
    Object.assign(record, { method: req.method!, host: req.headers.host, path: req.url!, httpVersion: req.httpVersion, bytesIn: bytesInOf(req.socket), userAgent: req.headers['user-agent'], referer: req.headers.referer });
  }

  /** prepareRetry resets per-attempt state before the exchange is dispatched again. */
  prepareRetry(): void {
    (this.refused ??= new Set()).add(this.backend.id);
    this.#abort = undefined;
  }

  /** fail ends an exchange that never reached a backend (no backend, pool full). */
  fail(status: ErrorStatus, outcome: ExchangeOutcome): void {
    this.status = status;
    this.host.sendError(this, status);
    this.#finish(outcome);
  }

  /** end finishes an exchange the proxy answered itself (after writing the response). */
  end(outcome: ExchangeOutcome): void {
    this.#finish(outcome);
  }

  readonly #onClientClose = (): void => {
    if (this.res.writableFinished) return;
    this.#clientGone = true;
    this.#abort?.();
    if (this.#abort === undefined && this.backend === undefined) this.#finish('client-abort');
  };

  #finish(outcome: ExchangeOutcome): void {
    if (this.#done) return;
    this.#done = true;
    clearInterval(this.#bodyWatch);
    this.res.off('close', this.#onClientClose);
    this.host.finished(this, outcome);
  }
}
