/**
 * `servoy-lb start --workers N` (SPEC "Command line": N processes share the port), end to
 * end: the real CLI with two workers in front of simulated Servoy servers.
 * - traffic is served, and a session sticks to its server whichever worker accepts its
 *   connection: by the affinity cookie (the primary hands every worker the same key), by
 *   the Tomcat route suffix, and by a session id one worker learned from a Set-Cookie;
 * - admin `drain` and a failed health check reach every worker; status sums the workers,
 *   counting a browser whose connections reach both workers once; /metrics shows the pool as one;
 * - partition mode: concurrent first requests for one new key through different
 *   connections all get the same server, and the assignment is durable;
 * - a killed worker is replaced and the service goes on; SIGTERM exits 0 and leaves no
 *   process behind; bad `--workers` values and a port in use are one sentence, exit 1.
 * Which worker served a request is read from its access-log line (`worker`). Requests go
 * on fresh connections (`reset`), so consecutive ones land on different workers.
 */
import t, { type Test } from 'tap';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import type { ServoySim } from '../examples/servoy-sim.js';
import { api, row } from './helpers/admin-env.js';
import { closedPort, jsonLogs, lbConfig, waitFor } from './helpers/lb.js';
import { repoRoot, spawnBalancer, startSims, type BalancerProcess } from './helpers/processes.js';

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];

/** What one request on a fresh connection answered. */
interface Answer {
  status: number;
  server: string | undefined;
  session: string | undefined;
  lost: boolean;
  cookies: Map<string, string>;
}

/** One request on its own connection (so the kernel hands it to the next worker), with the given cookies. */
async function fresh(url: string, path: string, cookies: Map<string, string> = new Map(), headers: Record<string, string> = {}): Promise<Answer> {
  const cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const res = await request(`${url}${path}`, { headers: { ...headers, ...(cookie ? { cookie } : {}) }, reset: true });
  const text = await res.body.text();
  let json: { server?: string; session?: string } = {};
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    // an error page
  }
  const set = res.headers['set-cookie'];
  const jar = new Map<string, string>();
  for (const line of set === undefined ? [] : Array.isArray(set) ? set : [set]) {
    const pair = line.split(';')[0]!;
    jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
  }
  return { status: res.statusCode, server: json.server, session: json.session, lost: res.headers['x-session-lost'] !== undefined, cookies: jar };
}

/** The access-log lines (worker, path, backend, route) whose path starts with `prefix`, waiting until `count` are there. */
async function accessLines(lb: BalancerProcess, prefix: string, count: number): Promise<{ worker: number; path: string; backend: string; route: string }[]> {
  const read = () =>
    jsonLogs(lb.logs()).filter((l) => l.log === 'access' && typeof l.path === 'string' && l.path.startsWith(prefix)) as unknown as { worker: number; path: string; backend: string; route: string }[];
  // Generous: access-log lines are batched (flushed every 250 ms) by two workers on a busy machine.
  await waitFor(() => read().length >= count, 15_000, `${count} access-log lines for ${prefix}`, 50);
  return read();
}

/**
 * workersApplied waits until every worker has applied every change the primary pushed
 * (servoylb_workers_behind 0) and, with `after`, until more than `after` changes were
 * pushed; resolves with the number of changes. Call it after the change is made in the
 * primary (an admin call answered, a state seen in status): the primary pushes a change
 * before it handles its next request, so a later scrape counts it.
 */
async function workersApplied(lb: BalancerProcess, after = -1): Promise<number> {
  let changes = -1;
  await waitFor(
    async () => {
      const text = (await api(lb, 'GET', '/metrics')).text;
      changes = Number(/^servoylb_worker_changes_total (\d+)$/m.exec(text)?.[1] ?? -1);
      return changes > after && /^servoylb_workers_behind 0$/m.test(text);
    },
    15_000,
    `every worker to apply the primary's changes (more than ${after})`,
    20,
  );
  return changes;
}

/** The pids of the balancer's worker processes (its children). */
function workerPids(lb: BalancerProcess): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(lb.proc.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts the CLI with `--workers 2`; short health-check intervals, access log on (it tells which worker served). */
async function startWorkers(t: Test, sims: ServoySim[] | { id: string; url: string; route?: string }[], extra: Record<string, unknown> = {}): Promise<BalancerProcess> {
  const config = await lbConfig(sims, {
    affinity: { sessionIdle: '30s' },
    healthCheck: { path: '/', interval: '200ms', timeout: '1s', rise: 1, fall: 2 },
    ...extra,
  });
  const lb = await spawnBalancer(t, config, { args: ['--workers', '2'], timeoutMs: 60_000 });
  t.teardown(() => {
    if (t.passing()) return;
    const lines = lb.logs().filter((l) => !l.includes('"log":"access"'));
    console.error(`--- balancer ${lb.url} (non-access log lines) ---\n${lines.slice(-60).join('\n')}`);
  });
  return lb;
}

t.test('two workers: sessions stick whichever worker accepts; drain, health and status reach every worker', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await startWorkers(t, sims);
  t.match(lb.logs().join('\n'), /"workers":2,"msg":"servoy-lb listening"/, 'the listening line names the workers');
  t.equal(workerPids(lb).length, 2, 'two worker processes');

  await t.test('status sums the sessions of both workers; metrics show the pool as one', async (t) => {
    // Keep-alive browsers: each stays on one worker, so every session is counted exactly once.
    // First on this balancer: nothing else is counted (or expires) meanwhile.
    const before = new Map<string, number>();
    for (const id of ROUTES) before.set(id, (await row(lb, id)).sessions);
    const agents: { close(): Promise<void> }[] = [];
    t.teardown(() => Promise.all(agents.map((a) => a.close())));
    const { Agent } = await import('undici');
    const counted = new Map<string, number>();
    for (let b = 0; b < 10; b++) {
      const agent = new Agent({ keepAliveTimeout: 10_000 });
      agents.push(agent);
      const res = await request(`${lb.url}/api/whoami?kept=${b}`, { dispatcher: agent });
      const server = ((await res.body.json()) as { server: string }).server;
      counted.set(server, (counted.get(server) ?? 0) + 1);
    }
    const lines = await accessLines(lb, '/api/whoami?kept=', 10);
    t.same(new Set(lines.map((l) => l.worker)), new Set([1, 2]), 'the browsers are spread over both workers');
    await waitFor(
      async () => {
        for (const id of ROUTES) if ((await row(lb, id)).sessions !== before.get(id)! + (counted.get(id) ?? 0)) return false;
        return true;
      },
      5000,
      'status to count every new session once',
      100,
    );
    t.pass('status shows the sessions of both workers, summed');
    const metrics = (await api(lb, 'GET', '/metrics')).text;
    t.match(metrics, /servoylb_workers 2/);
    t.match(metrics, /servoylb_worker_restarts_total 0/);
    const requests = ROUTES.map((id) => Number(new RegExp(`servoylb_backend_requests_total\\{backend="${id}"\\} (\\d+)`).exec(metrics)?.[1] ?? NaN));
    const latency = ROUTES.map((id) => Number(new RegExp(`servoylb_request_duration_seconds_count\\{backend="${id}",outcome="ok"\\} (\\d+)`).exec(metrics)?.[1] ?? 0));
    t.equal(requests.reduce((a, b) => a + b), 10, `every request counted (${requests.join(', ')})`);
    t.equal(latency.reduce((a, b) => a + b), 10, 'the latency histogram holds the requests of both workers');
    t.match(metrics, /servoylb_request_duration_seconds_bucket\{le="\+Inf",backend="servoy-[abc]",outcome="ok"\} [1-9]/);
  });

  await t.test('the affinity cookie pins a browser whichever worker its connections reach', async (t) => {
    const browsers: { cookies: Map<string, string>; server: string }[] = [];
    // An odd number of browsers: with requests taking turns over two workers, each browser's
    // next request lands on the other worker.
    for (let b = 0; b < 11; b++) {
      const first = await fresh(lb.url, `/api/whoami?sticky=${b}-0`);
      t.equal(first.status, 200);
      browsers.push({ cookies: first.cookies, server: first.server! });
    }
    t.ok(new Set(browsers.map((b) => b.server)).size >= 2, 'new sessions spread over the servers');
    let moved = 0;
    for (let r = 1; r <= 5; r++) {
      for (const [b, browser] of browsers.entries()) {
        const res = await fresh(lb.url, `/api/whoami?sticky=${b}-${r}`, browser.cookies);
        if (res.server !== browser.server || res.lost || res.status !== 200) moved++;
      }
    }
    t.equal(moved, 0, 'every request of every browser reached its server, session kept');
    const lines = await accessLines(lb, '/api/whoami?sticky=', 11 * 6);
    t.same(new Set(lines.map((l) => l.worker)), new Set([1, 2]), 'both workers served them');
    const byBrowser = new Map<string, Set<number>>();
    for (const l of lines) {
      const b = l.path.split('=')[1]!.split('-')[0]!;
      byBrowser.set(b, (byBrowser.get(b) ?? new Set()).add(l.worker));
    }
    t.ok([...byBrowser.values()].every((w) => w.size === 2), 'each browser was served by both workers');
    t.ok(lines.filter((l) => !l.path.endsWith('-0')).every((l) => l.route === 'affinity-cookie'), 'by the affinity cookie');
  });

  await t.test('the Tomcat route suffix pins a client without the balancer cookie', async (t) => {
    const first = await fresh(lb.url, '/api/whoami?suffix=0');
    const jsession = first.cookies.get('JSESSIONID')!;
    t.match(jsession, new RegExp(`\\.${first.server}$`), 'the session id carries the route');
    for (let r = 1; r <= 6; r++) {
      const res = await fresh(lb.url, `/api/whoami?suffix=${r}`, new Map([['JSESSIONID', jsession]]));
      t.equal(res.server, first.server, `request ${r} reached ${first.server}`);
      t.notOk(res.lost, 'session kept');
    }
    const lines = await accessLines(lb, '/api/whoami?suffix=', 7);
    t.same(new Set(lines.filter((l) => !l.path.endsWith('=0')).map((l) => l.route)), new Set(['route-suffix']));
    t.same(new Set(lines.map((l) => l.worker)), new Set([1, 2]), 'through both workers');
  });

  await t.test('admin drain reaches every worker: no new session on the draining backend', async (t) => {
    const drained = 'servoy-b';
    const res = await api(lb, 'POST', `/api/backends/${drained}/drain`);
    t.equal(res.status, 200);
    t.equal((await row(lb, drained)).state, 'draining');
    await workersApplied(lb);
    const servers: string[] = [];
    for (let i = 0; i < 24; i++) servers.push((await fresh(lb.url, `/api/whoami?drain=${i}`)).server!);
    t.notOk(servers.includes(drained), `no new session went to ${drained}: ${servers.join(' ')}`);
    const lines = await accessLines(lb, '/api/whoami?drain=', 24);
    t.same(new Set(lines.map((l) => l.worker)), new Set([1, 2]), 'new sessions through both workers');
    t.equal((await api(lb, 'POST', `/api/backends/${drained}/undrain`)).status, 200);
  });

  await t.test('a failed health check reaches every worker', async (t) => {
    const down = sims[2]!;
    const pinned = await fresh(lb.url, '/api/whoami?hc=pin');
    down.setHealthy(false);
    await waitFor(async () => (await row(lb, down.route)).state === 'down', 10_000, `${down.route} down`, 100);
    await workersApplied(lb);
    const servers: string[] = [];
    for (let i = 0; i < 16; i++) servers.push((await fresh(lb.url, `/api/whoami?hc=${i}`)).server!);
    t.notOk(servers.includes(down.route), `nothing new went to ${down.route}`);
    if (pinned.server === down.route) {
      // Within affinity.failoverDelay (default 30 s) the session waits for its server, in every worker.
      const res = await fresh(lb.url, '/api/whoami?hc=again', pinned.cookies);
      t.equal(res.status, 503, 'a session on the down backend waits for it (failoverDelay)');
    }
    const lines = await accessLines(lb, '/api/whoami?hc=', 16);
    t.same(new Set(lines.map((l) => l.worker)), new Set([1, 2]), 'through both workers');
    down.setHealthy(true);
    await waitFor(async () => (await row(lb, down.route)).state === 'up', 10_000, `${down.route} up again`, 100);
  });

  await t.test('SIGHUP reloads in the primary and the workers follow', async (t) => {
    const { writeFile } = await import('node:fs/promises');
    const config = JSON.parse(readFileSync(lb.configFile, 'utf8')) as Record<string, any>;
    config.affinity = { ...config.affinity, cookie: { name: 'WORKERLB' } };
    await writeFile(lb.configFile, JSON.stringify(config));
    lb.proc.kill('SIGHUP');
    await lb.waitForLog(/config reloaded/, 10_000);
    await workersApplied(lb);
    for (let i = 0; i < 4; i++) {
      const res = await fresh(lb.url, `/api/whoami?reload=${i}`);
      t.ok(res.cookies.has('WORKERLB'), `request ${i}: the new cookie name`);
    }
  });

  await t.test('a killed worker is replaced and the service goes on', async (t) => {
    const browser = await fresh(lb.url, '/api/whoami?kill=0');
    const [victim] = workerPids(lb);
    process.kill(victim!, 'SIGKILL');
    await lb.waitForLog(/worker process died; starting a new one/, 10_000);
    await lb.waitForLog(/replacement worker listening/, 30_000);
    await waitFor(() => workerPids(lb).length === 2 && !workerPids(lb).includes(victim!), 10_000, 'two workers again');
    for (let i = 1; i <= 6; i++) {
      const res = await fresh(lb.url, `/api/whoami?kill=${i}`, browser.cookies);
      t.equal(res.status, 200);
      t.equal(res.server, browser.server, `request ${i}: still on ${browser.server}`);
    }
    // (The killed worker's last log lines may be lost with it.)
    const lines = await accessLines(lb, '/api/whoami?kill=', 6);
    t.equal(new Set(lines.filter((l) => !l.path.endsWith('=0')).map((l) => l.worker)).size, 2, 'both workers (one of them new) serve');
    t.match((await api(lb, 'GET', '/metrics')).text, /servoylb_worker_restarts_total 1/);
  });

  await t.test('SIGTERM: exit 0, no worker left behind', async (t) => {
    const pids = workerPids(lb);
    t.equal(pids.length, 2);
    t.equal(await lb.stop('SIGTERM'), 0, 'exit 0');
    t.match(lb.logs().join('\n'), /"msg":"stopped"/);
    await waitFor(() => pids.every((pid) => !alive(pid)), 5000, 'workers gone');
    t.pass('no worker process is left');
  });
});

t.test('a browser whose connections reach both workers counts once: status, bounded load and maxSessions', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await startWorkers(t, sims);
  const BROWSERS = 7;
  const ROUNDS = 4;
  const browsers: Map<string, string>[] = [];
  for (let b = 0; b < BROWSERS; b++) {
    const first = await fresh(lb.url, `/api/whoami?once=${b}-0`);
    t.equal(first.status, 200);
    browsers.push(first.cookies);
  }
  for (let r = 1; r < ROUNDS; r++) {
    for (const [b, cookies] of browsers.entries()) t.equal((await fresh(lb.url, `/api/whoami?once=${b}-${r}`, cookies)).status, 200);
  }
  const lines = await accessLines(lb, '/api/whoami?once=', BROWSERS * ROUNDS);
  const byBrowser = new Map<string, Set<number>>();
  for (const l of lines) {
    const b = l.path.split('=')[1]!.split('-')[0]!;
    byBrowser.set(b, (byBrowser.get(b) ?? new Set()).add(l.worker));
  }
  t.ok([...byBrowser.values()].every((w) => w.size === 2), 'each browser was served by both workers');

  // Every request counted means every worker's report with these sessions has arrived.
  const sum = async (field: 'requests' | 'sessions') => {
    let n = 0;
    for (const id of ROUTES) n += (await row(lb, id))[field] as number;
    return n;
  };
  await waitFor(async () => (await sum('requests')) === BROWSERS * ROUNDS, 15_000, 'status to count every request', 50);
  t.equal(await sum('sessions'), BROWSERS, 'each browser counted once, not once per worker');
});

t.test('a session id learned by one worker routes the client through the other', async (t) => {
  const sims = await startSims(t, ROUTES);
  // Routes that match no session-id suffix: only the learned table can place a JSESSIONID.
  const lb = await startWorkers(t, sims.map((s) => ({ id: s.route, url: s.url, route: `other-${s.route}` })));
  // Every backend up first, so the only changes pushed below are the learned session ids.
  await waitFor(async () => (await api(lb, 'GET', '/api/backends')).json.backends.every((b: { state: string }) => b.state === 'up'), 15_000, 'every backend up', 50);
  for (let c = 0; c < 4; c++) {
    const before = await workersApplied(lb);
    const first = await fresh(lb.url, `/api/whoami?learn=${c}-0`);
    const jsession = first.cookies.get('JSESSIONID')!;
    t.ok(jsession, 'the server set a session id');
    // The learning worker tells the primary, which passes it on as a change: wait until the other worker applied it.
    await workersApplied(lb, before);
    for (let r = 1; r <= 4; r++) {
      const res = await fresh(lb.url, `/api/whoami?learn=${c}-${r}`, new Map([['JSESSIONID', jsession]]));
      t.equal(res.server, first.server, `client ${c} request ${r}: reached ${first.server} without the balancer cookie`);
      t.notOk(res.lost, 'session kept');
    }
  }
  const lines = await accessLines(lb, '/api/whoami?learn=', 20);
  const followUps = lines.filter((l) => !l.path.endsWith('-0'));
  t.same(new Set(followUps.map((l) => l.route)), new Set(['learned-session']), 'placed by the learned session id');
  t.same(new Set(followUps.map((l) => l.worker)), new Set([1, 2]), 'by both workers');
  t.equal(await lb.stop('SIGTERM'), 0);
});

t.test('partition mode: concurrent first requests for a new key agree, and the assignment is durable', async (t) => {
  const sims = await startSims(t, ROUTES);
  const extra = { affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' } }, log: { access: true } };
  const lb = await startWorkers(t, sims, extra);
  const tenants = ['acme', 'globex', 'initech', 'umbrella', 'hooli'];
  // 20 first requests per tenant at once, each on its own connection: both workers race.
  const answers = await Promise.all(tenants.flatMap((tenant) => Array.from({ length: 20 }, (_, i) => fresh(lb.url, `/api/whoami?tenant=${tenant}-${i}`, new Map(), { 'x-tenant': tenant }).then((a) => [tenant, a] as const))));
  const home = new Map<string, Set<string | undefined>>();
  for (const [tenant, a] of answers) home.set(tenant, (home.get(tenant) ?? new Set()).add(a.status === 200 ? a.server : `status ${a.status}`));
  for (const tenant of tenants) t.equal(home.get(tenant)!.size, 1, `${tenant}: one server for all 20 (${[...home.get(tenant)!].join(', ')})`);
  const lines = await accessLines(lb, '/api/whoami?tenant=', 100);
  t.same(new Set(lines.map((l) => l.worker)), new Set([1, 2]), 'both workers took first requests');
  const rows = (await api(lb, 'GET', '/api/partitions')).json.partitions as { key: string; backend: string }[];
  for (const tenant of tenants) t.equal(rows.find((r) => r.key === tenant)?.backend, [...home.get(tenant)!][0], `${tenant}: the assignment is the server that answered`);
  t.equal(rows.length, tenants.length, 'one assignment per tenant');
  const journal = join(lb.configFile, '..', 'servoy-lb.state.json.partitions.journal');
  t.ok(existsSync(journal), 'the partition journal was written');
  for (const tenant of tenants) t.match(readFileSync(journal, 'utf8'), `"key":"${tenant}"`, `${tenant} is in the journal`);
  t.equal(await lb.stop('SIGTERM'), 0);

  // Started again on the same state: every tenant on the same server, from either worker.
  const again = await startWorkers(t, sims, extra);
  for (const tenant of tenants) {
    for (let i = 0; i < 4; i++) {
      const res = await fresh(again.url, `/api/whoami?again=${tenant}-${i}`, new Map(), { 'x-tenant': tenant });
      t.equal(res.server, [...home.get(tenant)!][0], `${tenant}: same server after a restart (${i})`);
    }
  }
  // An admin move is pushed to the workers' caches.
  const moved = tenants[0]!;
  const target = ROUTES.find((r) => r !== [...home.get(moved)!][0])!;
  t.equal((await api(again, 'PUT', `/api/partitions/${moved}`, { body: { backend: target } })).status, 200);
  await workersApplied(again);
  for (let i = 0; i < 4; i++) t.equal((await fresh(again.url, `/api/whoami?moved=${i}`, new Map(), { 'x-tenant': moved })).server, target, `${moved} moved (${i})`);
  t.equal(await again.stop('SIGTERM'), 0);
});

t.test('what workers see reaches the primary: refused connections, maintenance 503s; a removed backend leaves every worker', async (t) => {
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const gone = { id: 'servoy-x', url: `http://127.0.0.1:${await closedPort()}` };
  // Health checks far apart: only what the workers report can change a state here.
  const lb = await startWorkers(t, [...sims.map((s) => ({ id: s.route, url: s.url })), gone], {
    healthCheck: { path: '/', interval: '10m', timeout: '1s' },
    outlier: { consecutiveFailures: 2, ejectFor: '1m' },
    affinity: { sessionIdle: '30s', maintenanceBackoff: '1m' },
  });
  // New sessions that land on the refusing backend are retried on the next one, and counted.
  for (let i = 0; i < 30 && (await row(lb, gone.id)).state !== 'down'; i++) {
    const res = await fresh(lb.url, `/api/whoami?refused=${i}`);
    t.equal(res.status, 200, `new session ${i} served`);
  }
  await waitFor(async () => (await row(lb, gone.id)).state === 'down', 15_000, `${gone.id} ejected`, 100);
  const ejected = JSON.parse(await lb.waitForLog(/ejected after \d+ consecutive proxy errors/, 10_000)) as Record<string, unknown>;
  t.equal(ejected.backend, gone.id, `${gone.id} ejected by outlier detection`);
  t.notOk('worker' in ejected, 'in the primary (a worker line would carry "worker")');

  sims[0]!.setMaintenance(true);
  for (let i = 0; i < 12 && (await row(lb, 'servoy-a')).state !== 'maintenance'; i++) {
    const res = await fresh(lb.url, `/api/whoami?maintenance=${i}`);
    t.equal(res.status, 200, `new session ${i} served (not the maintenance page)`);
    t.not(res.server, 'servoy-a');
  }
  await waitFor(async () => (await row(lb, 'servoy-a')).state === 'maintenance', 15_000, 'servoy-a in maintenance', 100);
  t.pass('a maintenance 503 seen by a worker puts the backend in maintenance');

  t.equal((await api(lb, 'DELETE', `/api/backends/${gone.id}?force=1`)).status, 200);
  // Every worker dropped it: no report after this one can bring it back.
  await workersApplied(lb);
  t.equal(await row(lb, gone.id), undefined, 'gone from status');
  t.notMatch((await api(lb, 'GET', '/metrics')).text, gone.id, 'and from the metrics');
  t.equal(await lb.stop('SIGTERM'), 0);
});

t.test('start --workers: bad values and a port in use are one sentence, exit 1', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as net.AddressInfo).port;
  const dir = t.testdir({ 'lb.config.json': JSON.stringify({ ...(await lbConfig([sim!])), listen: { host: '127.0.0.1', port } }) });
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const proc = spawn(process.execPath, [join(repoRoot, 'bin', 'servoy-lb'), 'start', ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
      proc.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      });
    });
  const [zero, word, inUse] = await Promise.all([run(['--workers', '0']), run(['--workers', 'many']), run(['--workers', '2'])]);
  for (const [what, res] of [['--workers 0', zero], ['--workers many', word]] as const) {
    t.equal(res.code, 1, `${what}: exit 1`);
    t.match(res.stderr, /^servoy-lb: --workers must be a whole number from 1 to 64, or "auto"/, `${what}: one sentence`);
  }
  t.equal(inUse.code, 1, 'port in use: exit 1');
  t.match(inUse.stderr, /^servoy-lb: cannot listen on 127\.0\.0\.1:\d+: the address is already in use\n$/, 'port in use: one sentence');
});
