/**
 * The files of one `import-apache` run: httpd configs (with their Includes followed) and
 * mod_jk workers.properties, told apart by content and given in any order. Decides which
 * converter applies: mod_proxy_balancer when the httpd side has a BalancerMember, else mod_jk
 * when a workers.properties is given or named by JkWorkersFile. Reads files; throws
 * ImportInputError with one sentence for the CLI.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { type ApacheImport, NoBalancerMemberError, importNodes, sortWarnings } from './convert.js';
import { extractSetup } from './extract.js';
import { collectJk } from './modjk-httpd.js';
import { convertJk } from './modjk-convert.js';
import { type JkWorkers, looksLikeWorkersProperties, parseWorkers } from './modjk-workers.js';
import type { ApacheNode, ImportWarning } from './parse.js';
import { Sources, expandIncludes, parseFile } from './sources.js';

/** ImportInputError: the files hold nothing to convert, or one cannot be read. */
export class ImportInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImportInputError';
  }
}

/** FilesImport is the converted config and the warning lines, formatted for stderr. */
export interface FilesImport {
  config: ApacheImport['config'];
  lines: string[];
}

/** importFiles reads and converts the files named on the command line. */
export function importFiles(files: readonly string[]): FilesImport {
  const sources = new Sources();
  const warnings: ImportWarning[] = [];
  const nodes: ApacheNode[] = [];
  let workers: JkWorkers | undefined;
  const readWorkers = (text: string, name: string): void => {
    const parsed = parseWorkers(text, sources.add(name));
    warnings.push(...parsed.warnings);
    if (workers === undefined) workers = parsed;
    else {
      // A second workers.properties extends the first, as mod_jk would read concatenated files.
      for (const [k, w] of parsed.workers) workers.workers.set(k, w);
      workers.list.push(...parsed.list);
    }
  };
  for (const file of files) {
    const text = readInput(file);
    if (looksLikeWorkersProperties(text)) readWorkers(text, file);
    else {
      const parsed = parseFile(text, file, sources);
      warnings.push(...parsed.warnings);
      nodes.push(...expandIncludes(parsed.nodes, file, sources, warnings));
    }
  }
  const jk = collectJk(nodes);
  const setup = extractSetup(nodes);
  if (workers === undefined && jk.workersFile !== undefined && setup.memberCount === 0) {
    const httpdFile = files.find((f) => !looksLikeWorkersProperties(readInput(f))) ?? '.';
    const path = workersPath(jk.workersFile.path, jk.serverRoot, httpdFile);
    try {
      readWorkers(readFileSync(path, 'utf8'), path);
    } catch (err) {
      warnings.push({ line: jk.workersFile.line, message: `JkWorkersFile ${jk.workersFile.path}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); give workers.properties as another FILE` });
    }
  }

  if (setup.memberCount > 0 || workers === undefined) {
    try {
      const result = importNodes(nodes, warnings, setup);
      if (workers !== undefined || jk.any) result.warnings.unshift({ message: 'the config has BalancerMember lines: the mod_proxy_balancer pool is converted, the mod_jk workers are not' });
      return { config: result.config, lines: result.warnings.map((w) => sources.format(w)) };
    } catch (err) {
      if (!(err instanceof NoBalancerMemberError)) throw err;
      throw new ImportInputError(`${files.join(', ')} ${files.length === 1 ? 'has' : 'have'} no BalancerMember of an http:// or ws:// server and no mod_jk workers.properties (give it as another FILE, or name it with JkWorkersFile), so there is no pool to convert${warnings.length > 0 ? `; ${sources.format(warnings[0]!).replace(/^import-apache: /, '')}` : ''}`);
    }
  }
  const all = [...warnings, ...setup.warnings, ...jk.warnings];
  const config = convertJk(workers, jk.mounts, setup, all);
  if (config === undefined) throw new ImportInputError(`${files.join(', ')}: the mod_jk setup has no AJP worker to balance to (no type=lb worker with balance_workers, and no ajp13 worker in worker.list)`);
  return { config, lines: sortWarnings(all).map((w) => sources.format(w)) };
}

/** workersPath resolves JkWorkersFile as httpd does: relative to ServerRoot, else next to the httpd config. */
function workersPath(path: string, serverRoot: string | undefined, httpdFile: string): string {
  if (isAbsolute(path)) return path;
  return serverRoot !== undefined ? join(serverRoot, path) : join(dirname(resolve(httpdFile)), path);
}

function readInput(file: string): string {
  try {
    return readFileSync(resolve(file), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ImportInputError(`${file} does not exist`);
    if (code === 'EISDIR') throw new ImportInputError(`${file} is a directory, not an Apache config file`);
    if (code === 'EACCES' || code === 'EPERM') throw new ImportInputError(`${file} is not readable (permission denied)`);
    throw new ImportInputError(`cannot read ${file}: ${(err as Error).message}`);
  }
}
