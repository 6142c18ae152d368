/**
 * Where access-log lines go: stdout, next to the service log (the default), or `log.file`,
 * a file opened for appending (O_APPEND) and reopened on SIGUSR1, after logrotate moved it.
 *
 * Both batch like src/log.ts: lines gather into writes of at least 4 KiB, flushed every
 * 250 ms. Each write() holds whole lines only (sonic-boom starts a new chunk rather than
 * split a line), and writes to a file opened with O_APPEND land whole at its end: with
 * `--workers`, every worker appends to the same file and lines never interleave.
 */
import { accessSync, closeSync, constants, existsSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino, type Logger } from 'pino';
import { byteDestination, type Destination } from './log.js';
import type { AccessSink } from './proxy/access-log.js';
import { StartupError } from './startup-error.js';

/**
 * stdoutSink writes access lines into the service log's own stream (same batching, same
 * order), and only while the log level lets info lines through (as the child logger did).
 */
export function stdoutSink(logger: Logger): AccessSink {
  const stream = (logger as unknown as Record<symbol, { write(lines: Buffer): void }>)[pino.symbols.streamSym]!;
  return {
    write(lines: Buffer): void {
      if (logger.isLevelEnabled('info')) stream.write(lines);
    },
  };
}

/**
 * checkLogFile opens `log.file` for appending (creating it) and closes it again, so a start
 * with a file it cannot write fails at once, in one sentence, before any traffic.
 */
export function checkLogFile(path: string): void {
  try {
    closeSync(openSync(path, 'a'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'its directory does not exist' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    throw new StartupError(`log.file: cannot open ${path}: ${why}`);
  }
}

/**
 * logFileProblem says why `log.file` could not be opened for appending, without creating it
 * (for `validate`, which must change nothing); undefined when it could.
 */
export function logFileProblem(path: string): string | undefined {
  const target = existsSync(path) ? path : dirname(path);
  try {
    accessSync(target, constants.W_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'its directory does not exist' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message;
    return `log.file: cannot open ${path}: ${why}`;
  }
}

/** AccessFile is the access log in `log.file`: appended to, batched, reopened on demand. */
export class AccessFile implements AccessSink {
  readonly path: string;
  readonly #dest: Destination;
  readonly #timer: NodeJS.Timeout;
  #failed = false;

  /** Opens `path` for appending (checkLogFile first: errors here are only logged). */
  constructor(path: string, logger: Logger) {
    this.path = path;
    this.#dest = byteDestination({ dest: path, append: true, mkdir: false, sync: false, minLength: 4096 });
    this.#dest.on('error', (err: Error) => {
      // Logged once per failure streak: a vanished directory must not flood the service log.
      if (this.#failed) return;
      this.#failed = true;
      logger.error({ file: path, err: err.message }, 'cannot write the access log file');
    });
    this.#dest.on('ready', () => {
      this.#failed = false;
    });
    this.#timer = setInterval(() => this.flush(), 250);
    this.#timer.unref();
  }

  write(lines: Buffer): void {
    this.#dest.write(lines);
  }

  /** reopen writes out what is buffered, then opens the path anew (logrotate moved the file away). */
  reopen(): void {
    this.#dest.reopen();
  }

  /** flush starts writing what is buffered (no-op while the file is still opening). */
  flush(): void {
    try {
      this.#dest.flush();
    } catch {
      // not open yet: nothing to flush
    }
  }

  /** close writes out what is left and closes the file (at shutdown). */
  close(): void {
    clearInterval(this.#timer);
    try {
      this.#dest.flushSync();
    } catch {
      // still opening, or the write failed (already logged)
    }
    this.#dest.end();
  }
}
