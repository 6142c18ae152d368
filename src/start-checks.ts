/**
 * What `start` checks before it listens, besides the config itself: the state backend is
 * usable (state.redis well formed, not reached), the state file's directory is writable, the error pages are
 * readable, the TLS pairs (listen.tls, admin.tls) are usable and log.file can be appended to. `start` (Balancer.start) and `validate` both call
 * checkStartFiles, so `validate` says OK exactly when `start` would get past these checks
 * (SPEC "Command line": validate checks everything start checks except reaching Redis or
 * the backends). Each problem is one `<json-path>: <reason>` line.
 */
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Config } from './config/schema.js';
import { readTlsPair, type TlsPair } from './config/tls-files.js';
import { logFileProblem } from './log-file.js';
import { type ErrorPages, loadErrorPages } from './proxy/error-pages.js';
import { redisTarget } from './state/redis/redis-settings.js';

/** StartFiles are what the checks read, for start to use (read once, so what was checked is what runs). */
export interface StartFiles {
  readonly stateFile: string;
  readonly pages: ErrorPages;
  readonly tls: TlsPair | undefined;
  /** admin.tls, for the admin API over HTTPS. */
  readonly adminTls: TlsPair | undefined;
}

/** StartCheck is either the files start needs, or every problem found (all of them, for validate). */
export type StartCheck = { ok: true; files: StartFiles } | { ok: false; problems: string[] };

/** checkStartFiles runs every start-time check on a loaded config and collects every problem. */
export async function checkStartFiles(config: Config): Promise<StartCheck> {
  const problems: string[] = [];
  const note = <T>(result: T | string): T | undefined => {
    if (typeof result === 'string') {
      problems.push(result);
      return undefined;
    }
    return result;
  };
  const stateFile = note(await checkState(config))?.file;
  const pages = note(readPages(config));
  const tls = config.listen.tls ? note(await readTls(config.listen.tls)) : undefined;
  const adminTls = config.admin.tls ? note(await readTls(config.admin.tls, 'admin.tls')) : undefined;
  // The access log's file is checked without creating it (validate changes nothing; start opens it right after).
  const logProblem = config.log.file === undefined ? undefined : logFileProblem(config.log.file);
  if (logProblem !== undefined) problems.push(logProblem);
  if (problems.length > 0 || stateFile === undefined || pages === undefined) return { ok: false, problems };
  return { ok: true, files: { stateFile, pages, tls, adminTls } };
}

/**
 * readTls reads and tries a cert/key pair (listen.tls, or admin.tls with `where`); a reload
 * uses it too. It returns the pair or one problem line.
 */
export async function readTls(tls: { cert: string; key: string }, where = 'listen.tls'): Promise<TlsPair | string> {
  try {
    return await readTlsPair(tls, where);
  } catch (err) {
    return (err as Error).message;
  }
}

/** readPages reads the configured error pages; a reload uses it too. It returns the pages or one problem line. */
export function readPages(config: Config): ErrorPages | string {
  try {
    return loadErrorPages(config.errorPages);
  } catch (err) {
    return (err as Error).message;
  }
}

/** checkState returns the state file (with state.redis: where the local copy of the shared state goes), or why it cannot be used. */
async function checkState(config: Config): Promise<{ file: string } | string> {
  if (config.state.redis !== undefined) {
    // Checked, not reached: validate never talks to Redis (start waits for it, then uses the local copy).
    const target = redisTarget(config.state.redis);
    if (!target.ok) return `state.redis: ${target.error}`;
  }
  const file = config.state.file;
  // The state is written to a temporary file in the same directory and renamed over the old one.
  const dir = dirname(file);
  try {
    if (!(await stat(dir)).isDirectory()) return `state.file: ${dir} is not a directory`;
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `state.file: the directory ${dir} does not exist (create it, writable by the balancer's user)`;
    return `state.file: the directory ${dir} is not writable (${code ?? (err as Error).message})`;
  }
  try {
    const info = await stat(file);
    if (info.isDirectory()) return `state.file: ${file} is a directory, not a file`;
    await access(file, constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') return `state.file: cannot read ${file} (${code ?? (err as Error).message})`;
  }
  return { file };
}
