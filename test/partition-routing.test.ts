/**
 * Partition mode end to end (SPEC "Routing rules", rule 1; issue "Partition mode", point 8):
 * the real CLI (`servoy-lb start`) in front of three simulated Servoy servers, browser-like
 * clients that carry the tenant in `X-Tenant` (or in the Host name, or in the first path
 * segment).
 * - many clients per tenant all reach the tenant's server, their sessions are never lost,
 *   and the tenants spread over every server;
 * - the key read from the Host name (with a pattern) and from a path segment;
 * - partitionKey.required: a request (or WebSocket) without a key gets the clear 400 page;
 *   without `required` it falls through to session routing (served, and sticky);
 * - a WebSocket handshake with X-Tenant reaches the tenant's server.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { UpgradeRefused, type BrowserClient } from './helpers/browser.js';
import { client, serverOf, sessionLost, sharedAgent } from './helpers/partition.js';
import { lbConfig, startBalancer } from './helpers/lb.js';
import { startSims, type BalancerProcess } from './helpers/processes.js';
import { api as adminApi, partitionRows as partitions } from './helpers/admin-env.js';

/** The admin API call of test/helpers/admin-env.ts, with the body as 4th argument. */
const api = (lb: BalancerProcess, method: string, path: string, body?: unknown) => adminApi(lb, method, path, { body });

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];
const HEADER_KEY = { from: 'header', name: 'X-Tenant' };

// ---- helpers only this file uses (shared ones: test/helpers/admin-env.ts) ------------

/** A partition-mode config for the real CLI: loopback, quiet access log, lenient health checks. */
async function partitionConfig(sims: Parameters<typeof lbConfig>[0], partitionKey: object, affinity: object = {}): Promise<Record<string, unknown>> {
  return lbConfig(sims, {
    affinity: { mode: 'partition', partitionKey, ...affinity },
    // timeout 1s: on a loaded machine short probes of the in-process simulators fail at random.
    healthCheck: { path: '/', interval: '1s', timeout: '1s', rise: 1, fall: 3 },
    log: { access: false },
  });
}

/** Groups `key -> server` by server. */
function byServer(servers: Map<string, string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [key, server] of servers) out.set(server, [...(out.get(server) ?? []), key]);
  return out;
}

// ---- tests -------------------------------------------------------------------------------

t.test('X-Tenant: every client of a tenant reaches the tenant\'s server; tenants spread over all servers', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await startBalancer(t, await partitionConfig(sims, HEADER_KEY));
  const agent = sharedAgent(t);
  const TENANTS = 20;
  const CLIENTS = 5;
  const REQUESTS = 3;
  const seen = new Map<string, Set<string>>();
  const problems: string[] = [];

  // Every client of every tenant at once: first requests of one tenant race each other.
  await Promise.all(
    Array.from({ length: TENANTS * CLIENTS }, async (_, n) => {
      const tenant = `tenant-${String(n % TENANTS).padStart(2, '0')}`;
      const browser = client(t, lb.url, { dispatcher: agent, headers: { 'X-Tenant': tenant } });
      let session: string | undefined;
      for (let i = 0; i < REQUESTS; i++) {
        const res = await browser.get('/api/whoami');
        const server = serverOf(res);
        if (res.status !== 200 || server === undefined) problems.push(`${tenant} client ${n} request ${i}: ${res.status} ${res.body.slice(0, 120)}`);
        if (sessionLost(res)) problems.push(`${tenant} client ${n} request ${i}: session lost on ${server}`);
        const body = res.json<{ session: string; new: boolean }>();
        if (i === 0) session = body.session;
        else if (body.session !== session || body.new) problems.push(`${tenant} client ${n} request ${i}: session changed`);
        if (server !== undefined) seen.set(tenant, (seen.get(tenant) ?? new Set()).add(server));
      }
    }),
  );
  t.same(problems, [], 'every request answered 200 by a server that knows the client\'s session');
  t.equal(seen.size, TENANTS, 'every tenant was served');
  const home = new Map<string, string>();
  for (const [tenant, servers] of seen) {
    t.equal(servers.size, 1, `${tenant}: all ${CLIENTS} clients reached one server (${[...servers].join(', ')})`);
    home.set(tenant, [...servers][0]!);
  }
  const spread = byServer(home);
  t.same([...spread.keys()].sort(), ROUTES, `tenants spread over all three servers (${ROUTES.map((r) => `${r}: ${spread.get(r)?.length ?? 0}`).join(', ')})`);
  for (const sim of sims) t.equal(sim.stats().sessionsLost, 0, `${sim.route}: no session lost`);

  // The durable assignments say the same.
  const rows = await partitions(lb);
  t.equal(rows.size, TENANTS, 'one assignment per tenant');
  for (const [tenant, server] of home) {
    t.equal(rows.get(tenant)?.backend, server, `${tenant}: assigned to the server that served it`);
    t.equal(rows.get(tenant)?.pinned, false, `${tenant}: not pinned`);
  }

  // A later, new client of a known tenant goes to the same server (the assignment, not luck).
  for (const tenant of [...home.keys()].slice(0, 6)) {
    const late = client(t, lb.url, { headers: { 'x-tenant': ` ${tenant} ` } }); // header name any case, spaces trimmed
    const res = await late.get('/api/whoami');
    t.equal(serverOf(res), home.get(tenant), `${tenant}: a later client reaches its server too`);
  }

  await t.test('WebSocket: the handshake with X-Tenant reaches the tenant\'s server', async (t) => {
    const picks = ROUTES.map((route) => spread.get(route)![0]!);
    for (const tenant of picks) {
      const browser = client(t, lb.url, { headers: { 'X-Tenant': tenant } });
      const page = await browser.get('/api/whoami');
      t.equal(serverOf(page), home.get(tenant), `${tenant}: index on its server`);
      const ws = await browser.openWebSocket('/websocket/1/main/0');
      const hello = await ws.next(10_000);
      t.equal(hello.server, home.get(tenant), `${tenant}: WebSocket on its server ${home.get(tenant)}`);
      t.equal(hello.session, browser.cookie('JSESSIONID'), `${tenant}: WebSocket in the client's HTTP session (no CLIENT-OUT-OF-SYNC)`);
      ws.send('ping');
      t.same(await ws.next(10_000), { server: home.get(tenant), echo: 'ping' }, `${tenant}: messages flow both ways`);
      await ws.close();
    }

    // A client whose affinity cookie names another server: the tenant's server still wins.
    const [tenantA, tenantB] = [spread.get('servoy-a')![0]!, spread.get('servoy-b')![0]!];
    const roaming = client(t, lb.url, { headers: { 'X-Tenant': tenantA } });
    t.equal(serverOf(await roaming.get('/api/whoami')), 'servoy-a');
    t.ok(roaming.cookie('SERVOYLB'), 'the client holds an affinity cookie for servoy-a');
    const other = await roaming.openWebSocket('/websocket/2/main/0', { headers: { 'X-Tenant': tenantB } });
    // servoy-b does not know the client's servoy-a session: it closes with CLIENT-OUT-OF-SYNC,
    // which shows the handshake reached servoy-b, the tenant's server, not the cookie's.
    const closed = await other.closed;
    t.same(closed, { code: 1008, reason: 'CLIENT-OUT-OF-SYNC' }, 'handshake went to the tenant\'s server, not the cookie\'s');
    t.equal(sims[1]!.stats().outOfSync, 1, 'servoy-b saw that handshake');

    // A tenant seen first on a WebSocket is assigned there, and its page requests follow.
    const wsFirst = client(t, lb.url, { headers: { 'X-Tenant': 'ws-first-tenant' } });
    const early = await wsFirst.openWebSocket('/websocket/1/main/0');
    await early.closed; // no session yet: the simulator closes it
    const row = (await partitions(lb)).get('ws-first-tenant');
    t.ok(row, 'the handshake assigned the new tenant');
    const res = await wsFirst.get('/api/whoami');
    t.equal(serverOf(res), row?.backend, 'the tenant\'s pages go where its handshake went');
    const ws = await wsFirst.openWebSocket('/websocket/1/main/0');
    t.equal((await ws.next(10_000)).server, row?.backend, 'and so does its next WebSocket');
    await ws.close();
  });

  await t.test('without partitionKey.required a request without X-Tenant falls through to session routing', async (t) => {
    const before = (await partitions(lb)).size;
    const keyless = Array.from({ length: 6 }, () => client(t, lb.url, { dispatcher: agent }));
    for (const browser of keyless) {
      const first = await browser.get('/api/whoami');
      t.equal(first.status, 200, 'served');
      t.ok(browser.cookie('SERVOYLB'), 'the balancer\'s affinity cookie was set (a new session)');
      const server = serverOf(first);
      const session = first.json().session;
      for (let i = 0; i < 4; i++) {
        const res = await browser.get('/api/whoami');
        t.equal(serverOf(res), server, 'sticky to its server');
        t.equal(res.json().session, session, 'same session');
        t.notOk(sessionLost(res), 'no session lost');
      }
      // Its WebSocket follows the session too.
      const ws = await browser.openWebSocket('/websocket/1/main/0');
      t.equal((await ws.next(10_000)).server, server, 'keyless WebSocket on the session\'s server');
      await ws.close();
    }
    // An empty or blank X-Tenant is no key either.
    const blank = client(t, lb.url, { headers: { 'X-Tenant': '   ' } });
    t.equal((await blank.get('/api/whoami')).status, 200, 'a blank X-Tenant is served by session routing');
    t.equal((await partitions(lb)).size, before, 'no partition was created for requests without a key');
  });
});

t.test('key from the Host name with a pattern', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await startBalancer(t, await partitionConfig(sims, { from: 'host', pattern: '^([a-z0-9-]+)\\.tenants\\.example$' }));
  const agent = sharedAgent(t);
  const TENANTS = 12;
  const home = new Map<string, string>();
  const problems: string[] = [];
  await Promise.all(
    Array.from({ length: TENANTS * 3 }, async (_, n) => {
      const tenant = `org${n % TENANTS}`;
      // The Host as browsers may send it: any case, with or without the port.
      const host = n % 3 === 0 ? `${tenant}.tenants.example` : n % 3 === 1 ? `${tenant.toUpperCase()}.Tenants.Example:8080` : `${tenant}.tenants.example.`;
      const browser = client(t, lb.url, { dispatcher: agent, headers: { host } });
      for (let i = 0; i < 2; i++) {
        const res = await browser.get('/api/whoami');
        const server = serverOf(res);
        if (res.status !== 200 || server === undefined || sessionLost(res)) problems.push(`${host}: ${res.status} ${res.body.slice(0, 120)}`);
        else if (res.json().headers.host !== host) problems.push(`${host}: the backend saw Host ${res.json().headers.host}`);
        if (server === undefined) continue;
        const known = home.get(tenant);
        if (known === undefined) home.set(tenant, server);
        else if (known !== server) problems.push(`${host}: served by ${server}, the tenant is on ${known}`);
      }
    }),
  );
  t.same(problems, [], 'every client of a tenant reached one server, with Host preserved');
  t.same([...byServer(home).keys()].sort(), ROUTES, 'tenants spread over all three servers');
  const rows = await partitions(lb);
  t.same([...rows.keys()].sort(), [...home.keys()].sort(), 'the keys are the pattern\'s capture group, case and port ignored');
  for (const [tenant, server] of home) t.equal(rows.get(tenant)?.backend, server, `${tenant} assigned to ${server}`);

  // A Host the pattern does not match has no key: session routing, no partition.
  const plain = client(t, lb.url);
  const res = await plain.get('/api/whoami');
  t.equal(res.status, 200, 'a request to the plain address is served');
  t.equal((await partitions(lb)).size, TENANTS, 'and creates no partition');
});

t.test('key from path segment 1', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await startBalancer(t, await partitionConfig(sims, { from: 'path', segment: 1 }));
  const agent = sharedAgent(t);
  const TENANTS = 9;
  const home = new Map<string, string>();
  const problems: string[] = [];
  await Promise.all(
    Array.from({ length: TENANTS * 2 }, async (_, n) => {
      const tenant = `shop${n % TENANTS}`;
      const browser = client(t, lb.url, { dispatcher: agent });
      // The same first segment with other paths after it, and with a path parameter.
      const paths = [`/${tenant}/app/index`, `/${tenant};v=1/app/page`, `/${tenant}/`];
      for (const path of paths) {
        const res = await browser.get(path);
        const server = serverOf(res);
        // The simulator has no such page (404) but names itself and keeps the session.
        if (server === undefined || sessionLost(res)) problems.push(`${path}: ${res.status} ${res.body.slice(0, 120)}`);
        if (server === undefined) continue;
        const known = home.get(tenant);
        if (known === undefined) home.set(tenant, server);
        else if (known !== server) problems.push(`${path}: served by ${server}, the tenant is on ${known}`);
      }
    }),
  );
  t.same(problems, [], 'every request of a tenant reached one server');
  t.same([...byServer(home).keys()].sort(), ROUTES, 'tenants spread over all three servers');
  const rows = await partitions(lb);
  t.same([...rows.keys()].sort(), [...home.keys()].sort(), 'the keys are the first path segment');
  for (const [tenant, server] of home) t.equal(rows.get(tenant)?.backend, server, `${tenant} assigned to ${server}`);
  // The root has no segment 1: session routing.
  t.equal((await client(t, lb.url).get('/')).status, 200, '"/" (no segment) is served by session routing');
  t.equal((await partitions(lb)).size, TENANTS, 'and creates no partition');
});

t.test('partitionKey.required: a request without a key gets the clear 400 page', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await startBalancer(t, await partitionConfig(sims, { ...HEADER_KEY, required: true }));
  const requestsBefore = sims.reduce((n, s) => n + s.stats().requests, 0);

  for (const headers of [{}, { 'X-Tenant': '' }, { 'X-Tenant': '  ' }, { 'X-Other': 'acme' }] as Record<string, string>[]) {
    const res = await request(`${lb.url}/api/whoami`, { headers, reset: true });
    const body = await res.body.text();
    t.equal(res.statusCode, 400, `${JSON.stringify(headers)}: 400`);
    t.match(String(res.headers['content-type']), /^text\/html/, 'an HTML page');
    t.match(body, /does not say which organisation or tenant/, 'that says what is missing');
    t.notMatch(body, /servoy-[abc]/, 'and names no server');
  }
  const keyless = client(t, lb.url);
  const refused: unknown = await keyless.openWebSocket('/websocket/1/main/0').then(() => undefined, (err: unknown) => err);
  t.ok(refused instanceof UpgradeRefused && refused.status === 400, `a WebSocket without a key is refused with 400 (${String(refused)})`);
  t.equal(sims.reduce((n, s) => n + s.stats().requests, 0), requestsBefore, 'nothing without a key reached a server');
  t.equal((await partitions(lb)).size, 0, 'and no partition was created');

  const tenant = client(t, lb.url, { headers: { 'X-Tenant': 'acme' } });
  const res = await tenant.get('/api/whoami');
  t.equal(res.status, 200, 'with X-Tenant the request is served');
  t.equal((await partitions(lb)).get('acme')?.backend, serverOf(res), 'and acme is assigned where it was served');
});
