/**
 * Reading a reload: the config file is loaded and checked, and everything the new config
 * points at (error pages, TLS files) is read, before anything running is touched. A config
 * that cannot be applied without a restart (HTTP to HTTPS or back, another affinity.mode)
 * is refused here. The Balancer then applies the plan to its parts in one go.
 */
import type { Logger } from 'pino';
import { AdminError } from '../admin/control.js';
import { ConfigError, loadConfig } from '../config/load.js';
import { settingsDiff } from '../config/reload-diff.js';
import type { Config } from '../config/schema.js';
import type { ErrorPages } from '../proxy/error-pages.js';
import { readPages, readTls } from '../start-checks.js';

/** ReloadPlan is a checked new config and what it points at, ready to apply. */
export interface ReloadPlan {
  readonly next: Config;
  readonly pages: ErrorPages;
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /** Settings that changed, and those that need a restart to take effect. */
  readonly diff: { readonly settings: string[]; readonly needsRestart: string[] };
}

/** readReload loads and checks `configFile` against the running config; throws INVALID_CONFIG, keeping the running config. */
export async function readReload(configFile: string | undefined, running: Config, logger: Logger): Promise<ReloadPlan> {
  if (configFile === undefined) throw new AdminError('INVALID_CONFIG', 'this balancer was not started from a config file');
  let next: Config;
  try {
    next = (await loadConfig(configFile)).config;
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
    logger.error({ problems }, 'reload refused: the config file is invalid; the running config is kept');
    throw new AdminError('INVALID_CONFIG', `the config file is invalid; the running config is kept: ${problems.join('; ')}`, problems);
  }
  if ((next.listen.tls === undefined) !== (running.listen.tls === undefined)) {
    throw new AdminError('INVALID_CONFIG', `listen.tls was ${next.listen.tls ? 'added' : 'removed'}: switching between HTTP and HTTPS needs a restart; the running config is kept`);
  }
  if (next.affinity.mode !== running.affinity.mode) {
    throw new AdminError('INVALID_CONFIG', `affinity.mode changed from "${running.affinity.mode}" to "${next.affinity.mode}": that needs a restart; the running config is kept`);
  }
  const pages = readPages(next);
  if (typeof pages === 'string') throw new AdminError('INVALID_CONFIG', `${pages}; the running config is kept`);
  const tls = next.listen.tls ? await readTls(next.listen.tls) : undefined;
  if (typeof tls === 'string') throw new AdminError('INVALID_CONFIG', `${tls}; the running config is kept`);
  return { next, pages, tls, diff: settingsDiff(running, next) };
}
