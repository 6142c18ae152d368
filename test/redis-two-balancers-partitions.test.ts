/**
 * Partition mode with two balancers on one Redis (SPEC "Several balancers", issue 12): two
 * real `servoy-lb start` processes sharing a real redis-server, in front of three simulated
 * Servoy servers, tenants in X-Tenant.
 * - 200 concurrent first requests for 20 new tenants, spread over both instances: one
 *   server per tenant, the same on both (first writer wins in Redis), and the same after
 *   both are restarted;
 * - a move made on A is followed by B;
 * - Redis killed: known tenants keep working on both; a new tenant gets 503 with Retry-After;
 *   a move is refused.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t from 'tap';
import { join } from 'node:path';
import { request } from 'undici';
import { api, partitionRows, waitState } from './helpers/admin-env.js';
import { sharedAgent } from './helpers/partition.js';
import { lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { startSims, type BalancerProcess, type TestLike } from './helpers/processes.js';
import { redisMissing, startRedis } from './helpers/redis.js';
import type { Agent } from 'undici';

const missing = redisMissing();
if (missing !== undefined) t.skip(missing);

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];

/** One instance's config: partition mode, its own state file (the local copy goes beside it), the shared Redis. */
async function pairConfig(t: TestLike, name: string, redisUrl: string, sims: Parameters<typeof lbConfig>[0]): Promise<Record<string, unknown>> {
  return lbConfig(sims, {
    state: { file: join(t.testdirName, `${name}.state.json`), redis: { url: redisUrl, pool: 'tenants' } },
    affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' } },
    healthCheck: { path: '/', interval: '1s', timeout: '1s', rise: 1, fall: 3 },
    log: { access: false },
  });
}

/** One request for `tenant` through `lb`: its status, the server that answered and Retry-After. */
async function tenantRequest(lb: BalancerProcess, tenant: string, agent: Agent): Promise<{ status: number; server: string | undefined; retryAfter: string | undefined }> {
  const res = await request(`${lb.url}/api/whoami`, { headers: { 'x-tenant': tenant }, dispatcher: agent });
  const text = await res.body.text();
  let server: string | undefined;
  try {
    server = (JSON.parse(text) as { server?: string }).server;
  } catch {
    server = undefined;
  }
  const retry = res.headers['retry-after'];
  return { status: res.statusCode, server, retryAfter: typeof retry === 'string' ? retry : undefined };
}

async function allUp(lbs: BalancerProcess[]): Promise<void> {
  for (const lb of lbs) for (const id of ROUTES) await waitState(lb, id, 'up', 30_000);
}

t.test('new tenants raced over both instances: one server each, the same on both, kept over restarts and a Redis outage', async (t) => {
  t.testdir();
  const redis = await startRedis(t);
  const sims = await startSims(t, ROUTES);
  const configA = await pairConfig(t, 'a', redis.url, sims);
  const configB = await pairConfig(t, 'b', redis.url, sims);
  let a = await startBalancer(t, configA);
  let b = await startBalancer(t, configB);
  await allUp([a, b]);
  const agent = sharedAgent(t);

  // 200 first requests at once, 20 tenants, every other one through B.
  const TENANTS = Array.from({ length: 20 }, (_, i) => `tenant-${String(i).padStart(2, '0')}`);
  const answers = await Promise.all(
    Array.from({ length: 200 }, async (_, n) => {
      const tenant = TENANTS[n % 20]!;
      const via = n % 2 === 0 ? 'A' : 'B';
      return { tenant, via, ...(await tenantRequest(via === 'A' ? a : b, tenant, agent)) };
    }),
  );
  t.same(answers.filter((x) => x.status !== 200).map((x) => `${x.tenant} via ${x.via}: ${x.status}`), [], 'every request answered 200');
  const home = new Map<string, Set<string>>();
  for (const x of answers) home.set(x.tenant, (home.get(x.tenant) ?? new Set()).add(x.server ?? '?'));
  t.same([...home].filter(([, servers]) => servers.size !== 1).map(([tenant, servers]) => `${tenant}: ${[...servers].join(', ')}`), [], 'one server per tenant, whichever instance a request reached');
  const placed = new Map([...home].map(([tenant, servers]) => [tenant, [...servers][0]!]));
  t.ok(new Set(placed.values()).size > 1, 'and the tenants spread over the servers');
  for (const lb of [a, b]) {
    const rows = await partitionRows(lb);
    t.same(Object.fromEntries(TENANTS.map((k) => [k, rows.get(k)?.backend])), Object.fromEntries(placed), 'both instances list the same assignments');
  }

  // Both restarted: the assignments come back from Redis.
  await Promise.all([a.stop(), b.stop()]);
  a = await startBalancer(t, configA);
  b = await startBalancer(t, configB);
  await allUp([a, b]);
  for (const tenant of TENANTS) {
    for (const [name, lb] of [['A', a], ['B', b]] as const) {
      const res = await tenantRequest(lb, tenant, agent);
      t.equal(res.server, placed.get(tenant), `${tenant} via ${name} after the restart`);
    }
  }

  // An administrator's move on A: B routes the tenant to its new server.
  const moved = 'tenant-00';
  const target = ROUTES.find((r) => r !== placed.get(moved))!;
  t.equal((await api(a, 'PUT', `/api/partitions/${moved}`, { body: { backend: target } })).status, 200, 'moved on A');
  placed.set(moved, target);
  await waitFor(async () => (await tenantRequest(b, moved, agent)).server === target, 20_000, 'B to route the moved tenant to its new server');
  t.pass('B follows a move made on A');

  // Redis killed: known tenants keep working on both; a new one gets 503 + Retry-After.
  await redis.kill();
  for (const lb of [a, b]) await waitFor(async () => (await api(lb, 'GET', '/healthz')).json?.state?.ok === false, 20_000, 'the balancer to notice Redis is gone');
  for (const tenant of TENANTS.slice(0, 5)) {
    for (const lb of [a, b]) t.equal((await tenantRequest(lb, tenant, agent)).server, placed.get(tenant), `${tenant} still served during the outage`);
  }
  const refused = await api(b, 'PUT', `/api/partitions/${moved}`, { body: { backend: ROUTES[0] } });
  t.equal(refused.status, 503, 'a move is refused while Redis is down');
  t.match(refused.json, { error: { code: 'STATE_UNAVAILABLE' } });
  for (const lb of [a, b]) {
    const fresh = await tenantRequest(lb, 'tenant-new', agent);
    t.equal(fresh.status, 503, 'a new tenant waits for Redis: 503');
    t.ok(fresh.retryAfter !== undefined, 'with Retry-After');
  }
});
