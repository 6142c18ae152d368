// The proxies the benchmarks compare, each started pinned to CPU 0 in front of one
// backend: servoy-lb (sticky cookie, access log and metrics on, as in production) as this
// checkout builds it (the raw-socket data plane) and as the last release built it (node:http
// and undici, built from a git ref into a cache directory), a naive Node proxy on undici (the
// calibration peer), HAProxy with cookie insert and nginx (when installed: apt-get install
// haproxy nginx-light; skipped with a note otherwise).
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort, servoyLbArgs, start, waitForPort } from './lib.js';

export const which = (cmd) => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => join(d, cmd)).find((p) => existsSync(p));

/**
 * The servoy-lb builds a bench can measure: `raw`, this checkout (the raw-socket data plane),
 * and `release`, the last release (node:http + undici), so every table shows the gain.
 */
export const PLANES = ['raw', 'release'];

/** What each plane's rows are called. */
export const PLANE_NAMES = { raw: 'servoy-lb, raw plane', release: 'servoy-lb 0.1 (node:http)' };

/**
 * RELEASE_REF is the git ref the `release` plane is built from: the last commit whose data
 * plane was node:http, as it landed (BASELINE_REF overrides it).
 */
export const RELEASE_REF = process.env.BASELINE_REF ?? '9446371';

/**
 * parsePlanes reads a `--plane raw,release` option (default both), so every table can show the
 * raw plane beside the last release's node:http one and the gain is visible.
 */
export function parsePlanes(value = PLANES.join(',')) {
  const planes = value.split(',').filter(Boolean);
  const bad = planes.filter((p) => !PLANES.includes(p));
  if (planes.length === 0 || bad.length > 0) throw new Error(`--plane takes ${PLANES.join(', ')} (comma-separated), not ${value}`);
  return planes;
}

/**
 * releaseBuild is the directory of servoy-lb built from `ref`: a detached git worktree under
 * os.tmpdir() named by its commit, sharing this checkout's node_modules, compiled by tsc. It is
 * made once and reused (a `.built` mark says tsc finished), so a bench run starts at once.
 */
export function releaseBuild(ref = RELEASE_REF) {
  const git = (...args) => execFileSync('git', args, { cwd: ROOT }).toString().trim();
  const commit = git('rev-parse', '--short=12', `${ref}^{commit}`);
  const dir = join(tmpdir(), `servoy-lb-release-${commit}`);
  // The link goes to where this checkout's node_modules really is (it may itself be a link), and
  // is made again when what it pointed to is gone (existsSync follows it).
  const modules = join(dir, 'node_modules');
  if (!existsSync(modules)) rmSync(modules, { force: true });
  if (existsSync(join(dir, '.built')) && existsSync(modules)) return dir;
  if (!existsSync(join(dir, '.git'))) git('worktree', 'add', '--detach', dir, commit);
  if (!existsSync(modules)) symlinkSync(realpathSync(join(ROOT, 'node_modules')), modules);
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', dir], { stdio: 'inherit' });
  writeFileSync(join(dir, '.built'), `${commit}\n`);
  return dir;
}

/** planeArgs are the startServoyLb args that run a plane: none for this checkout, @DIR of the release build. */
export const planeArgs = (plane) => (plane === 'release' ? [`@${releaseBuild()}`] : []);

/**
 * startServoyLb starts one servoy-lb pinned to CPU 0 in front of backendUrl, its config in
 * `dir` (`config` is merged over the base: access log and metrics on). `args` are node flags,
 * NAME=value environment variables and @DIR (run the servoy-lb built in DIR; the last one counts), so a bench can
 * compare builds, planes and flags with one helper; `cliArgs` go to `servoy-lb start`, and
 * `quiet: false` leaves its stdout to the caller. Resolves with { url, port, pid, child }.
 */
export async function startServoyLb({ backendUrl, dir, args = [], config = {}, cliArgs = [], quiet = true }) {
  const env = (a) => /^[A-Z_][A-Z0-9_]*=/.test(a);
  const flags = args.filter((a) => !a.startsWith('@') && !env(a));
  const root = args.findLast((a) => a.startsWith('@'))?.slice(1) ?? ROOT;
  const vars = Object.fromEntries(args.filter(env).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
  const port = await freePort();
  const file = join(dir, `lb-${port}.config.json`);
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      admin: { port: await freePort() },
      backends: [{ id: 'fast', url: backendUrl }],
      state: { file: join(dir, `state-${port}.json`) },
      log: { level: 'info', access: true },
      metrics: { enabled: true },
      ...config,
    }),
  );
  const child = await start(process.execPath, servoyLbArgs(['start', '-c', file, ...cliArgs], { root, extraFlags: flags }), { cpu: 0, ready: /servoy-lb listening/, env: vars, quiet });
  return { url: `http://127.0.0.1:${port}/`, port, pid: child.pid, child };
}

/**
 * haproxyConfig is HAProxy's config for the benchmarks: one thread, cookie insert (so a
 * request without the cookie starts a session, as on servoy-lb), WebSockets tunnelled (HTTP
 * mode does it; `timeout tunnel` keeps idle ones open), idle backend connections reused.
 */
export function haproxyConfig(port, backendPort, { log = false } = {}) {
  // log: one httplog line per request to stdout (a pipe read by the bench), as servoy-lb's access log.
  const logging = log ? { global: '  log stdout format raw local0 info\n', defaults: '  log global\n  option httplog\n' } : { global: '', defaults: '' };
  return `global\n  nbthread 1\n  maxconn 4000\n${logging.global}defaults\n${logging.defaults}  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  timeout tunnel 1h\n  option http-keep-alive\nfrontend fe\n  bind 127.0.0.1:${port}\n  default_backend be\nbackend be\n  cookie SERVOYLB insert indirect nocache\n  http-reuse always\n  server fast 127.0.0.1:${backendPort} cookie fast\n`;
}

/**
 * startProxies starts the proxies in front of backendPort; each entry is { name, key, url,
 * pid, child }. `dir` holds their config files. One servoy-lb per plane of `planes` (keys
 * `servoy-lb raw`, `servoy-lb release`), with `lbArgs` (see startServoyLb) and `lbConfig` merged
 * into its config; each of `lbVariants` ("label=ARGS") starts one more servoy-lb, on the first
 * plane unless its ARGS name one. `only(key)` says which to start (default: all);
 * `haproxyLog` adds HAProxy with an access log (key `haproxy-log`).
 */
export async function startProxies({ backendPort, dir, planes = PLANES, lbArgs = [], lbVariants = [], lbConfig = {}, only = () => true, haproxyLog = false, say = console.log }) {
  const backendUrl = `http://127.0.0.1:${backendPort}`;
  const proxies = [];
  const startLb = async (key, name, args) => {
    if (!only(key)) return;
    const lb = await startServoyLb({ backendUrl, dir, args, config: lbConfig });
    proxies.push({ name, key, ...lb });
  };
  for (const plane of planes) await startLb(`servoy-lb ${plane}`, PLANE_NAMES[plane], [...planeArgs(plane), ...lbArgs]);
  for (const v of lbVariants) {
    const eq = v.indexOf('=');
    await startLb(`servoy-lb ${v.slice(0, eq)}`, `servoy-lb ${v.slice(0, eq)} (${v.slice(eq + 1)})`, [...planeArgs(planes[0]), ...lbArgs, ...v.slice(eq + 1).split(' ').filter(Boolean)]);
  }
  if (only('naive')) {
    const port = await freePort();
    const child = await start(process.execPath, [join(ROOT, 'bench/naive-proxy.js'), String(port), backendUrl], { cpu: 0, ready: /listening/ });
    proxies.push({ name: 'naive Node proxy on undici', key: 'naive', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
  }
  const HAPROXY = which('haproxy');
  if (HAPROXY && only('haproxy')) {
    const port = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig(port, backendPort));
    const child = await start(HAPROXY, ['-db', '-f', cfg], { cpu: 0 });
    await waitForPort(port);
    proxies.push({ name: 'HAProxy (cookie insert)', key: 'haproxy', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
  } else if (!HAPROXY && only('haproxy')) say('HAProxy not installed (apt-get install haproxy): skipped');
  if (HAPROXY && haproxyLog) {
    // The same HAProxy with an access log (servoy-lb's runs with its own on): a like-for-like peer.
    const port = await freePort();
    const cfg = join(dir, 'haproxy-log.cfg');
    writeFileSync(cfg, haproxyConfig(port, backendPort, { log: true }));
    const child = await start(HAPROXY, ['-db', '-f', cfg], { cpu: 0 });
    await waitForPort(port);
    proxies.push({ name: 'HAProxy (cookie insert, httplog to stdout)', key: 'haproxy-log', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
  }
  const NGINX = which('nginx');
  if (NGINX && only('nginx')) {
    const port = await freePort();
    const cfg = join(dir, 'nginx.conf');
    writeFileSync(
      cfg,
      `daemon off;\nmaster_process off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log /dev/null;\nevents { worker_connections 10000; }\nhttp {\n  access_log off;\n  client_body_temp_path ${dir};\n  proxy_temp_path ${dir};\n  fastcgi_temp_path ${dir};\n  uwsgi_temp_path ${dir};\n  scgi_temp_path ${dir};\n  upstream be { server 127.0.0.1:${backendPort}; keepalive 64; }\n  keepalive_requests 1000000;\n  server {\n    listen 127.0.0.1:${port};\n    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }\n  }\n}\n`,
    );
    const child = await start(NGINX, ['-c', cfg, '-p', dir], { cpu: 0 });
    await waitForPort(port);
    proxies.push({ name: 'nginx', key: 'nginx', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
  } else if (!NGINX && only('nginx')) say('nginx not installed (apt-get install nginx-light): skipped');
  return proxies;
}

/** sessionCookies gets each proxy's session cookie (servoy-lb and HAProxy insert theirs on the first answer). */
export async function sessionCookies(proxies) {
  for (const p of proxies) {
    const res = await fetch(p.url);
    await res.text();
    p.cookie = [...res.headers.getSetCookie().map((c) => c.split(';')[0]), 'JSESSIONID=0123456789abcdef.fast'].join('; ');
  }
}
