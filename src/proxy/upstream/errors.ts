/**
 * The ways a backend exchange on the raw-socket data plane fails, as stable codes (one
 * per failure, like undici's error classes), and the status page each one maps to. The
 * mapping is the one the node:http + undici plane of the last release had:
 * refused connections are retried on another backend, then 502; connect timeouts are
 * retried too (undici's UND_ERR_CONNECT_TIMEOUT is in its REFUSED set); a response that
 * does not come in time is 504; local resource exhaustion is 503; anything else the
 * backend did wrong is 502. Once the response has started, every failure is a cut stream.
 */

/** UpstreamErrorCode names one failure of a backend exchange. */
export type UpstreamErrorCode =
  /** ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL: nothing reached the backend. */
  | 'connect-refused'
  /** The connection was not established within timeouts.connect. */
  | 'connect-timeout'
  /** Connecting failed otherwise (DNS, ...). */
  | 'connect-failed'
  /** The balancer is out of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM). */
  | 'no-resources'
  /** The backend closed or reset the connection before the first byte of a response. */
  | 'reset-before-response'
  /** The backend closed or reset the connection in the middle of a response. */
  | 'reset-during-response'
  /** No response byte for timeouts.response (backpressure from the client does not count). */
  | 'response-timeout'
  /** A response the codec refuses (framing, syntax), or one that was not asked for (101). */
  | 'bad-response'
  /** A response head over the limit. */
  | 'too-large'
  /** The request body source failed or ended short of its Content-Length: the client's fault. */
  | 'request-body';

/** The failures after which another backend may be tried (nothing of the request was processed). */
const RETRYABLE_CONNECT = new Set<UpstreamErrorCode>(['connect-refused', 'connect-timeout']);

/** UpstreamError is a failed exchange: its code, and whether the request may go to another backend. */
export class UpstreamError extends Error {
  constructor(
    readonly code: UpstreamErrorCode,
    message: string,
    /** True when no part of the request can have been processed: safe to send elsewhere. */
    readonly retryable: boolean = RETRYABLE_CONNECT.has(code),
    /** The socket error behind it (errno code), when there is one. */
    readonly errno?: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/**
 * statusFor is the balancer's own page for a failure before the response started (after
 * it, the client connection is cut instead). A retryable failure is retried first; this
 * is the answer when no backend is left.
 */
export function statusFor(code: UpstreamErrorCode): 400 | 502 | 503 | 504 {
  switch (code) {
    case 'response-timeout':
      return 504;
    case 'no-resources':
      return 503;
    case 'request-body':
      return 400;
    default:
      return 502;
  }
}

/** Socket errors while connecting that mean the backend is not there: retry elsewhere. */
const REFUSED_ERRNO = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** Socket errors that mean the balancer itself ran out of something (the WebSocket upgrade path reads them too). */
export const NO_RESOURCES_ERRNO = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/** connectError turns a socket error while connecting into its UpstreamError. */
export function connectError(err: NodeJS.ErrnoException): UpstreamError {
  const errno = err.code ?? '';
  if (REFUSED_ERRNO.has(errno)) return new UpstreamError('connect-refused', err.message, true, errno);
  if (NO_RESOURCES_ERRNO.has(errno)) return new UpstreamError('no-resources', err.message, false, errno);
  return new UpstreamError('connect-failed', err.message, false, errno);
}
