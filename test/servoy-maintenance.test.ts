/**
 * Servoy maintenance mode against simulated Servoy servers that behave like the real one
 * (503 to a request without a session, existing sessions served; no /health) and the real
 * CLI, probing `/` as the shipped configs do:
 * - a balancer (re)started while a server is in maintenance: its probes carry no session,
 *   meet 503, and the server is `maintenance`, never `down`; its users keep reaching it;
 * - 503 probes for longer than drain.maxWait mean `down` (a failed application);
 * - a request with our affinity cookie but no servlet session id (the server's session is
 *   gone, the browser kept our cookie) that meets the maintenance 503 is a new session:
 *   it goes to another server and never sees the 503.
 */
import t from 'tap';
import { request } from 'undici';
import type { ServoySim } from '../examples/servoy-sim.js';
import { browser, config, logged, pinClients, row, ROUTES, seeLog, start, waitState } from './helpers/admin-env.js';
import { waitFor } from './helpers/lb.js';
import { backendsFor, startSims } from './helpers/processes.js';

t.test('started while a server is in maintenance: `maintenance`, not `down`, and its users keep it', async (t) => {
  const sims = await startSims(t, ROUTES);
  const a = sims[0] as ServoySim;
  // A user who was on servoy-a before the balancer restarted: a Tomcat session with the route suffix.
  const direct = await request(`${a.url}/`);
  await direct.body.dump();
  const session = /JSESSIONID=([^;]+)/.exec(String(direct.headers['set-cookie']))![1]!;
  a.setMaintenance(true);

  const lb = await start(t, config(backendsFor(sims), { healthCheck: { fall: 2 }, affinity: { maintenanceBackoff: '2s' } }));
  await waitState(lb, 'servoy-a', 'maintenance', 10_000);
  await seeLog(t, lb, /"backend":"servoy-a".*"to":"maintenance".*health probe answered 503/, 'maintenance, from the probe');
  // Positive signal first: more probes than `fall` have met the 503 since; only then the absence of `down`.
  const probed = a.stats().healthChecks;
  await waitFor(() => a.stats().healthChecks >= probed + 4, 10_000, 'four more probes');
  t.equal((await row(lb, 'servoy-a')).state, 'maintenance', 'still maintenance after more than `fall` 503 probes');
  t.notOk(logged(lb, /"backend":"servoy-a".*"to":"down"/), 'never down');

  const user = browser(t, lb.url);
  user.setCookie('JSESSIONID', session);
  const res = await user.get('/api/whoami');
  t.equal(res.status, 200, 'its user is served by its own server');
  t.equal(res.json().server, 'servoy-a');
  t.equal(res.json().new, false, 'with the session it had');
  for (let i = 0; i < 4; i++) {
    const fresh = await browser(t, lb.url).get('/api/whoami');
    t.equal(fresh.status, 200, 'a new user is served');
    t.not(fresh.json().server, 'servoy-a', 'elsewhere');
  }

  a.setMaintenance(false);
  await waitState(lb, 'servoy-a', 'up', 10_000);
  t.pass('up again once maintenance ends (after maintenanceBackoff)');
});

t.test('503 probes for longer than drain.maxWait mean down', async (t) => {
  const sims = await startSims(t, ROUTES);
  const a = sims[0] as ServoySim;
  a.setMaintenance(true);
  const lb = await start(t, config(backendsFor(sims), { drain: { maxWait: '1s' }, affinity: { failoverDelay: 0 } }));
  await waitState(lb, 'servoy-a', 'down', 15_000);
  await seeLog(t, lb, /"backend":"servoy-a".*"to":"down".*answered 503 for longer than drain\.maxWait/, 'down, with the reason');
});

t.test('our cookie without a servlet session meets maintenance: placed elsewhere as a new session, never shown the 503', async (t) => {
  const sims = await startSims(t, ROUTES);
  const a = sims[0] as ServoySim;
  const lb = await start(t, config(backendsFor(sims), { affinity: { maintenanceBackoff: '1h' } }));
  const user = (await pinClients(t, lb.url, 1)).get('servoy-a')![0]!;
  const cookie = user.cookie('SERVOYLB');
  // The probe holds a session, so only real traffic can show the maintenance.
  a.setMaintenance(true);
  user.clearCookies();
  user.setCookie('SERVOYLB', cookie!);
  const res = await user.get('/api/whoami');
  t.equal(res.status, 200, 'no 503 shown');
  t.not(res.json().server, 'servoy-a', 'served by another server');
  t.not(user.cookie('SERVOYLB'), cookie, 'with a new affinity cookie');
  await waitState(lb, 'servoy-a', 'maintenance', 5000);
  t.equal(a.stats().maintenanceRefused, 1, 'servoy-a refused it once, as Servoy does');
  const again = await user.get('/api/whoami');
  t.equal(again.json().server, res.json().server, 'and it sticks there');
});
