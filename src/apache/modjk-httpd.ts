/**
 * The mod_jk directives of an httpd config: `JkWorkersFile` (where workers.properties is),
 * `JkMount` / `JkUnMount` (which paths go to which worker; also the one-argument form inside
 * `<Location>`), and the rest of the Jk* family, each of which either concerns mod_jk's own
 * operation (logs, shared memory: nothing to carry over) or gets one warning. Pure.
 */
import type { ApacheNode, ImportWarning } from './parse.js';

/** JkMountFact is one JkMount, JkUnMount or `worker.X.mount` path. */
export interface JkMountFact {
  line: number;
  /** As written, e.g. `/*`, `/servoy-service/rest_ws/*`, `/*.jsp`. */
  pattern: string;
  worker: string;
  unmount: boolean;
}

export interface JkHttpd {
  mounts: JkMountFact[];
  workersFile?: { path: string; line: number };
  /** ServerRoot, to resolve a relative JkWorkersFile as httpd does. */
  serverRoot?: string;
  /** Whether the text has any Jk* directive at all. */
  any: boolean;
  warnings: ImportWarning[];
}

/** Jk* directives about mod_jk itself (its log, shared memory, watchdog): nothing to carry over. */
const SILENT = new Set(['jklogfile', 'jkloglevel', 'jklogstampformat', 'jkshmfile', 'jkshmsize', 'jkwatchdoginterval', 'jkstripsession']);

/** collectJk walks the parsed httpd config for the Jk* directives. */
export function collectJk(nodes: readonly ApacheNode[]): JkHttpd {
  const out: JkHttpd = { mounts: [], any: false, warnings: [] };
  const walk = (list: readonly ApacheNode[], location: string | undefined): void => {
    for (const node of list) {
      if (node.kind === 'section') {
        walk(node.children, node.key === 'location' ? node.args[0] : location);
        continue;
      }
      if (node.key === 'serverroot') out.serverRoot = node.args[0];
      if (!node.key.startsWith('jk')) continue;
      out.any = true;
      const [a = '', b] = node.args;
      switch (node.key) {
        case 'jkworkersfile':
          out.workersFile = { path: a, line: node.line };
          break;
        case 'jkmount':
        case 'jkunmount': {
          const unmount = node.key === 'jkunmount';
          const pattern = b === undefined && location !== undefined ? location : a;
          const worker = b ?? (location !== undefined ? a : '');
          if (worker === '') out.warnings.push({ line: node.line, message: `${node.name} ${a} names no worker; ignored` });
          else out.mounts.push({ line: node.line, pattern, worker, unmount });
          break;
        }
        case 'jkmountfile':
          out.warnings.push({ line: node.line, message: `JkMountFile ${a} is not read: copy its "/path=worker" lines as JkMount lines, or add the paths to "paths" by hand` });
          break;
        case 'jkoptions':
          out.warnings.push({ line: node.line, message: `JkOptions ${node.args.join(' ')}: no servoy-lb equivalent (it forwards the request as the client sent it, with X-Forwarded-For, -Proto and -Host); ignored` });
          break;
        case 'jkrequestlogformat':
          out.warnings.push({ line: node.line, message: `JkRequestLogFormat ${node.args.join(' ')}: mod_jk's request log is not converted; ignored` });
          break;
        default:
          if (!SILENT.has(node.key)) out.warnings.push({ line: node.line, message: `${node.name} ${node.args.join(' ')}: no servoy-lb equivalent; ignored` });
      }
    }
  };
  walk(nodes, undefined);
  return out;
}

/**
 * mountPrefix reads a JkMount pattern as servoy-lb's path prefix: `/*` and `/` -> '/',
 * `/app/*` and `/app|/*` -> '/app/'; extension patterns such as `/*.jsp` -> undefined.
 */
export function mountPrefix(pattern: string): string | undefined {
  const p = pattern.replace(/^[-!]/, '').replace(/\|\/\*$/, '/*');
  if (p === '/*' || p === '/' || p === '*') return '/';
  const m = /^(\/[^*?]*?)\/?\*?$/.exec(p);
  if (m === null) return undefined;
  return `${m[1]}/`;
}
