/**
 * Several files in one import: the files named on the command line, what their Include /
 * IncludeOptional directives pull in (followed as httpd does: relative to ServerRoot, else to
 * the including file, globs sorted), and the workers.properties of mod_jk. Every later step
 * only knows line numbers, so each file gets its own range of them (file N starts at
 * N × FILE_SPAN); `Sources.format` turns such a number back into "file: line N" for the
 * warning lines, also where a message names another line. File access lives here only.
 */
import { globSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { type ApacheNode, type ImportWarning, parseApache } from './parse.js';

/** FILE_SPAN: no config file has ten million lines. */
export const FILE_SPAN = 10_000_000;
const MAX_DEPTH = 16;

/** Sources numbers the files of one import and writes warnings with their names. */
export class Sources {
  readonly files: string[] = [];

  /** add registers a file and returns the number its lines start after. */
  add(name: string): number {
    this.files.push(name);
    return (this.files.length - 1) * FILE_SPAN;
  }

  /** format writes a warning as the CLI prints it: with the file's name once there are several files. */
  format(w: ImportWarning): string {
    const several = this.files.length > 1;
    const at = (n: number): string => {
      const file = this.files[Math.floor(n / FILE_SPAN)];
      const line = n % FILE_SPAN;
      return several && file !== undefined ? `${file}: line ${line}` : `line ${line}`;
    };
    const message = w.message.replace(/\bline (\d+)\b/g, (_m, n: string) => at(Number(n)));
    return w.line === undefined ? `import-apache: ${message}` : `import-apache: ${at(w.line)}: ${message}`;
  }
}

/** shiftLines adds base to every line number of a parsed file (and of its warnings). */
export function shiftLines(nodes: ApacheNode[], warnings: ImportWarning[], base: number): void {
  if (base === 0) return;
  const shift = (list: ApacheNode[]): void => {
    for (const node of list) {
      node.line += base;
      if (node.kind === 'section') shift(node.children);
    }
  };
  shift(nodes);
  for (const w of warnings) if (w.line !== undefined) w.line += base;
}

/** parseFile parses an httpd config file's text as file number N of the import. */
export function parseFile(text: string, name: string, sources: Sources): { nodes: ApacheNode[]; warnings: ImportWarning[] } {
  const base = sources.add(name);
  const parsed = parseApache(text);
  shiftLines(parsed.nodes, parsed.warnings, base);
  return parsed;
}

/**
 * expandIncludes replaces each Include / IncludeOptional by the directives of the files it
 * names, in place (so an Include inside <VirtualHost> stays inside it). A file that cannot be
 * read, or an Include glob that matches nothing, is one warning.
 */
export function expandIncludes(nodes: ApacheNode[], file: string, sources: Sources, warnings: ImportWarning[], depth = 0): ApacheNode[] {
  const serverRoot = findServerRoot(nodes);
  const out: ApacheNode[] = [];
  for (const node of nodes) {
    if (node.kind === 'section') {
      node.children = expandIncludes(node.children, file, sources, warnings, depth);
      out.push(node);
      continue;
    }
    if (node.key !== 'include' && node.key !== 'includeoptional') {
      out.push(node);
      continue;
    }
    const pattern = node.args[0] ?? '';
    const optional = node.key === 'includeoptional';
    if (depth >= MAX_DEPTH) {
      warnings.push({ line: node.line, message: `${node.name} ${pattern}: includes nested ${MAX_DEPTH} deep (a loop?); not followed` });
      continue;
    }
    const found = resolveInclude(pattern, file, serverRoot);
    if (found.length === 0) {
      if (!optional || !/[*?[]/.test(pattern)) warnings.push({ line: node.line, message: `${node.name} ${pattern}: no such file${optional ? '' : ' (httpd would refuse to start)'}; not followed` });
      continue;
    }
    for (const path of found) {
      let text: string;
      try {
        if (statSync(path).isDirectory()) continue;
        text = readFileSync(path, 'utf8');
      } catch (err) {
        warnings.push({ line: node.line, message: `${node.name} ${pattern}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); not followed` });
        continue;
      }
      const parsed = parseFile(text, path, sources);
      warnings.push(...parsed.warnings);
      out.push(...expandIncludes(parsed.nodes, path, sources, warnings, depth + 1));
    }
  }
  return out;
}

/** findServerRoot: the ServerRoot directive of the file, if any. */
export function findServerRoot(nodes: readonly ApacheNode[]): string | undefined {
  for (const node of nodes) if (node.kind === 'directive' && node.key === 'serverroot') return node.args[0];
  return undefined;
}

/** resolveInclude finds the files an Include names: relative to ServerRoot (when it exists), else to the including file. */
export function resolveInclude(pattern: string, from: string, serverRoot: string | undefined): string[] {
  const bases = isAbsolute(pattern) ? [''] : [...(serverRoot !== undefined ? [serverRoot] : []), dirname(resolve(from))];
  for (const base of bases) {
    const full = base === '' ? pattern : join(base, pattern);
    const matches = /[*?[]/.test(full) ? globSync(full).sort() : exists(full) ? [full] : [];
    if (matches.length > 0) return matches;
  }
  return [];
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
