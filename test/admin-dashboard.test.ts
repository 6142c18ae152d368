/**
 * The dashboard's server side (SPEC "Dashboard"): its files (page, script, style, icon, and
 * uPlot from node_modules) served by the admin server under a strict Content-Security-Policy,
 * with no token (they hold no data) but behind admin.allow and the tokenless Host check;
 * GET /login (is this browser signed in?) and GET /api/dashboard (mode, traffic URL, links
 * to each server's /servoy-admin/), with their 401/403/404/405 answers. A missing file is a
 * logged 500 that leaves the API serving. The page itself is driven in a real browser by
 * test/dashboard-browser.test.ts.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { AdminError } from '../src/admin/control.js';
import { dashboardFiles, DASHBOARD_CSP, packageRoot } from '../src/admin/dashboard-assets.js';
import { startFakeAdmin } from './helpers/admin-fake.js';

const TOKEN = 'dashboard-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

async function call(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: object) {
  const res = await request(`${base}${path}`, { method: method as 'GET', headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), reset: true });
  const buffer = Buffer.from(await res.body.arrayBuffer());
  const text = buffer.toString('utf8');
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, buffer, json };
}

/** The sign-in cookie (name=value) of a successful POST /login. */
async function signIn(url: string): Promise<string> {
  const login = await call(url, 'POST', '/login', {}, { token: TOKEN });
  return String(login.headers['set-cookie']).split(';')[0]!;
}

const root = packageRoot();

t.test('the dashboard files: served from the package, byte for byte, with the strict CSP and no token', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  const files = dashboardFiles();
  t.same(files.map((f) => f.path), ['/', '/dashboard.js', '/dashboard.css', '/favicon.svg', '/uplot.js', '/uplot.css']);
  for (const f of files) {
    const res = await call(url, 'GET', f.path);
    t.equal(res.status, 200, f.path);
    t.equal(res.headers['content-type'], f.contentType, `${f.path} content type`);
    t.ok(res.buffer.equals(readFileSync(f.file)), `${f.path} is ${f.file.slice(root.length + 1)}`);
    t.equal(res.headers['content-security-policy'], DASHBOARD_CSP, `${f.path} CSP`);
    t.equal(res.headers['x-frame-options'], 'DENY');
    t.equal(res.headers['x-content-type-options'], 'nosniff');
    const head = await call(url, 'HEAD', f.path);
    t.equal(head.status, 200, `HEAD ${f.path}`);
    t.equal(head.text, '');
  }
  t.match(files.find((f) => f.path === '/uplot.js')!.file, /node_modules\/uplot\/dist\/uPlot\.iife\.min\.js$/, 'uPlot comes from the installed dependency, not a CDN');
  t.notOk(control.calls.some(([name]) => name === 'backends'), 'the files hold no backend data');

  t.match(DASHBOARD_CSP, /^default-src 'self';/);
  t.notMatch(DASHBOARD_CSP, /unsafe-inline|unsafe-eval|https?:|\*/, 'nothing inline, no other origin');
  t.match(DASHBOARD_CSP, /frame-ancestors 'none'/);
  t.match(DASHBOARD_CSP, /object-src 'none'/);

  const page = readFileSync(join(root, 'dashboard', 'index.html'), 'utf8');
  t.notMatch(page, /<script(?![^>]*\ssrc=)[^>]*>/, 'no inline script');
  t.notMatch(page, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style or handler');
  t.notMatch(page, /(src|href)="(?!\/)/, 'every file the page loads is this origin\'s');
  const script = readFileSync(join(root, 'dashboard', 'dashboard.js'), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  t.notMatch(script, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|setAttribute\('style'|\.style\./, 'data goes in through textContent; styles only by class');
});

t.test('every API path the page calls is one the admin server answers', async (t) => {
  const { url } = await startFakeAdmin(t, { token: TOKEN });
  const script = readFileSync(join(root, 'dashboard', 'dashboard.js'), 'utf8');
  const paths = new Set([...script.matchAll(/'(\/(?:api\/[a-z]+|login|logout))[?'/]/g)].map((m) => m[1]!));
  t.ok(paths.size >= 8, `found ${[...paths].join(' ')}`);
  for (const path of paths) {
    const res = await call(url, 'OPTIONS', path, auth);
    t.equal(res.status, 405, `${path} exists (405 to OPTIONS, not 404)`);
  }
});

t.test('404, 405 and a missing file', async (t) => {
  const { url } = await startFakeAdmin(t, { token: TOKEN });
  for (const path of ['/dashboard2.js', '/uplot.js/extra', '/node_modules/uplot/dist/uPlot.iife.min.js', '/../package.json', '/dashboard/index.html']) {
    const res = await call(url, 'GET', path);
    t.equal(res.status, 404, path);
    t.equal(res.json.error.code, 'NOT_FOUND', path);
  }
  const post = await call(url, 'POST', '/dashboard.js');
  t.equal(post.status, 405);
  t.equal(post.headers.allow, 'GET, HEAD');

  const gone = await startFakeAdmin(t, { token: TOKEN, dashboardFiles: [{ path: '/', file: join(root, 'dashboard', 'no-such-file.html'), contentType: 'text/html' }] });
  const missing = await call(gone.url, 'GET', '/');
  t.equal(missing.status, 500);
  t.same(missing.json, { error: { code: 'INTERNAL', message: 'internal error in the balancer; see its log' } });
  t.ok(gone.logger.lines.some((l) => l.level === 'error' && JSON.stringify(l.args).includes('no-such-file.html cannot be read')), 'the cause is logged');
  t.equal((await call(gone.url, 'GET', '/api/backends', auth)).status, 200, 'the API keeps serving');
});

t.test('403: admin.allow and the tokenless Host check cover the files too', async (t) => {
  const allowed = await startFakeAdmin(t, { token: TOKEN, allow: ['127.0.0.2/32'] });
  for (const path of ['/', '/dashboard.js', '/uplot.js', '/login', '/api/dashboard']) {
    const res = await call(allowed.url, 'GET', path);
    t.equal(res.status, 403, `${path} from a peer not in admin.allow`);
    t.equal(res.json.error.code, 'FORBIDDEN');
  }
  const tokenless = await startFakeAdmin(t);
  for (const path of ['/', '/uplot.js', '/api/dashboard']) {
    const res = await call(tokenless.url, 'GET', path, { host: `attacker.example:${tokenless.port}` });
    t.equal(res.status, 403, `${path} addressed to another host name (DNS rebinding)`);
  }
  t.equal((await call(tokenless.url, 'GET', '/')).status, 200, 'addressed to 127.0.0.1: served');
});

t.test('GET /login says whether this browser is signed in, always with a 200', async (t) => {
  const { url } = await startFakeAdmin(t, { token: TOKEN });
  t.same((await call(url, 'GET', '/login')).json, { tokenRequired: true, signedIn: false });
  const cookie = await signIn(url);
  const signed = await call(url, 'GET', '/login', { cookie });
  t.equal(signed.status, 200);
  t.same(signed.json, { tokenRequired: true, signedIn: true });
  t.same((await call(url, 'GET', '/login', { cookie: 'servoylb_admin=forged' })).json, { tokenRequired: true, signedIn: false });
  t.same((await call(url, 'GET', '/login', auth)).json, { tokenRequired: true, signedIn: false }, 'a bearer token is no dashboard sign-in');
  await call(url, 'POST', '/logout', { cookie });
  t.same((await call(url, 'GET', '/login', { cookie })).json, { tokenRequired: true, signedIn: false }, 'signed out');

  const tokenless = await startFakeAdmin(t);
  t.same((await call(tokenless.url, 'GET', '/login')).json, { tokenRequired: false, signedIn: true }, 'no token: nothing to sign in to');
});

t.test('GET /api/dashboard: mode, traffic URL, server admin links', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  const none = await call(url, 'GET', '/api/dashboard');
  t.equal(none.status, 401, 'needs the token');
  t.equal(none.json.error.code, 'UNAUTHORIZED');
  t.equal((await call(url, 'GET', '/api/dashboard', { authorization: 'Bearer wrong' })).status, 401);
  t.equal((await call(url, 'DELETE', '/api/dashboard', auth)).status, 405);
  t.equal((await call(url, 'GET', '/api/dashboard/extra', auth)).status, 404);

  // The fake's path rules deny /servoy-admin/ to everyone.
  const denied = await call(url, 'GET', '/api/dashboard', { cookie: await signIn(url) });
  t.equal(denied.status, 200, 'the dashboard cookie will do');
  t.match(denied.json, { mode: 'session', trafficUrl: 'http://127.0.0.1:8080', serverAdmin: { path: null } });
  t.match(denied.json.serverAdmin.reason, /^no links to each server's \/servoy-admin\/: 127\.0\.0\.1 is not in the allow list: 403; a path rule \{"prefix": "\/servoy-admin\/", "allow": \[\.\.\.\]\} that lets your address in/);
  t.same(control.calls.find(([name]) => name === 'explainPath'), ['explainPath', '/servoy-admin/', '127.0.0.1'], 'judged for the caller\'s address');

  control.explainPath = (path) => ({ path, normalised: path, rule: { prefix: '/servoy-admin/', kind: 'allow' }, verdict: 'allowed', reason: 'allowed here' });
  control.listPartitions = () => ({ total: 0, offset: 0, partitions: [] });
  const allowed = await call(url, 'GET', '/api/dashboard', auth);
  t.same(allowed.json, { mode: 'partition', trafficUrl: 'http://127.0.0.1:8080', serverAdmin: { path: '/servoy-admin/', reason: 'allowed here' } });

  control.url = '';
  t.same((await call(url, 'GET', '/api/dashboard', auth)).json.serverAdmin, { path: null, reason: 'this balancer does not say where its clients connect' }, 'no traffic URL: no links');
  control.listPartitions = () => {
    throw new AdminError('INTERNAL', 'partition store broken');
  };
  t.equal((await call(url, 'GET', '/api/dashboard', auth)).status, 500, 'an unexpected failure of the mode check is not taken for session mode');
});
