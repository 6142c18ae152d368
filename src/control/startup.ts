/**
 * Start-up I/O: everything `start` reads and checks before the balancer is built. The
 * files the config points at (state file, error pages, TLS, log.file), the state store (the file
 * store: the state file, where a cookie secret is generated and kept when none is
 * configured, and in partition mode the partition journal; with state.redis the Redis
 * store, whose local copy of the shared state is kept beside the state file). Every failure is
 * one StartupError sentence, and nothing listens yet when one is thrown.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { TlsPair } from '../config/tls-files.js';
import { checkLogFile } from '../log-file.js';
import { checkStartFiles } from '../start-checks.js';
import { StartupError } from '../startup-error.js';
import { FileSharedState } from '../state/file-shared-state.js';
import { FileStateStore } from '../state/file-store.js';
import { PartitionStore, PartitionStoreError } from '../state/partition-store.js';
import type { StateStore } from '../state/state-store.js';
import type { TrafficSettings } from '../traffic-plane.js';

/** Started is what start-up read: the traffic settings, the state store and the admin TLS pair. */
export interface Started {
  readonly settings: TrafficSettings;
  readonly store: StateStore;
  /** admin.tls, read and checked now (a change needs a restart, like every admin.* key). */
  readonly adminTls: TlsPair | undefined;
}

/**
 * OpenStore opens the state store at start (the file store by default; a shared store
 * plugs in here). It throws a StartupError that says what is wrong and what to do.
 */
export type OpenStore = (stateFile: string, config: Config, logger: Logger) => Promise<StateStore>;

/** readStart does the start-up I/O of the file comment. */
export async function readStart(config: Config, logger: Logger, openStore: OpenStore = defaultOpenStore(config)): Promise<Started> {
  const checked = await checkStartFiles(config);
  if (!checked.ok) throw new StartupError(checked.problems.join('\n'));
  const { stateFile, pages, tls, adminTls } = checked.files;
  // log.file is opened (created) now, so a bad path stops start before anything listens.
  if (config.log.file !== undefined) checkLogFile(config.log.file);
  const store = await openStore(stateFile, config, logger);
  return { settings: { config, secrets: secretsOf(config, store.cookieSecret)!, pages, tls }, store, adminTls };
}

/** defaultOpenStore is the store the config asks for: Redis with state.redis, else the file store. */
export function defaultOpenStore(config: Config): OpenStore {
  if (config.state.redis === undefined) return openFileStore;
  // Loaded only with state.redis: ioredis costs ~20 MiB of RSS that a single balancer never uses.
  return async (stateFile, cfg, logger) => (await import('../state/redis/redis-state-store.js')).RedisStateStore.open(stateFile, cfg, logger);
}

/**
 * openFileStore is the state store of a single balancer: the state file (a cookie secret is
 * generated and kept when none is configured) and, in partition mode, the partition journal.
 */
export async function openFileStore(stateFile: string, config: Config, logger: Logger): Promise<StateStore> {
  const file = new FileStateStore(stateFile);
  const state = await file.load().catch((err: Error) => {
    throw new StartupError(err.message);
  });
  for (const warning of file.loadReport.warnings) logger.warn({ file: stateFile, from: file.loadReport.source }, warning);
  if (config.affinity.cookie.secret === undefined && state.cookieSecret === undefined) {
    // No secret configured: generate one and keep it, so cookies survive restarts (and,
    // with --workers, every worker signs and verifies with the same key).
    state.cookieSecret = randomBytes(32).toString('base64url');
    await file.save(state).catch((err: Error) => {
      throw new StartupError(`cannot write state file ${stateFile}: ${err.message}`);
    });
  }
  const partitions = config.affinity.mode === 'partition' ? openPartitions(stateFile, logger) : undefined;
  return new FileSharedState(file, state, partitions);
}

/** openPartitions opens the durable partition store next to the state file, logging what loading found. */
function openPartitions(stateFile: string, logger: Logger): PartitionStore {
  let store: PartitionStore;
  try {
    store = PartitionStore.open(stateFile);
  } catch (err) {
    throw new StartupError(err instanceof PartitionStoreError ? err.message : `cannot open the partition store: ${(err as Error).message}`);
  }
  const report = store.loadReport;
  logger.info({ partitions: report.records, from: report.base, ms: Math.round(report.ms) }, 'partition store loaded');
  for (const warning of report.warnings) logger.warn(warning);
  for (const error of report.errors) logger.error(error);
  return store;
}

/**
 * secretsOf is the list of cookie keys: the configured secret(s), else the generated one
 * from the state store (undefined when there is neither: a reload then keeps the running keys).
 */
export function secretsOf(config: Config, generated: string | undefined): string[] | undefined {
  const configured = config.affinity.cookie.secret ?? generated;
  return typeof configured === 'string' ? [configured] : configured;
}
