/**
 * `servoy-lb import-apache FILE`: turn an Apache mod_proxy_balancer (+ mod_proxy_wstunnel)
 * config into an lb.config.json on stdout. Everything that does not carry over is one
 * `import-apache: line N: <message>` line on stderr, so the administrator sees each
 * difference once; the JSON on stdout is always a valid config (checked here before it is
 * printed). Exit 0 with output; 1 with one sentence when the file cannot be read or holds
 * no BalancerMember.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { NoBalancerMemberError, formatWarning, importApache, placeholderEnv } from '../apache/convert.js';
import { ConfigError, parseConfigText } from '../config/load.js';
import { CliError } from './cli-error.js';

/** registerImportApache adds the `import-apache` command to the program. */
export function registerImportApache(program: Command): void {
  program
    .command('import-apache')
    .summary('convert an Apache mod_proxy_balancer config into lb.config.json')
    .description(
      'Read an Apache httpd config (httpd.conf, a virtual host file) with a mod_proxy_balancer pool and print the ' +
        'equivalent lb.config.json on stdout. The pool is the balancer ProxyPass "/" points to; its ws:// twin ' +
        '(mod_proxy_wstunnel) is merged into it. Every setting that does not carry over is reported on stderr as ' +
        '"import-apache: line N: <message>". Members with status +D, +S, +H, +N or +R are left out (the warning ' +
        'gives the `servoy-lb backends add` command for each). Include directives are not followed.',
    )
    .argument('<FILE>', 'Apache config file')
    .addHelpText('after', '\nExamples:\n  servoy-lb import-apache /etc/httpd/conf.d/servoy.conf > lb.config.json\n  servoy-lb import-apache servoy.conf 2> import-warnings.txt')
    .action(async (file: string) => {
      process.exitCode = await runImportApache(file);
    });
}

/** runImportApache converts one file, writes config and warnings, and returns the exit code. */
export async function runImportApache(file: string): Promise<0 | 1> {
  const text = await readApacheFile(file);
  let result;
  try {
    result = importApache(text);
  } catch (err) {
    if (!(err instanceof NoBalancerMemberError)) throw err;
    const hint = err.includes.length > 0 ? ` (it includes ${err.includes.join(', ')}: run import-apache on the file with the <Proxy "balancer://..."> section)` : '';
    throw new CliError(`${file} has no BalancerMember of an http:// or ws:// server, so there is no pool to convert${hint}`);
  }
  const json = `${JSON.stringify(result.config, null, 2)}\n`;
  const problems = selfCheck(json);
  process.stderr.write(result.warnings.map((w) => `${formatWarning(w)}\n`).join(''));
  process.stdout.write(json);
  if (problems.length > 0) {
    // A bug of the converter, not of the input: say so rather than hand over a broken file.
    process.stderr.write(problems.map((p) => `import-apache: the result does not validate, fix it before use: ${p}\n`).join(''));
    return 1;
  }
  return 0;
}

async function readApacheFile(file: string): Promise<string> {
  try {
    return await readFile(resolve(file), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError(`${file} does not exist`);
    if (code === 'EISDIR') throw new CliError(`${file} is a directory, not an Apache config file`);
    if (code === 'EACCES' || code === 'EPERM') throw new CliError(`${file} is not readable (permission denied)`);
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/**
 * selfCheck validates the output as `servoy-lb validate` would. `${NAME}` references left
 * from the Apache file are read from the environment only when servoy-lb loads the config,
 * so here every name stands for a placeholder value.
 */
function selfCheck(json: string): string[] {
  try {
    parseConfigText(json, { baseDir: process.cwd(), env: placeholderEnv() });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}
