/**
 * Loading lb.config.json: read, parse (with line and column on broken JSON), substitute
 * `${ENV}` references, validate against the schema, check the rules that span keys, and
 * make relative file paths absolute against the config file's directory (so `start` may
 * run from anywhere). Every failure is collected, not just the first, so that `validate`
 * can list them all, one `<json-path>: <reason>` line each.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { configSchema, type Config } from './schema.js';
import { substituteEnv } from './env.js';
import { coerceWholeReferences } from './env-scalars.js';
import { parseJsonText } from './json-text.js';
import { friendlyErrorMap, issuesToProblems } from './zod-problems.js';
import { crossCheck } from './cross-checks.js';
import { FILE_PATH } from './json-path.js';

/**
 * ConfigError carries every problem found in a config, each `<json-path>: <reason>`.
 * The message is only a summary ("invalid config file /etc/lb.config.json (2 problems)");
 * print `problems` one per line below it.
 */
export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    /** The config file, absolute, when the config came from a file. */
    readonly file?: string,
  ) {
    const count = `${problems.length} problem${problems.length === 1 ? '' : 's'}`;
    super(file === undefined ? `invalid config (${count})` : `invalid config file ${file} (${count})`);
    this.name = 'ConfigError';
  }
}

/** Options of parseConfigText. */
export interface ParseConfigOptions {
  /** Where `${NAME}` references are read from; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Directory that relative file paths in the config are resolved against. */
  baseDir: string;
}

/**
 * parseConfigText turns config text into a validated Config with defaults filled, every
 * duration in milliseconds, each backend's route set (it defaults to the id), and file
 * paths absolute. It throws ConfigError listing every problem.
 */
export function parseConfigText(text: string, opts: ParseConfigOptions): Config {
  const json = parseJsonText(text);
  if (!json.ok) throw new ConfigError([json.problem]);
  const substituted = substituteEnv(json.value, opts.env ?? process.env);
  const parse = () => configSchema.safeParse(substituted.value, { error: friendlyErrorMap, reportInput: true });
  let parsed = parse();
  // A whole "${NAME}" where a number or true/false is wanted: convert it and parse again
  // (a few rounds at most: a value inside a union may only show up once its parent parses).
  for (let round = 0; !parsed.success && round < 4; round++) {
    const coerced = coerceWholeReferences(substituted.value, parsed.error.issues, substituted.wholeReferences, substituted.failedPaths);
    substituted.problems.push(...coerced.problems);
    for (const path of coerced.failedPaths) substituted.failedPaths.add(path);
    if (!coerced.changed) break;
    parsed = parse();
  }
  if (!parsed.success) {
    throw new ConfigError([...substituted.problems, ...issuesToProblems(parsed.error.issues, substituted.failedPaths)]);
  }
  // A value whose ${NAME} was not set is already reported; its literal text proves nothing more.
  const unrelated = (line: string): boolean => ![...substituted.failedPaths].some((path) => line.startsWith(`${path}: `));
  const problems = [...substituted.problems, ...crossCheck(parsed.data).filter(unrelated)];
  if (problems.length > 0) throw new ConfigError(problems);
  return finish(parsed.data, opts.baseDir);
}

/**
 * loadConfig reads and parses a config file. The returned file is absolute, so a reload
 * reads the same file whatever the working directory is by then.
 */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<{ config: Config; file: string }> {
  const absolute = resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError([`${FILE_PATH}: ${readFailure(absolute, err as NodeJS.ErrnoException)}`], absolute);
  }
  try {
    return { config: parseConfigText(text, { env, baseDir: dirname(absolute) }), file: absolute };
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems, absolute);
    throw err;
  }
}

function readFailure(file: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return `config file ${file} does not exist (name another one with -c FILE)`;
    case 'EISDIR':
      return `${file} is a directory, not a config file`;
    case 'EACCES':
    case 'EPERM':
      return `config file ${file} is not readable (permission denied)`;
    default:
      return `cannot read config file ${file}: ${err.message}`;
  }
}

/** finish fills derived values: routes default to ids, file paths become absolute. */
function finish(config: Config, baseDir: string): Config {
  const absolute = (path: string): string => (isAbsolute(path) ? path : resolve(baseDir, path));
  const { listen, admin, state, errorPages, log } = config;
  return {
    ...config,
    backends: config.backends.map((backend) => ({ ...backend, route: backend.route ?? backend.id })),
    listen: listen.tls ? { ...listen, tls: { ...listen.tls, cert: absolute(listen.tls.cert), key: absolute(listen.tls.key) } } : listen,
    admin: admin.tls ? { ...admin, tls: { cert: absolute(admin.tls.cert), key: absolute(admin.tls.key) } } : admin,
    state: { ...state, file: absolute(state.file) },
    errorPages: Object.fromEntries(Object.entries(errorPages).map(([status, path]) => [status, absolute(path)])),
    log: log.file === undefined ? log : { ...log, file: absolute(log.file) },
  };
}
