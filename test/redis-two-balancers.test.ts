/**
 * Two balancers on one Redis (SPEC "Several balancers", issue 12): two real `servoy-lb
 * start` processes sharing a real redis-server (state.redis, no cookie secret configured)
 * in front of simulated Servoy servers.
 * - a drain typed on A is seen by B (the time it took is logged);
 * - a cookie issued by A is accepted by B (the shared generated secret);
 * - maxSessions holds across both (B counts A's sessions); a disable and an enable made on
 *   one instance are seen by the other;
 * - Redis killed: existing sessions keep working on both, an admin change is refused with a
 *   clear error (a reload that would change the pool too), status and /healthz (still 200)
 *   say Redis is unreachable; Redis back: both
 *   catch up without a restart, and an admin change made on one reaches the other.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { api, row, waitState } from './helpers/admin-env.js';
import { runAdminCli } from './helpers/admin-cli.js';
import { client, serverOf, sessionLost } from './helpers/partition.js';
import { lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { startSims, type BalancerProcess } from './helpers/processes.js';
import { redisMissing, startRedis } from './helpers/redis.js';

const missing = redisMissing();
if (missing !== undefined) t.skip(missing);

/** A config for one of the pair: its own state file (the local copy goes beside it), the shared Redis. */
async function shared(t: Parameters<typeof startBalancer>[0], name: string, redisUrl: string, backends: object[]): Promise<BalancerProcess> {
  const dir = t.testdir();
  return startBalancer(
    t,
    await lbConfig(backends as { id: string; url: string }[], {
      state: { file: join(dir, `${name}.state.json`), redis: { url: redisUrl, pool: 'pair' } },
      healthCheck: { path: '/', interval: '1s', timeout: '1s', rise: 1, fall: 3 },
      log: { access: false },
    }),
  );
}

const sessions = async (lb: BalancerProcess, id: string): Promise<number> => (await row(lb, id))?.sessions ?? -1;

t.test('a drain, cookies and maxSessions are the pool\'s; Redis down and back', async (t) => {
  const redis = await startRedis(t);
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const backends = [
    { id: 'servoy-a', url: `http://127.0.0.1:${sims[0]!.port}`, route: 'servoy-a', maxSessions: 2 },
    { id: 'servoy-b', url: `http://127.0.0.1:${sims[1]!.port}`, route: 'servoy-b' },
  ];
  const a = await shared(t, 'a', redis.url, backends);
  const b = await shared(t, 'b', redis.url, backends);
  for (const lb of [a, b]) for (const id of ['servoy-a', 'servoy-b']) await waitState(lb, id, 'up', 30_000);

  // maxSessions: with servoy-b disabled (on A, seen by B), A fills servoy-a (maxSessions 2);
  // B counts A's sessions and takes no new one there: the pool is full.
  t.equal((await api(a, 'POST', '/api/backends/servoy-b/disable')).status, 200);
  await waitFor(async () => (await row(b, 'servoy-b')).state === 'disabled', 20_000, 'B to see servoy-b disabled on A');
  const onA = [];
  for (let i = 0; i < 2; i++) {
    const browser = client(t, a.url);
    t.equal(serverOf(await browser.get('/api/whoami')), 'servoy-a', `session ${i + 1} on A`);
    onA.push(browser);
  }
  await waitFor(async () => (await sessions(b, 'servoy-a')) === 2, 20_000, 'B to count A\'s sessions on servoy-a');
  const full = await client(t, b.url).get('/api/whoami');
  t.equal(full.status, 503, 'a new session on B: servoy-a is full for the pool (it would have fit on B alone)');
  t.equal((await api(b, 'POST', '/api/backends/servoy-b/enable')).status, 200);
  await waitFor(async () => (await row(a, 'servoy-b')).state === 'up', 20_000, 'A to see servoy-b enabled on B');
  const placed = await client(t, b.url).get('/api/whoami');
  t.equal(serverOf(placed), 'servoy-b', 'with servoy-b back, B places a new session there, never on the full servoy-a');

  // A cookie issued by A (no secret configured: the shared generated one) is accepted by B:
  // B's own router explains the decision (a session id without a route suffix, so only the cookie can decide).
  const first = onA[0]!;
  const home = serverOf(await first.get('/api/whoami'));
  const cookie = first.cookie('SERVOYLB');
  t.ok(cookie !== undefined, 'A set its affinity cookie');
  const explained = await api(b, 'GET', `/api/route?client=127.0.0.1&session=no-suffix&cookie=${encodeURIComponent(cookie!)}`);
  t.match(explained.json, { backend: home, rule: 'affinity-cookie' }, 'B verifies A\'s cookie and routes it to the same server');
  const viaB = client(t, b.url);
  viaB.setCookie('SERVOYLB', cookie!);
  viaB.setCookie('JSESSIONID', first.cookie('JSESSIONID')!);
  const followed = await viaB.get('/api/whoami');
  t.equal(serverOf(followed), home, 'and a browser of A that reaches B keeps its server');
  t.notOk(sessionLost(followed), 'and its session');

  // A drain on A is seen by B.
  const started = Date.now();
  t.equal((await api(a, 'POST', '/api/backends/servoy-b/drain')).status, 200);
  await waitFor(async () => ['draining', 'drained'].includes((await row(b, 'servoy-b')).state), 20_000, 'B to see the drain made on A', 20);
  t.comment(`drain on A seen by B after ${Date.now() - started} ms`);
  t.equal((await api(b, 'POST', '/api/backends/servoy-b/undrain')).status, 200, 'undrained on B');
  await waitFor(async () => (await row(a, 'servoy-b')).state === 'up', 20_000, 'A to see the undrain made on B');
  // The events are the pool's: B lists the drain made on A, with the instance that made it.
  const events = (await api(b, 'GET', '/api/events')).json.events as { backend: string | null; cause: string; instance?: string }[];
  const drainOnA = events.find((e) => e.backend === 'servoy-b' && /^admin drain\b/.test(e.cause));
  const undrainOnB = events.find((e) => e.backend === 'servoy-b' && /^admin undrain\b/.test(e.cause));
  t.ok(drainOnA?.instance !== undefined && undrainOnB?.instance !== undefined && drainOnA.instance !== undrainOnB.instance, `B's /api/events has A's drain with A's instance (${JSON.stringify(events.slice(0, 4))})`);

  // Redis killed: both keep serving what they know; admin changes are refused; status says so.
  await redis.kill();
  for (const lb of [a, b]) await waitFor(async () => (await api(lb, 'GET', '/healthz')).json?.state?.ok === false, 20_000, 'the balancer to notice Redis is gone');
  const healthz = await api(a, 'GET', '/healthz');
  t.equal(healthz.status, 200, '/healthz stays 200');
  t.match(healthz.json.state.reason, /Redis at 127\.0\.0\.1:\d+ unreachable/);
  for (const browser of onA) {
    const res = await browser.get('/api/whoami');
    t.equal(res.status, 200, 'an existing session keeps working');
    t.notOk(sessionLost(res));
  }
  const stillB = await viaB.get('/api/whoami');
  t.equal(serverOf(stillB), home, 'on B too');
  const refused = await api(b, 'POST', '/api/backends/servoy-a/drain');
  t.equal(refused.status, 503, 'an admin change is refused');
  t.match(refused.json, { error: { code: 'STATE_UNAVAILABLE', message: /shared state cannot take changes now \(Redis at .* unreachable/ } });
  t.equal((await row(b, 'servoy-a')).state, 'up', 'and nothing was applied');
  const localOnly = await api(b, 'GET', '/api/events');
  t.equal(localOnly.status, 200, '/api/events still answers');
  t.match(localOnly.json.sharedError, /^the other instances' events are not listed: shared state unreachable: Redis at /, 'with this instance\'s events and why the others\' are missing');
  // A reload that would change the shared pool is refused too; the running config is kept.
  const written = JSON.parse(await readFile(b.configFile, 'utf8')) as { backends: object[] };
  await writeFile(b.configFile, JSON.stringify({ ...written, backends: [...written.backends, { id: 'servoy-c', url: 'http://127.0.0.1:9', route: 'servoy-c' }] }));
  const reload = await api(b, 'POST', '/api/reload');
  t.equal(reload.status, 503, 'a reload that adds a backend is refused while Redis is down');
  t.match(reload.json, { error: { code: 'STATE_UNAVAILABLE', message: /shared state cannot take changes now/ } });
  t.equal((await api(b, 'GET', '/api/backends')).json.backends.length, 2, 'and the pool is unchanged');
  await writeFile(b.configFile, JSON.stringify(written));
  const status = await runAdminCli(['status', '--admin', b.adminUrl!]);
  t.match(status.stdout, /shared state: Redis at 127\.0\.0\.1:\d+ unreachable/, 'servoy-lb status says Redis is unreachable');

  // Redis back (empty: no persistence): both catch up without a restart.
  await redis.restart();
  for (const lb of [a, b]) await waitFor(async () => (await api(lb, 'GET', '/healthz')).json?.state?.ok === true, 30_000, 'the balancer to reconnect');
  t.match((await runAdminCli(['status', '--admin', a.adminUrl!])).stdout, /shared state: Redis reachable/);
  t.equal((await api(b, 'POST', '/api/backends/servoy-a/drain')).status, 200, 'an admin change works again');
  await waitFor(async () => ['draining', 'drained'].includes((await row(a, 'servoy-a')).state), 20_000, 'A to see the drain made on B after the outage');
  // drained only when no instance holds a session on it: A still holds two.
  t.equal((await row(b, 'servoy-a')).state, 'draining', 'not drained on B while A holds sessions on it');
});
