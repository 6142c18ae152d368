/**
 * state.redis through Redis Sentinel, on real servers: a master, a replica and a
 * sentinel. The connection finds the master through the sentinel; a new partition
 * assignment waits for the replica's acknowledgement (WAIT); after a failover (forced
 * with SENTINEL FAILOVER) the same connection follows the new master by itself, the
 * acknowledged assignment is still there, and new assignments work.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { RedisConnection } from '../src/state/redis/redis-connection.js';
import { redisKeys } from '../src/state/redis/redis-keys.js';
import { RedisPartitions } from '../src/state/redis/redis-partitions.js';
import { redisTarget } from '../src/state/redis/redis-settings.js';
import { waitFor } from './helpers/lb.js';
import { redisMissing, startRedis, startSentinel } from './helpers/redis.js';

t.test('through a sentinel: WAIT on the replica, and the same connection follows a failover', { skip: redisMissing() ?? false }, async (t) => {
  const master = await startRedis(t);
  const replica = await startRedis(t, ['--replicaof', '127.0.0.1', String(master.port)]);
  const direct = new Redis({ host: '127.0.0.1', port: replica.port, lazyConnect: true, maintNotifications: 'disabled' });
  t.teardown(() => direct.disconnect());
  await direct.connect();
  await waitFor(async () => /master_link_status:up/.test(await direct.info('replication')), 30_000, 'the replica to sync');

  const sentinel = await startSentinel(t, master);
  const admin = new Redis({ host: '127.0.0.1', port: sentinel.port, lazyConnect: true, maintNotifications: 'disabled' });
  t.teardown(() => admin.disconnect());
  await admin.connect();
  await waitFor(async () => ((await admin.call('SENTINEL', 'REPLICAS', 'mymaster')) as unknown[]).length === 1, 60_000, 'the sentinel to know the replica');

  const target = redisTarget({ sentinels: [`127.0.0.1:${sentinel.port}`], masterName: 'mymaster', db: 0, tls: false, pool: 'sentinel' });
  if (!target.ok) throw new Error(target.error);
  t.equal(target.target.address, `master mymaster via sentinels 127.0.0.1:${sentinel.port}`);
  const conn = new RedisConnection(target.target, { commandTimeoutMs: 2000, maxBackoffMs: 200 });
  t.teardown(() => conn.close());
  t.ok(await conn.waitUntilUp(30_000), 'connected through the sentinel');
  t.same(await conn.run((c) => c.config('GET', 'port')), ['port', String(master.port)], 'to the master');

  const partitions = new RedisPartitions(conn, redisKeys(target.target.prefix), { waitMs: 5000 });
  await partitions.start();
  t.teardown(() => partitions.stop());
  t.equal(partitions.replicas, 1);
  const acme = await partitions.assign('acme', 'a');
  t.same(acme.ack, { kind: 'acknowledged', replicas: 1 }, 'the replica holds it before the request goes on');

  // The sentinel calls a replica "good" only once it has pinged it and read its INFO: until then it answers NOGOODSLAVE.
  await waitFor(
    () =>
      admin.call('SENTINEL', 'FAILOVER', 'mymaster').then(
        () => true,
        (err: Error) => {
          if (/NOGOODSLAVE/.test(err.message)) return false;
          throw err;
        },
      ),
    60_000,
    'the sentinel to accept the failover',
    250,
  );
  await waitFor(
    async () => (await conn.run((c) => c.config('GET', 'port')).catch(() => [])).at(1) === String(replica.port) && /role:master/.test(await conn.run((c) => c.info('replication')).catch(() => '')),
    60_000,
    'the connection to follow the new master',
  );
  await partitions.resync();
  t.equal(partitions.get('acme')?.backend, 'a', 'the acknowledged assignment survived the failover');
  const after = await partitions.assign('globex', 'b');
  t.equal(after.created, true, 'new assignments work on the new master');
});

t.test('no sentinel answering: not up, and the reason says so', { skip: redisMissing() ?? false }, async (t) => {
  const gone = await startRedis(t);
  await gone.kill();
  const target = redisTarget({ sentinels: [`127.0.0.1:${gone.port}`], masterName: 'mymaster', db: 0, tls: false });
  if (!target.ok) throw new Error(target.error);
  const conn = new RedisConnection(target.target, { maxBackoffMs: 100 });
  t.teardown(() => conn.close());
  t.equal(await conn.waitUntilUp(200), false);
  await waitFor(() => conn.state.lastError === 'all sentinels unreachable', 30_000, 'the reason');
  await t.rejects(conn.run((c) => c.ping()), { message: `shared state unreachable: Redis at master mymaster via sentinels 127.0.0.1:${gone.port}: all sentinels unreachable; try again when it is back` });
});
