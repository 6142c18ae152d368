/**
 * UpstreamExchange is one request sent to one backend over a pooled raw socket, and its
 * response read back with the strict codec (src/proxy/codec/response-head.ts): the
 * raw-socket replacement for an undici dispatch. The request head goes out in one write
 * (method, target and the caller's already-rewritten header list, as given); the body
 * follows from a Readable with backpressure (paused while the backend socket's buffer is
 * full), copied as is for Content-Length or re-encoded as chunks (a BodySender,
 * body-sender.ts, made only when there is a body). The response goes to a
 * ResponseSink: interim heads (100, 103), the final head, then body chunks with
 * backpressure the other way (a `false` from the sink pauses the backend socket until
 * resume()), then end — or upgrade() for a 101, or error() once.
 *
 * Body chunks are the socket's own buffers when a read holds nothing but body (the common
 * Content-Length case), else views into them; nothing is copied. The socket goes back to
 * the pool only when the response and the request body are both complete and the framing
 * allows (keep-alive, no stray bytes after the response); any doubt retires it.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { CHUNK_DATA, CHUNK_END, CHUNK_ERROR, ChunkedDecoder } from '../codec/chunked.js';
import type { BodyFraming } from '../codec/request-head.js';
import { encodeHead } from '../codec/head-bytes.js';
import { parseResponseHead, type ResponseHead } from '../codec/response-head.js';
import { BodySender, type BodySenderHost } from './body-sender.js';
import type { UpstreamConnection } from './connection.js';
import { UpstreamError, type UpstreamErrorCode } from './errors.js';
import type { PoolClient, UpstreamPool } from './pool.js';

/** UpstreamRequest is what goes to the backend. */
export interface UpstreamRequest {
  readonly method: string;
  readonly target: string;
  /**
   * Names and values alternating, exactly as they go to the backend (the caller has
   * rewritten them); they must carry the Content-Length or `Transfer-Encoding: chunked`
   * that `body` describes. Values must hold no CR or LF: the request codec guarantees it
   * for what the client sent, and the balancer's own values never do.
   */
  readonly headers: readonly string[];
  /** How the body is framed towards the backend. */
  readonly body: BodyFraming;
  /** The body's bytes (already de-chunked); required unless body is `none`. */
  readonly source?: Readable;
  /** The request asks for a protocol switch: a 101 answers it (else a 101 is bad-response). */
  readonly upgrade?: boolean;
}

/** ResponseSink receives the response; see the module comment. */
export interface ResponseSink {
  /** A 1xx other than 101 (100 Continue, 103 Early Hints); the final head follows. */
  interim?(head: ResponseHead): void;
  /**
   * The final head. bodyFollows: the body's bytes (or its end) come in calls made before
   * this read returns, so the sink may hold the head back to write it with them.
   */
  head(head: ResponseHead, bodyFollows: boolean): void;
  /** Body bytes (trailers are dropped); `false` pauses the backend until exchange.resume(). */
  data(chunk: Buffer): boolean;
  end(): void;
  /**
   * 101: the socket is the caller's now (out of the pool, none of our listeners left on it:
   * attach an 'error' listener at once); `rest` holds bytes read past the head.
   */
  upgrade(head: ResponseHead, socket: Socket, rest: Buffer): void;
  /** The exchange failed (once, nothing after it); responseStarted: head() was called. */
  error(err: UpstreamError, responseStarted: boolean): void;
}

/** Taken off a backend's Keep-Alive timeout: a request sent just before it runs out would meet a closing socket. */
const KEEP_ALIVE_MARGIN_MS = 1000;

const enum Phase {
  Connecting,
  Head,
  Body,
  Done,
}
const enum Framing {
  None,
  Length,
  Chunked,
  Close,
}

/** UpstreamExchange: see the module comment. Start it with exchange(). */
export class UpstreamExchange implements PoolClient, BodySenderHost {
  #conn: UpstreamConnection | undefined;
  #phase = Phase.Connecting;
  /** Head bytes of a response head split across reads. */
  #partial: Buffer | undefined;
  #framing = Framing.None;
  #remaining = 0;
  #decoder: ChunkedDecoder | undefined;
  #keepAlive = false;
  /** How long the socket may idle in the pool after this exchange (Keep-Alive: timeout=). */
  #idleMs = Infinity;
  #responseStarted = false;
  #anyResponseByte = false;
  #requestDone: boolean;
  /** Sends the request body (only a request with one has it). */
  #sender: BodySender | undefined;

  constructor(
    readonly pool: UpstreamPool,
    readonly request: UpstreamRequest,
    readonly sink: ResponseSink,
  ) {
    this.#requestDone = request.body.kind === 'none';
  }

  /** done is true once the exchange ended: completed, failed, upgraded or aborted. */
  get done(): boolean {
    return this.#phase === Phase.Done;
  }

  /** requestBodyComplete: the whole request body was sent (false when the answer came first). */
  get requestBodyComplete(): boolean {
    return this.#requestDone;
  }

  /** The connection carries its second or later request (for tests and metrics). */
  get reused(): boolean {
    return (this.#conn?.exchanges ?? 0) > 1;
  }

  /** resume reads the response again after the sink returned false (call it on the sink's drain). */
  readonly resume = (): void => {
    if (this.#phase !== Phase.Done) this.#conn?.resume();
  };

  /** abort ends the exchange from the caller's side (the client went away): no sink call follows. */
  abort(): void {
    if (this.#phase === Phase.Done) return;
    this.#phase = Phase.Done;
    this.#stopSource();
    if (this.#conn !== undefined) this.pool.retire(this.#conn);
    else this.pool.cancel(this);
  }

  // PoolClient

  /** @internal */
  ready(conn: UpstreamConnection): void {
    this.#conn = conn;
    this.#phase = Phase.Head;
    const { method, target, headers } = this.request;
    conn.socket.write(encodeHead(`${method} ${target} HTTP/1.1\r\n`, headers, '\r\n'));
    const { body, source } = this.request;
    if (body.kind === 'none') return;
    if (source === undefined || source.readableEnded) {
      this.#fail('request-body', 'the request body source is missing or already ended');
      return;
    }
    this.#sender = new BodySender(this, conn, source, body);
  }

  /** @internal */
  failed(err: UpstreamError): void {
    if (this.#phase === Phase.Done) return;
    this.#phase = Phase.Done;
    this.sink.error(err, false);
  }

  /** @internal */
  onData(buf: Buffer): void {
    this.#anyResponseByte = true;
    this.#conn!.touch();
    if (this.#phase === Phase.Body) this.#body(buf, 0);
    else this.#head(buf);
  }

  /** @internal */
  onEnd(): void {
    if (this.#phase === Phase.Body && this.#framing === Framing.Close) {
      this.#responseComplete();
      return;
    }
    this.#reset(undefined);
  }

  /** @internal */
  onClose(err: Error | undefined): void {
    this.#reset(err);
  }

  /** @internal */
  onDrain(): void {
    this.#sender?.onDrain();
  }

  /** @internal */
  onTimeout(): void {
    this.#fail('response-timeout', 'the backend did not answer in time');
  }

  // The response

  #head(buf: Buffer): void {
    let b = buf;
    if (this.#partial !== undefined) {
      b = Buffer.concat([this.#partial, buf]);
      this.#partial = undefined;
    }
    let p = 0;
    const toHead = this.request.method === 'HEAD';
    for (;;) {
      const r = parseResponseHead(b, p, this.pool.maxHeaderBytes, toHead);
      if (r.kind === 'incomplete') {
        this.#partial = b.subarray(p);
        return;
      }
      if (r.kind === 'error') {
        this.#fail(r.code, `bad response from the backend: ${r.reason}`);
        return;
      }
      if (r.interim) {
        this.sink.interim?.(r);
        if (this.#phase === Phase.Done) return;
        p = r.headEnd;
        if (p === b.length) return;
        continue;
      }
      if (r.upgrade) {
        if (this.request.upgrade !== true) {
          this.#fail('bad-response', 'bad response from the backend: 101 to a request that asked for no upgrade');
          return;
        }
        this.#phase = Phase.Done;
        this.#stopSource();
        const socket = this.pool.detach(this.#conn!);
        this.sink.upgrade(r, socket, b.subarray(r.headEnd));
        return;
      }
      this.#keepAlive = r.keepAlive;
      if (r.keepAliveTimeout !== undefined) {
        // The backend's own idle limit, less a second for the request in flight (as undici).
        this.#idleMs = r.keepAliveTimeout * 1000 - KEEP_ALIVE_MARGIN_MS;
        if (this.#idleMs <= 0) this.#keepAlive = false;
      }
      this.#responseStarted = true;
      this.#phase = Phase.Body;
      const body = r.body;
      this.sink.head(r, body.kind === 'none' || (body.kind === 'length' && r.headEnd < b.length));
      if (this.#phase !== Phase.Body) return; // the sink aborted
      switch (body.kind) {
        case 'none':
          if (r.headEnd < b.length) this.#keepAlive = false; // stray bytes after the response
          this.#responseComplete();
          return;
        case 'length':
          this.#framing = Framing.Length;
          this.#remaining = body.length;
          break;
        case 'chunked':
          this.#framing = Framing.Chunked;
          this.#decoder = new ChunkedDecoder();
          break;
        default:
          this.#framing = Framing.Close;
      }
      if (r.headEnd < b.length) this.#body(b, r.headEnd);
      return;
    }
  }

  #body(b: Buffer, p: number): void {
    const sink = this.sink;
    let more = true;
    switch (this.#framing) {
      case Framing.Length: {
        const n = Math.min(this.#remaining, b.length - p);
        this.#remaining -= n;
        more = sink.data(n === b.length ? b : b.subarray(p, p + n));
        if (this.#phase !== Phase.Body) return;
        if (this.#remaining === 0) {
          if (p + n < b.length) this.#keepAlive = false; // stray bytes after the response
          this.#responseComplete();
          return;
        }
        break;
      }
      case Framing.Chunked: {
        const d = this.#decoder!;
        let ev: number;
        while ((ev = d.step(b, p, b.length)) === CHUNK_DATA) {
          if (!sink.data(b.subarray(d.dataStart, d.dataEnd))) more = false;
          if (this.#phase !== Phase.Body) return;
          p = d.pos;
        }
        if (ev === CHUNK_ERROR) {
          this.#fail('bad-response', `bad chunked body from the backend: ${d.reason}`);
          return;
        }
        if (ev === CHUNK_END) {
          if (d.pos < b.length) this.#keepAlive = false;
          this.#responseComplete();
          return;
        }
        break;
      }
      default:
        more = sink.data(p === 0 ? b : b.subarray(p));
        if (this.#phase !== Phase.Body) return;
    }
    if (!more) this.#conn!.pause();
  }

  #responseComplete(): void {
    this.#phase = Phase.Done;
    const conn = this.#conn!;
    if (!this.#requestDone) {
      // Answered before the whole body was sent (413, 401, 417): stop sending it; the
      // backend connection is in an unknown state and goes (as undici does).
      this.#stopSource();
      this.#keepAlive = false;
    }
    if (this.#keepAlive) this.pool.release(conn, this.#idleMs);
    else this.pool.retire(conn);
    this.sink.end();
  }

  /** The backend ended or reset the connection before the response was complete. */
  #reset(err: Error | undefined): void {
    if (this.#phase === Phase.Done) return;
    const errno = (err as NodeJS.ErrnoException | undefined)?.code;
    if (this.#phase === Phase.Body) {
      this.#fail('reset-during-response', `the backend closed the connection during the response${errno ? ` (${errno})` : ''}`, false, errno);
      return;
    }
    // No response byte: a reused socket the backend closed as we wrote to it (its keep-alive
    // ran out) did not process the request; retry it when no body byte is lost with it.
    const retryable = !this.#anyResponseByte && this.#conn!.exchanges > 1 && this.#sender?.taken !== true;
    this.#fail('reset-before-response', `the backend closed the connection before answering${errno ? ` (${errno})` : ''}`, retryable, errno);
  }

  #fail(code: UpstreamErrorCode, message: string, retryable?: boolean, errno?: string): void {
    if (this.#phase === Phase.Done) return;
    this.#phase = Phase.Done;
    this.#stopSource();
    if (this.#conn !== undefined) this.pool.retire(this.#conn);
    this.sink.error(new UpstreamError(code, message, retryable ?? false, errno), this.#responseStarted);
  }

  // The request body (BodySenderHost)

  /** @internal */
  bodySent(): void {
    this.#requestDone = true;
  }

  /** @internal */
  bodyFailed(message: string): void {
    this.#fail('request-body', message);
  }

  #stopSource(): void {
    this.#sender?.stop();
  }
}

/**
 * exchange sends `request` to a backend through `pool` and streams the answer to `sink`.
 * Returns the exchange (abort() it when the client goes away; resume() it on the sink's drain).
 */
export function exchange(pool: UpstreamPool, request: UpstreamRequest, sink: ResponseSink): UpstreamExchange {
  const ex = new UpstreamExchange(pool, request, sink);
  pool.acquire(ex);
  return ex;
}
