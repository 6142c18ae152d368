/**
 * RedisConnection on a real redis-server (src/state/redis/redis-connection.ts): it comes
 * up, a command while Redis is down fails at once with a SharedStateUnreachableError
 * (typed, worded, never a hang), the state says down with the reason, and the same
 * client reconnects by itself when Redis is back on the same port, its subscriptions
 * too (the resubscribe listeners fire so the blocks can resync).
 */
import t from 'tap';
import { SharedStateUnreachableError } from '../src/state/redis/redis-errors.js';
import { waitFor } from './helpers/lb.js';
import { connectInstance, redisMissing, startRedis } from './helpers/redis.js';

const skip = redisMissing() ?? false;

t.test('up, down with a typed error at once, and back on the same client', { skip }, async (t) => {
  const redis = await startRedis(t);
  const { conn } = await connectInstance(t, redis, 'test', { name: 'servoy-lb-test' });
  t.equal(conn.state.up, true, 'up once connected');
  t.equal(await conn.waitUntilUp(1), true, 'already up: at once');
  t.match(await conn.run((c) => c.client('LIST')), /name=servoy-lb-test/, 'named in CLIENT LIST');
  t.equal(conn.state.lastError, undefined, 'no error before the first failure');
  t.equal(conn.address, `127.0.0.1:${redis.port}`);
  t.equal(await conn.run((c) => c.ping()), 'PONG');

  const flips: boolean[] = [];
  conn.onState((s) => flips.push(s.up));
  let resubscribed = 0;
  conn.onResubscribed(() => resubscribed++);
  const messages: string[] = [];
  await conn.subscribe('chan', (m) => messages.push(m));
  await waitFor(async () => (await conn.run((c) => c.publish('chan', 'first'))) === 1, 10_000, 'the subscriber to listen');
  await waitFor(() => messages.includes('first'), 10_000, 'the first message');

  await redis.kill();
  await waitFor(() => !conn.state.up, 10_000, 'the connection to be seen down');
  t.ok(conn.state.lastError, `the state says why: ${conn.state.lastError}`);
  const failed = await conn.run((c) => c.ping()).catch((err: unknown) => err);
  t.type(failed, SharedStateUnreachableError, 'a command while down fails with the typed error');
  t.match((failed as Error).message, new RegExp(`^shared state unreachable: Redis at 127\\.0\\.0\\.1:${redis.port}: .+; try again when it is back$`));
  t.equal((failed as SharedStateUnreachableError).code, 'SHARED_STATE_UNREACHABLE');

  await redis.restart();
  t.ok(await conn.waitUntilUp(30_000), 'the same client reconnects by itself');
  t.same(flips.slice(0, 2), [false, true], 'listeners heard down, then up');
  t.equal(await conn.run((c) => c.ping()), 'PONG');
  await waitFor(() => resubscribed >= 1, 30_000, 'the subscriber to come back');
  await waitFor(async () => (await conn.run((c) => c.publish('chan', 'second'))) === 1, 10_000, 'the subscriber to listen again');
  await waitFor(() => messages.includes('second'), 10_000, 'a message after the restart');
});

t.test('a command in flight when Redis dies fails instead of waiting for it to come back', { skip }, async (t) => {
  const redis = await startRedis(t);
  const { conn } = await connectInstance(t, redis, 'test', { commandTimeoutMs: 60_000 });
  redis.pause();
  const pending = conn.run((c) => c.ping()).catch((err: unknown) => err);
  await redis.kill();
  const result = await pending;
  t.type(result, SharedStateUnreachableError, `failed: ${(result as Error).message}`);
});

t.test('a command without an answer fails after the command timeout', { skip }, async (t) => {
  const redis = await startRedis(t);
  const { conn } = await connectInstance(t, redis, 'test', { commandTimeoutMs: 200 });
  redis.pause();
  t.teardown(() => redis.resume());
  const failed = await conn.run((c) => c.ping()).catch((err: unknown) => err);
  t.type(failed, SharedStateUnreachableError);
  t.match((failed as Error).message, /: no answer in time; try again when it is back$/);
  redis.resume();
  await waitFor(async () => (await conn.run((c) => c.ping()).catch(() => 'no')) === 'PONG', 10_000, 'answers after the pause');
});

t.test('a connection that never came up reports why and refuses commands', { skip }, async (t) => {
  const redis = await startRedis(t);
  await redis.kill();
  const { RedisConnection } = await import('../src/state/redis/redis-connection.js');
  const conn = new RedisConnection({ options: { host: '127.0.0.1', port: redis.port }, address: `127.0.0.1:${redis.port}`, prefix: 'x:' }, { maxBackoffMs: 100 });
  t.teardown(() => conn.close());
  t.equal(await conn.waitUntilUp(300), false, 'not up within the wait');
  await waitFor(() => conn.state.lastError === 'connection refused', 10_000, 'the reason');
  await t.rejects(conn.run((c) => c.ping()), { name: 'SharedStateUnreachableError', message: /connection refused/ });
  await conn.close();
  await conn.close();
});
