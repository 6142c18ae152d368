/**
 * `servoy-lb start`: load and validate the config, start the balancer, log where it
 * listens, and shut down gracefully on SIGTERM / SIGINT (a second signal exits at once).
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { loadConfig, ConfigError } from '../config/load.js';
import { FILE_PATH } from '../config/json-path.js';
import type { Config } from '../config/schema.js';
import { Balancer, StartupError } from '../balancer.js';
import { createLogger, flushLogger, type Logger } from '../log.js';
import { CliError } from './cli-error.js';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import type { BalancerOptions } from '../balancer.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** registerStart adds the `start` command. */
export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the balancer with the config file (default ./lb.config.json)')
    .option('-c, --config <file>', 'config file', 'lb.config.json')
    .option('--workers <n>', 'processes sharing the port: a number, or "auto" for one per CPU (1: no extra processes)', '1')
    .addOption(new Option('--log-level <level>', 'log level (overrides log.level)').choices(LEVELS))
    .addHelpText(
      'after',
      '\nSends JSON logs to stdout (pretty on a terminal). SIGTERM or SIGINT stops accepting, lets\nin-flight requests finish (timeouts.shutdownGrace), then exits 0. SIGHUP reloads the config;\nSIGUSR1 reopens log.file (the access log, after logrotate moved it).\n\nWith --workers N, N worker processes share the port and route identically; this process\nruns health checks, the state file, the admin API and metrics once for all of them, and\nreplaces a worker that dies.\n\nExamples:\n  servoy-lb start -c /etc/servoy-lb/lb.config.json\n  servoy-lb start --workers auto',
    )
    .action(async (opts: { config: string; workers: string; logLevel?: (typeof LEVELS)[number] }) => {
      const workers = parseWorkers(opts.workers);
      const config = await readConfig(opts.config);
      const level = opts.logLevel ?? config.log.level;
      // One process: exactly the single-process balancer, no cluster, no IPC.
      const logger = workers === 1 ? createLogger({ level }) : (await import('../cluster/log.js')).clusterLogger(level);
      await runUntilSignalled(config, logger, { configFile: resolve(opts.config), ...(workers === 1 ? {} : { workers }) });
    });
}

/** Most worker processes `--workers` accepts. */
const MAX_WORKERS = 64;

/** parseWorkers reads `--workers`: a whole number from 1 to 64, or "auto" (one per CPU). */
export function parseWorkers(value: string): number {
  if (value === 'auto') return Math.min(MAX_WORKERS, availableParallelism());
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_WORKERS) {
    throw new CliError(`--workers must be a whole number from 1 to ${MAX_WORKERS}, or "auto"; got "${value}"`);
  }
  return Number(value);
}

/** readConfig loads a config for a command, turning every problem into a CliError. */
export async function readConfig(file: string): Promise<Config> {
  try {
    return (await loadConfig(file)).config;
  } catch (err) {
    if (err instanceof ConfigError) {
      // One problem (a missing file, broken JSON, one bad key) is one sentence; several are listed below a summary.
      const [only, ...more] = err.problems;
      if (only !== undefined && more.length === 0) throw new CliError(oneProblem(only, err.file));
      throw new CliError(`${err.message}\n${err.problems.join('\n')}`.trimEnd());
    }
    throw err;
  }
}

/** oneProblem turns a single `<json-path>: <reason>` into one line that names the file once. */
function oneProblem(problem: string, file: string | undefined): string {
  const whole = `${FILE_PATH}: `;
  const rest = problem.startsWith(whole) ? problem.slice(whole.length) : problem;
  return file === undefined || rest.includes(file) ? rest : `${file}: ${rest}`;
}

/** runUntilSignalled starts a balancer and resolves after a graceful stop on SIGTERM / SIGINT. */
export async function runUntilSignalled(config: Config, logger: Logger, options: BalancerOptions = {}, onStarted?: (balancer: Balancer) => void): Promise<void> {
  let balancer: Balancer;
  try {
    balancer = await Balancer.start(config, logger, options);
  } catch (err) {
    flushLogger(logger);
    if (err instanceof StartupError) throw new CliError(err.message);
    throw err;
  }
  const workers = options.workers ?? 1;
  logger.info({ url: balancer.url, backends: balancer.pool.configs().map((b) => b.id), ...(workers > 1 ? { workers } : {}) }, 'servoy-lb listening');
  if (balancer.adminUrl !== undefined) logger.info({ adminUrl: balancer.adminUrl }, 'admin API listening');
  flushLogger(logger); // whoever waits for "listening" (an operator, a supervisor, a test) sees it now
  onStarted?.(balancer);
  const onHangup = (): void => {
    // SIGHUP = `servoy-lb reload`: an invalid file is logged by reload() and the running config kept.
    balancer.reload().catch(() => undefined);
  };
  process.on('SIGHUP', onHangup);
  // SIGUSR1 = logrotate's postrotate: reopen log.file. (A listener also keeps Node from
  // starting its inspector on SIGUSR1, which it does by default.)
  const onUser1 = (): void => balancer.reopenLog();
  process.on('SIGUSR1', onUser1);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        flushLogger(logger);
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal, inFlight: balancer.inFlight }, 'shutting down: finishing in-flight requests');
      balancer.close().then(
        () => {
          logger.info('stopped');
          flushLogger(logger);
          resolve();
        },
        (err: Error) => {
          logger.error({ err: err.message }, 'error while stopping');
          flushLogger(logger);
          resolve();
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  process.off('SIGHUP', onHangup);
  process.off('SIGUSR1', onUser1);
}
