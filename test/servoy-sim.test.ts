/**
 * The simulated Servoy server is the yardstick of every integration test: if it does not
 * fail visibly when stickiness breaks, those tests prove nothing. These tests hold it to
 * the Servoy behaviour described in SPEC.md.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { request } from 'undici';
import WebSocket from 'ws';
import { startServoySim, checkPattern, patternByte } from '../examples/servoy-sim.js';
import { BrowserClient, UpgradeRefused } from './helpers/browser.js';
import { startSims, repoRoot, type TestLike } from './helpers/processes.js';
import { waitFor } from './helpers/lb.js';

/** A browser against `url`, closed at teardown. */
function browser(tt: TestLike, url: string, headers?: Record<string, string>): BrowserClient {
  const b = new BrowserClient(url, headers ? { headers } : {});
  tt.teardown(() => b.close());
  return b;
}

t.test('a new client gets a session id with the route suffix, then keeps it', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const b = browser(t, sim!.url);
  const first = await b.get('/api/whoami');
  t.equal(first.status, 200);
  t.equal(first.headers['x-servoy-server'], 'servoy-a');
  t.match(first.headers['set-cookie'], /^JSESSIONID=[0-9a-f]{32}\.servoy-a; Path=\/; HttpOnly$/);
  const who = first.json();
  t.equal(who.server, 'servoy-a');
  t.equal(who.new, true);
  t.equal(who.requests, 1);
  t.equal(b.cookie('JSESSIONID'), who.session);

  const second = (await b.get('/api/whoami')).json();
  t.equal(second.session, who.session);
  t.equal(second.new, false);
  t.equal(second.requests, 2);
  t.equal(sim!.sessions, 1);

  const page = await b.get('/');
  t.equal(page.status, 200);
  t.match(page.body, /Servoy server servoy-a/);
  t.equal(page.headers['set-cookie'], undefined, 'no new session for a known client');
});

t.test('whoami reports forwarding headers', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const b = browser(t, sim!.url, { 'x-forwarded-for': '10.1.2.3', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.com', origin: 'https://app.example.com' });
  const who = (await b.get('/api/whoami')).json();
  t.same(who.headers, {
    'x-forwarded-for': '10.1.2.3', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.com',
    host: `127.0.0.1:${sim!.port}`, origin: 'https://app.example.com',
  });
});

t.test('a session id of another server is answered visibly as "session lost"', async (t) => {
  const [a, b] = await startSims(t, ['servoy-a', 'servoy-b']);
  const client = browser(t, a!.url);
  await client.get('/');
  const idA = client.cookie('JSESSIONID')!;

  // The same cookie sent to server b: broken stickiness.
  const lost = await request(`${b!.url}/api/whoami`, { headers: { cookie: `JSESSIONID=${idA}` } });
  t.equal(lost.statusCode, 200);
  t.equal(lost.headers['x-session-lost'], '1');
  const body = (await lost.body.json()) as { error: string; presented: string; session: string };
  t.equal(body.error, 'session lost');
  t.equal(body.presented, idA);
  t.match(body.session, /\.servoy-b$/, 'a fresh session was created, as Tomcat does');
  t.match(lost.headers['set-cookie'], /^JSESSIONID=[0-9a-f]+\.servoy-b;/);

  // An unknown id with the right suffix, and the ;jsessionid= path form, are lost too.
  const unknown = await request(`${a!.url}/api/whoami`, { headers: { cookie: 'JSESSIONID=deadbeef.servoy-a' } });
  t.equal(unknown.headers['x-session-lost'], '1');
  await unknown.body.dump();
  const inPath = await request(`${b!.url}/api/whoami;jsessionid=${idA}`);
  t.equal(inPath.headers['x-session-lost'], '1');
  await inPath.body.dump();

  // The ;jsessionid= path form of a known session works.
  const known = await request(`${a!.url}/api/whoami;jsessionid=${idA}`);
  t.equal(((await known.body.json()) as { session: string }).session, idA);
  t.equal(a!.stats().sessionsLost, 1);
  t.equal(b!.stats().sessionsLost, 2);
});

t.test('sessions idle longer than sessionIdleMs are forgotten', async (t) => {
  const sim = await startServoySim({ route: 'servoy-a', sessionIdleMs: 50 });
  t.teardown(() => sim.close());
  const b = browser(t, sim.url);
  await b.get('/');
  // Safe on a busy machine: a longer sleep only leaves the session idle longer than 50 ms.
  await new Promise((r) => setTimeout(r, 80));
  const res = await b.get('/api/whoami');
  t.equal(res.headers['x-session-lost'], '1');
});

t.test('maintenance: 503 without a known session, existing sessions still served', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const existing = browser(t, sim!.url);
  await existing.get('/');
  sim!.setMaintenance(true);

  const fresh = browser(t, sim!.url);
  const refused = await fresh.get('/');
  t.equal(refused.status, 503);
  t.match(refused.headers['content-type'], /text\/html/);
  t.match(refused.body, /maintenance/);
  t.equal(refused.headers['set-cookie'], undefined, 'no session created');
  t.equal((await fresh.get('/api/whoami')).status, 503);

  const served = await existing.get('/api/whoami');
  t.equal(served.status, 200);
  t.equal(served.json().new, false);
  t.equal(sim!.sessions, 1);
  t.equal(sim!.stats().maintenanceRefused, 2);

  // Like Servoy, there is no health endpoint: `/` without a session is refused in maintenance too.
  t.equal((await fresh.get('/health')).status, 503, 'no /health: a session-less request in maintenance gets 503');
  const off = await fresh.request('POST', '/admin/maintenance?on=0');
  t.same(off.json(), { server: 'servoy-a', maintenance: false });
  t.equal((await fresh.get('/')).status, 200);
  await fresh.request('POST', '/admin/maintenance?on=1');
  t.equal(sim!.stats().maintenance, true);
});

t.test('like a stock Servoy server: no /health, `/` makes a session; probes are served alike and counted apart; broken means 500', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const b = browser(t, sim!.url);
  t.equal((await b.get('/health')).status, 404, 'a stock Servoy has no /health');
  const probe = browser(t, sim!.url, { 'user-agent': 'servoy-lb-health-check' });
  const first = await probe.get('/');
  t.equal(first.status, 200);
  t.match(String(first.headers['set-cookie']), /^JSESSIONID=/, 'the start page makes a session, as Tomcat does');
  t.equal((await probe.get('/')).status, 200);
  t.equal(sim!.stats().healthChecks, 2);
  t.equal(sim!.sessions, 1, "the probe's session is not counted (only the browser's)");
  sim!.setMaintenance(true);
  t.equal((await probe.get('/')).status, 200, 'in maintenance the probe with its session is still served');
  const fresh = browser(t, sim!.url, { 'user-agent': 'servoy-lb-health-check' });
  t.equal((await fresh.get('/')).status, 503, 'a probe without a session meets maintenance like any new client');
  t.equal(sim!.stats().maintenanceRefused, 0, 'refused probes are counted apart');
  sim!.setMaintenance(false);
  sim!.setHealthy(false);
  t.equal((await probe.get('/')).status, 500, 'a broken application answers 500');
  t.equal((await b.get('/api/whoami')).status, 500);
  sim!.setHealthy(true);
  t.equal((await probe.get('/')).status, 200);
});

t.test('websocket with a known session: hello, then echo', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const b = browser(t, sim!.url);
  await b.get('/index.html');
  const ws = await b.openWebSocket('/websocket/1/win_1/0');
  const hello = await ws.next();
  t.same(hello, { server: 'servoy-a', hello: true, session: b.cookie('JSESSIONID'), path: '/websocket/1/win_1/0' });
  ws.send('ping 1');
  t.same(await ws.next(), { server: 'servoy-a', echo: 'ping 1' });
  ws.send({ n: 2 });
  t.same(await ws.next(), { server: 'servoy-a', echo: '{"n":2}' });
  t.equal(sim!.websockets, 1);
  const closed = await ws.close();
  t.equal(closed.code, 1000);
});

t.test('websocket without a known session is closed CLIENT-OUT-OF-SYNC', async (t) => {
  const [a, b] = await startSims(t, ['servoy-a', 'servoy-b']);
  const none = browser(t, a!.url);
  const ws1 = await none.openWebSocket('/websocket/1/win/0');
  t.same(await ws1.closed, { code: 1008, reason: 'CLIENT-OUT-OF-SYNC' });
  await t.rejects(ws1.next(), { code: 1008 });

  // A session of server a presented to server b.
  const onA = browser(t, a!.url);
  await onA.get('/');
  const wrong = browser(t, b!.url);
  wrong.setCookie('JSESSIONID', onA.cookie('JSESSIONID')!);
  const ws2 = await wrong.openWebSocket('/websocket/1/win/0');
  t.equal((await ws2.closed).reason, 'CLIENT-OUT-OF-SYNC');
  t.equal(b!.stats().outOfSync, 1);
});

t.test('websocket whose Origin does not match Host is refused with 403', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const b = browser(t, sim!.url);
  await b.get('/');
  await t.rejects(b.openWebSocket('/websocket/1/win/0', { headers: { origin: 'http://evil.example' } }), new UpgradeRefused(403));
  t.equal(sim!.stats().originRejected, 1);
  // Without Origin (non-browser clients) the session decides.
  const ws = new WebSocket(`${sim!.url.replace('http', 'ws')}/websocket/1/win/0`, { headers: { cookie: `JSESSIONID=${b.cookie('JSESSIONID')}` } });
  const first = await new Promise<string>((resolve, reject) => { ws.once('message', (d) => resolve(d.toString())); ws.once('error', reject); });
  t.match(JSON.parse(first), { hello: true });
  ws.terminate();
  // Upgrades outside /websocket/ are refused.
  await t.rejects(b.openWebSocket('/other'), new UpgradeRefused(404));
});

t.test('dropWebSockets cuts connections but keeps the session', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const b = browser(t, sim!.url);
  await b.get('/');
  const ws = await b.openWebSocket('/websocket/1/win/0');
  await ws.next();
  sim!.dropWebSockets();
  t.equal((await ws.closed).code, 1006);
  const again = await b.openWebSocket('/websocket/1/win/0');
  t.match(await again.next(), { hello: true });
  await again.close();
});

t.test('download streams the verifiable pattern with content-length', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const size = 3 * 1024 * 1024 + 17;
  const res = await request(`${sim!.url}/download?bytes=${size}`);
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-length'], String(size));
  let offset = 0;
  let bad = -1;
  for await (const chunk of res.body) {
    const i = checkPattern(chunk as Buffer, offset);
    if (i >= 0 && bad < 0) bad = offset + i;
    offset += (chunk as Buffer).length;
  }
  t.equal(offset, size);
  t.equal(bad, -1, 'every byte matches i % 251');
  t.equal(patternByte(251 + 3), 3);
  t.equal(checkPattern(Buffer.from([0, 1, 9])), 2);

  const empty = await request(`${sim!.url}/download?bytes=0`);
  t.equal(empty.headers['content-length'], '0');
  t.equal((await empty.body.arrayBuffer()).byteLength, 0);
});

t.test('a download aborted by the client does not break the server', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const res = await request(`${sim!.url}/download?bytes=${200 * 1024 * 1024}`);
  for await (const _ of res.body) break; // read one chunk, then abort
  t.ok(sim!.stats().bytesDownloaded < 200 * 1024 * 1024, 'backpressure: not everything was written');
  t.equal((await request(`${sim!.url}/`)).statusCode, 200);
});

t.test('upload answers the byte count and sha256 of a streamed body', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const b = browser(t, sim!.url);
  const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(64 * 1024, i));
  const expected = createHash('sha256');
  for (const c of chunks) expected.update(c);
  const res = await b.post('/upload', Readable.from(chunks));
  t.equal(res.status, 200);
  t.same(res.json(), { server: 'servoy-a', bytes: 64 * 64 * 1024, sha256: expected.digest('hex') });

  const put = await b.request('PUT', '/upload', { body: 'hello' });
  t.equal(put.json().sha256, createHash('sha256').update('hello').digest('hex'));
});

t.test('resumable uploads need the session that holds the earlier pieces', async (t) => {
  const [a, b] = await startSims(t, ['servoy-a', 'servoy-b']);
  const noSession = browser(t, a!.url);
  const refused = await noSession.request('PATCH', '/tus/abc', { body: 'x' });
  t.equal(refused.status, 403);
  t.equal(a!.sessions, 0);

  const c = browser(t, a!.url);
  await c.get('/');
  t.match((await c.request('PATCH', '/tus/abc', { body: '12345' })).json(), { bytes: 5, total: 5 });
  t.match((await c.request('PATCH', '/tus/abc', { body: '678' })).json(), { bytes: 3, total: 8 });
  t.match((await c.post('/resources/upload/x/y', 'zz')).json(), { bytes: 2, total: 2 });

  // The next piece sent to the wrong server: the session (and its pieces) are not there.
  const wrong = await request(`${b!.url}/tus/abc`, { method: 'PATCH', body: '9', headers: { cookie: `JSESSIONID=${c.cookie('JSESSIONID')}` } });
  t.equal(wrong.headers['x-session-lost'], '1');
  await wrong.body.dump();
});

t.test('slow and status endpoints', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const b = browser(t, sim!.url);
  const start = Date.now();
  const slow = await b.get('/slow?ms=120');
  t.ok(Date.now() - start >= 100);
  t.same(slow.json(), { server: 'servoy-a', slept: 120 });
  t.equal((await b.get('/status/502')).status, 502);
  t.equal((await b.get('/status/204')).status, 204);
  t.equal((await b.get('/nope')).status, 404);
});

t.test('close ends pending requests and open websockets promptly', async (t) => {
  const sim = await startServoySim({ route: 'servoy-a' });
  const b = browser(t, sim.url);
  await b.get('/');
  const ws = await b.openWebSocket('/websocket/1/win/0');
  const before = sim.stats().requests;
  const pending = b.get('/slow?ms=60000').then(() => 'answered', () => 'failed');
  await waitFor(() => sim.stats().requests > before, 10_000, 'the slow request at the simulator', 5);
  const start = Date.now();
  await sim.close();
  await sim.close(); // idempotent
  t.equal(await pending, 'failed');
  t.equal((await ws.closed).code, 1006);
  // Promptly: not after the 60 s the slow request would take (half of it is room for a busy machine).
  t.ok(Date.now() - start < 30_000, `closed in ${Date.now() - start} ms`);
});

t.test('cookie jar honours Path and Max-Age=0', async (t) => {
  const b = new BrowserClient('http://127.0.0.1:1');
  t.teardown(() => b.close());
  const store = (b as unknown as { store(h: string[], p: string): void }).store.bind(b);
  store(['A=1; Path=/', 'B=2; Path=/app', 'C=3'], '/app/page');
  t.equal(b.cookieHeader('/app/x'), 'B=2; C=3; A=1', 'longest path first; C defaults to /app');
  t.equal(b.cookieHeader('/application'), 'A=1');
  t.equal(b.cookieHeader('/'), 'A=1');
  store(['A=gone; Path=/; Max-Age=0', 'C=x; Path=/app; Expires=Thu, 01 Jan 1970 00:00:00 GMT'], '/');
  t.equal(b.cookie('A'), undefined);
  t.equal(b.cookieHeader('/app'), 'B=2');
  b.clearCookies();
  t.equal(b.cookieHeader('/app'), undefined);
});

const script = `${repoRoot}/dist/examples/servoy-sim.js`;
t.test('standalone: node dist/examples/servoy-sim.js prints one line when listening', { skip: existsSync(script) ? false : 'not built (run npx tsc -p .)' }, async (t) => {
  // Port 0: a port picked in advance could be taken by a parallel test before the child binds it.
  const child = spawn(process.execPath, [script, '--port', '0', '--route', 'servoy-x'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGTERM'); await exited; } });
  const line = await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d))));
  t.match(line, /^servoy-sim servoy-x listening on http:\/\/127\.0\.0\.1:[1-9]\d*\n$/);
  const res = await request(`${line.trim().split(' ').at(-1)!}/api/whoami`);
  t.equal(((await res.body.json()) as { server: string }).server, 'servoy-x');
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});
