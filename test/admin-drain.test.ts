/**
 * Drain, undrain, disable and enable through the admin API (SPEC "Backend states", issue
 * "Admin plane" point 11): the real CLI in front of simulated Servoy servers, browser-like
 * clients with cookie jars.
 * - draining: existing sessions (and their WebSockets) keep reaching the backend, new ones
 *   never do; an open WebSocket keeps it draining; it is drained once no request came for
 *   sessionIdle and no WebSocket is open, or when drain.maxWait passes; undrain: up again;
 * - disabled: the backend gets no traffic; its sessions are placed on other servers with
 *   a 2xx and a new affinity cookie; enable: up again.
 */
import t from 'tap';
import type { ServoySim } from '../examples/servoy-sim.js';
import { DrainMonitor } from '../src/pool/drain-monitor.js';
import { Pool } from '../src/pool/pool.js';
import { SessionAccounting } from '../src/sessions/accounting.js';
import { api, browser, config, holdsState, logTime, pinClients, row, ROUTES, seeLog, start, waitState } from './helpers/admin-env.js';
import { BrowserClient } from './helpers/browser.js';
import { waitFor } from './helpers/lb.js';
import { backendsFor, startSims } from './helpers/processes.js';

const WS_PATH = '/websocket/1/main/1';

// ---- 4. drain lifecycle ------------------------------------------------------------------

t.test('drain lifecycle: existing sessions keep going, no new ones, a WebSocket holds it, drained after sessionIdle, undrain', async (t) => {
  const sims = await startSims(t, ROUTES);
  const a = sims[0]!;
  const lb = await start(t, config(backendsFor(sims)));
  const pinned = await pinClients(t, lb.url, 2);
  const aClients = pinned.get('servoy-a')!;
  const sessions = aClients.map((c) => c.cookie('JSESSIONID'));
  const ws = await aClients[0]!.openWebSocket(WS_PATH);
  t.equal((await ws.next()).server, 'servoy-a');

  const drain = await api(lb, 'POST', '/api/backends/servoy-a/drain');
  t.equal(drain.status, 200);
  t.equal(drain.json.backend.state, 'draining');
  t.equal(drain.json.backend.admin, 'draining');
  t.ok(!Number.isNaN(Date.parse(drain.json.backend.drainingSince)), 'drainingSince is a time');
  t.equal((await row(lb, 'servoy-a')).state, 'draining', 'GET /api/backends shows draining');

  for (const [i, c] of aClients.entries()) {
    const res = await c.get('/api/whoami');
    t.equal(res.status, 200);
    t.equal(res.json().server, 'servoy-a', 'an existing session still reaches the draining backend');
    t.equal(res.json().session, sessions[i], 'same session');
  }
  const aRequests = a.stats().requests;
  for (let i = 0; i < 8; i++) {
    const res = await browser(t, lb.url).get('/api/whoami');
    t.equal(res.status, 200);
    t.not(res.json().server, 'servoy-a', 'no new client lands on the draining backend');
  }
  t.equal(a.stats().requests, aRequests, 'the draining backend saw none of the new clients');
  const route = await api(lb, 'GET', '/api/route?key=127.0.0.1');
  t.notOk(route.json.candidates.some((c: any) => c.id === 'servoy-a'), 'no candidate for new sessions');

  // No HTTP request for longer than sessionIdle (2 s): the open WebSocket alone holds it.
  await holdsState(t, lb, 'servoy-a', 'draining', 3500);
  const held = await row(lb, 'servoy-a');
  t.equal(held.websockets, 1, 'one open WebSocket');
  t.ok(held.sessions >= 1, 'its session still counts');
  ws.send('still there');
  t.same(await ws.next(), { server: 'servoy-a', echo: 'still there' }, 'the WebSocket keeps working while draining');

  await ws.close();
  const closedAt = Date.now();
  await waitState(lb, 'servoy-a', 'drained', 20_000);
  const idle = (await logTime(lb, /"backend":"servoy-a".*"to":"drained"/)) - closedAt;
  t.ok(idle >= 1500, `drained only after sessionIdle (2 s) without requests: ${idle} ms after the close`);
  const drained = await row(lb, 'servoy-a');
  t.equal(drained.sessions, 0);
  t.equal(drained.websockets, 0);
  await seeLog(t, lb, /"backend":"servoy-a".*"to":"drained".*no sessions left/, 'logged');

  // A session that comes back still reaches it (and makes it draining again).
  const back = await aClients[1]!.get('/api/whoami');
  t.equal(back.json().server, 'servoy-a', 'a drained backend still serves a returning session');
  t.equal(back.json().session, sessions[1]);
  await waitState(lb, 'servoy-a', 'draining', 15_000);

  const undrain = await api(lb, 'POST', '/api/backends/servoy-a/undrain');
  t.equal(undrain.status, 200);
  t.equal(undrain.json.backend.state, 'up');
  t.equal(undrain.json.backend.drainingSince, null);
  const after = await api(lb, 'GET', '/api/route?key=127.0.0.1');
  t.ok(after.json.candidates.some((c: any) => c.id === 'servoy-a'), 'takes new sessions again');
  t.equal(sims.reduce((n, s) => n + s.stats().sessionsLost + s.stats().outOfSync, 0), 0, 'no session lost');
});

t.test('drain.maxWait: drained when it passes, even with active sessions and an open WebSocket', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await start(t, config(backendsFor(sims), { affinity: { sessionIdle: '30s' }, drain: { maxWait: '1500ms' } }));
  const pinned = await pinClients(t, lb.url, 1);
  const c = pinned.get('servoy-a')![0]!;
  const ws = await c.openWebSocket(WS_PATH);
  t.equal((await ws.next()).server, 'servoy-a');

  const drain = await api(lb, 'POST', '/api/backends/servoy-a/drain');
  t.equal(drain.json.backend.state, 'draining');
  const since = Date.parse(drain.json.backend.drainingSince);
  let requests = 0;
  await waitFor(async () => {
    // The session stays busy all along.
    const res = await c.get('/api/whoami');
    if (res.json().server !== 'servoy-a') throw new Error('the session moved');
    requests++;
    return (await row(lb, 'servoy-a')).state === 'drained';
  }, 6000, 'drained by maxWait', 200);
  const waited = (await logTime(lb, /"backend":"servoy-a".*"to":"drained"/)) - since;
  t.ok(waited >= 1490, `not before maxWait (1.5 s): ${waited} ms`);
  t.ok(requests >= 3, 'the session was busy while draining');
  const r = await row(lb, 'servoy-a');
  t.ok(r.sessions >= 1, 'still holds a session');
  t.equal(r.websockets, 1, 'still holds the WebSocket');
  await seeLog(t, lb, /"backend":"servoy-a".*"to":"drained".*drain\.maxWait passed/, 'logged with its cause');
  ws.send('x');
  t.same(await ws.next(), { server: 'servoy-a', echo: 'x' }, 'drained does not cut the WebSocket');
  await ws.close();
  t.equal((await api(lb, 'POST', '/api/backends/servoy-a/undrain')).json.backend.state, 'up');
});

// ---- 5. disable --------------------------------------------------------------------------

t.test('disable: the sessions of a disabled backend move to other servers without errors; it gets no traffic; enable', async (t) => {
  const sims = await startSims(t, ROUTES);
  const a = sims[0] as ServoySim;
  const lb = await start(t, config(backendsFor(sims), { log: { access: true } }));
  const pinned = await pinClients(t, lb.url, 3);
  const aClients = pinned.get('servoy-a')!;

  const res = await api(lb, 'POST', '/api/backends/servoy-a/disable');
  t.equal(res.status, 200);
  t.equal(res.json.backend.state, 'disabled');
  t.equal(res.json.backend.admin, 'disabled');
  t.equal((await row(lb, 'servoy-a')).state, 'disabled');
  const aRequests = a.stats().requests;

  const movedTo = new Map<BrowserClient, string>();
  for (const c of aClients) {
    const before = c.cookie('SERVOYLB');
    const moved = await c.get('/api/whoami');
    t.equal(moved.status, 200, 'no error');
    t.not(moved.json().server, 'servoy-a', 'moved to another server');
    t.ok([moved.headers['set-cookie']].flat().some((l) => String(l).startsWith('SERVOYLB=')), 'a new affinity cookie is set');
    t.not(c.cookie('SERVOYLB'), before);
    movedTo.set(c, moved.json().server);
    const again = await c.get('/api/whoami');
    t.equal(again.json().server, moved.json().server, 'and stays there');
    t.equal(again.headers['x-session-lost'], undefined);
  }
  for (let i = 0; i < 6; i++) {
    const r = await browser(t, lb.url).get('/');
    t.equal(r.status, 200);
    t.not(r.headers['x-servoy-server'], 'servoy-a', 'no new client on the disabled backend');
  }
  t.equal(a.stats().requests, aRequests, 'the disabled backend got no traffic');
  await lb.waitForLog(/"log":"access".*"route":"replaced"/, 3000);

  const enable = await api(lb, 'POST', '/api/backends/servoy-a/enable');
  t.equal(enable.status, 200);
  t.equal(enable.json.backend.state, 'up');
  for (const [c, server] of movedTo) t.equal((await c.get('/api/whoami')).json().server, server, 'moved sessions stay where they are after enable');
  // Enabling / undraining a backend in another admin state changes nothing; unknown ids are 404.
  t.equal((await api(lb, 'POST', '/api/backends/servoy-b/undrain')).json.backend.state, 'up');
  const unknown = await api(lb, 'POST', '/api/backends/nope/disable');
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'UNKNOWN_BACKEND');
});

t.test('drain monitor: "no session left" is only known once the balancer has watched traffic for sessionIdle', async (t) => {
  // After a (re)start the accounting has not seen the sessions that are still out there:
  // a draining backend must not be called drained before sessionIdle (only maxWait may).
  let now = 1_000_000;
  const pool = new Pool([{ id: 'a', url: 'http://127.0.0.1:1', weight: 1, route: 'a' }, { id: 'b', url: 'http://127.0.0.1:2', weight: 1, route: 'b' }], () => now);
  const accounting = new SessionAccounting(2000, 100, () => now);
  const monitor = new DrainMonitor(pool, accounting, 10_000, () => now);
  monitor.sessionIdle = 2000;
  pool.setAdmin('a', 'draining', 'restored from state file', now - 500);
  monitor.check();
  t.equal(pool.member('a')!.state, 'draining', 'just started: not drained');
  now += 1999;
  monitor.check();
  t.equal(pool.member('a')!.state, 'draining', 'still within sessionIdle of the start');
  now += 1;
  monitor.check();
  t.equal(pool.member('a')!.state, 'drained', 'watched for sessionIdle and saw no session: drained');

  // maxWait still drains before sessionIdle has passed.
  const monitor2 = new DrainMonitor(pool, accounting, 1000, () => now);
  monitor2.sessionIdle = 60_000;
  pool.setAdmin('b', 'draining', 'restored from state file', now - 1000);
  monitor2.check();
  t.equal(pool.member('b')!.state, 'drained', 'maxWait passed');
});
