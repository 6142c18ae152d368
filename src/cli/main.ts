/**
 * The servoy-lb command line. Each command group lives in its own file and registers
 * itself on the commander program; this file only wires them and turns every failure into
 * one clear sentence and an exit code (0 done, 1 bad usage or config, 2 balancer
 * unreachable or refused). Users never see a stack trace.
 */
import { Command, CommanderError } from 'commander';
import { registerValidate } from './validate.js';
import { registerStart } from './start.js';
import { registerDemo } from './demo.js';
import { registerAdminCommands } from './admin-commands.js';
import { registerImportApache } from './import-apache.js';
import { CliError } from './cli-error.js';

/** buildProgram assembles every command; exported so tests can inspect help texts. */
export function buildProgram(): Command {
  const program = new Command('servoy-lb')
    .description('Sticky-session load balancer for pools of independent Servoy application servers.')
    .version(process.env.npm_package_version ?? '0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerStart(program);
  registerDemo(program);
  registerValidate(program);
  registerAdminCommands(program);
  registerImportApache(program);
  return program;
}

/** main runs the CLI with process.argv and sets process.exitCode. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message (or the help text).
      process.exitCode = err.exitCode === 0 ? 0 : 1;
      return;
    }
    if (err instanceof CliError) {
      process.stderr.write(`servoy-lb: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`servoy-lb: unexpected error: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
