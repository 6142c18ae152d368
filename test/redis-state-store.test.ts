/**
 * RedisStateStore, two of them in this process on one real redis-server, as two balancer
 * instances would open them: what one writes through the seam reaches the other's
 * onChange (admin records, a partition, a learned session id, session counts, an instance
 * that is gone), first writer wins for a partition, a repeated learned id is published
 * once (and reaches a store opened later, or one that missed its message, by the load of the
 * live ids), events are shared with their instance, a reloaded config's backends are written as differences, and an instance whose
 * config file lists other backends than the shared pool says so in its log.
 */
import t from 'tap';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfigText } from '../src/config/load.js';
import { RedisStateStore } from '../src/state/redis/redis-state-store.js';
import type { StateChange } from '../src/state/state-store.js';
import { waitFor } from './helpers/lb.js';
import { redisMissing, startRedis } from './helpers/redis.js';

const missing = redisMissing();
if (missing !== undefined) t.skip(missing);

const logger = pino({ level: 'silent' });

t.test('two stores on one Redis: changes, partitions, learned ids and counts cross over', async (t) => {
  const dir = t.testdir();
  const redis = await startRedis(t);
  const backends = [
    { id: 'a', url: 'http://127.0.0.1:9001' },
    { id: 'b', url: 'http://127.0.0.1:9002' },
  ];
  const config = (name: string) =>
    parseConfigText(
      JSON.stringify({ backends, state: { file: join(dir, `${name}.json`), redis: { url: redis.url, pool: 'store' } }, affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' } } }),
      { baseDir: dir },
    );
  const one = await RedisStateStore.open(join(dir, 'one.json'), config('one'), logger, { instance: 'one' });
  t.teardown(() => one.close());
  const two = await RedisStateStore.open(join(dir, 'two.json'), config('two'), logger, { instance: 'two' });
  t.teardown(() => two.close());
  const seen: StateChange[] = [];
  two.onChange((change) => seen.push(change));
  t.equal(one.cookieSecret, two.cookieSecret, 'one generated cookie secret for both');
  t.ok(one.cookieSecret !== undefined);
  t.same(one.health(), { kind: 'redis', ok: true });

  // Admin records: a drain and a run-time backend written by one reach the other.
  await one.saveBackends({ added: [{ id: 'c', url: 'http://127.0.0.1:9003', weight: 2 } as never], removed: [], admin: { a: { admin: 'draining', since: 5 } }, weights: {} });
  await waitFor(() => two.backendRecords().admin.a?.admin === 'draining' && two.backendRecords().added.some((b) => b.id === 'c'), 10_000, 'the other store to follow');
  t.ok(seen.some((c) => c.kind === 'backends'), 'reported through onChange');

  // Partitions: first writer wins, and the loser is told where the key lives.
  const won = await one.assignPartition('acme', 'a');
  const lost = await two.assignPartition('acme', 'b');
  t.same([won.won, won.record.backend, lost.won, lost.record.backend], [true, 'a', false, 'a']);
  await waitFor(() => two.partitions?.get('acme')?.backend === 'a', 10_000, 'the assignment in the other table');
  const moved = await one.movePartition('acme', 'b', true);
  t.match(moved, { backend: 'b', previous: 'a', drainPrevious: true });
  await waitFor(() => two.partitions?.get('acme')?.backend === 'b', 10_000, 'the move in the other table');
  t.same(await two.settlePartition('acme'), { key: 'acme', backend: 'b', assignedAt: moved.assignedAt, movedAt: moved.movedAt });
  const replaced = await two.assignPartition('acme', 'a', 'b');
  t.same([replaced.won, replaced.record.backend], [true, 'a'], 'a key whose server refused the request that assigned it is placed again');

  // Learned session ids: published once, forgotten too.
  one.publishLearned('s1', 'a');
  one.publishLearned('s1', 'a');
  one.publishLearned('s1', undefined);
  await waitFor(() => seen.filter((c) => c.kind === 'learned').length >= 2, 10_000, 'the learned ids');
  t.same(seen.filter((c) => c.kind === 'learned'), [
    { kind: 'learned', sessionId: 's1', backendId: 'a' },
    { kind: 'learned', sessionId: 's1', backendId: undefined },
  ], 'a repeated id is published once; a forgotten one is published');

  // Session counts: the other instance's, then gone when it closes.
  one.publishSessions({ a: 3, b: 1 });
  await waitFor(() => seen.some((c) => c.kind === 'sessions' && c.counts.a === 3), 10_000, 'the counts of the other instance');
  await one.close();
  await waitFor(() => seen.some((c) => c.kind === 'sessions' && Object.keys(c.counts).length === 0), 10_000, 'the closed instance reported gone');
  t.pass('a closed instance no longer counts');

  // A reloaded config file without b: the difference (b removed) is written to the shared pool.
  two.useConfigBackends([backends[0]!] as never);
  await two.saveBackends(two.backendRecords());
  const lines: string[] = [];
  const capture = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
  const three = await RedisStateStore.open(join(dir, 'three.json'), config('three'), capture, { instance: 'three' });
  t.match(lines.join(''), /the config file lists b, which the shared pool does not have and the shared pool has c, which the config file does not list; the shared pool in Redis is used/, 'an instance whose file lists other backends says so in its log');
  t.teardown(() => three.close());
  t.same(three.backendRecords().removed, ['b'], 'an instance whose file still lists b sees it removed from the shared pool');
  t.same(three.backendRecords().admin, { a: { admin: 'draining', since: 5 } }, 'and nothing else changed');
  // Closed here, before Redis and the test dir go (closing again at teardown is a no-op).
  await Promise.all([two.close(), three.close()]);
});

t.test('a store opened later knows the session ids learned before it started', async (t) => {
  const dir = t.testdir();
  const redis = await startRedis(t);
  const config = (name: string) =>
    parseConfigText(JSON.stringify({ backends: [{ id: 'a', url: 'http://127.0.0.1:9001' }, { id: 'b', url: 'http://127.0.0.1:9002' }], state: { file: join(dir, `${name}.json`), redis: { url: redis.url, pool: 'late' } } }), { baseDir: dir });
  const first = await RedisStateStore.open(join(dir, 'first.json'), config('first'), logger, { instance: 'first' });
  t.teardown(() => first.close());
  first.publishLearned('early-1', 'a');
  first.publishLearned('early-2', 'b');
  first.publishLearned('gone', 'a');
  first.publishLearned('gone', undefined);
  // The writes are fire-and-forget: wait until Redis holds them.
  const { Redis } = await import('ioredis');
  const probe = new Redis(redis.url);
  t.teardown(() => probe.disconnect());
  await waitFor(async () => (await probe.exists('servoy-lb:late:session:early-1', 'servoy-lb:late:session:early-2')) === 2 && (await probe.exists('servoy-lb:late:session:gone')) === 0, 10_000, 'the learned ids in Redis');

  const later = await RedisStateStore.open(join(dir, 'later.json'), config('later'), logger, { instance: 'later', resyncEveryMs: 500 });
  t.teardown(() => later.close());
  const learned = new Map<string, string | undefined>();
  later.onChange((c) => {
    if (c.kind === 'learned') learned.set(c.sessionId, c.backendId);
  });
  await waitFor(() => learned.size >= 2, 10_000, 'the ids learned before the later store opened');
  t.same(Object.fromEntries(learned), { 'early-1': 'a', 'early-2': 'b' }, 'live ids with their backends; a forgotten one is not reported');

  // One learned while the later store runs arrives too (pub/sub).
  first.publishLearned('after', 'b');
  await waitFor(() => learned.has('after'), 10_000, 'the id learned afterwards');
  // One written without a message (a missed one) is found by the next resync.
  await probe.set('servoy-lb:late:session:missed', 'b', 'PX', 60_000);
  await waitFor(() => learned.get('missed') === 'b', 10_000, 'the resync to find an id whose message was missed');
  await Promise.all([first.close(), later.close()]);
  probe.disconnect();
});

t.test('events are shared: each store reads the others\' events with their instance, newest first, capped', async (t) => {
  const dir = t.testdir();
  const redis = await startRedis(t);
  const config = (name: string) => parseConfigText(JSON.stringify({ backends: [{ id: 'a', url: 'http://127.0.0.1:9001' }], state: { file: join(dir, `${name}.json`), redis: { url: redis.url, pool: 'ev' } } }), { baseDir: dir });
  const one = await RedisStateStore.open(join(dir, 'one.json'), config('one'), logger, { instance: 'one' });
  t.teardown(() => one.close());
  const two = await RedisStateStore.open(join(dir, 'two.json'), config('two'), logger, { instance: 'two' });
  t.teardown(() => two.close());

  one.publishEvent({ at: 1000, backend: 'a', what: 'drain', who: '127.0.0.1', from: 'up', to: 'draining' });
  one.publishEvent({ at: 2000, backend: null, what: 'reload', who: '127.0.0.1', from: null, to: null });
  two.publishEvent({ at: 3000, backend: 'a', what: 'enable', who: '::1', from: 'draining', to: 'up' });
  await waitFor(async () => (await two.sharedEvents(10)).length === 2 && (await one.sharedEvents(10)).length === 1, 10_000, 'the shared events');
  t.same(await two.sharedEvents(10), [
    { at: 2000, backend: null, what: 'reload', who: '127.0.0.1', from: null, to: null, instance: 'one' },
    { at: 1000, backend: 'a', what: 'drain', who: '127.0.0.1', from: 'up', to: 'draining', instance: 'one' },
  ], 'the other instance\'s events, newest first, with the instance that made them');
  t.same((await one.sharedEvents(10)).map((e) => [e.what, e.instance]), [['enable', 'two']], 'its own are not read back (the instance lists them itself)');
  t.same((await two.sharedEvents(1)).map((e) => e.what), ['reload'], 'limit');

  const { mergeSharedEvents } = await import('../src/admin/events.js');
  const local = [{ time: new Date(2500).toISOString(), backend: 'a', from: 'up', to: 'down', cause: 'health check failed', kind: 'state' as const }];
  t.same(mergeSharedEvents(local, await two.sharedEvents(10), 'two', 10).map((e) => [e.cause, e.instance]), [
    ['health check failed', 'two'],
    ['admin reload by 127.0.0.1', 'one'],
    ['admin drain by 127.0.0.1', 'one'],
  ], 'merged with the local events by time, each with its instance');

  // The list is capped.
  const { Redis } = await import('ioredis');
  const probe = new Redis(redis.url);
  t.teardown(() => probe.disconnect());
  for (let i = 0; i < 520; i++) one.publishEvent({ at: 10_000 + i, backend: null, what: `e${i}`, who: 'x' });
  await waitFor(async () => (await two.sharedEvents(1))[0]?.what === 'e519', 10_000, 'the last of many events');
  t.equal(await probe.llen('servoy-lb:ev:events'), 500, 'at most 500 kept');
  probe.disconnect();

  // Redis gone: reading rejects at once with the one-sentence reason (the admin plane falls back to its own events).
  await redis.kill();
  await waitFor(() => !two.health().ok, 10_000, 'the store to see Redis gone');
  await t.rejects(two.sharedEvents(10), { name: 'SharedStateUnreachableError', message: /^shared state unreachable: Redis at / });
  await Promise.all([one.close(), two.close()]);
});
