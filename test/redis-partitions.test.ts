/**
 * RedisPartitions on a real redis-server, with two instances (two connections) on one
 * Redis: 200 concurrent first assignments of 20 keys spread over both give one backend
 * per key, the same on both, and counts that add up; an assignment made on A reaches
 * B's copy by message; a change B missed (written without a message) is caught by the
 * periodic resync; a move overwrites and keeps the previous backend; with a real replica
 * a new assignment waits for its WAIT acknowledgement; Redis killed: known keys still
 * answered from the copy, assign refused at once with the typed error; Redis back
 * (empty: no persistence): the same clients reconnect and write back what they knew.
 */
import t from 'tap';
import { RedisPartitions } from '../src/state/redis/redis-partitions.js';
import { SharedStateUnreachableError } from '../src/state/redis/redis-errors.js';
import { waitFor } from './helpers/lb.js';
import { connectInstance, redisMissing, startRedis } from './helpers/redis.js';

const skip = redisMissing() ?? false;
const BACKENDS = ['a', 'b', 'c'];

t.test('200 concurrent first assignments over two instances: one backend per key, the same on both', { skip }, async (t) => {
  const redis = await startRedis(t);
  const one = await connectInstance(t, redis);
  const two = await connectInstance(t, redis);
  const A = new RedisPartitions(one.conn, one.keys);
  const B = new RedisPartitions(two.conn, two.keys);
  await A.start();
  await B.start();
  t.teardown(() => (A.stop(), B.stop()));

  // Each request proposes a backend of its own choosing: only the first proposal per key may win.
  const keys = Array.from({ length: 20 }, (_, i) => `tenant-${i}`);
  const requests = Array.from({ length: 200 }, (_, i) => ({ store: i % 2 === 0 ? A : B, key: keys[i % 20]!, proposal: BACKENDS[(i * 7) % 3]! }));
  const results = await Promise.all(requests.map((r) => r.store.assign(r.key, r.proposal).then((res) => ({ ...r, res }))));
  for (const key of keys) {
    const answers = new Set(results.filter((r) => r.key === key).map((r) => r.res.partition.backend));
    t.equal(answers.size, 1, `${key}: every request got the same backend`);
    t.equal(results.filter((r) => r.key === key && r.res.created).length, 1, `${key}: exactly one request assigned it`);
  }
  t.ok(results.every((r) => r.res.ack.kind === 'none'), 'no replica: nothing waited for');
  await waitFor(() => keys.every((k) => A.get(k)?.backend === B.get(k)?.backend && A.get(k) !== undefined), 10_000, 'both copies to agree');
  const counts = await A.counts();
  t.equal([...counts.values()].reduce((x, y) => x + y, 0), 20, 'counts add up to the keys');
  t.same(Object.fromEntries(counts), Object.fromEntries(A.localCounts()), 'counts in Redis = counts of the copy');
  t.same(Object.fromEntries(B.localCounts()), Object.fromEntries(A.localCounts()));
  t.equal(A.size, 20);
  t.same([...A.snapshot().keys()].sort(), [...keys].sort(), 'the snapshot holds every key');
});

t.test('changes reach the other instance by message, and a missed one by the periodic resync', { skip }, async (t) => {
  const redis = await startRedis(t);
  const one = await connectInstance(t, redis);
  const two = await connectInstance(t, redis);
  const A = new RedisPartitions(one.conn, one.keys);
  const B = new RedisPartitions(two.conn, two.keys, { resyncEveryMs: 200 });
  await A.start();
  await B.start();
  t.teardown(() => (A.stop(), B.stop()));

  const created = await A.assign('acme', 'a', 1000);
  t.same(created, { partition: { backend: 'a', assignedAt: 1000 }, created: true, ack: { kind: 'none' } });
  await waitFor(() => B.get('acme')?.backend === 'a', 10_000, "A's assignment in B's copy");
  const again = await B.assign('acme', 'b');
  t.equal(again.created, false, 'B gets the winner, not its proposal');
  t.equal(again.partition.backend, 'a');

  const moved = await A.move('acme', 'b', { drain: true, now: 2000 });
  t.same(moved.partition, { backend: 'b', assignedAt: 1000, movedAt: 2000, previous: 'a', drainPrevious: true }, 'a move keeps where it was');
  t.equal(moved.previous?.backend, 'a');
  await waitFor(() => B.get('acme')?.backend === 'b', 10_000, 'the move in B');
  t.same(Object.fromEntries(await B.counts()), { b: 1 }, 'the old backend no longer counts it');
  const cleared = await A.clearPrevious('acme');
  t.same(cleared, { backend: 'b', assignedAt: 1000, movedAt: 2000 }, 'the drained move settled: the old backend forgotten');
  await waitFor(() => B.get('acme')?.previous === undefined, 10_000, 'the settled move in B');
  t.same(Object.fromEntries(await B.counts()), { b: 1 }, 'counts unchanged by settling');
  t.equal(await A.clearPrevious('nobody'), undefined);

  await A.assign('gone', 'a');
  await waitFor(() => B.get('gone') !== undefined, 10_000, 'B to know gone');
  t.equal(await A.delete('gone'), true, 'deleted');
  t.equal(await A.delete('gone'), false, 'nothing left to delete');
  await waitFor(() => B.get('gone') === undefined, 10_000, 'the deletion in B');
  t.same(Object.fromEntries(await B.counts()), { b: 1 });
  // Deleted behind B's back (no message): its resync drops it, and does not write it back (same epoch: no data loss).
  await A.assign('gone-silently', 'c');
  await waitFor(() => B.get('gone-silently') !== undefined, 10_000, 'B to know gone-silently');
  await one.conn.run((c) => c.hdel(one.keys.partitions, 'gone-silently'));
  await waitFor(() => B.get('gone-silently') === undefined, 10_000, "B's resync to drop it");
  t.equal(await one.conn.run((c) => c.hget(one.keys.partitions, 'gone-silently')), null, 'not written back');
  t.ok(B.epoch, 'B knows the epoch it read under');

  const fresh = await A.move('new-one', 'c', { now: 3000 });
  t.same(fresh.partition, { backend: 'c', assignedAt: 3000, movedAt: 3000 }, 'moving an unknown key assigns it');
  t.equal(fresh.previous, undefined);

  // Written behind everyone's back (no message): only the resync can bring it.
  await one.conn.run((c) => c.hset(one.keys.partitions, 'silent', JSON.stringify({ backend: 'c', assignedAt: 5 })));
  await waitFor(() => B.get('silent')?.backend === 'c', 10_000, 'the periodic resync to find the silent write');
  t.ok(B.lastResync > 0);
  // A garbled record or message is skipped, never trusted.
  await one.conn.run((c) => c.hset(one.keys.partitions, 'garbled', 'not json'));
  await one.conn.run((c) => c.publish(one.keys.partitionChanges, '{"key":"x","partition":{"backend":7}}'));
  const before = B.lastResync;
  await waitFor(() => B.lastResync > before, 10_000, 'another resync');
  t.equal(B.get('garbled'), undefined);
  t.equal(B.get('x'), undefined);

  // A reply error of Redis itself (here: the hash replaced by a string) is a bug to see, not an outage.
  const other = new RedisPartitions(one.conn, { ...one.keys, partitions: `${one.keys.partitions}:broken` });
  await one.conn.run((c) => c.set(`${one.keys.partitions}:broken`, 'a string'));
  await t.rejects(other.assign('k', 'a'), { name: 'ReplyError', message: /WRONGTYPE/ });
});

t.test('with a replica, a new assignment waits for its acknowledgement (WAIT)', { skip }, async (t) => {
  const master = await startRedis(t);
  const replica = await startRedis(t, ['--replicaof', '127.0.0.1', String(master.port)]);
  const one = await connectInstance(t, master);
  const onReplica = await connectInstance(t, replica);
  await waitFor(async () => /master_link_status:up/.test(await onReplica.conn.run((c) => c.info('replication'))), 30_000, 'the replica to sync');
  const A = new RedisPartitions(one.conn, one.keys, { waitMs: 5000 });
  await A.start();
  t.teardown(() => A.stop());
  t.equal(A.replicas, 1, 'INFO replication shows the replica');
  const res = await A.assign('acme', 'a');
  t.same(res.ack, { kind: 'acknowledged', replicas: 1 }, 'the replica acknowledged the assignment');
  const known = await A.assign('acme', 'b');
  t.same(known.ack, { kind: 'none' }, 'a known key waits for nothing');

  // A replica (say, a stale master after a failover) refuses writes: that is the shared state being unreachable, not a bug.
  const onTheReplica = new RedisPartitions(onReplica.conn, onReplica.keys);
  await t.rejects(onTheReplica.assign('initech', 'a'), { name: 'SharedStateUnreachableError', message: /READONLY/ });

  // A replica that stops answering: WAIT times out and says so.
  replica.pause();
  t.teardown(() => replica.resume());
  const slow = new RedisPartitions(one.conn, one.keys, { waitMs: 100 });
  await slow.start();
  t.teardown(() => slow.stop());
  const unacked = await slow.assign('globex', 'a');
  t.same(unacked.ack, { kind: 'unacknowledged', waitedMs: 100 });
});

t.test('Redis down: known keys still answered, new ones refused at once; back: catch-up on the same clients', { skip }, async (t) => {
  const redis = await startRedis(t);
  const one = await connectInstance(t, redis);
  const two = await connectInstance(t, redis);
  const A = new RedisPartitions(one.conn, one.keys);
  const B = new RedisPartitions(two.conn, two.keys);
  await A.start();
  await B.start(new Map([['from-copy', { backend: 'c', assignedAt: 1 }]]));
  t.teardown(() => (A.stop(), B.stop()));
  await A.assign('acme', 'a');
  await waitFor(() => B.get('acme') !== undefined, 10_000, 'B to know acme');

  await redis.kill();
  await waitFor(() => !one.conn.state.up && !two.conn.state.up, 10_000, 'both to see Redis down');
  t.equal(A.get('acme')?.backend, 'a', 'a known key routes as before');
  t.equal(B.get('acme')?.backend, 'a');
  await t.rejects(A.assign('new', 'b'), SharedStateUnreachableError, 'a new key is refused, typed');
  await t.rejects(A.move('acme', 'b'), SharedStateUnreachableError, 'a move is refused');
  await t.rejects(A.counts(), SharedStateUnreachableError);
  await t.rejects(A.resync(), SharedStateUnreachableError);

  // Back empty (no persistence): the instances write back what they knew, first writer wins.
  await redis.restart();
  await waitFor(async () => (await one.conn.run((c) => c.hget(one.keys.partitions, 'acme')).catch(() => null)) !== null, 30_000, 'acme written back');
  await waitFor(async () => (await one.conn.run((c) => c.hget(one.keys.partitions, 'from-copy')).catch(() => null)) !== null, 30_000, 'B wrote back its copy too');
  const after = await B.assign('acme', 'c');
  t.equal(after.partition.backend, 'a', 'the written-back assignment holds');
  t.equal(after.created, false);
  await A.assign('after-restart', 'b');
  await waitFor(() => B.get('after-restart')?.backend === 'b', 10_000, 'B catches up with new assignments');
  t.same(Object.fromEntries(await A.counts()), { a: 1, b: 1, c: 1 }, 'the counts were rebuilt by the write-back');
});
