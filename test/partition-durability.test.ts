/**
 * Durable partition assignments through the real CLI (SPEC "Routing rules", rule 1:
 * "Assignments survive restarts and pool changes: adding a backend never moves an existing
 * partition"; issue "Partition mode", point 8):
 * - SIGTERM and start again on the same state file: every tenant on the same server, with
 *   the same assignment (assignedAt), and live sessions kept;
 * - a fourth server added at run time (POST /api/backends) or through the config file and
 *   a reload moves no tenant, while new tenants do land on it;
 * - kill -9 in the middle of a burst of new tenants: after a restart every tenant that got
 *   an answer is on the server that answered it.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t, { type Test } from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { BrowserClient } from './helpers/browser.js';
import { serverOf, sharedAgent } from './helpers/partition.js';
import { lbConfig, startBalancer } from './helpers/lb.js';
import { startSims, type BalancerProcess } from './helpers/processes.js';
import { api as adminApi, partitionRows as partitions } from './helpers/admin-env.js';

/** The admin API call of test/helpers/admin-env.ts, with the body as 4th argument. */
const api = (lb: BalancerProcess, method: string, path: string, body?: unknown) => adminApi(lb, method, path, { body });

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];
const TENANT_HEADER = 'X-Tenant';

// ---- helpers only this file uses (shared ones: test/helpers/admin-env.ts) ------------

async function partitionConfig(sims: Parameters<typeof lbConfig>[0]): Promise<Record<string, unknown>> {
  return lbConfig(sims, {
    affinity: { mode: 'partition', partitionKey: { from: 'header', name: TENANT_HEADER } },
    // timeout 1s: on a loaded machine short probes of the in-process simulators fail at random.
    healthCheck: { path: '/', interval: '1s', timeout: '1s', rise: 1, fall: 3 },
    state: { file: './servoy-lb.state.json' },
    timeouts: { shutdownGrace: '2s' },
    log: { access: false },
  });
}

/** One fresh browser's first request for `tenant`: `200 <server>` or what went wrong. */
async function firstVisit(t: Test, url: string, tenant: string, agent: Agent): Promise<string> {
  const browser = new BrowserClient(url, { dispatcher: agent, headers: { [TENANT_HEADER]: tenant } });
  t.teardown(() => browser.close());
  const res = await browser.get('/api/whoami');
  return `${res.status} ${serverOf(res) ?? '-'}`;
}

/** Visits every tenant with a fresh browser, `parallel` at a time; tenant -> "200 server". */
async function visitAll(t: Test, url: string, tenants: string[], agent: Agent, parallel = 20): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < tenants.length; i += parallel) {
    const batch = tenants.slice(i, i + parallel);
    const answers = await Promise.all(batch.map((tenant) => firstVisit(t, url, tenant, agent)));
    batch.forEach((tenant, j) => out.set(tenant, answers[j]!));
  }
  return out;
}

const names = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`);

function okServer(answer: string | undefined): string | undefined {
  const m = /^2\d\d (servoy-[a-z])$/.exec(answer ?? '');
  return m?.[1];
}

// ---- tests -------------------------------------------------------------------------------

t.test('assignments survive a restart (SIGTERM, start again on the same state file)', async (t) => {
  const sims = await startSims(t, ROUTES);
  const config = await partitionConfig(sims);
  const agent = sharedAgent(t);
  const first = await startBalancer(t, config);
  const tenants = names('r', 30);
  const before = await visitAll(t, first.url, tenants, agent);
  const home = new Map<string, string>();
  for (const [tenant, answer] of before) {
    t.ok(okServer(answer), `${tenant}: served (${answer})`);
    home.set(tenant, okServer(answer)!);
  }
  t.equal(new Set(home.values()).size, 3, 'tenants on all three servers');
  const rowsBefore = await partitions(first);
  // A browser with a live session, to see that it survives the restart too.
  const live = new BrowserClient(first.url, { headers: { [TENANT_HEADER]: 'r000' } });
  t.teardown(() => live.close());
  const liveSession = (await live.get('/api/whoami')).json().session;

  t.equal(await first.stop('SIGTERM'), 0, 'SIGTERM: clean exit');

  const second = await startBalancer(t, config);
  const agent2 = sharedAgent(t);
  t.match(second.logs().join('\n'), /partition store loaded/, 'the store was loaded at start');
  const rowsAfter = await partitions(second);
  t.equal(rowsAfter.size, tenants.length, 'every assignment is back');
  for (const tenant of tenants) {
    t.equal(rowsAfter.get(tenant)?.backend, home.get(tenant), `${tenant}: still assigned to ${home.get(tenant)}`);
    t.equal(rowsAfter.get(tenant)?.assignedAt, rowsBefore.get(tenant)?.assignedAt, `${tenant}: the same assignment (assignedAt), not a new one`);
  }
  // Visited in reverse order: placement by hashing with bounded load depends on order; the
  // durable assignment does not.
  const after = await visitAll(t, second.url, [...tenants].reverse(), agent2);
  const moved = tenants.filter((tenant) => after.get(tenant) !== `200 ${home.get(tenant)}`).map((tenant) => `${tenant}: ${home.get(tenant)} -> ${after.get(tenant)}`);
  t.same(moved, [], 'every tenant is served by the same server after the restart');

  // The browser from before the restart keeps its session (the cookie secret is kept too).
  const liveAgain = new BrowserClient(second.url, { headers: { [TENANT_HEADER]: 'r000' } });
  t.teardown(() => liveAgain.close());
  liveAgain.setCookie('JSESSIONID', live.cookie('JSESSIONID')!);
  liveAgain.setCookie('SERVOYLB', live.cookie('SERVOYLB')!);
  const res = await liveAgain.get('/api/whoami');
  t.equal(serverOf(res), home.get('r000'), 'the live browser reaches its server');
  t.equal(res.json().session, liveSession, 'with its session');
  t.equal(res.headers['x-session-lost'], undefined, 'no session lost');
});

/** Checks that no tenant of `home` moved (fresh browsers, and the assignments). */
async function checkNoneMoved(t: Test, lb: BalancerProcess, home: Map<string, string>, agent: Agent, what: string): Promise<void> {
  const answers = await visitAll(t, lb.url, [...home.keys()], agent);
  const moved = [...home].filter(([tenant, server]) => answers.get(tenant) !== `200 ${server}`).map(([tenant, server]) => `${tenant}: ${server} -> ${answers.get(tenant)}`);
  t.same(moved, [], `${what}: no existing tenant moved (${home.size} tenants)`);
  const rows = await partitions(lb);
  const reassigned = [...home].filter(([tenant, server]) => rows.get(tenant)?.backend !== server).map(([tenant]) => tenant);
  t.same(reassigned, [], `${what}: no assignment changed`);
}

t.test('adding a fourth server moves no tenant; new tenants can land on it', async (t) => {
  const sims = await startSims(t, [...ROUTES, 'servoy-d']);
  const [a, b, c, d] = sims as [(typeof sims)[0], (typeof sims)[0], (typeof sims)[0], (typeof sims)[0]];

  await t.test('at run time: POST /api/backends', async (t) => {
    const agent = sharedAgent(t);
    const lb = await startBalancer(t, await partitionConfig([a, b, c]));
    const home = new Map<string, string>();
    for (const [tenant, answer] of await visitAll(t, lb.url, names('api', 30), agent)) home.set(tenant, okServer(answer) ?? answer);
    t.same([...new Set(home.values())].sort(), ROUTES, 'tenants on the three servers');

    const added = await api(lb, 'POST', '/api/backends', { id: 'servoy-d', url: d.url });
    t.equal(added.status, 201, `servoy-d added (${added.text.slice(0, 200)})`);
    await checkNoneMoved(t, lb, home, agent, 'after POST /api/backends');

    const fresh = await visitAll(t, lb.url, names('api-new', 20), agent);
    const failed = [...fresh].filter(([, answer]) => okServer(answer) === undefined);
    t.same(failed, [], 'every new tenant was served');
    const onD = [...fresh].filter(([, answer]) => okServer(answer) === 'servoy-d').map(([tenant]) => tenant);
    t.ok(onD.length > 0, `new tenants land on servoy-d (${onD.length} of ${fresh.size})`);
    const rows = await partitions(lb);
    for (const tenant of onD) t.equal(rows.get(tenant)?.backend, 'servoy-d', `${tenant}: assigned to servoy-d`);
    // And the old ones once more, after the new ones were placed.
    await checkNoneMoved(t, lb, home, agent, 'after new tenants');
  });

  await t.test('through the config file and a reload', async (t) => {
    const agent = sharedAgent(t);
    const lb = await startBalancer(t, await partitionConfig([a, b, c]));
    const home = new Map<string, string>();
    for (const [tenant, answer] of await visitAll(t, lb.url, names('cfg', 30), agent)) home.set(tenant, okServer(answer) ?? answer);
    t.same([...new Set(home.values())].sort(), ROUTES, 'tenants on the three servers');

    const file = JSON.parse(await readFile(lb.configFile, 'utf8')) as { backends: object[] };
    file.backends.push({ id: 'servoy-d', url: d.url });
    await writeFile(lb.configFile, JSON.stringify(file, null, 2));
    const reloaded = await api(lb, 'POST', '/api/reload');
    t.equal(reloaded.status, 200, `reload accepted (${reloaded.text.slice(0, 200)})`);
    t.same(reloaded.json?.added, ['servoy-d'], 'servoy-d added by the reload');
    await checkNoneMoved(t, lb, home, agent, 'after the reload');

    const fresh = await visitAll(t, lb.url, names('cfg-new', 20), agent);
    t.same([...fresh].filter(([, answer]) => okServer(answer) === undefined), [], 'every new tenant was served');
    const onD = [...fresh].filter(([, answer]) => okServer(answer) === 'servoy-d');
    t.ok(onD.length > 0, `new tenants land on servoy-d (${onD.length} of ${fresh.size})`);
    await checkNoneMoved(t, lb, home, agent, 'after new tenants');
  });
});

t.test('kill -9 during a burst of new tenants: every answered tenant keeps its server after a restart', async (t) => {
  const sims = await startSims(t, ROUTES);
  const config = await partitionConfig(sims);
  const first = await startBalancer(t, config);
  const tenants = names('burst', 300);
  const BATCH = 20;
  const KILL_IN_BATCH = 7; // partway: after about 140 tenants
  const answered = new Map<string, string>();
  const agent = new Agent({ keepAliveTimeout: 2000 });
  let killedAt = -1;
  let errors = 0;
  for (let b = 0; b * BATCH < tenants.length && killedAt < 0; b++) {
    const batch = tenants.slice(b * BATCH, (b + 1) * BATCH);
    const pending = batch.map(async (tenant) => {
      try {
        const res = await request(`${first.url}/api/whoami`, { headers: { [TENANT_HEADER]: tenant }, dispatcher: agent });
        const text = await res.body.text();
        const server = (JSON.parse(text) as { server?: string }).server;
        if (res.statusCode >= 200 && res.statusCode < 300 && typeof server === 'string') answered.set(tenant, server);
      } catch {
        errors++; // cut off by the kill: no answer, no promise
      }
    });
    if (b === KILL_IN_BATCH) {
      // Kill while this batch is in flight: some answered, some assigned but not answered,
      // some not even read yet.
      await Promise.race(pending);
      first.proc.kill('SIGKILL');
      killedAt = answered.size;
    }
    await Promise.all(pending);
  }
  await first.stop();
  await agent.destroy().catch(() => undefined);
  t.ok(killedAt >= KILL_IN_BATCH * BATCH, `killed after ${killedAt} answered tenants (${answered.size} answered in all, ${errors} cut off)`);
  t.ok(answered.size < tenants.length, 'the kill came before the burst ended');

  const second = await startBalancer(t, config);
  const rows = await partitions(second);
  t.ok(rows.size >= answered.size, `assignments after the restart: ${rows.size} (answered: ${answered.size})`);
  const lost = [...answered].filter(([tenant, server]) => rows.get(tenant)?.backend !== server).map(([tenant, server]) => `${tenant}: ${server} -> ${rows.get(tenant)?.backend ?? 'unassigned'}`);
  t.same(lost, [], 'every answered tenant is still assigned to the server that answered it');
  const agent2 = sharedAgent(t);
  const again = await visitAll(t, second.url, [...answered.keys()], agent2, 25);
  const moved = [...answered].filter(([tenant, server]) => again.get(tenant) !== `200 ${server}`).map(([tenant, server]) => `${tenant}: ${server} -> ${again.get(tenant)}`);
  t.same(moved, [], 'and is served there');
  // Tenants not reached before the kill are simply new now.
  const rest = await visitAll(t, second.url, tenants.filter((x) => !answered.has(x)).slice(0, 20), agent2);
  t.same([...rest].filter(([, answer]) => okServer(answer) === undefined), [], 'tenants not answered before the kill are served now');
});
