/**
 * Prometheus metrics on the admin API (SPEC "Admin API" GET /metrics, issue "Admin plane"
 * point 11): after real traffic through the CLI, GET /metrics (with the token) has the
 * servoylb_ series of every backend, in step with GET /api/backends; without the token 401.
 */
import t, { type Test } from 'tap';
import { request } from 'undici';
import { BrowserClient } from './helpers/browser.js';
import { waitFor } from './helpers/lb.js';
import { backendsFor, spawnBalancer, startSims, type BalancerProcess, type SpawnOptions, type TestLike } from './helpers/processes.js';

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];
const TOKEN = 'metrics-token-0123456789';
const WS_PATH = '/websocket/1/main/1';

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

/** The value of one Prometheus sample whose labels include `labels`, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

// ---- 10. metrics ---------------------------------------------------------------------------

t.test('GET /metrics has servoylb_ series for each backend after traffic, in step with /api/backends', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await start(t, config(backendsFor(sims), { admin: { token: TOKEN }, timeouts: { response: '300ms' } }));
  const pinned = await pinClients(t, lb.url, 2);
  for (const clients of pinned.values()) for (const c of clients) t.equal((await c.get('/download?bytes=10000')).status, 200);
  // One timed-out request on servoy-b: an error of that backend.
  t.equal((await pinned.get('servoy-b')![0]!.get('/slow?ms=2000')).status, 504);
  const ws = await pinned.get('servoy-c')![0]!.openWebSocket(WS_PATH);
  t.equal((await ws.next()).server, 'servoy-c');
  t.equal((await api(lb, 'POST', '/api/backends/servoy-a/drain', { token: TOKEN })).status, 200);

  t.equal((await api(lb, 'GET', '/metrics')).status, 401, 'no token: 401');
  t.equal((await api(lb, 'GET', '/metrics', { token: 'nope' })).status, 401, 'wrong token: 401');
  const res = await api(lb, 'GET', '/metrics', { token: TOKEN });
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const text = res.text;
  const rows = new Map(((await api(lb, 'GET', '/api/backends', { token: TOKEN })).json.backends as any[]).map((b) => [b.id, b]));

  for (const id of ROUTES) {
    const b = { backend: id };
    const requests = sample(text, 'servoylb_backend_requests_total', b);
    t.ok(requests !== undefined && requests >= 4, `${id}: requests_total ${requests}`);
    t.ok(Math.abs(requests! - rows.get(id).requests) <= 1, `${id}: requests_total in step with /api/backends`);
    t.equal(sample(text, 'servoylb_backend_up', b), 1, `${id}: up`);
    t.equal(sample(text, 'servoylb_backend_weight', b), 1, `${id}: weight`);
    t.type(sample(text, 'servoylb_backend_sessions', b), 'number', `${id}: sessions`);
    t.ok(sample(text, 'servoylb_backend_sent_bytes_total', b)! >= 20_000, `${id}: bytes sent to clients`);
    t.type(sample(text, 'servoylb_backend_received_bytes_total', b), 'number', `${id}: bytes received`);
    t.type(sample(text, 'servoylb_backend_client_aborts_total', b), 'number', `${id}: client aborts`);
    t.ok(sample(text, 'servoylb_request_duration_seconds_count', { ...b, outcome: 'ok' })! >= 4, `${id}: latency histogram`);
    t.type(sample(text, 'servoylb_request_duration_seconds_bucket', { ...b, outcome: 'ok', le: '+Inf' }), 'number');
    const states = ['up', 'draining', 'drained', 'maintenance', 'disabled', 'down'].map((s) => sample(text, 'servoylb_backend_state', { ...b, state: s }));
    t.equal(states.reduce((n, v) => n! + v!, 0), 1, `${id}: exactly one state is 1`);
  }
  t.equal(sample(text, 'servoylb_backend_state', { backend: 'servoy-a', state: rows.get('servoy-a').state }), 1, 'servoy-a: its draining state');
  t.equal(sample(text, 'servoylb_backend_state', { backend: 'servoy-a', state: 'up' }), 0);
  t.equal(sample(text, 'servoylb_backend_websockets', { backend: 'servoy-c' }), 1, 'servoy-c: the open WebSocket');
  t.equal(sample(text, 'servoylb_backend_errors_total', { backend: 'servoy-b' }), 1, 'servoy-b: the timed-out request');
  t.equal(sample(text, 'servoylb_backend_errors_total', { backend: 'servoy-a' }), 0);
  t.equal(sample(text, 'servoylb_request_duration_seconds_count', { backend: 'servoy-b', outcome: 'timeout' }), 1);
  t.type(sample(text, 'servoylb_process_cpu_seconds_total'), 'number', 'process metrics, with the prefix');
  t.notMatch(text, /^(?!#)(?!servoylb_)\S/m, 'every series is servoylb_');

  await ws.close();
  await waitFor(async () => sample((await api(lb, 'GET', '/metrics', { token: TOKEN })).text, 'servoylb_backend_websockets', { backend: 'servoy-c' }) === 0, 3000, 'websocket gauge back to 0');
});
