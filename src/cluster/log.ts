/**
 * Logging with `--workers`: the primary and every worker write JSON lines to the same
 * stdout. A write of at most PIPE_BUF (4 KiB on Linux) to a pipe is atomic, so each
 * process writes whole lines in chunks of at most 4 KiB (sonic-boom's maxWrite), batched
 * as in one process (src/log.ts) and flushed at least every 250 ms: lines of different
 * processes never interleave mid-line. Worker lines carry `worker: <n>`.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { byteDestination, prettyStream } from '../log.js';

/** clusterLogger builds the logger of the primary (worker undefined) or of worker n. */
export function clusterLogger(level: string, worker?: number): Logger {
  const base = worker === undefined ? undefined : { worker };
  if (process.stdout.isTTY === true) {
    return pino({ level: level as LevelWithSilent, base }, prettyStream());
  }
  const destination = byteDestination({ dest: 1, sync: false, minLength: 2048, maxWrite: 4096 });
  setInterval(() => {
    try {
      destination.flush();
    } catch {
      // not ready yet (still opening): nothing to flush
    }
  }, 250).unref();
  return pino({ level: level as LevelWithSilent, base }, destination);
}
