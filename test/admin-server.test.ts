import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { request } from 'undici';
import { AdminServer, MAX_BODY_BYTES } from '../src/admin/admin-server.js';
import { BalancerMetrics } from '../src/admin/metrics.js';
import { createFakeControl, memoryLogger, startFakeAdmin, statusRow } from './helpers/admin-fake.js';

const TOKEN = 's3cret-admin-token';
const auth = { authorization: `Bearer ${TOKEN}` };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

async function call(base: string, method: string, path: string, opts: { headers?: Record<string, string>; body?: string | object } = {}): Promise<Answer> {
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const res = await request(`${base}${path}`, { method: method as 'GET', headers: opts.headers, body, reset: true });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

t.test('refuses to run tokenless on a non-loopback address', async (t) => {
  const logger = memoryLogger();
  t.throws(() => new AdminServer(createFakeControl(), { host: '0.0.0.0', port: 0, logger }), /needs admin\.token.*0\.0\.0\.0.*not a loopback/);
  t.throws(() => new AdminServer(createFakeControl(), { host: '10.1.2.3', port: 0, logger }), /not a loopback/);
  t.doesNotThrow(() => new AdminServer(createFakeControl(), { host: '0.0.0.0', port: 0, logger, token: TOKEN }));
  t.doesNotThrow(() => new AdminServer(createFakeControl(), { host: '::1', port: 0, logger }));
});

t.test('authorization with a token', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });

  const none = await call(url, 'GET', '/api/backends');
  t.equal(none.status, 401);
  t.equal(none.headers['www-authenticate'], 'Bearer realm="servoy-lb"');
  t.equal(none.json.error.code, 'UNAUTHORIZED');
  t.match(none.json.error.message, /Authorization: Bearer/);

  const wrong = await call(url, 'GET', '/api/backends', { headers: { authorization: 'Bearer not-the-token' } });
  t.equal(wrong.status, 401);
  t.equal(wrong.json.error.code, 'UNAUTHORIZED');
  t.match(wrong.json.error.message, /wrong/);

  const prefix = await call(url, 'GET', '/api/backends', { headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` } });
  t.equal(prefix.status, 401, 'a prefix of the token is not the token');
  const basic = await call(url, 'GET', '/api/backends', { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
  t.equal(basic.status, 401, 'only the Bearer scheme counts');

  const right = await call(url, 'GET', '/api/backends', { headers: auth });
  t.equal(right.status, 200);
  t.same(right.json.backends.map((b: { id: string }) => b.id), ['servoy-a', 'servoy-b']);
  const lower = await call(url, 'GET', '/api/backends', { headers: { authorization: `bearer ${TOKEN}` } });
  t.equal(lower.status, 200, 'the scheme is case-insensitive');

  t.equal((await call(url, 'GET', '/metrics')).status, 401, '/metrics needs the token too');
  t.equal((await call(url, 'POST', '/api/reload')).status, 401);
  t.notOk(control.calls.some(([name]) => name === 'reload'), 'a refused call never reaches the balancer');

  const health = await call(url, 'GET', '/healthz');
  t.equal(health.status, 200, '/healthz needs no token');
  t.match(health.json, { ok: true, backends: { total: 2 }, state: { kind: 'file', ok: true } });

  const page = await call(url, 'GET', '/');
  t.equal(page.status, 200, 'the dashboard shell needs no token (its data does)');
  t.match(page.headers['content-type'], /text\/html/);
  t.match(page.headers['content-security-policy'], /frame-ancestors 'none'/);
  t.match(page.text, /<script src="\/dashboard\.js" defer>/);
  t.notMatch(page.text, /servoy-a/, 'the shell holds no backend data');
  const script = await call(url, 'GET', '/dashboard.js');
  t.equal(script.status, 200);
  t.match(script.headers['content-type'], /javascript/);
  t.match(script.text, /\/api\/backends/);
});

t.test('dashboard login holds a random session id (never the token) in an HttpOnly SameSite=Strict cookie', async (t) => {
  const { url } = await startFakeAdmin(t, { token: TOKEN });

  const wrong = await call(url, 'POST', '/login', { body: { token: 'nope' } });
  t.equal(wrong.status, 401);
  t.notOk(wrong.headers['set-cookie'], 'no cookie for a wrong token');
  t.equal((await call(url, 'POST', '/login', { body: {} })).json.error.code, 'INVALID_BODY');

  const login = await call(url, 'POST', '/login', { body: { token: TOKEN } });
  t.equal(login.status, 200);
  const setCookie = String(login.headers['set-cookie']);
  t.match(setCookie, /^servoylb_admin=/);
  t.match(setCookie, /; HttpOnly/);
  t.match(setCookie, /; SameSite=Strict/);
  t.match(setCookie, /; Path=\//);
  t.notMatch(setCookie, /; Secure/, 'not Secure: the admin API is plain HTTP here');
  const cookie = setCookie.split(';')[0]!;
  const id = cookie.slice('servoylb_admin='.length);
  t.match(id, /^[A-Za-z0-9_-]{43}$/, 'a 32-byte random id, base64url');
  t.notMatch(setCookie, new RegExp(TOKEN), 'the token is not in the cookie');
  const again = String((await call(url, 'POST', '/login', { body: { token: TOKEN } })).headers['set-cookie']).split(';')[0]!;
  t.not(again, cookie, 'each sign-in gets its own id');
  const tokenCookie = await call(url, 'GET', '/api/backends', { headers: { cookie: `servoylb_admin=${encodeURIComponent(TOKEN)}` } });
  t.equal(tokenCookie.status, 401, 'a cookie holding the token itself (the old form) is not accepted');

  const list = await call(url, 'GET', '/api/backends', { headers: { cookie: `other=1; ${cookie}` } });
  t.equal(list.status, 200, 'the cookie authorizes API calls');
  const bad = await call(url, 'GET', '/api/backends', { headers: { cookie: 'servoylb_admin=forged' } });
  t.equal(bad.status, 401);

  const sameOrigin = await call(url, 'POST', '/api/backends/servoy-a/drain', { headers: { cookie, origin: url, 'sec-fetch-site': 'same-origin' } });
  t.equal(sameOrigin.status, 200, 'the dashboard itself may change state');
  const crossOrigin = await call(url, 'POST', '/api/backends/servoy-a/disable', { headers: { cookie, origin: 'http://evil.example' } });
  t.equal(crossOrigin.status, 403, 'another origin may not');
  t.equal(crossOrigin.json.error.code, 'FORBIDDEN');
  const sameSite = await call(url, 'POST', '/api/backends/servoy-a/disable', { headers: { cookie, 'sec-fetch-site': 'same-site' } });
  t.equal(sameSite.status, 403, 'nor a page of the balancer itself on another port');
  const nullOrigin = await call(url, 'POST', '/api/backends/servoy-a/disable', { headers: { ...auth, origin: 'null' } });
  t.equal(nullOrigin.status, 403);

  const logout = await call(url, 'POST', '/logout', { headers: { cookie } });
  t.match(String(logout.headers['set-cookie']), /servoylb_admin=;.*Max-Age=0/);
  const after = await call(url, 'GET', '/api/backends', { headers: { cookie } });
  t.equal(after.status, 401, 'sign-out ends the session on the balancer: the old cookie no longer works');
  t.equal(after.json.error.code, 'UNAUTHORIZED');
  t.equal((await call(url, 'GET', '/api/backends', { headers: { cookie: again } })).status, 200, 'another sign-in is not affected');
  t.equal((await call(url, 'POST', '/logout')).status, 200, 'sign-out without a cookie is harmless');
});

t.test('without a token: loopback only, no auth, no DNS rebinding', async (t) => {
  const { url, port } = await startFakeAdmin(t);
  t.equal((await call(url, 'GET', '/api/backends')).status, 200);
  t.equal((await call(url, 'GET', '/api/backends', { headers: { host: `localhost:${port}` } })).status, 200);
  const rebound = await call(url, 'GET', '/api/backends', { headers: { host: `attacker.example:${port}` } });
  t.equal(rebound.status, 403);
  t.equal(rebound.json.error.code, 'FORBIDDEN');
  t.equal((await call(url, 'GET', '/healthz', { headers: { host: 'anything.example' } })).status, 200, '/healthz answers any Host');
  t.equal((await call(url, 'POST', '/login', { body: { token: 'x' } })).status, 200, 'login is a no-op');
  const csrf = await call(url, 'POST', '/api/backends/servoy-a/disable', { headers: { origin: 'https://evil.example' } });
  t.equal(csrf.status, 403, 'no cross-origin changes even without a token');
});

t.test('every route reaches the right control call', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  const last = () => control.calls.at(-1);

  const list = await call(url, 'GET', '/api/backends', { headers: auth });
  t.same(last(), ['backends']);
  t.match(list.json.backends[0], { id: 'servoy-a', state: 'up', health: 'up', sessions: 3, websockets: 1, requests: 1234, errors: 2 });
  t.match(list.headers['content-type'], /application\/json/);
  t.equal(list.headers['cache-control'], 'no-store');

  const added = await call(url, 'POST', '/api/backends', { headers: auth, body: { id: 'servoy-c', url: 'http://127.0.0.1:9103', weight: 2, maxSessions: 50, route: 'jvm3' } });
  t.equal(added.status, 201);
  t.same(last(), ['addBackend', { id: 'servoy-c', url: 'http://127.0.0.1:9103', weight: 2, maxSessions: 50, route: 'jvm3' }]);
  t.match(added.json.backend, { id: 'servoy-c', weight: 2, source: 'runtime' });
  await call(url, 'POST', '/api/backends', { headers: auth, body: { id: 'servoy-d', url: 'http://127.0.0.1:9104' } });
  t.same(last(), ['addBackend', { id: 'servoy-d', url: 'http://127.0.0.1:9104', weight: 1 }], 'weight defaults as in the config file');

  const dup = await call(url, 'POST', '/api/backends', { headers: auth, body: { id: 'servoy-c', url: 'http://127.0.0.1:9105' } });
  t.equal(dup.status, 409);
  t.equal(dup.json.error.code, 'BACKEND_EXISTS');

  const refused = await call(url, 'DELETE', '/api/backends/servoy-b', { headers: auth });
  t.equal(refused.status, 409);
  t.equal(refused.json.error.code, 'NOT_DRAINED');
  t.same(last(), ['removeBackend', 'servoy-b', false]);
  const forced = await call(url, 'DELETE', '/api/backends/servoy-b?force=1', { headers: auth });
  t.equal(forced.status, 200);
  t.same(forced.json, { removed: 'servoy-b' });
  t.same(last(), ['removeBackend', 'servoy-b', true]);
  const unknown = await call(url, 'DELETE', '/api/backends/nope', { headers: auth });
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'UNKNOWN_BACKEND');

  for (const action of ['drain', 'undrain', 'disable', 'enable'] as const) {
    const res = await call(url, 'POST', `/api/backends/servoy-a/${action}`, { headers: auth });
    t.equal(res.status, 200, action);
    t.same(last(), ['setAdminState', 'servoy-a', action]);
    t.equal(res.json.backend.id, 'servoy-a');
  }
  await call(url, 'POST', '/api/backends/servoy%2Da/drain', { headers: auth });
  t.same(last(), ['setAdminState', 'servoy-a', 'drain'], 'path segments are percent-decoded');
  const noSuch = await call(url, 'POST', '/api/backends/ghost/drain', { headers: auth });
  t.equal(noSuch.status, 404);
  t.equal(noSuch.json.error.code, 'UNKNOWN_BACKEND');
  t.equal((await call(url, 'POST', '/api/backends/servoy-a/explode', { headers: auth })).json.error.code, 'NOT_FOUND');

  const route = await call(url, 'GET', '/api/route?key=10.0.0.5', { headers: auth });
  t.equal(route.status, 200);
  t.same(last(), ['explainRoute', { key: '10.0.0.5', client: undefined, path: undefined, cookie: undefined, session: undefined }]);
  t.match(route.json, { key: '10.0.0.5', backend: 'servoy-b' });
  const withPath = await call(url, 'GET', '/api/route?client=10.0.0.6&key=acme&path=%2Fx', { headers: auth });
  t.same(control.calls.slice(-2), [['explainRoute', { key: 'acme', client: '10.0.0.6', path: '/x', cookie: undefined, session: undefined }], ['explainPath', '/x', '10.0.0.6']]);
  t.match(withPath.json, { backend: 'servoy-b', path: { verdict: 'denied' } }, 'the path verdict beside the route');
  const noKey = await call(url, 'GET', '/api/route', { headers: auth });
  t.equal(noKey.status, 400);
  t.equal(noKey.json.error.code, 'INVALID_BODY');
  t.match(noKey.json.error.message, /say which request to explain: client=ADDR/);

  const reload = await call(url, 'POST', '/api/reload', { headers: auth });
  t.equal(reload.status, 200);
  t.same(reload.json, { added: ['servoy-c'], removed: [], updated: ['servoy-a'], settings: ['healthCheck'], needsRestart: ['listen.port'] });
  control.reloadFails = true;
  const badReload = await call(url, 'POST', '/api/reload', { headers: auth });
  t.equal(badReload.status, 422);
  t.equal(badReload.json.error.code, 'INVALID_CONFIG');
  t.match(badReload.json.error.details, [/^backends\[1\]\.url: /]);

  for (const [method, path] of [['GET', '/api/partitions'], ['PUT', '/api/partitions/acme']]) {
    const res = await call(url, method!, path!, { headers: auth, body: method === 'PUT' ? { backend: 'servoy-a' } : undefined });
    t.equal(res.status, 409, `${method} ${path}`);
    t.equal(res.json.error.code, 'NOT_PARTITION_MODE');
    t.match(res.json.error.message, /partition mode is not enabled/);
  }

  const metrics = await call(url, 'GET', '/metrics', { headers: auth });
  t.equal(metrics.status, 200);
  t.same(last(), ['metrics']);
  t.match(metrics.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  t.match(metrics.text, /servoylb_backend_sessions\{backend="servoy-a"\} 3/);
});

t.test('invalid backends are refused with the config file rules', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  const cases: { desc: string; body: unknown; message: RegExp }[] = [
    { desc: 'not an object', body: ['servoy-c'], message: /expected a JSON object/ },
    { desc: 'no body', body: undefined, message: /expected a JSON object/ },
    { desc: 'bad URL', body: { id: 'servoy-c', url: 'ftp://x' }, message: /url: expected an http: or https: URL/ },
    { desc: 'bad id', body: { id: 'servoy c', url: 'http://127.0.0.1:9103' }, message: /id: use 1-64 letters/ },
    { desc: 'typo', body: { id: 'servoy-c', url: 'http://127.0.0.1:9103', wieght: 2 }, message: /wieght: unknown key \(did you mean "weight"\?\)/ },
    { desc: 'weight type', body: { id: 'servoy-c', url: 'http://127.0.0.1:9103', weight: '2' }, message: /weight: expected a number/ },
  ];
  for (const c of cases) {
    const res = await call(url, 'POST', '/api/backends', { headers: auth, body: c.body === undefined ? undefined : JSON.stringify(c.body) });
    t.equal(res.status, 400, c.desc);
    t.equal(res.json.error.code, 'INVALID_BODY', c.desc);
    t.match(res.json.error.message, c.message, c.desc);
  }
  t.notOk(control.calls.some(([name]) => name === 'addBackend'), 'nothing invalid reaches the balancer');
});

t.test('errors: JSON with codes, 404, 405, bodies, no stack traces', async (t) => {
  const { url, control, logger } = await startFakeAdmin(t, { token: TOKEN });

  const missing = await call(url, 'GET', '/nope', { headers: auth });
  t.equal(missing.status, 404);
  t.same(missing.json, { error: { code: 'NOT_FOUND', message: 'no such admin API call: GET /nope' } });
  t.equal((await call(url, 'GET', '/api/backends/servoy-a/drain/extra', { headers: auth })).status, 404);
  t.equal((await call(url, 'GET', '/api/%E0%A4%A', { headers: auth })).status, 404, 'a malformed escape matches nothing');

  const wrongMethod = await call(url, 'GET', '/api/reload', { headers: auth });
  t.equal(wrongMethod.status, 405);
  t.equal(wrongMethod.json.error.code, 'METHOD_NOT_ALLOWED');
  t.equal(wrongMethod.headers.allow, 'POST');
  const put = await call(url, 'PUT', '/api/backends', { headers: auth });
  t.equal(put.status, 405);
  t.equal(put.headers.allow, 'GET, POST, HEAD');
  t.equal((await call(url, 'DELETE', '/healthz')).status, 405);

  const head = await call(url, 'HEAD', '/healthz');
  t.equal(head.status, 200, 'HEAD works where GET does');
  t.equal(head.text, '');

  const invalid = await call(url, 'POST', '/api/backends', { headers: { ...auth, 'content-type': 'application/json' }, body: '{"id": "servoy-c",' });
  t.equal(invalid.status, 400);
  t.equal(invalid.json.error.code, 'INVALID_BODY');
  t.match(invalid.json.error.message, /not valid JSON/);

  const big = JSON.stringify({ id: 'servoy-c', url: 'http://127.0.0.1:9103', pad: 'x'.repeat(MAX_BODY_BYTES) });
  const declared = await call(url, 'POST', '/api/backends', { headers: auth, body: big });
  t.equal(declared.status, 413, 'a declared length over the limit');
  t.equal(declared.json.error.code, 'BODY_TOO_LARGE');

  // Chunked: no length up front, the limit is found while reading.
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${url}/api/backends`, { method: 'POST', headers: auth }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    for (let i = 0; i < 10; i++) req.write('x'.repeat(10_000));
    req.end();
  });
  t.equal(chunked.status, 413, 'a streamed body over the limit');
  t.equal(JSON.parse(chunked.body).error.code, 'BODY_TOO_LARGE');
  t.notOk(control.calls.some(([name]) => name === 'addBackend'));

  control.explode = true;
  const boom = await call(url, 'GET', '/api/backends', { headers: auth });
  t.equal(boom.status, 500);
  t.same(boom.json, { error: { code: 'INTERNAL', message: 'internal error in the balancer; see its log' } });
  t.notMatch(boom.text, /secret|\.js:|at /, 'no internals, no stack trace');
  t.ok(logger.lines.some((l) => l.level === 'error' && JSON.stringify(l.args).includes('secret internal failure')), 'the cause is logged');
});

t.test('dashboard data: sessions, events, series (token, 404, 400, admin actions recorded)', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  for (const path of ['/api/sessions', '/api/events', '/api/series']) t.equal((await call(url, 'GET', path)).status, 401, `${path} needs the token`);

  const all = await call(url, 'GET', '/api/sessions', { headers: auth });
  t.equal(all.status, 200);
  t.same(all.json, { sessions: control.sessionRows, total: 2, instance: true });
  t.same(control.calls.at(-1), ['sessions', { backend: undefined, limit: 100 }], 'limit defaults to 100');
  const onB = await call(url, 'GET', '/api/sessions?backend=servoy-b&limit=10000', { headers: auth });
  t.same(onB.json.sessions.map((s: any) => s.backend), ['servoy-b']);
  t.same(control.calls.at(-1), ['sessions', { backend: 'servoy-b', limit: 10_000 }]);
  const unknown = await call(url, 'GET', '/api/sessions?backend=nope', { headers: auth });
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'UNKNOWN_BACKEND');
  for (const bad of ['0', '10001', '-1', '1.5', 'ten']) {
    const res = await call(url, 'GET', `/api/sessions?limit=${bad}`, { headers: auth });
    t.equal(res.status, 400, `limit=${bad}`);
    t.match(res.json.error.message, /"limit" must be a whole number from 1 to 10000/);
  }

  t.same((await call(url, 'GET', '/api/events', { headers: auth })).json, { events: [] });
  t.equal((await call(url, 'POST', '/api/backends/servoy-a/drain', { headers: auth })).status, 200);
  t.equal((await call(url, 'PATCH', '/api/backends/servoy-b', { headers: auth, body: { weight: 3 } })).status, 200);
  t.equal((await call(url, 'POST', '/api/backends/nope/drain', { headers: auth })).status, 404);
  const events = (await call(url, 'GET', '/api/events', { headers: auth })).json.events;
  t.match(events, [
    { kind: 'admin', backend: 'servoy-b', cause: 'admin weight 3 by 127.0.0.1', who: '127.0.0.1' },
    { kind: 'admin', backend: 'servoy-a', to: 'draining', cause: 'admin drain by 127.0.0.1' },
  ], 'successful admin actions, newest first; a refused one is not an event');
  t.equal(events.length, 2);
  t.equal((await call(url, 'GET', '/api/events?limit=1', { headers: auth })).json.events.length, 1);
  t.equal((await call(url, 'GET', '/api/events?limit=1001', { headers: auth })).status, 400);

  control.seriesStore.sample(0, new Map([['servoy-a', { sessions: 1, websockets: 0, requests: 0, errors: 0 }]]));
  control.seriesStore.sample(2000, new Map([['servoy-a', { sessions: 2, websockets: 1, requests: 10, errors: 2 }]]));
  const series = await call(url, 'GET', '/api/series?seconds=60', { headers: auth });
  t.equal(series.status, 200);
  t.match(series.json, { step: 2, points: 2, start: new Date(0).toISOString(), backends: { 'servoy-a': { sessions: [1, 2], websockets: [0, 1], rps: [null, 5], eps: [null, 1] } } });
  t.same(control.calls.at(-1), ['series', 60]);
  t.equal((await call(url, 'GET', '/api/series?seconds=0', { headers: auth })).status, 400);
  t.equal((await call(url, 'POST', '/api/series', { headers: auth })).status, 405);
});

t.test('listen and close', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const taken = (blocker.address() as net.AddressInfo).port;
  const clash = new AdminServer(createFakeControl(), { host: '127.0.0.1', port: taken, logger: memoryLogger() });
  await t.rejects(clash.listen(), { message: `the admin API cannot listen on 127.0.0.1:${taken}: the address is already in use` });

  const server = new AdminServer(createFakeControl(), { host: '127.0.0.1', port: 0, logger: memoryLogger() });
  const { host, port } = await server.listen();
  t.equal(host, '127.0.0.1');
  t.ok(port > 0);
  t.equal((await call(`http://127.0.0.1:${port}`, 'GET', '/healthz')).status, 200);
  await server.close();
  await t.rejects(call(`http://127.0.0.1:${port}`, 'GET', '/healthz'), { code: 'ECONNREFUSED' });
  await server.close(); // closing twice is harmless
});

t.test('metrics: per-backend series from the source, latency, process', async (t) => {
  let rows = [
    statusRow('servoy-a', { state: 'draining', admin: 'draining', sessions: 3, websockets: 2, requests: 10, errors: 1, clientAborts: 4, bytesIn: 100, bytesOut: 2000 }),
    statusRow('servoy-b', { health: 'down', state: 'down', errors: 3, errorsByKind: { refused: 1, timeout: 2 } }),
  ];
  const metrics = new BalancerMetrics(() => rows);
  metrics.observeRequest('servoy-a', 0.02, 'ok');
  metrics.observeRequest('servoy-a', 7, 'timeout');
  const text = await metrics.text();
  t.match(metrics.contentType, /^text\/plain/);
  const expected = [
    '# TYPE servoylb_backend_sessions gauge',
    'servoylb_backend_sessions{backend="servoy-a"} 3',
    'servoylb_backend_websockets{backend="servoy-a"} 2',
    'servoylb_backend_up{backend="servoy-a"} 1',
    'servoylb_backend_up{backend="servoy-b"} 0',
    'servoylb_backend_state{backend="servoy-a",state="draining"} 1',
    'servoylb_backend_state{backend="servoy-a",state="up"} 0',
    'servoylb_backend_state{backend="servoy-b",state="down"} 1',
    'servoylb_backend_weight{backend="servoy-a"} 1',
    '# TYPE servoylb_backend_requests_total counter',
    'servoylb_backend_requests_total{backend="servoy-a"} 10',
    'servoylb_backend_errors_total{backend="servoy-a",kind="all"} 1',
    'servoylb_backend_errors_total{backend="servoy-b",kind="refused"} 1',
    'servoylb_backend_errors_total{backend="servoy-b",kind="timeout"} 2',
    'servoylb_backend_client_aborts_total{backend="servoy-a"} 4',
    'servoylb_backend_received_bytes_total{backend="servoy-a"} 100',
    'servoylb_backend_sent_bytes_total{backend="servoy-a"} 2000',
    '# TYPE servoylb_request_duration_seconds histogram',
    'servoylb_request_duration_seconds_bucket{le="0.025",backend="servoy-a",outcome="ok"} 1',
    'servoylb_request_duration_seconds_bucket{le="5",backend="servoy-a",outcome="timeout"} 0',
    'servoylb_request_duration_seconds_bucket{le="10",backend="servoy-a",outcome="timeout"} 1',
    'servoylb_request_duration_seconds_count{backend="servoy-a",outcome="ok"} 1',
    'servoylb_process_cpu_user_seconds_total',
    'servoylb_nodejs_heap_size_total_bytes',
  ];
  for (const line of expected) t.ok(text.includes(line), line);

  rows = [rows[0]!];
  metrics.forgetBackend('servoy-a');
  const after = await metrics.text();
  t.notOk(after.includes('backend="servoy-b"'), 'a removed backend leaves the scrape');
  t.notOk(after.includes('servoylb_request_duration_seconds_count{backend="servoy-a"'), 'forgetBackend drops its latency series');

  const second = new BalancerMetrics(() => []);
  t.not(second.registry, metrics.registry, 'each instance has its own registry');
  t.ok((await second.text()).includes('servoylb_process_cpu_user_seconds_total'));
});
