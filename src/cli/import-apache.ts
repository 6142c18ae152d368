/**
 * `servoy-lb import-apache FILE...`: turn an Apache mod_proxy_balancer (+ mod_proxy_wstunnel)
 * config, or a mod_jk setup, into an lb.config.json on stdout. Everything that does not carry over is one
 * `import-apache: line N: <message>` line on stderr, so the administrator sees each
 * difference once; the JSON on stdout is always a valid config (checked here before it is
 * printed). Exit 0 with output; 1 with one sentence when a file cannot be read or there
 * is no pool.
 */
import type { Command } from 'commander';
import { ConfigError, parseConfigText } from '../config/load.js';
import { CliError } from './cli-error.js';

/** registerImportApache adds the `import-apache` command to the program. */
export function registerImportApache(program: Command): void {
  program
    .command('import-apache')
    .summary('convert an Apache mod_proxy_balancer or mod_jk config into lb.config.json')
    .description(
      'Read an Apache httpd config (httpd.conf, a virtual host file) with a mod_proxy_balancer pool, or a mod_jk setup ' +
        '(workers.properties and the httpd config with its JkMount lines, in any order), and print the equivalent ' +
        'lb.config.json on stdout. Include and IncludeOptional are followed; JkWorkersFile is read when no ' +
        'workers.properties is given. Every setting that does not carry over is reported on stderr as ' +
        '"import-apache: line N: <message>" (with the file name when several files are read). Disabled members ' +
        '(+D, +N, activation=D) are imported and the warning gives the `servoy-lb drain` command; stopped and standby ' +
        'ones (+S, +H, +R, activation=S) are left out with the `servoy-lb backends add` command.',
    )
    .argument('<FILE...>', 'Apache config file(s) and/or mod_jk workers.properties')
    .addHelpText(
      'after',
      '\nExamples:\n  servoy-lb import-apache /etc/httpd/conf.d/servoy.conf > lb.config.json\n  servoy-lb import-apache /etc/httpd/conf/httpd.conf /etc/httpd/conf/workers.properties > lb.config.json\n  servoy-lb import-apache servoy.conf 2> import-warnings.txt',
    )
    .action(async (files: string[]) => {
      process.exitCode = await runImportApache(files);
    });
}

/** runImportApache converts the files, writes config and warnings, and returns the exit code. */
export async function runImportApache(files: string | readonly string[]): Promise<0 | 1> {
  // The converter is loaded only by this command, so `start` does not carry it in memory.
  const [{ placeholderEnv }, { ImportInputError, importFiles }] = await Promise.all([import('../apache/convert.js'), import('../apache/import-files.js')]);
  let result;
  try {
    result = importFiles(typeof files === 'string' ? [files] : files);
  } catch (err) {
    if (err instanceof ImportInputError) throw new CliError(err.message);
    throw err;
  }
  const json = `${JSON.stringify(result.config, null, 2)}\n`;
  const problems = selfCheck(json, placeholderEnv());
  process.stderr.write(result.lines.map((line) => `${line}\n`).join(''));
  process.stdout.write(json);
  if (problems.length > 0) {
    // A bug of the converter, not of the input: say so rather than hand over a broken file.
    process.stderr.write(problems.map((p) => `import-apache: the result does not validate, fix it before use: ${p}\n`).join(''));
    return 1;
  }
  return 0;
}

/**
 * selfCheck validates the output as `servoy-lb validate` would. `${NAME}` references left
 * from the Apache file are read from the environment only when servoy-lb loads the config,
 * so here every name stands for a placeholder value.
 */
function selfCheck(json: string, env: NodeJS.ProcessEnv): string[] {
  try {
    parseConfigText(json, { baseDir: process.cwd(), env });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}
