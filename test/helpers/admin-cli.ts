/**
 * runAdminCli runs the admin commands in this process (a child process costs about 2 s of
 * start-up on a loaded machine), on a program set up like main.ts's but without start/demo,
 * with output captured through commander's configureOutput and failures mapped to exit codes
 * as main() does.
 */
import { Command, CommanderError } from 'commander';
import { registerAdminCommands } from '../../src/cli/admin-commands.js';
import { CliError } from '../../src/cli/cli-error.js';
import type { CliRun } from './processes.js';

/** The variables the admin commands read; `env` sets or clears them for one run. */
const ADMIN_ENV = ['SERVOY_LB_ADMIN', 'SERVOY_LB_TOKEN', 'SERVOY_LB_CA'];

/**
 * runAdminCli runs `servoy-lb ...args` (admin commands only) in this process. With `env`,
 * SERVOY_LB_ADMIN and SERVOY_LB_TOKEN are set to its values (absent: unset) for the run.
 */
export async function runAdminCli(args: string[], env?: Record<string, string | undefined>): Promise<CliRun> {
  const program = new Command('servoy-lb').showHelpAfterError('(run with --help for usage)').exitOverride();
  registerAdminCommands(program);
  let stdout = '';
  let stderr = '';
  const io = { writeOut: (s: string) => void (stdout += s), writeErr: (s: string) => void (stderr += s) };
  const configure = (command: Command): void => {
    command.configureOutput(io);
    command.commands.forEach(configure);
  };
  configure(program);
  const saved = ADMIN_ENV.map((name) => process.env[name]);
  if (env !== undefined) {
    for (const name of ADMIN_ENV) {
      if (env[name] === undefined) delete process.env[name];
      else process.env[name] = env[name];
    }
  }
  let code = 0;
  try {
    await program.parseAsync(['node', 'servoy-lb', ...args]);
    code = Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) code = err.exitCode === 0 ? 0 : 1;
    else if (err instanceof CliError) {
      stderr += `servoy-lb: ${err.message}\n`;
      code = err.exitCode;
    } else throw err;
  } finally {
    ADMIN_ENV.forEach((name, i) => {
      if (saved[i] === undefined) delete process.env[name];
      else process.env[name] = saved[i];
    });
    process.exitCode = undefined;
  }
  return { code, stdout, stderr };
}
