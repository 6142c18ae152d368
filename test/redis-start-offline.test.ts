/**
 * Starting while Redis is unreachable (SPEC "Several balancers"): a balancer that ran on
 * Redis before starts from its local copy of the last shared state (`<state.file>.shared`),
 * says so in its log and keeps the shared pool's admin states; one without a copy refuses
 * to start with one clear sentence. The real CLI, a real redis-server.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { api, row, waitState } from './helpers/admin-env.js';
import { lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { runCli, startSims } from './helpers/processes.js';
import { redisMissing, startRedis } from './helpers/redis.js';
import { writeFile } from 'node:fs/promises';

const missing = redisMissing();
if (missing !== undefined) t.skip(missing);

t.test('Redis down at start: the local copy, else a clear refusal', async (t) => {
  const dir = t.testdir();
  const redis = await startRedis(t);
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const config = (name: string) =>
    lbConfig(sims, {
      state: { file: join(dir, `${name}.state.json`), redis: { url: redis.url, pool: 'offline' } },
      healthCheck: { path: '/', interval: '1s', timeout: '1s', rise: 1, fall: 3 },
      log: { access: false },
    });
  const configA = await config('a');
  let a = await startBalancer(t, configA);
  await waitState(a, 'servoy-a', 'up', 30_000);
  t.equal((await api(a, 'POST', '/api/backends/servoy-a/disable')).status, 200);
  await a.stop();
  t.ok(existsSync(join(dir, 'a.state.json.shared')), 'a clean stop leaves the local copy beside state.file');

  await redis.kill();
  a = await startBalancer(t, configA);
  await a.waitForLog(/serving from the local copy of the shared state/, 30_000);
  t.equal((await row(a, 'servoy-a')).state, 'disabled', 'the shared admin states come from the copy');
  await waitFor(async () => (await api(a, 'GET', '/healthz')).json?.state?.ok === false, 20_000, '/healthz to say Redis is unreachable');
  t.equal((await api(a, 'POST', '/api/backends/servoy-a/enable')).status, 503, 'admin changes wait for Redis');

  const fresh = join(dir, 'fresh.config.json');
  await writeFile(fresh, JSON.stringify(await config('fresh')));
  const refused = await runCli(t, ['start', '-c', fresh]);
  t.equal(refused.code, 1, 'a balancer without a copy does not start');
  t.match(refused.stderr, /cannot start: Redis at 127\.0\.0\.1:\d+ is unreachable \(.*\) and there is no local copy of the shared state \(.*fresh\.state\.json\.shared\); start Redis \(or fix state\.redis\) and try again/);
  t.notMatch(refused.stderr, /\n\s+at /, 'one sentence, no stack trace');
});
