/**
 * listenOn binds a server and resolves with the address actually bound (port 0 picks
 * one), or rejects with the listen error (EADDRINUSE, EACCES, ...) for the caller to word.
 */
import type { Server } from 'node:net';

/** listenOn binds `server` to host:port; see the file comment. */
export function listenOn(server: Server, host: string, port: number): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('unexpected server address'));
      resolve({ host: address.address, port: address.port });
    });
  });
}
