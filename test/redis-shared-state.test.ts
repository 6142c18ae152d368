/**
 * RedisSharedState.open on a real redis-server, the start-up rule of SPEC "Several
 * balancers": with Redis up, two instances open the same pool (seeded once from the
 * first's config, the second's differing config worded as a warning, one cookie secret)
 * and each keeps a local copy of what it knows beside state.file; with Redis down and no
 * copy, start is refused with one sentence; with Redis down and a copy, the instance
 * serves the copy (health says Redis is unreachable, a new key is refused) and catches
 * up by itself when Redis is back, writing back what it knew.
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import type { BackendConfig } from '../src/config/schema.js';
import { LocalSharedCopy } from '../src/state/redis/local-copy.js';
import { SharedStateUnreachableError } from '../src/state/redis/redis-errors.js';
import { RedisSharedState, type OpenOptions } from '../src/state/redis/redis-shared-state.js';
import { waitFor } from './helpers/lb.js';
import { redisMissing, startRedis, type TestRedis } from './helpers/redis.js';

const skip = redisMissing() ?? false;
const backend = (id: string): BackendConfig => ({ id, url: `http://127.0.0.1:1/${id}`, weight: 1, route: id }) as BackendConfig;

function options(redis: TestRedis, stateFile: string, over: Partial<OpenOptions> = {}): OpenOptions {
  return {
    settings: { url: redis.url, pool: 'p' },
    stateFile,
    configBackends: [backend('a'), backend('b')],
    instance: 'i1',
    learnedTtlMs: 60_000,
    connectWaitMs: 10_000,
    copyEveryMs: 50,
    connection: { commandTimeoutMs: 1000, maxBackoffMs: 200 },
    ...over,
  };
}

async function open(t: Test, opts: OpenOptions): Promise<RedisSharedState> {
  const res = await RedisSharedState.open(opts);
  if (!res.ok) throw new Error(res.error);
  t.teardown(() => res.shared.close());
  return res.shared;
}

t.test('two instances on one Redis: seeded once, one secret, a local copy each', { skip }, async (t) => {
  const redis = await startRedis(t);
  const dir = t.testdir();
  const A = await open(t, options(redis, join(dir, 'a.state.json')));
  const second = await RedisSharedState.open(options(redis, join(dir, 'b.state.json'), { instance: 'i2', configBackends: [backend('a'), backend('c')] }));
  if (!second.ok) throw new Error(second.error);
  const B = second.shared;
  t.teardown(() => B.close());
  t.match(second.warnings, [/the config file lists c, which the shared pool does not have and the shared pool has b/], 'the differing config is worded');
  t.same(B.pool.snapshot.backends.map((b) => b.id), ['a', 'b'], "the first instance's config seeded the pool");
  t.ok(A.cookieSecret, 'a secret');
  t.equal(B.cookieSecret, A.cookieSecret, 'the same secret on both');
  t.same(A.health(), { kind: 'redis', ok: true });

  await A.partitions.assign('acme', 'b');
  await waitFor(() => B.partitions.get('acme')?.backend === 'b', 10_000, 'B to know acme');
  const copyOfB = new LocalSharedCopy(B.copy.file);
  t.equal(B.copy.file, join(dir, 'b.state.json.shared'), 'the copy lives beside state.file');
  await waitFor(async () => {
    const read = await copyOfB.read();
    return read.kind === 'ok' && read.copy.partitions['acme']?.backend === 'b' && read.copy.cookieSecret === A.cookieSecret;
  }, 10_000, "B's local copy to hold acme and the secret");

  const withSecret = await open(t, options(redis, join(dir, 'c.state.json'), { instance: 'i3', configSecret: 'configured-secret-0123456789' }));
  t.equal(withSecret.cookieSecret, 'configured-secret-0123456789', 'a configured secret wins');
});

t.test('Redis down at start without a local copy: refused with one sentence', { skip }, async (t) => {
  const redis = await startRedis(t);
  await redis.kill();
  const stateFile = join(t.testdir(), 'state.json');
  const res = await RedisSharedState.open(options(redis, stateFile, { connectWaitMs: 300 }));
  t.equal(res.ok, false);
  // The reason is the first connection error, unless the wait ended before it came (a very busy machine).
  t.match(!res.ok && res.error, `cannot start: Redis at 127.0.0.1:${redis.port} is unreachable (`);
  t.match(!res.ok && res.error, /\((connection refused|no answer yet)\) and there is no local copy of the shared state \(.*state\.json\.shared\); start Redis \(or fix state\.redis\) and try again$/);
  const bad = await RedisSharedState.open({ ...options(redis, stateFile), settings: 'redis://' });
  t.same(bad, { ok: false, error: 'state.redis: redis:// names no host' });
});

t.test('Redis down at start with a local copy: served from it, caught up when Redis is back', { skip }, async (t) => {
  const redis = await startRedis(t);
  const stateFile = join(t.testdir(), 'state.json');
  // A first life: shared state made and copied, then the instance stops.
  const first = await RedisSharedState.open(options(redis, stateFile));
  if (!first.ok) throw new Error(first.error);
  await first.shared.partitions.assign('acme', 'b');
  await first.shared.pool.setAdmin('a', { admin: 'draining', since: 7 });
  const secret = first.shared.cookieSecret;
  await first.shared.close();

  await redis.kill();
  const res = await RedisSharedState.open(options(redis, stateFile, { connectWaitMs: 300 }));
  if (!res.ok) throw new Error(res.error);
  const S = res.shared;
  t.teardown(() => S.close());
  t.match(res.warnings, [/^Redis at 127\.0\.0\.1:\d+ is unreachable \(.+\); serving from the local copy of the shared state .*state\.json\.shared \(saved \d+ s ago\)/]);
  t.equal(S.partitions.get('acme')?.backend, 'b', 'a known tenant routes from the copy');
  t.same(S.pool.snapshot.admin, { a: { admin: 'draining', since: 7 } }, 'the admin states of the copy');
  t.equal(S.cookieSecret, secret, 'the secret of the copy');
  t.match(S.health(), { kind: 'redis', ok: false, reason: /^Redis at 127\.0\.0\.1:\d+ unreachable for \d+ s/ });
  await t.rejects(S.partitions.assign('new', 'a'), SharedStateUnreachableError, 'a new tenant is refused');

  await redis.restart();
  await waitFor(() => S.health().ok, 30_000, 'the connection to come back');
  await waitFor(async () => (await S.conn.run((c) => c.hget(S.keys.partitions, 'acme')).catch(() => null)) !== null, 30_000, 'acme written back to the empty Redis');
  await waitFor(async () => (await S.pool.resync().catch(() => S.pool.snapshot)).admin['a']?.admin === 'draining', 30_000, 'the pool written back');
  const created = await S.partitions.assign('new', 'a');
  t.equal(created.created, true, 'new tenants are assigned again');
});

t.test('a Redis that refuses the scripts (an ACL without scripting, say): start refused, saying why', { skip }, async (t) => {
  const redis = await startRedis(t, ['--rename-command', 'EVAL', '']);
  const res = await RedisSharedState.open(options(redis, join(t.testdir(), 'state.json')));
  t.equal(res.ok, false);
  t.match(!res.ok && res.error, /^cannot start: ERR unknown command 'eval'/i);
});
