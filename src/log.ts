/**
 * Logging: pino JSON lines on stdout (pretty when stdout is a terminal). The access log
 * is a child logger so it can be switched off on its own; pino writes asynchronously
 * (sonic-boom with sync: false) to keep formatting and write syscalls off the request
 * path, and flushes on exit.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { createRequire } from 'node:module';
import type { PrettyStream } from 'pino-pretty';
import type { SonicBoomOpts } from 'sonic-boom';

export type { Logger };

/** Destination is pino's asynchronous file-descriptor writer (sonic-boom), here taking bytes as well as strings. */
export type Destination = Omit<ReturnType<typeof pino.destination>, 'write'> & { write(data: string | Buffer): boolean };

/**
 * byteDestination is pino.destination in sonic-boom's buffer mode: the access log hands it
 * batches of lines already encoded as UTF-8 (src/proxy/line-buffer.ts), and they are
 * written as they are. In the default string mode each batch was decoded to a string,
 * re-encoded by the write and again after it (~10% of the proxy's CPU). pino's own lines
 * still arrive as strings; they are encoded here (the service log writes few lines).
 */
export function byteDestination(options: Omit<SonicBoomOpts, 'contentMode'>): Destination {
  const destination = pino.destination({ ...options, contentMode: 'buffer' });
  const writeBytes = destination.write.bind(destination) as unknown as (bytes: Buffer) => boolean;
  destination.write = (data: string | Buffer): boolean => writeBytes(typeof data === 'string' ? Buffer.from(data) : data);
  return destination;
}

/** LogOptions choose the level and whether output is pretty-printed for a person. */
export interface LogOptions {
  readonly level: LevelWithSilent;
  readonly pretty?: boolean;
}

/** createLogger builds the process logger; JSON unless stdout is a TTY (or pretty is forced). */
export function createLogger(options: LogOptions): Logger {
  const usePretty = options.pretty ?? process.stdout.isTTY === true;
  if (usePretty) {
    return pino({ level: options.level, base: undefined }, prettyStream());
  }
  // Lines are gathered into 4 KiB writes (one write syscall per ~15 access-log lines
  // instead of one per line: measured at ~10% of the proxy's CPU otherwise) and flushed
  // at least every 250 ms, so a quiet balancer's log is never more than that behind.
  const destination = byteDestination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => {
    try {
      destination.flush();
    } catch {
      // not ready yet (still opening): nothing to flush
    }
  }, 250).unref();
  return pino({ level: options.level, base: undefined }, destination);
}

/**
 * prettyStream is the pino-pretty stream for a person at a terminal (one process or
 * `--workers`). pino-pretty is required here, on first use: JSON logging, the usual case of a
 * service, never needs it and it costs ~2.5 MiB of RSS.
 */
export function prettyStream(): PrettyStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty').build;
  return pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
}

/** flushLogger writes out what the async destination still holds (before exit). */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // a destination that is not ready yet has nothing to flush
  }
}
