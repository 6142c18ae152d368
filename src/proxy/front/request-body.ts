/**
 * RequestBody is a client request's body on the raw-socket data plane: a Readable the
 * front connection pushes de-framed bytes into (Content-Length slices or chunk data, views
 * into the socket's own buffers, never copied). When its buffer is full the connection
 * pauses the client socket; a read() from the consumer (the upstream exchange resuming
 * after the backend drained) resumes it. A Readable because that is what
 * src/proxy/upstream/exchange.ts takes as a body source.
 */
import { Readable } from 'node:stream';

/** What the body needs from its connection: more bytes, please. */
export interface BodyFeeder {
  /** The consumer wants more: resume reading the client socket if it was paused for this body. */
  wantMore(): void;
}

/** Buffered body bytes before the client socket is paused (as node's own 64 KiB streams). */
const BODY_HIGH_WATER_MARK = 64 * 1024;

/** RequestBody: see the file comment. */
export class RequestBody extends Readable {
  readonly #feeder: BodyFeeder;

  constructor(feeder: BodyFeeder) {
    super({ highWaterMark: BODY_HIGH_WATER_MARK });
    this.#feeder = feeder;
  }

  override _read(): void {
    this.#feeder.wantMore();
  }
}
