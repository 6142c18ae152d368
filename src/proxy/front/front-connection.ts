/**
 * FrontConnection is one client connection on the raw-socket data plane (a `net.Socket`,
 * or a `tls.TLSSocket` for listen.tls): the state machine that replaces node:http's
 * server side. It parses request heads with the strict codec across reads (unparsed bytes
 * are kept as a view of the read that brought them; only a head split across reads is
 * concatenated), de-frames bodies (Content-Length or chunked) into a RequestBody with
 * backpressure (the client socket is paused while the body's buffer is full), and hands
 * each request to its FrontHandler.
 *
 * Pipelining: requests are answered strictly in order, by the simplest correct rule: the
 * next head is parsed only after the current response is complete. Bytes that arrive
 * meanwhile are kept (and reading pauses once they pass maxHeaderBytes), so a malformed
 * pipelined request gets its 400 after the answers before it, never ahead of them.
 *
 * Timeouts, as the node:http listener has them today: the first head must arrive within
 * headersTimeout (else 408 and close); an idle keep-alive connection closes silently after
 * keepAliveTimeout; a request body that makes no progress for bodyIdleTimeout while the
 * balancer waits for it gets 408 (a cut once the response has started), and the request is
 * aborted. Malformed heads get the 400 page (431 when over limits.maxHeaderBytes) with
 * Connection: close, and the connection closes after it. A client that ends or resets its
 * side aborts the request in progress (node:http's httpAllowHalfOpen = false).
 */
import type { Socket } from 'node:net';
import { CHUNK_DATA, CHUNK_END, CHUNK_ERROR, ChunkedDecoder } from '../codec/chunked.js';
import { parseRequestHead, type RequestHead } from '../codec/request-head.js';
import { closeAfter } from '../close-socket.js';
import { type ErrorPages, type ErrorStatus, rawErrorResponse } from '../error-pages.js';
import { Armed, ConnectionTimers } from './connection-timers.js';
import { FrontRequest, type RequestOwner } from './front-request.js';
import { type BodyFeeder, RequestBody } from './request-body.js';

/** FrontSettings: the limits and timeouts a connection reads at each use (a reload changes them). */
export interface FrontSettings {
  readonly maxHeaderBytes: number;
  /** ms a request head may take to arrive (0: no limit). */
  readonly headersTimeout: number;
  /** ms an idle keep-alive connection stays open. */
  readonly keepAliveTimeout: number;
  /** ms a request body may make no progress before 408 (0: no limit). */
  readonly bodyIdleTimeout: number;
  readonly pages: ErrorPages;
  /** The listener is shutting down: answers carry Connection: close. */
  readonly closing: boolean;
}

/** FrontHandler serves the requests of a connection. */
export interface FrontHandler {
  /** A request arrived; answer it through `req` (writeHead/write/end, sendPage, destroy). */
  request(req: FrontRequest): void;
  /**
   * A protocol switch was asked (Upgrade with Connection: upgrade): the socket is the
   * handler's from now on (none of the connection's listeners are left on it); `rest`
   * holds the bytes read past the head. Without this hook the request gets 400.
   */
  upgrade?(head: RequestHead, socket: Socket, rest: Buffer): void;
  /** A head was refused (for the debug log). */
  malformed?(status: ErrorStatus, reason: string): void;
}

const enum State {
  /** Waiting for (more of) a request head. */
  Head,
  /** A request's body is arriving. */
  Body,
  /** The whole request arrived; its response is being written. */
  Answering,
  /** The connection is ending; nothing more is read as a request. */
  Closed,
}

/** FrontConnection: see the file comment. */
export class FrontConnection implements RequestOwner, BodyFeeder {
  #state = State.Head;
  /** Unparsed bytes (the start of a head, or pipelined requests). */
  #buf: Buffer | undefined;
  #req: FrontRequest | undefined;
  #body: RequestBody | undefined;
  #remaining = 0;
  #decoder: ChunkedDecoder | undefined;
  /** The client socket is paused because the body's consumer is behind. */
  #bodyPaused = false;
  /** Reading is paused because too many pipelined bytes wait for the current answer. */
  #pipelinePaused = false;
  readonly #timers = new ConnectionTimers((kind) => this.#onTimeout(kind));
  #pumping = false;
  /** A request was answered on this connection (the keep-alive timeout applies between requests). */
  #answered = false;

  constructor(
    readonly socket: Socket,
    readonly settings: FrontSettings,
    readonly handler: FrontHandler,
  ) {
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    this.#armHeadTimer();
  }

  /** idle: between requests, nothing of a next one read (shutdown closes such connections at once). */
  get idle(): boolean {
    return this.#state === State.Head && this.#buf === undefined;
  }

  get keepAliveSeconds(): number {
    return Math.floor(this.settings.keepAliveTimeout / 1000);
  }

  // ---- reading ---------------------------------------------------------------------------

  readonly #onData = (chunk: Buffer): void => {
    switch (this.#state) {
      case State.Head:
        this.#append(chunk);
        if (this.#timers.armed === Armed.Idle) this.#armHeadTimer();
        this.#pump();
        return;
      case State.Body:
        this.#timers.restart(Armed.Body);
        this.#feedBody(chunk, 0);
        return;
      case State.Answering:
        this.#append(chunk);
        if (this.#buf!.length > this.settings.maxHeaderBytes) {
          this.#pipelinePaused = true;
          this.socket.pause();
        }
        return;
      default:
        return; // closing: what the client still sends is dropped
    }
  };

  #append(chunk: Buffer): void {
    this.#buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
  }

  /** Parses heads from the kept bytes while the connection waits for one (a loop, not recursion: a handler may answer at once). */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#state === State.Head && this.#buf !== undefined) {
        if (!this.#parseHead(this.#buf)) break;
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Parses one head from buf; false when it is incomplete or was refused. */
  #parseHead(buf: Buffer): boolean {
    const r = parseRequestHead(buf, 0, this.settings.maxHeaderBytes);
    if (r.kind === 'incomplete') return false;
    if (r.kind === 'error') {
      const status: ErrorStatus = r.code === 'too-large' ? 431 : 400;
      this.handler.malformed?.(status, r.reason);
      this.#refuse(status);
      return false;
    }
    this.#buf = r.headEnd < buf.length ? buf.subarray(r.headEnd) : undefined;
    this.#timers.disarm();
    if (r.upgrade !== undefined) {
      this.#upgrade(r);
      return false;
    }
    const expect = r.expect;
    if (expect === 'other') {
      this.#refuse(417);
      return false;
    }
    const body = r.body.kind === 'none' ? undefined : new RequestBody(this);
    const req = new FrontRequest(this, this.socket, r, body, r.keepAlive && !this.settings.closing);
    this.#req = req;
    this.#body = body;
    if (body === undefined) {
      this.#state = State.Answering;
    } else {
      this.#state = State.Body;
      if (r.body.kind === 'length') this.#remaining = r.body.length;
      else this.#decoder = new ChunkedDecoder();
      // Node answers 100-continue itself; so does this listener, before the body is read.
      if (expect === 'continue' && r.versionMinor === 1) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
      this.#armBodyTimer();
    }
    if (body !== undefined && this.#buf !== undefined) {
      // Body bytes that came with the head are checked before the request is handed on: a
      // malformed chunk in the same read gets its 400 before anything is sent to a backend.
      const rest = this.#buf;
      this.#buf = undefined;
      this.#feedBody(rest, 0);
      if ((this.#state as State) === State.Closed) return false; // #feedBody may have refused it
    }
    this.handler.request(req);
    return true;
  }

  /** Delivers body bytes from b[p..]; bytes past the body's end are kept for the next head. */
  #feedBody(b: Buffer, p: number): void {
    const body = this.#body!;
    let more = true;
    const d = this.#decoder;
    if (d === undefined) {
      const n = Math.min(this.#remaining, b.length - p);
      this.#remaining -= n;
      if (n > 0) more = body.push(p === 0 && n === b.length ? b : b.subarray(p, p + n));
      if (this.#remaining === 0) this.#bodyEnded(b, p + n);
    } else {
      let ev: number;
      while ((ev = d.step(b, p, b.length)) === CHUNK_DATA) {
        if (!body.push(b.subarray(d.dataStart, d.dataEnd))) more = false;
        p = d.pos;
      }
      if (ev === CHUNK_ERROR) {
        this.#badBody(d.reason);
        return;
      }
      if (ev === CHUNK_END) this.#bodyEnded(b, d.pos);
    }
    if (!more && this.#state === State.Body) {
      this.#bodyPaused = true;
      this.socket.pause();
    }
  }

  #bodyEnded(b: Buffer, end: number): void {
    this.#body!.push(null);
    this.#decoder = undefined;
    this.#timers.disarm();
    if (this.#bodyPaused) {
      this.#bodyPaused = false;
      this.socket.resume();
    }
    if (this.#req!.finished) {
      // Answered before the body ended (the answer said Connection: close): nothing more.
      this.#state = State.Closed;
      return;
    }
    this.#state = State.Answering;
    if (end < b.length) this.#append(b.subarray(end));
  }

  /** A malformed chunked body: the request is aborted, the client gets 400 if nothing was answered yet. */
  #badBody(reason: string): void {
    this.handler.malformed?.(400, reason);
    const req = this.#req!;
    // Destroyed without an error: the consumer may not listen yet; the abort tells the relay.
    this.#body!.destroy();
    if (req.headersSent) {
      req.destroy();
      return;
    }
    req.abort('client-abort');
    this.#refuse(400);
  }

  wantMore(): void {
    if (this.#bodyPaused && this.#state === State.Body) {
      this.#bodyPaused = false;
      this.#timers.restart(Armed.Body);
      this.socket.resume();
    }
  }

  // ---- the request in progress -------------------------------------------------------------

  bodyComplete(req: FrontRequest): boolean {
    return req !== this.#req || this.#state !== State.Body;
  }

  responseDone(req: FrontRequest): void {
    if (req !== this.#req) return;
    this.#answered = true;
    if (!req.keepAlive) {
      this.#close();
      return;
    }
    this.#req = undefined;
    this.#body = undefined;
    this.#state = State.Head;
    if (this.#pipelinePaused) {
      this.#pipelinePaused = false;
      this.socket.resume();
    }
    if (this.#buf === undefined) this.#armIdleTimer();
    else {
      this.#armHeadTimer();
      this.#pump();
    }
  }

  cut(req: FrontRequest): void {
    if (req !== this.#req) return;
    this.#state = State.Closed;
    this.#timers.disarm();
    this.socket.destroy();
  }

  // ---- refusals, upgrades, the end ---------------------------------------------------------

  /** Answers a head the balancer will not serve with a page and closes after it. */
  #refuse(status: ErrorStatus): void {
    this.#state = State.Closed;
    this.#timers.disarm();
    this.#detach();
    closeAfter(this.socket, rawErrorResponse(this.settings.pages[status]));
  }

  #upgrade(head: RequestHead): void {
    const upgrade = this.handler.upgrade;
    if (upgrade === undefined) {
      this.#refuse(400);
      return;
    }
    this.#state = State.Closed;
    this.#detach();
    this.socket.pause();
    const rest = this.#buf ?? Buffer.alloc(0);
    this.#buf = undefined;
    upgrade.call(this.handler, head, this.socket, rest);
  }

  /** Ends the connection after the last answer; what the client still sends is dropped. */
  #close(): void {
    this.#state = State.Closed;
    this.#timers.disarm();
    this.#detach();
    this.#buf = undefined;
    closeAfter(this.socket);
  }

  #detach(): void {
    this.#timers.stop();
    this.socket.off('data', this.#onData);
    this.socket.off('end', this.#onEnd);
    this.socket.off('error', this.#onError);
    this.socket.off('close', this.#onClose);
    if (this.#pipelinePaused || this.#bodyPaused) this.socket.resume();
  }

  readonly #onEnd = (): void => {
    this.#abort('client-abort');
    if (this.#state !== State.Closed) this.#close();
  };

  readonly #onError = (): void => {
    this.#abort('client-abort');
    this.#state = State.Closed;
    this.#timers.disarm();
    this.socket.destroy();
  };

  readonly #onClose = (): void => {
    this.#abort('client-abort');
    this.#state = State.Closed;
    this.#timers.stop();
  };

  /** The request in progress ends without its response: the client is gone or stalled. */
  #abort(why: 'client-abort' | 'client-timeout'): void {
    const req = this.#req;
    if (req === undefined || req.finished) return;
    this.#body?.destroy();
    req.abort(why);
  }

  // ---- timers ----------------------------------------------------------------------------

  #armHeadTimer(): void {
    this.#timers.arm(Armed.Head, this.settings.headersTimeout);
  }

  #armIdleTimer(): void {
    this.#timers.arm(Armed.Idle, this.settings.keepAliveTimeout);
  }

  #armBodyTimer(): void {
    this.#timers.arm(Armed.Body, this.settings.bodyIdleTimeout);
  }

  #onTimeout(kind: Armed): void {
    if (kind === Armed.Head) this.#onHeadTimeout();
    else if (kind === Armed.Idle) this.#onIdleTimeout();
    else this.#onBodyTimeout();
  }

  #onHeadTimeout(): void {
    if (this.#state !== State.Head) return;
    // Nothing of a next request on a connection that already had answers: just close.
    if (this.#answered && this.#buf === undefined) this.#close();
    else this.#refuse(408);
  }

  #onIdleTimeout(): void {
    if (this.#state === State.Head) this.#close();
  }

  #onBodyTimeout(): void {
    if (this.#state !== State.Body) return;
    if (this.#bodyPaused) {
      // Waiting on our own backpressure is not the client's stall.
      this.#armBodyTimer();
      return;
    }
    const req = this.#req!;
    this.#body?.destroy();
    if (req.headersSent) {
      req.abort('client-timeout');
      this.#state = State.Closed;
      this.socket.destroy();
      return;
    }
    req.abort('client-timeout');
    this.#refuse(408);
  }
}
