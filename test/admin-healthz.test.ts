/**
 * The health answer an upstream acts on (keepalived on GET /healthz of the admin port, a
 * cloud load balancer on listen.healthPath of the traffic port): the real CLI in front of
 * simulated Servoy servers. 200 while some backend serves sessions (up, draining, drained,
 * maintenance), 503 naming why when every backend is down or disabled; backend counts and
 * the state store's health in the body. healthPath is answered by the balancer itself,
 * never forwarded, GET and HEAD only; with --workers the workers answer it from their
 * mirror of the pool.
 */
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { ServoySim } from '../examples/servoy-sim.js';
import { api, call as get, config, start, waitState } from './helpers/admin-env.js';
import { waitFor } from './helpers/lb.js';
import { backendsFor, repoRoot, startSims, type BalancerProcess } from './helpers/processes.js';

const HEALTH_PATH = '/__servoy-lb/health';
const ROUTES2 = ['servoy-a', 'servoy-b'];

/** Requests the simulators answered (health checks are counted apart). */
const served = (sims: ServoySim[]): number => sims.reduce((n, s) => n + s.stats().requests, 0);

const CHECK_SCRIPT = join(repoRoot, 'examples', 'keepalived', 'check-servoy-lb.sh');
const noCurl = spawnSync('curl', ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0 ? false : 'curl not found: cannot run the keepalived check script';

/** Runs examples/keepalived/check-servoy-lb.sh against the admin API; resolves with its exit code. */
function keepalivedCheck(adminUrl: string): Promise<number> {
  return new Promise((resolve) => {
    execFile('sh', [CHECK_SCRIPT], { env: { ...process.env, SERVOY_LB_ADMIN: adminUrl, CHECK_TIMEOUT: '10' }, timeout: 30_000 }, (err) =>
      resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1),
    );
  });
}

async function healthz(lb: BalancerProcess): Promise<{ status: number; json: any }> {
  return api(lb, 'GET', '/healthz');
}

t.test('/healthz: 200 with counts while a backend serves; 503 naming why when all are disabled or down', async (t) => {
  const sims = await startSims(t, ROUTES2);
  const lb = await start(t, config(backendsFor(sims), { affinity: { failoverDelay: 0 } }));

  const up = await healthz(lb);
  t.equal(up.status, 200, 'backends up: 200');
  t.same(up.json, { ok: true, backends: { total: 2, up: 2, draining: 0, drained: 0, maintenance: 0, disabled: 0, down: 0 }, state: { kind: 'file', ok: true } });
  t.equal((await api(lb, 'HEAD', '/healthz')).status, 200, 'HEAD too');

  t.equal((await api(lb, 'POST', '/api/backends/servoy-b/disable')).status, 200);
  t.equal((await api(lb, 'POST', '/api/backends/servoy-a/drain')).status, 200);
  const draining = await healthz(lb);
  t.equal(draining.status, 200, 'one draining, the other disabled: still 200 (existing sessions are served)');
  t.equal(draining.json.ok, true);
  t.equal(draining.json.backends.draining + draining.json.backends.drained, 1);
  t.equal(draining.json.backends.disabled, 1);

  t.equal((await api(lb, 'POST', '/api/backends/servoy-a/disable')).status, 200);
  const disabled = await healthz(lb);
  t.equal(disabled.status, 503, 'every backend disabled: 503');
  t.same(disabled.json, {
    ok: false,
    reason: 'all 2 backends are disabled',
    backends: { total: 2, up: 0, draining: 0, drained: 0, maintenance: 0, disabled: 2, down: 0 },
    state: { kind: 'file', ok: true },
  });

  if (noCurl === false) t.not(await keepalivedCheck(lb.adminUrl!), 0, 'the keepalived check script fails on 503');

  for (const id of ROUTES2) t.equal((await api(lb, 'POST', `/api/backends/${id}/enable`)).status, 200);
  t.equal((await healthz(lb)).status, 200, 'enabled again: 200');
  if (noCurl === false) t.equal(await keepalivedCheck(lb.adminUrl!), 0, 'the keepalived check script passes on 200');
  else t.comment(noCurl);

  for (const sim of sims) sim.setHealthy(false);
  for (const id of ROUTES2) await waitState(lb, id, 'down', 15_000);
  const down = await healthz(lb);
  t.equal(down.status, 503, 'every backend down: 503');
  t.equal(down.json.reason, 'all 2 backends are down');
  t.equal(down.json.backends.down, 2);

  t.equal((await api(lb, 'POST', '/api/backends/servoy-a/disable')).status, 200);
  const mixed = await healthz(lb);
  t.equal(mixed.status, 503);
  t.equal(mixed.json.reason, 'no backend can serve: 1 down, 1 disabled', 'a mix names both');

  sims[1]!.setHealthy(true);
  await waitState(lb, 'servoy-b', 'up', 15_000);
  t.equal((await healthz(lb)).status, 200, 'one back up: 200');
});

t.test('listen.healthPath: the balancer answers on the traffic port itself, GET and HEAD only, never forwarded', async (t) => {
  const sims = await startSims(t, ROUTES2);
  const lb = await start(t, config(backendsFor(sims), { listen: { healthPath: HEALTH_PATH }, affinity: { failoverDelay: 0 } }));

  const before = served(sims);
  const ok = await get(`${lb.url}${HEALTH_PATH}`);
  t.equal(ok.status, 200);
  t.match(ok.headers['content-type'], /application\/json/);
  t.equal(ok.headers['cache-control'], 'no-store');
  t.same(ok.json, (await healthz(lb)).json, 'the same body as the admin API\'s /healthz');
  t.equal((await get(`${lb.url}${HEALTH_PATH}?probe=1`)).status, 200, 'the query is ignored');
  const head = await get(`${lb.url}${HEALTH_PATH}`, 'HEAD');
  t.equal(head.status, 200, 'HEAD');
  t.equal(head.text, '', 'HEAD has no body');
  const post = await get(`${lb.url}${HEALTH_PATH}`, 'POST');
  t.equal(post.status, 405, 'POST: 405');
  t.equal(post.headers.allow, 'GET, HEAD');

  // A positive signal first: a normal request does reach a backend (the count moves)...
  const normal = await get(`${lb.url}/api/whoami`);
  t.equal(normal.status, 200);
  t.equal(served(sims), before + 1, 'only the normal request reached a backend: the health answers never did');
  // ...and only the exact path is the balancer's own: a longer one is forwarded.
  await get(`${lb.url}${HEALTH_PATH}/more`);
  t.equal(served(sims), before + 2, 'a path below healthPath is forwarded like any other');

  for (const sim of sims) sim.setHealthy(false);
  for (const id of ROUTES2) await waitState(lb, id, 'down', 15_000);
  const down = await get(`${lb.url}${HEALTH_PATH}`);
  t.equal(down.status, 503, 'every backend down: 503 on the traffic port too');
  t.equal(down.json.reason, 'all 2 backends are down');
  t.equal((await get(`${lb.url}${HEALTH_PATH}`, 'HEAD')).status, 503, 'HEAD: 503');
});

t.test('listen.healthPath with --workers: the workers answer from their mirror of the pool', async (t) => {
  const sims = await startSims(t, ROUTES2);
  const lb = await start(t, config(backendsFor(sims), { listen: { healthPath: HEALTH_PATH } }), { args: ['--workers', '2'] });
  t.equal((await get(`${lb.url}${HEALTH_PATH}`)).status, 200);
  for (const id of ROUTES2) t.equal((await api(lb, 'POST', `/api/backends/${id}/disable`)).status, 200);
  // The workers hear of the change from the primary: wait until both have (several answers in a row).
  await waitFor(async () => {
    for (let i = 0; i < 6; i++) if ((await get(`${lb.url}${HEALTH_PATH}`)).status !== 503) return false;
    return true;
  }, 15_000, 'workers answer 503');
  const answer = await get(`${lb.url}${HEALTH_PATH}`);
  t.equal(answer.json.reason, 'all 2 backends are disabled');
  t.equal(served(sims), 0, 'nothing reached a backend');
});
