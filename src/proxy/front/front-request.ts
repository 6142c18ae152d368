/**
 * FrontRequest is one client request on the raw-socket data plane and the writer of its
 * response: the parsed head, the body (a RequestBody, or none), and writeHead / write /
 * end with the socket's backpressure (write() returns false: wait for onDrain). The
 * connection it came from answers one request at a time, so the writer writes straight to
 * the socket; once the response ends (or the request was aborted) every later call is a
 * no-op, so a stale reference can never write into the next request's answer.
 */
import type { Socket } from 'node:net';
import type { RequestHead } from '../codec/request-head.js';
import type { ErrorPage } from '../error-pages.js';
import type { RequestBody } from './request-body.js';
import { BodyWire, renderResponseHead, responseFraming } from './response-head.js';

/** Why a request ended before its response did. */
export type AbortReason = 'client-abort' | 'client-timeout';

/** FrontRequestListener hears that a request was aborted (the client left, or its body stalled). */
export interface FrontRequestListener {
  aborted(why: AbortReason): void;
}

/** What a request needs from its connection. */
export interface RequestOwner {
  /** Seconds announced in Keep-Alive: timeout=. */
  readonly keepAliveSeconds: number;
  /** The whole request body has arrived (always true without a body). */
  bodyComplete(req: FrontRequest): boolean;
  /** The response was written completely. */
  responseDone(req: FrontRequest): void;
  /** The response cannot be finished: the connection is destroyed. */
  cut(req: FrontRequest): void;
}

/** FrontRequest: see the file comment. */
export class FrontRequest {
  /** Set false before writeHead to close the connection after this response. */
  keepAlive: boolean;
  /** Told when the request is aborted; set by whoever serves the request. */
  listener: FrontRequestListener | undefined;
  /** Response body bytes written (for the access log and counters). */
  bytesOut = 0;
  #wire = BodyWire.None;
  #headersSent = false;
  #finished = false;
  /** The head is corked on the socket until the body bytes that follow (writeHead's bodyFollows). */
  #corked = false;

  constructor(
    readonly owner: RequestOwner,
    readonly socket: Socket,
    readonly head: RequestHead,
    /** The body, or undefined when the request has none. */
    readonly body: RequestBody | undefined,
    keepAlive: boolean,
  ) {
    this.keepAlive = keepAlive;
  }

  /** headersSent: the response head is out (a failure now can only cut the connection). */
  get headersSent(): boolean {
    return this.#headersSent;
  }

  /** finished: the response ended, or the request was aborted or cut. */
  get finished(): boolean {
    return this.#finished;
  }

  /** bodyComplete: the whole request body has arrived. */
  get bodyComplete(): boolean {
    return this.owner.bodyComplete(this);
  }

  /**
   * writeHead sends the status line and headers. bodyLength: the Content-Length among
   * `headers`, or -1 when the length is unknown (then chunked, or close-delimited to
   * HTTP/1.0). bodyFollows: the caller writes (or ends) the body before it returns, so the
   * head is held back and leaves with the first body bytes in one writev (one syscall, not
   * two). An answer before the whole body arrived closes the connection after it: the rest
   * of the body would otherwise be read as a request.
   */
  writeHead(status: number, reason: string, headers: readonly string[], bodyLength: number, bodyFollows = false): void {
    if (this.#finished || this.#headersSent) return;
    if (!this.bodyComplete) this.keepAlive = false;
    const framing = responseFraming(this.head.method, this.head.versionMinor, status, bodyLength, this.keepAlive);
    this.keepAlive = framing.keepAlive;
    this.#wire = framing.wire;
    this.#headersSent = true;
    if (bodyFollows) {
      this.socket.cork();
      this.#corked = true;
    }
    this.socket.write(renderResponseHead(status, reason, headers, framing, this.owner.keepAliveSeconds));
  }

  /** write sends body bytes; false: the socket's buffer is full, wait for onDrain. */
  write(chunk: Buffer): boolean {
    if (this.#finished || chunk.length === 0) return true;
    this.bytesOut += chunk.length;
    const ok = this.#send(chunk);
    this.#flushHead();
    return ok;
  }

  #send(chunk: Buffer): boolean {
    switch (this.#wire) {
      case BodyWire.None:
        return true;
      case BodyWire.Chunked: {
        const socket = this.socket;
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        const ok = socket.write('\r\n', 'latin1');
        socket.uncork();
        return ok;
      }
      default:
        return this.socket.write(chunk);
    }
  }

  /** Sends a head that writeHead held back (bodyFollows), with what was written since. */
  #flushHead(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.socket.uncork();
  }

  /** onDrain calls `fn` once when the socket can take more (after write() returned false). */
  onDrain(fn: () => void): void {
    this.socket.once('drain', fn);
  }

  /** end finishes the response (writing `last` first, if given). */
  end(last?: Buffer): void {
    if (this.#finished) return;
    if (last !== undefined) this.write(last);
    if (this.#wire === BodyWire.Chunked) this.socket.write('0\r\n\r\n', 'latin1');
    this.#flushHead();
    this.#finished = true;
    this.owner.responseDone(this);
  }

  /**
   * sendPage answers with one of the balancer's pages, under the rules of today's sendPage
   * (src/proxy/error-pages.ts): 400, 408, 417 and a 403 to a request with a body close the
   * connection; a response already started is cut instead.
   */
  sendPage(page: ErrorPage): void {
    if (this.#finished) return;
    if (this.#headersSent) {
      this.destroy();
      return;
    }
    const s = page.status;
    if (s === 400 || s === 408 || s === 417 || (s === 403 && this.body !== undefined)) this.keepAlive = false;
    const headers = ['content-type', 'text/html; charset=utf-8', 'content-length', String(page.body.length), 'cache-control', 'no-store'];
    if (s === 503) headers.push('retry-after', '10');
    this.writeHead(s, page.reason, headers, page.body.length, true);
    this.end(page.body);
  }

  /** destroy cuts the connection: the only honest signal once a response has started. */
  destroy(): void {
    if (this.#finished) return;
    this.#flushHead(); // what was written goes out before the cut
    this.#finished = true;
    this.owner.cut(this);
  }

  /** @internal The connection ended the request early; tell the listener once. */
  abort(why: AbortReason): void {
    if (this.#finished) return;
    this.#finished = true;
    this.listener?.aborted(why);
  }
}
