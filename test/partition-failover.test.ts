/**
 * Partition mode when a tenant's server is gone (SPEC "Routing rules", rule 1: "If a
 * partition's backend is down or disabled the client gets 503 with Retry-After and the
 * maintenance page; it is never sent to a server that does not hold its data"), through
 * the real CLI in front of three simulated Servoy servers:
 * - a home server that stops (health checks take it down) or is disabled: its tenants get
 *   the 503 page with Retry-After, never another server; other tenants are unaffected;
 *   enabling it brings its tenants back to it, sessions intact;
 * - a server that refuses the connection of a brand-new tenant's first request: that
 *   request goes to the next server (SPEC: a refused connection of a new session is retried)
 *   and the tenant is assigned where it was served.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { UpgradeRefused, type BrowserClient, type BrowserResponse } from './helpers/browser.js';
import { client, serverOf, sessionLost } from './helpers/partition.js';
import { lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { startSims, type BalancerProcess } from './helpers/processes.js';
import { api as adminApi, partitionRows as partitions } from './helpers/admin-env.js';

/** The admin API call of test/helpers/admin-env.ts, with the body as 4th argument. */
const api = (lb: BalancerProcess, method: string, path: string, body?: unknown) => adminApi(lb, method, path, { body });

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];
const MAINTENANCE_PAGE = '<!doctype html><html><body><h1>Acme Servoy is being serviced</h1><p>Back soon.</p></body></html>\n';

// ---- helpers only this file uses (shared ones: test/helpers/admin-env.ts) ------------

async function backendState(lb: BalancerProcess, id: string): Promise<string | undefined> {
  const res = await api(lb, 'GET', '/api/backends');
  return (res.json?.backends as any[] | undefined)?.find((b) => b.id === id)?.state;
}

// ---- tests -------------------------------------------------------------------------------

t.test('a down or disabled home server: 503 with Retry-After and the page, never another server', async (t) => {
  const dir = t.testdir({ 'maintenance.html': MAINTENANCE_PAGE });
  t.equal(readFileSync(join(dir, 'maintenance.html'), 'utf8'), MAINTENANCE_PAGE);
  const sims = await startSims(t, ROUTES);
  const sim = new Map(sims.map((s) => [s.route, s]));
  const lb = await startBalancer(
    t,
    await lbConfig(sims, {
      affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' } },
      // timeout 1s: on a loaded machine shorter probes of the in-process simulators fail at random.
      healthCheck: { path: '/', interval: '200ms', timeout: '1s', rise: 2, fall: 2 },
      errorPages: { '503': 'maintenance.html' },
      log: { access: false },
    }),
  );

  // 15 tenants, one browser each: bounded load puts at least one on every server.
  const home = new Map<string, string>();
  const browsers = new Map<string, BrowserClient>();
  for (let i = 0; i < 15; i++) {
    const tenant = `t${i}`;
    const browser = client(t, lb.url, { headers: { 'X-Tenant': tenant } });
    const res = await browser.get('/api/whoami');
    t.equal(res.status, 200);
    home.set(tenant, serverOf(res)!);
    browsers.set(tenant, browser);
  }
  const on = (route: string) => [...home].filter(([, s]) => s === route).map(([k]) => k);
  for (const route of ROUTES) t.ok(on(route).length > 0, `${route} holds tenants (${on(route).join(', ')})`);
  const [downRoute, disabledRoute, liveRoute] = ROUTES as [string, string, string];

  /** The 503 a tenant of a server that cannot serve must get, checked in full. */
  const expect503 = (res: BrowserResponse, what: string): void => {
    t.equal(res.status, 503, `${what}: 503`);
    t.ok(Number(res.headers['retry-after']) > 0, `${what}: Retry-After (${String(res.headers['retry-after'])})`);
    t.equal(res.body, MAINTENANCE_PAGE, `${what}: the configured maintenance page`);
    t.equal(res.headers['x-servoy-server'], undefined, `${what}: answered by the balancer, not by a server`);
  };
  const othersServed = async (routes: string[], what: string): Promise<void> => {
    for (const route of routes) {
      for (const tenant of on(route)) {
        const res = await browsers.get(tenant)!.get('/api/whoami');
        t.equal(`${res.status} ${serverOf(res)}`, `200 ${route}`, `${what}: ${tenant} still served by ${route}`);
        t.notOk(sessionLost(res), `${what}: ${tenant} kept its session`);
      }
    }
  };

  // 1. The server stops. Until the checks notice, its tenants' requests fail (502: refused);
  //    from then on they get the 503 page. Never another server, not even once.
  const victim = on(downRoute)[0]!;
  await sim.get(downRoute)!.close();
  const window: string[] = [];
  await waitFor(
    async () => {
      const res = await client(t, lb.url, { headers: { 'X-Tenant': victim } }).get('/api/whoami');
      window.push(`${res.status}${serverOf(res) === undefined ? '' : ` ${serverOf(res)}`}`);
      return (await backendState(lb, downRoute)) === 'down';
    },
    15_000,
    `${downRoute} down`,
    50,
  );
  t.same(window.filter((w) => w !== '502' && w !== '503'), [], `while ${downRoute} was going down, ${victim} got only 502/503 (${window.length} requests)`);
  for (const tenant of on(downRoute)) {
    expect503(await browsers.get(tenant)!.get('/api/whoami'), `${tenant} (home ${downRoute} down), known browser`);
    expect503(await client(t, lb.url, { headers: { 'X-Tenant': tenant } }).get('/'), `${tenant}, new browser`);
    const ws: unknown = await browsers.get(tenant)!.openWebSocket('/websocket/1/main/0').then(() => undefined, (err: unknown) => err);
    t.ok(ws instanceof UpgradeRefused && ws.status === 503, `${tenant}: its WebSocket is refused with 503 too`);
  }
  const head = await request(`${lb.url}/`, { method: 'HEAD', headers: { 'X-Tenant': victim }, reset: true });
  await head.body.dump();
  t.equal(head.statusCode, 503, 'HEAD: 503 as well');
  await othersServed([disabledRoute, liveRoute], `${downRoute} down`);
  t.equal((await partitions(lb)).get(victim)?.backend, downRoute, `${victim} stays assigned to ${downRoute}`);

  // New tenants meanwhile land on the servers that are up.
  const agent = new Agent();
  t.teardown(() => agent.close());
  for (let i = 0; i < 10; i++) {
    const res = await client(t, lb.url, { dispatcher: agent, headers: { 'X-Tenant': `new${i}` } }).get('/api/whoami');
    t.ok(res.status === 200 && serverOf(res) !== downRoute, `new${i}: served by ${serverOf(res)}`);
  }

  // 2. An administrator disables a server: its tenants get the 503 page at once, nothing else moves.
  t.equal((await api(lb, 'POST', `/api/backends/${disabledRoute}/disable`)).status, 200, `disable ${disabledRoute}`);
  for (const tenant of on(disabledRoute)) {
    expect503(await browsers.get(tenant)!.get('/api/whoami'), `${tenant} (home ${disabledRoute} disabled)`);
  }
  await othersServed([liveRoute], `${disabledRoute} disabled`);
  for (const tenant of on(downRoute)) expect503(await browsers.get(tenant)!.get('/'), `${tenant} (home still down)`);
  t.equal(sim.get(disabledRoute)!.stats().sessionsLost, 0, `no request reached ${disabledRoute} without its session`);

  // Enabled again: its tenants are back on it, with their sessions.
  t.equal((await api(lb, 'POST', `/api/backends/${disabledRoute}/enable`)).status, 200, `enable ${disabledRoute}`);
  await othersServed([disabledRoute, liveRoute], `${disabledRoute} enabled`);
  for (const s of [disabledRoute, liveRoute]) t.equal(sim.get(s)!.stats().sessionsLost, 0, `${s}: no session lost at any point`);
});

t.test('a home server in Servoy maintenance mode keeps its tenants; new tenants go elsewhere', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await startBalancer(
    t,
    await lbConfig(sims, {
      affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' }, maintenanceBackoff: '30s' },
      healthCheck: { path: '/', interval: '1s', timeout: '1s', rise: 1, fall: 3 },
      log: { access: false },
    }),
  );
  const home = new Map<string, string>();
  const browsers = new Map<string, BrowserClient>();
  for (let i = 0; i < 9; i++) {
    const browser = client(t, lb.url, { headers: { 'X-Tenant': `m${i}` } });
    home.set(`m${i}`, serverOf(await browser.get('/api/whoami'))!);
    browsers.set(`m${i}`, browser);
  }
  const maint = 'servoy-c';
  const tenant = [...home].find(([, s]) => s === maint)?.[0];
  t.ok(tenant, `a tenant on ${maint}`);
  sims[2]!.setMaintenance(true);

  // Its tenants stay with it: live sessions are served, a new browser gets Servoy's own 503.
  const live = await browsers.get(tenant!)!.get('/api/whoami');
  t.equal(`${live.status} ${serverOf(live)}`, `200 ${maint}`, `${tenant}: its live session is still served by ${maint}`);
  const fresh = await client(t, lb.url, { headers: { 'X-Tenant': tenant! } }).get('/');
  t.equal(fresh.status, 503, `${tenant}: a new browser gets 503 (the tenant's data is on ${maint})`);
  t.equal(fresh.headers['x-servoy-server'], maint, 'from its own server, never from another one');

  // A brand-new tenant is a new session: Servoy's maintenance 503 is not shown, it goes to the
  // next server (SPEC "Servoy maintenance mode"), and is assigned there.
  const answers: string[] = [];
  for (let i = 0; i < 15; i++) {
    const res = await client(t, lb.url, { headers: { 'X-Tenant': `after${i}` } }).get('/api/whoami');
    answers.push(`${res.status} ${serverOf(res) ?? '-'}`);
  }
  const shown = answers.filter((a) => !/^200 servoy-[ab]$/.test(a));
  const rows = await partitions(lb);
  const assignedToMaint = [...rows.values()].filter((p) => p.key.startsWith('after') && p.backend === maint).map((p) => p.key);
  // A new partition whose first request meets Servoy's maintenance 503 is redispatched like a
  // new session, and routePartition places the fresh assignment anew (its server is excluded).
  t.same(shown, [], 'every new tenant was served by a server not in maintenance');
  t.same(assignedToMaint, [], `no new tenant is assigned to ${maint}`);
  for (const [key, server] of home) {
    if (server === maint) continue;
    const res = await browsers.get(key)!.get('/api/whoami');
    t.equal(`${res.status} ${serverOf(res)}`, `200 ${server}`, `${key}: unaffected on ${server}`);
  }
});

t.test('a new tenant whose first server refuses the connection is served by the next one and assigned there', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await startBalancer(
    t,
    await lbConfig(sims, {
      affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' } },
      // No check notices the stopped server during this test: only the refused connections do.
      healthCheck: { path: '/', interval: '10m', timeout: '1s' },
      outlier: { consecutiveFailures: 1000, ejectFor: '10m' },
      log: { access: false },
    }),
  );
  const gone = 'servoy-c';
  await sims[2]!.close();
  const answers = new Map<string, string>();
  for (let i = 0; i < 24; i++) {
    const tenant = `fresh${i}`;
    const res = await client(t, lb.url, { headers: { 'X-Tenant': tenant } }).get('/api/whoami');
    answers.set(tenant, `${res.status} ${serverOf(res) ?? '-'}`);
  }
  t.equal(await backendState(lb, gone), 'up', `${gone} still counts as up (nothing checked it)`);
  const failed = [...answers].filter(([, a]) => !/^200 servoy-[ab]$/.test(a));
  t.same(failed, [], 'every new tenant was served by a server that is there');
  const rows = await partitions(lb);
  for (const [tenant, answer] of answers) {
    const served = answer.split(' ')[1];
    t.equal(rows.get(tenant)?.backend, served, `${tenant}: assigned where it was served (${served})`);
    const again = await client(t, lb.url, { headers: { 'X-Tenant': tenant } }).get('/api/whoami');
    t.equal(`${again.status} ${serverOf(again)}`, `200 ${served}`, `${tenant}: its next client goes there too`);
  }

  // The same for a tenant whose first contact is a WebSocket handshake.
  const wsAnswers: string[] = [];
  for (let i = 0; i < 12; i++) {
    const tenant = `ws-fresh${i}`;
    const opened = await client(t, lb.url, { headers: { 'X-Tenant': tenant } })
      .openWebSocket('/websocket/1/main/0')
      .then(async (ws) => (await ws.closed).reason, (err: unknown) => String(err));
    // No session yet, so the simulator that accepted it closes it: CLIENT-OUT-OF-SYNC.
    if (opened !== 'CLIENT-OUT-OF-SYNC') wsAnswers.push(`${tenant}: ${opened}`);
  }
  t.same(wsAnswers, [], 'every new tenant\'s handshake reached a server that is there');
  const wsRows = await partitions(lb);
  const onGone = [...wsRows.values()].filter((p) => p.backend === gone).map((p) => p.key);
  t.same(onGone, [], `no tenant is left assigned to ${gone}, which refused them`);
});
