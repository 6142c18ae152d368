/**
 * Admin API authentication (SPEC "Admin API", issue "Admin plane" point 11): with
 * `admin.token` every call but /healthz needs `Authorization: Bearer TOKEN` (401 JSON
 * otherwise, and nothing changes); without a token the admin API may only listen on
 * loopback, and `start` refuses a non-loopback admin.host without one: exit 1, one line.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { BrowserClient } from './helpers/browser.js';
import { waitFor } from './helpers/lb.js';
import { backendsFor, repoRoot, spawnBalancer, startSims, type BalancerProcess, type SpawnOptions, type TestLike } from './helpers/processes.js';

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];
const TOKEN = 'admin-token-0123456789-abcdef';

// ---- small helpers (kept in this file: only admin-*.test.ts files may be added) ----------

interface ApiAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** One admin API call over HTTP (its own connection, so a restarted balancer never sees a stale one). */
async function api(lb: BalancerProcess, method: string, path: string, opts: { token?: string; body?: unknown } = {}): Promise<ApiAnswer> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await request(`${lb.adminUrl!}${path}`, { method: method as 'GET', headers, body, reset: true });
  const text = await res.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

async function row(lb: BalancerProcess, id: string): Promise<any> {
  const res = await api(lb, 'GET', '/api/backends');
  if (res.status !== 200) throw new Error(`GET /api/backends answered ${res.status}: ${res.text}`);
  return (res.json.backends as any[]).find((b) => b.id === id);
}

async function waitState(lb: BalancerProcess, id: string, state: string, timeoutMs: number): Promise<void> {
  await waitFor(async () => (await row(lb, id))?.state === state, timeoutMs, `${id} ${state}`, 50);
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A loopback config with short intervals; `overrides` are merged one level deep. */
function config(backends: object[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1' },
    backends,
    affinity: { sessionIdle: '2s', maintenanceBackoff: '1s' },
    // timeout 1s, not 150ms: on a loaded test machine (load 12+ on 2 CPUs) 150 ms probes of the
    // in-process simulators time out and take healthy backends down at random.
    healthCheck: { path: '/health', interval: '200ms', timeout: '1s', rise: 2, fall: 2 },
    outlier: { consecutiveFailures: 3, ejectFor: '1s' },
    log: { access: false },
  };
  for (const [k, v] of Object.entries(overrides)) base[k] = isPlain(v) && isPlain(base[k]) ? { ...base[k], ...v } : v;
  return base;
}

function browser(t: TestLike, url: string): BrowserClient {
  const b = new BrowserClient(url);
  t.teardown(() => b.close());
  return b;
}

/** New browsers until every route has `perBackend` of them (all 127.0.0.1: bounded load spreads them). */
async function pinClients(t: Test, url: string, perBackend: number, routes = ROUTES): Promise<Map<string, BrowserClient[]>> {
  const by = new Map<string, BrowserClient[]>(routes.map((r) => [r, []]));
  for (let i = 0; i < 20 * perBackend * routes.length && [...by.values()].some((l) => l.length < perBackend); i++) {
    const b = browser(t, url);
    const res = await b.get('/api/whoami');
    if (res.status !== 200) throw new Error(`new client got ${res.status}`);
    by.get(res.json().server)?.push(b);
  }
  for (const [r, l] of by) if (l.length < perBackend) throw new Error(`could not pin ${perBackend} clients on ${r}`);
  return by;
}

const logged = (lb: BalancerProcess, re: RegExp): boolean => lb.logs().some((l) => re.test(l));

/** Passes once a matching log line arrives (bounded): stdout may lag behind an API answer. */
async function seeLog(t: Test, lb: BalancerProcess, re: RegExp, what: string): Promise<void> {
  const line = await lb.waitForLog(re, 5000).catch(() => undefined);
  t.ok(line !== undefined, what);
}

/** The `time` (ms, the balancer's clock) of the first log line matching, waiting for it (bounded). */
async function logTime(lb: BalancerProcess, re: RegExp): Promise<number> {
  return (JSON.parse(await lb.waitForLog(re, 5000)) as { time: number }).time;
}

/** spawnBalancer, and when the test fails, its state changes and warnings on stderr (for diagnosis). */
async function start(t: Test, cfg: object, opts: SpawnOptions = {}): Promise<BalancerProcess> {
  const lb = await spawnBalancer(t, cfg, opts);
  t.teardown(() => {
    if (t.passing()) return;
    const lines = lb.logs().filter((l) => /state changed|"level":[45]0|ejected|refused/.test(l));
    console.error(`--- balancer ${lb.url} (state changes and warnings) ---\n${lines.join('\n')}`);
  });
  return lb;
}

// ---- 7. token ----------------------------------------------------------------------------

t.test('with admin.token: no or a wrong token is 401 JSON and changes nothing, the right one works, /healthz is open', async (t) => {
  const sims = await startSims(t, ROUTES);
  // The token comes from the environment, as SPEC's example config has it.
  const lb = await start(t, config(backendsFor(sims), { admin: { token: '${SERVOY_LB_TOKEN}' } }), { env: { SERVOY_LB_TOKEN: TOKEN } });

  const calls: [string, string][] = [
    ['GET', '/api/backends'],
    ['GET', '/api/route?key=127.0.0.1'],
    ['GET', '/metrics'],
    ['POST', '/api/backends/servoy-a/drain'],
    ['POST', '/api/backends/servoy-a/disable'],
    ['DELETE', '/api/backends/servoy-a?force=1'],
    ['POST', '/api/reload'],
  ];
  for (const [method, path] of calls) {
    for (const token of [undefined, 'wrong-token', `${TOKEN}x`, TOKEN.slice(0, -1), '']) {
      const res = await api(lb, method, path, token === undefined ? {} : { token });
      const what = `${method} ${path} with ${token === undefined ? 'no token' : `token ${JSON.stringify(token)}`}`;
      t.equal(res.status, 401, `${what}: 401`);
      t.match(res.headers['content-type'], /^application\/json/, `${what}: JSON`);
      t.equal(res.json?.error?.code, 'UNAUTHORIZED', `${what}: code UNAUTHORIZED`);
      t.type(res.json?.error?.message, 'string');
      t.match(res.headers['www-authenticate'], /^Bearer/);
    }
  }
  const addRefused = await api(lb, 'POST', '/api/backends', { body: { id: 'servoy-x', url: 'http://127.0.0.1:9' } });
  t.equal(addRefused.status, 401, 'adding without a token: 401');

  // Nothing changed.
  const ok = await api(lb, 'GET', '/api/backends', { token: TOKEN });
  t.equal(ok.status, 200, 'the right token: 200');
  t.same((ok.json.backends as any[]).map((b) => [b.id, b.state]), ROUTES.map((id) => [id, 'up']), 'the refused calls changed nothing');

  // The right token works for changes too.
  const drain = await api(lb, 'POST', '/api/backends/servoy-a/drain', { token: TOKEN });
  t.equal(drain.status, 200);
  t.equal(drain.json.backend.admin, 'draining', 'drained (it holds no session) or draining');
  t.equal((await api(lb, 'POST', '/api/backends/servoy-a/undrain', { token: TOKEN })).json.backend.state, 'up');
  const metrics = await api(lb, 'GET', '/metrics', { token: TOKEN });
  t.equal(metrics.status, 200);
  t.match(metrics.text, /servoylb_backend_up\{backend="servoy-a"\} 1/);

  const health = await api(lb, 'GET', '/healthz');
  t.equal(health.status, 200, '/healthz needs no token');
  t.same(health.json, { status: 'ok' });
  t.equal((await api(lb, 'GET', '/healthz', { token: 'wrong' })).status, 200, '/healthz ignores a wrong token');

  // The proxy itself never asks for the admin token.
  const client = browser(t, lb.url);
  t.equal((await client.get('/')).status, 200);
  await seeLog(t, lb, /admin API: wrong token/, 'wrong tokens are logged');
  t.notOk(lb.logs().some((l) => l.includes(TOKEN)), 'the token itself is never logged');
});

t.test('without admin.token: loopback only; `start` with admin.host 0.0.0.0 exits 1 with one clear line', async (t) => {
  const sims = await startSims(t, ROUTES);
  // Loopback without a token: the API answers without one.
  const lb = await start(t, config(backendsFor(sims)));
  t.equal((await api(lb, 'GET', '/api/backends')).status, 200, 'loopback, no token configured: open');

  const dir = t.testdir({});
  const file = join(dir, 'open-admin.json');
  await writeFile(file, JSON.stringify(config(backendsFor(sims), { admin: { host: '0.0.0.0', port: 0 } })));
  const proc = spawn(process.execPath, [join(repoRoot, 'bin', 'servoy-lb'), 'start', '-c', file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  const kill = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  t.teardown(() => {
    clearTimeout(kill);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const code = await exited;
  t.equal(code, 1, 'exit 1');
  const lines = stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `one line: ${JSON.stringify(stderr)}`);
  t.match(lines[0], /^servoy-lb: /);
  t.match(lines[0], /admin\.token/, 'names the missing key');
  t.match(lines[0], /0\.0\.0\.0/, 'names the address');
  t.notMatch(stderr + stdout, /\n\s+at |node:internal/, 'no stack trace');
  t.notMatch(stdout, /listening/, 'never listened');
});
