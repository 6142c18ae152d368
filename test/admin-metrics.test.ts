/**
 * Prometheus metrics on the admin API (SPEC "Admin API" GET /metrics, issue "Admin plane"
 * point 11): after real traffic through the CLI, GET /metrics (with the token) has the
 * servoylb_ series of every backend, in step with GET /api/backends; without the token 401.
 */
import t from 'tap';
import { api, config, pinClients, ROUTES, start } from './helpers/admin-env.js';
import { waitFor } from './helpers/lb.js';
import { backendsFor, startSims } from './helpers/processes.js';

const TOKEN = 'metrics-token-0123456789';
const WS_PATH = '/websocket/1/main/1';

// ---- helpers only this file uses ---------------------------------------------------------

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
  await waitFor(async () => sample((await api(lb, 'GET', '/metrics', { token: TOKEN })).text, 'servoylb_backend_websockets', { backend: 'servoy-c' }) === 0, 15_000, 'websocket gauge back to 0');
});
