/**
 * A `--workers 2` balancer on the same Redis as a single-process one (SPEC "Several
 * balancers": each instance possibly with --workers): it starts on the shared state,
 * follows a drain made on the other instance, and a drain made on it reaches the other.
 * The primary holds the Redis store; its workers never talk to Redis.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t from 'tap';
import { join } from 'node:path';
import { api, row, waitState } from './helpers/admin-env.js';
import { client, serverOf } from './helpers/partition.js';
import { lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { spawnBalancer, startSims, type TestLike } from './helpers/processes.js';
import { redisMissing, startRedis } from './helpers/redis.js';

const missing = redisMissing();
if (missing !== undefined) t.skip(missing);

async function pairConfig(t: TestLike, name: string, redisUrl: string, sims: Parameters<typeof lbConfig>[0]): Promise<Record<string, unknown>> {
  return lbConfig(sims, {
    state: { file: join(t.testdirName, `${name}.state.json`), redis: { url: redisUrl, pool: 'workers' } },
    healthCheck: { path: '/', interval: '1s', timeout: '1s', rise: 1, fall: 3 },
    log: { access: false },
  });
}

t.test('--workers 2 on the shared state: follows a drain made elsewhere, and shares its own', async (t) => {
  t.testdir();
  const redis = await startRedis(t);
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const a = await startBalancer(t, await pairConfig(t, 'a', redis.url, sims));
  const c = await spawnBalancer(t, await pairConfig(t, 'c', redis.url, sims), { args: ['--workers', '2'], timeoutMs: 60_000 });
  for (const lb of [a, c]) for (const id of ['servoy-a', 'servoy-b']) await waitState(lb, id, 'up', 30_000);
  t.match((await api(c, 'GET', '/healthz')).json, { state: { kind: 'redis', ok: true } }, 'the workers\' primary uses Redis');

  t.equal((await api(a, 'POST', '/api/backends/servoy-a/drain')).status, 200);
  await waitFor(async () => ['draining', 'drained'].includes((await row(c, 'servoy-a')).state), 20_000, 'the --workers instance to see the drain made on A');
  const fresh = client(t, c.url);
  t.equal(serverOf(await fresh.get('/api/whoami')), 'servoy-b', 'its workers send a new session elsewhere');

  t.equal((await api(c, 'POST', '/api/backends/servoy-a/undrain')).status, 200);
  t.equal((await api(c, 'POST', '/api/backends/servoy-b/drain')).status, 200);
  await waitFor(async () => (await row(a, 'servoy-a')).state === 'up' && ['draining', 'drained'].includes((await row(a, 'servoy-b')).state), 20_000, 'A to see the changes made on the --workers instance');
  t.pass('changes made on the --workers instance reach A');
});
