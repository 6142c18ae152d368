/**
 * `servoy-lb validate [-c FILE]`: check a config without starting anything, e.g. before a
 * reload or in CI. Prints `config OK` (exit 0), or one `<json-path>: <reason>` line per
 * problem on stderr (exit 1), so that every mistake is fixed in one round.
 */
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/load.js';
import { checkStartFiles } from '../start-checks.js';

/** DEFAULT_CONFIG is the file every command reads when -c is not given (SPEC "Command line"). */
export const DEFAULT_CONFIG = './lb.config.json';

/** registerValidate adds the `validate` command to the program. */
export function registerValidate(program: Command): void {
  program
    .command('validate')
    .summary('check a config file and list every problem')
    .description(
      'Check a config file without starting the balancer: JSON syntax, ${ENV} references, unknown keys, ' +
        'types and limits, and the rules between keys (unique backend ids and routes, partition pins, ' +
        'partitionKey settings, admin token on a non-loopback admin.host), and what start checks before it listens ' +
        '(state.file directory writable (with state.redis: for the local copy of the shared state; Redis itself is not reached), state.redis well formed, error pages readable, TLS cert and key readable and matching for listen.tls and admin.tls, log.file writable).\n' +
        'Prints "config OK" and exits 0, or prints one "<json-path>: <reason>" line per problem and exits 1.',
    )
    .option('-c, --config <FILE>', 'config file to check', DEFAULT_CONFIG)
    .addHelpText('after', '\nExamples:\n  servoy-lb validate\n  SERVOY_LB_TOKEN=t servoy-lb validate -c /etc/servoy-lb/lb.config.json')
    .action(async (options: { config: string }) => {
      process.exitCode = await runValidate(options.config);
    });
}

/** runValidate checks one file, writes the verdict and returns the exit code. */
export async function runValidate(file: string, env: NodeJS.ProcessEnv = process.env): Promise<0 | 1> {
  let problems: string[];
  try {
    const checked = await checkStartFiles((await loadConfig(file, env)).config);
    problems = checked.ok ? [] : checked.problems;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems = err.problems;
  }
  if (problems.length > 0) {
    process.stderr.write(problems.map((line) => `${line}\n`).join(''));
    return 1;
  }
  process.stdout.write('config OK\n');
  return 0;
}
