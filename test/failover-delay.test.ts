/**
 * affinity.failoverDelay against real simulated Servoy servers and the real CLI: a backend
 * that goes down holds its sessions for the delay (503 with Retry-After and a page that
 * retries by itself; WebSocket upgrades 503), because Servoy takes a client back for 60 s
 * after a drop and a short outage must not cost every user their client. Within the delay
 * a server that comes back keeps its users (same session, no "session lost"); past it,
 * they are placed anew. New sessions never wait for a down server.
 *
 * The simulator's setReachable(false) is a network blip or a long GC pause: connections are
 * refused while its sessions stay in memory.
 */
import t from 'tap';
import type { ServoySim } from '../examples/servoy-sim.js';
import { api, browser, config, pinClients, row, seeLog, start, waitState } from './helpers/admin-env.js';
import { UpgradeRefused, type BrowserClient } from './helpers/browser.js';
import { waitFor } from './helpers/lb.js';
import { backendsFor, startSims } from './helpers/processes.js';
import { ROUTES } from './helpers/admin-env.js';

/** The status a WebSocket upgrade gets (101 when it opens; the socket is closed again). */
async function upgradeStatus(c: BrowserClient): Promise<number> {
  try {
    const ws = await c.openWebSocket('/websocket/1/w/0');
    await ws.close();
    return 101;
  } catch (err) {
    if (err instanceof UpgradeRefused) return err.status;
    throw err;
  }
}

t.test('a server that blinks within failoverDelay keeps its users: 503 while it is down, then the same session', async (t) => {
  const sims = await startSims(t, ROUTES);
  const a = sims[0] as ServoySim;
  // A delay no test run reaches: only the hold is under test here.
  const lb = await start(t, config(backendsFor(sims), { affinity: { failoverDelay: '1h' } }));
  const users = (await pinClients(t, lb.url, 2)).get('servoy-a')!;
  const sessions = users.map((u) => u.cookie('JSESSIONID'));
  const cookies = users.map((u) => u.cookie('SERVOYLB'));

  await a.setReachable(false);
  await waitState(lb, 'servoy-a', 'down', 10_000);
  t.equal((await row(lb, 'servoy-a')).holdingSessions, true, 'the status shows it holds its sessions');
  await seeLog(t, lb, /"backend":"servoy-a".*its sessions wait for it \(503\)/, 'the hold is logged');

  for (const u of users) {
    const res = await u.get('/api/whoami');
    t.equal(res.status, 503, 'a held session gets 503, not another server');
    t.equal(res.headers['retry-after'], '10', 'with Retry-After');
    t.match(res.body, /http-equiv="refresh"/, 'and a page that retries by itself');
    t.equal(await upgradeStatus(u), 503, 'its WebSocket reconnect gets 503 too');
  }
  // The router explains it from the same decision: the cookie names servoy-a, which holds the session.
  const why = await api(lb, 'GET', `/api/route?client=127.0.0.1&cookie=${encodeURIComponent(cookies[0]!)}`);
  t.match(why.json, { backend: null, rule: 'failover-hold', steps: [{ rule: 'affinity-cookie', outcome: 'held', backend: 'servoy-a' }] }, 'route explains the hold');
  // New users are not held: they go to the servers that are up.
  for (let i = 0; i < 4; i++) {
    const res = await browser(t, lb.url).get('/api/whoami');
    t.equal(res.status, 200, 'a new user is served');
    t.not(res.json().server, 'servoy-a');
  }
  const explained = await api(lb, 'GET', '/api/route?client=127.0.0.1');
  t.notOk(explained.json.candidates.some((c: { id: string }) => c.id === 'servoy-a'), 'the held server takes no new sessions');

  await a.setReachable(true);
  await waitState(lb, 'servoy-a', 'up', 10_000);
  t.equal((await row(lb, 'servoy-a')).holdingSessions, false);
  for (const [i, u] of users.entries()) {
    const res = await u.get('/api/whoami');
    t.equal(res.status, 200, 'back on its server');
    t.equal(res.json().server, 'servoy-a');
    t.equal(res.headers['x-session-lost'], undefined, 'with its session: the user kept their client');
    t.equal(u.cookie('JSESSIONID'), sessions[i], 'the same servlet session');
    t.equal(u.cookie('SERVOYLB'), cookies[i], 'the affinity cookie was never rewritten');
    t.equal(await upgradeStatus(u), 101, 'its WebSocket reconnects');
  }
});

t.test('a server that stays down past failoverDelay: its users are placed anew, and stay on their new server when it returns', async (t) => {
  const sims = await startSims(t, ROUTES);
  const a = sims[0] as ServoySim;
  const lb = await start(t, config(backendsFor(sims), { affinity: { failoverDelay: '1s' } }));
  const users = (await pinClients(t, lb.url, 2)).get('servoy-a')!;

  await a.setReachable(false);
  await waitState(lb, 'servoy-a', 'down', 10_000);
  // The positive signal that the delay is over: the balancer says so (its own clock).
  await lb.waitForLog(/"backend":"servoy-a".*failoverDelay passed while down/, 10_000);
  await waitFor(async () => (await row(lb, 'servoy-a')).holdingSessions === false, 5000, 'hold ended');

  const placed: string[] = [];
  for (const u of users) {
    const before = u.cookie('SERVOYLB');
    const res = await u.get('/api/whoami');
    t.equal(res.status, 200, 'placed anew without an error page');
    t.not(res.json().server, 'servoy-a');
    t.not(u.cookie('SERVOYLB'), before, 'with a new affinity cookie');
    placed.push(res.json().server);
  }
  await lb.waitForLog(/"log":"access".*"route":"replaced"/, 5000).catch(() => undefined);

  await a.setReachable(true);
  await waitState(lb, 'servoy-a', 'up', 10_000);
  for (const [i, u] of users.entries()) {
    const res = await u.get('/api/whoami');
    t.equal(res.status, 200);
    t.equal(res.json().server, placed[i], 'stays on its new server (its new session lives there)');
    t.equal(res.headers['x-session-lost'], undefined);
  }
});

t.test('a disabled server is never held: its sessions are placed anew at once', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await start(t, config(backendsFor(sims), { affinity: { failoverDelay: '1h' } }));
  const users = (await pinClients(t, lb.url, 1)).get('servoy-a')!;
  t.equal((await api(lb, 'POST', '/api/backends/servoy-a/disable')).status, 200);
  const res = await users[0]!.get('/api/whoami');
  t.equal(res.status, 200);
  t.not(res.json().server, 'servoy-a');
});

t.test('ejected by proxy errors during a blink: at the end of failoverDelay a passing probe brings the server back with its users', async (t) => {
  // The blink is over long before the ejection (1 h) would end: without the probe at the end
  // of the delay, its users would be placed anew although their server is fine.
  const sims = await startSims(t, ROUTES);
  const a = sims[0] as ServoySim;
  const lb = await start(t, config(backendsFor(sims), { affinity: { failoverDelay: '2s' }, outlier: { consecutiveFailures: 2, ejectFor: '1h' } }));
  const users = (await pinClients(t, lb.url, 1)).get('servoy-a')!;
  const user = users[0]!;
  const session = user.cookie('JSESSIONID');

  await a.setReachable(false);
  t.equal((await user.get('/api/whoami')).status, 502, 'a sticky request to a server that refuses: 502');
  t.equal((await user.get('/api/whoami')).status, 502);
  await waitState(lb, 'servoy-a', 'down', 10_000);
  await seeLog(t, lb, /"backend":"servoy-a".*"to":"down".*ejected after 2 consecutive proxy errors/, 'ejected by outlier detection');
  t.equal((await user.get('/api/whoami')).status, 503, 'held while down');

  await a.setReachable(true);
  await lb.waitForLog(/"backend":"servoy-a".*"to":"up".*ejection ended early/, 15_000);
  const back = await user.get('/api/whoami');
  t.equal(back.status, 200);
  t.equal(back.json().server, 'servoy-a', 'the user is back on its server');
  t.equal(user.cookie('JSESSIONID'), session, 'with its session');
});
