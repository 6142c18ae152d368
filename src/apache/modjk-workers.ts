/**
 * A reader for mod_jk's workers.properties: `worker.list=...`, `worker.NAME.PROPERTY=value`
 * lines (`#` comments, blank lines, `\` continuations), multi-valued properties (`list`,
 * `balance_workers`, `mount`) collected over repeated lines, and `reference=worker.TEMPLATE`
 * resolved the way mod_jk does (a property set on the worker wins over the template's). Pure:
 * text in, workers with the line of each property out; what they mean is decided in
 * modjk-convert.ts.
 */
import type { ImportWarning } from './parse.js';

/** JkProperty is one value and the line it came from (the last line for multi-valued ones). */
export interface JkProperty {
  value: string;
  line: number;
}

/** JkWorker is one `worker.NAME.*` block after references are resolved. */
export interface JkWorker {
  name: string;
  /** Line of the first property of this worker. */
  line: number;
  /** Property name in lower case -> value; multi-valued ones joined with ",". */
  props: Map<string, JkProperty>;
}

export interface JkWorkers {
  /** worker.list, in order (names as written). */
  list: string[];
  listLine?: number;
  /** By name, in order of first mention. */
  workers: Map<string, JkWorker>;
  /** Top-level `worker.PROPERTY` lines that are not worker properties (e.g. worker.maintain). */
  globals: Map<string, JkProperty>;
  warnings: ImportWarning[];
}

/** Properties mod_jk collects over repeated lines instead of replacing. */
const MULTI = new Set(['balance_workers', 'balanced_workers', 'mount']);

/**
 * looksLikeWorkersProperties tells a workers.properties from an httpd config by content (file
 * names vary: workers.properties, workers2.properties, jk-workers.conf): it has
 * `worker.list=` or `worker.X.type=` lines and no httpd directive before them.
 */
export function looksLikeWorkersProperties(text: string): boolean {
  return /^[ \t]*worker\.(list|[A-Za-z0-9_.-]+\.(type|host|port|balance_workers|balanced_workers|reference))[ \t]*=/m.test(text);
}

/** parseWorkers reads workers.properties text; `line` numbers are added to `lineBase`. */
export function parseWorkers(text: string, lineBase = 0): JkWorkers {
  const out: JkWorkers = { list: [], workers: new Map(), globals: new Map(), warnings: [] };
  const raw = new Map<string, JkWorker>();
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  let pending = '';
  let pendingLine = 0;
  lines.forEach((physical, index) => {
    const part = physical.trim();
    if (pending === '') pendingLine = index + 1 + lineBase;
    if (part.endsWith('\\')) {
      pending += part.slice(0, -1);
      return;
    }
    const logical = (pending + part).trim();
    pending = '';
    const line = pendingLine;
    if (logical === '' || logical.startsWith('#')) return;
    const eq = logical.indexOf('=');
    if (eq <= 0) {
      out.warnings.push({ line, message: `"${logical}" is not a key=value line; ignored` });
      return;
    }
    const key = logical.slice(0, eq).trim();
    const value = logical.slice(eq + 1).trim();
    if (!/^worker\./i.test(key)) {
      out.warnings.push({ line, message: `${key} is not a worker property; ignored` });
      return;
    }
    const rest = key.slice('worker.'.length);
    if (rest.toLowerCase() === 'list') {
      out.list.push(...splitList(value));
      out.listLine ??= line;
      return;
    }
    const dot = rest.lastIndexOf('.');
    if (dot <= 0) {
      out.globals.set(rest.toLowerCase(), { value, line });
      return;
    }
    const name = rest.slice(0, dot);
    const prop = rest.slice(dot + 1).toLowerCase();
    let worker = raw.get(name);
    if (worker === undefined) {
      worker = { name, line, props: new Map() };
      raw.set(name, worker);
    }
    const seen = worker.props.get(prop);
    if (MULTI.has(prop) && seen !== undefined) worker.props.set(prop, { value: `${seen.value},${value}`, line });
    else worker.props.set(prop, { value, line });
  });

  for (const worker of raw.values()) out.workers.set(worker.name, resolveReferences(worker, raw, out.warnings));
  return out;
}

/** splitList reads `a, b c` (mod_jk accepts commas and blanks). */
export function splitList(value: string): string[] {
  return value.split(/[\s,]+/).filter((s) => s !== '');
}

/** resolveReferences copies the properties of `reference=worker.T` (recursively) that the worker does not set. */
function resolveReferences(worker: JkWorker, all: ReadonlyMap<string, JkWorker>, warnings: ImportWarning[]): JkWorker {
  const props = new Map(worker.props);
  const seen = new Set([worker.name]);
  let ref = props.get('reference');
  while (ref !== undefined) {
    const name = ref.value.replace(/^worker\./i, '');
    const template = all.get(name);
    if (template === undefined || seen.has(name)) {
      warnings.push({ line: ref.line, message: `reference=${ref.value}: ${template === undefined ? 'no such worker' : 'a reference loop'}; ignored` });
      break;
    }
    seen.add(name);
    for (const [key, value] of template.props) if (!props.has(key) && key !== 'reference') props.set(key, value);
    ref = template.props.get('reference');
  }
  props.delete('reference');
  return { ...worker, props };
}
