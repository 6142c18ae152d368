/**
 * The dashboard's files (SPEC "Dashboard"): the page, its script, style and icon from the
 * package's `dashboard/` directory, and uPlot, the chart library (a dependency), from its
 * own `dist/`. Every file the page loads comes from the admin server: it works with no
 * internet access, and the Content-Security-Policy below allows nothing else (no inline
 * script or style, no other origin, no framing).
 *
 * The files are plain HTML, JavaScript and CSS, shipped as they are (package.json "files"
 * lists `dashboard`): no build step, for the user or for us. They are found from this
 * module's own location (the nearest directory above it that holds package.json), which is
 * the checkout's root when run from src/ (tests) or dist/ (a clone), and the package's own
 * directory when installed. Each is read on its first request and then served from memory;
 * a missing file is an internal error, logged, and never takes the API down.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { route, type Reply, type Route } from './admin-http.js';

/**
 * The dashboard's Content-Security-Policy: only this origin's files and API; nothing
 * inline (the page has no inline script, style or handler); no plugins, no <base>, no
 * framing (clickjacking), forms only to this origin.
 */
export const DASHBOARD_CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Headers of every dashboard file. */
const PAGE_HEADERS = {
  'content-security-policy': DASHBOARD_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** DashboardFile is one URL path of the dashboard and the file behind it. */
export interface DashboardFile {
  readonly path: string;
  readonly file: string;
  readonly contentType: string;
}

/** packageRoot is the nearest directory above `from` that holds package.json. */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${from}`);
    dir = parent;
  }
  return dir;
}

/** dashboardFiles lists what the admin server serves for the page; see the file comment. */
export function dashboardFiles(root: string = packageRoot()): DashboardFile[] {
  const dir = join(root, 'dashboard');
  const require = createRequire(join(root, 'package.json'));
  const uplot = (name: string): string => require.resolve(`uplot/dist/${name}`);
  return [
    { path: '/', file: join(dir, 'index.html'), contentType: 'text/html; charset=utf-8' },
    { path: '/dashboard.js', file: join(dir, 'dashboard.js'), contentType: 'text/javascript; charset=utf-8' },
    { path: '/dashboard.css', file: join(dir, 'dashboard.css'), contentType: 'text/css; charset=utf-8' },
    { path: '/favicon.svg', file: join(dir, 'favicon.svg'), contentType: 'image/svg+xml' },
    { path: '/uplot.js', file: uplot('uPlot.iife.min.js'), contentType: 'text/javascript; charset=utf-8' },
    { path: '/uplot.css', file: uplot('uPlot.min.css'), contentType: 'text/css; charset=utf-8' },
  ];
}

/**
 * dashboardRoutes are GET routes for `files`, each read once (on its first request) and
 * kept. They need no sign-in: they hold no data; the API calls the page makes do.
 */
export function dashboardRoutes(files: readonly DashboardFile[] = dashboardFiles()): Route[] {
  return files.map((f) => {
    let body: Promise<Buffer> | undefined;
    const load = (): Promise<Buffer> => {
      body ??= readFile(f.file).catch((err: Error) => {
        body = undefined; // a file put back later is found then
        throw new Error(`dashboard file ${f.file} cannot be read: ${err.message}`);
      });
      return body;
    };
    return route('GET', f.path, async (): Promise<Reply> => ({ status: 200, text: await load(), contentType: f.contentType, headers: PAGE_HEADERS }), false);
  });
}
