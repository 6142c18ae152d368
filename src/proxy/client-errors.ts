/**
 * Malformed input on the client listener (Node's `clientError`): a request Node's parser
 * rejects gets the balancer's 400, 408 or 431 page, or, when the error is in a later
 * pipelined request, the answers in progress go out first and the connection closes after
 * them. Kept apart from ProxyServer because it touches no routing: only the socket, the
 * response in progress and the error pages.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ErrorStatus, rawErrorResponse } from './error-pages.js';
import type { ProxyDeps } from './proxy-server.js';

/** ClientErrors answers one listener's parse errors; see the file comment. */
export class ClientErrors {
  /** The proxy's collaborators (the same object: reloaded pages are seen at once). */
  readonly #deps: Pick<ProxyDeps, 'pages' | 'logger'>;
  /** Answers after which the connection closes because a later pipelined request was malformed. */
  readonly #closingAfterAnswers = new WeakSet<ServerResponse>();

  constructor(deps: Pick<ProxyDeps, 'pages' | 'logger'>) {
    this.#deps = deps;
  }

  onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
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
}
