/**
 * Closing a client socket that no HTTP parser reads any more (a WebSocket handshake the
 * balancer refused or a backend refused, a CONNECT): the last answer goes out, then the
 * connection ends.
 *
 * Whatever the client sends after that is read and dropped, never forwarded: this keeps
 * the kernel from answering unread bytes with a reset that could destroy the answer before
 * the client has read it (the "lingering close" of Apache httpd), and it lets the socket
 * see the client's own close. A client that neither reads nor closes is cut after
 * LINGER_MS, so no socket outlives its answer by more than that.
 */
import type { Duplex } from 'node:stream';

/** How long a socket that was told `connection: close` may stay open (ms). */
export const LINGER_MS = 5000;

/** closeAfter writes `answer` (if any), ends the socket, drops what the client still sends, and destroys it by LINGER_MS at the latest. */
export function closeAfter(socket: Duplex, answer?: Buffer | string): void {
  if (socket.destroyed) return;
  socket.on('error', () => socket.destroy());
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.on('data', drop);
  socket.resume();
  if (answer === undefined) socket.end();
  else socket.end(answer);
}

function drop(): void {
  // The bytes a client sends after its last answer are read and dropped.
}
