/**
 * BodySender copies a request body from its Readable to a backend socket for one
 * UpstreamExchange, with backpressure (the source pauses while the socket's buffer is
 * full, until the socket drains): as is for Content-Length (checking the byte count), or
 * re-encoded as chunks. Made only for a request that has a body, so the common body-less
 * request allocates none of its listeners.
 */
import type { Readable } from 'node:stream';
import type { BodyFraming } from '../codec/request-head.js';
import type { UpstreamConnection } from './connection.js';

/** What a sender tells its exchange. */
export interface BodySenderHost {
  /** The whole body was sent (its listeners are off the source already). */
  bodySent(): void;
  /** The body cannot be sent as framed (too long, too short, the source failed). */
  bodyFailed(message: string): void;
}

/** BodySender: see the file comment. Listens from construction until the body ends or stop(). */
export class BodySender {
  /** A byte of the body was taken from the source (the request can no longer be sent again). */
  taken = false;
  #sent = 0;
  #paused = false;

  constructor(
    readonly host: BodySenderHost,
    readonly conn: UpstreamConnection,
    readonly source: Readable,
    readonly framing: Exclude<BodyFraming, { kind: 'none' }>,
  ) {
    source.on('data', this.#onData);
    source.on('end', this.#onEnd);
    source.on('error', this.#onError);
    source.resume();
  }

  /** onDrain resumes a source paused for the socket's full buffer. */
  onDrain(): void {
    if (this.#paused) {
      this.#paused = false;
      this.source.resume();
    }
  }

  /** stop removes the sender's listeners: nothing more is sent. */
  stop(): void {
    const source = this.source;
    source.off('data', this.#onData);
    source.off('end', this.#onEnd);
    source.off('error', this.#onError);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (chunk.length === 0) return;
    this.taken = true;
    const conn = this.conn;
    const socket = conn.socket;
    const framing = this.framing;
    let ok: boolean;
    if (framing.kind === 'length') {
      this.#sent += chunk.length;
      if (this.#sent > framing.length) {
        this.host.bodyFailed('the request body is longer than its Content-Length');
        return;
      }
      ok = socket.write(chunk);
    } else {
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
      socket.uncork();
    }
    conn.touch();
    if (!ok) {
      this.#paused = true;
      this.source.pause();
    }
  };

  readonly #onEnd = (): void => {
    const framing = this.framing;
    if (framing.kind === 'length' && this.#sent !== framing.length) {
      this.host.bodyFailed('the request body ended before its Content-Length');
      return;
    }
    if (framing.kind === 'chunked') this.conn.socket.write('0\r\n\r\n', 'latin1');
    this.stop();
    this.host.bodySent();
  };

  readonly #onError = (err: Error): void => {
    this.host.bodyFailed(`the request body failed: ${err.message}`);
  };
}
