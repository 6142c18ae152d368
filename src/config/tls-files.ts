/**
 * The PEM files of listen.tls and admin.tls: read and tried as a pair, so a missing,
 * unreadable, broken or mismatched file is one `<json-path>: <reason>` line, at `start`
 * (before anything listens), on a refused reload, and from `validate`, never an error
 * half-way through serving.
 */
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

/** TlsPair is a certificate (chain) and its private key, as read from their files. */
export interface TlsPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** TlsFileError is a TLS file that cannot be used; its message is one `<json-path>: <reason>` line. */
export class TlsFileError extends Error {
  override name = 'TlsFileError';
}

/** readTlsPair reads `files` (named at `where`, e.g. "listen.tls") and checks they make a TLS 1.2+ context. */
export async function readTlsPair(files: { readonly cert: string; readonly key: string }, where: string): Promise<TlsPair> {
  const read = async (file: string, what: 'cert' | 'key'): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new TlsFileError(`${where}.${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  const pair = { cert: await read(files.cert, 'cert'), key: await read(files.key, 'key') };
  try {
    createSecureContext({ ...pair, minVersion: 'TLSv1.2' });
  } catch (err) {
    const reason = (err as Error).message;
    const which = /key|mismatch/i.test(reason) ? 'key' : 'cert';
    throw new TlsFileError(`${where}.${which}: the certificate and key cannot be used (${reason})`);
  }
  return pair;
}
