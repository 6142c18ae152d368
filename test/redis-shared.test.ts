/**
 * The smaller shared pieces on a real redis-server, two instances on one Redis: the
 * generated cookie secret (the first instance's wins, both use it), learned session ids
 * (one instance learns, the other finds it; it expires; Redis down answers "unknown" at
 * once), and session counts summed over the live instances (an instance that stops
 * cleanly drops out at once, one that dies drops out when its counts expire).
 */
import t from 'tap';
import { newCookieSecret, sharedCookieSecret } from '../src/state/redis/redis-cookie-secret.js';
import { SharedStateUnreachableError } from '../src/state/redis/redis-errors.js';
import { RedisLearnedSessions } from '../src/state/redis/redis-learned-sessions.js';
import { RedisSessionCounts } from '../src/state/redis/redis-session-counts.js';
import { waitFor } from './helpers/lb.js';
import { connectInstance, redisMissing, startRedis } from './helpers/redis.js';

const skip = redisMissing() ?? false;

t.test('the first instance\'s cookie secret is the one both use', { skip }, async (t) => {
  const redis = await startRedis(t);
  const one = await connectInstance(t, redis);
  const two = await connectInstance(t, redis);
  const mine = newCookieSecret();
  t.match(mine, /^[A-Za-z0-9_-]{43}$/, '32 random bytes');
  const [a, b] = await Promise.all([sharedCookieSecret(one.conn, one.keys, mine), sharedCookieSecret(two.conn, two.keys)]);
  t.equal(a, b, 'both got the same secret');
  t.equal(await sharedCookieSecret(two.conn, two.keys), a, 'and keep getting it');
  await redis.kill();
  await waitFor(() => !one.conn.state.up, 10_000, 'down');
  await t.rejects(sharedCookieSecret(one.conn, one.keys), SharedStateUnreachableError, 'Redis down: typed error (the caller uses its local copy)');
});

t.test('learned session ids are shared and expire', { skip }, async (t) => {
  const redis = await startRedis(t);
  const one = await connectInstance(t, redis);
  const two = await connectInstance(t, redis);
  const A = new RedisLearnedSessions(one.conn, one.keys, 60_000);
  const B = new RedisLearnedSessions(two.conn, two.keys, 60_000);
  await A.learn('ABC123', 'a');
  t.equal(await B.lookup('ABC123'), 'a', 'B finds what A learned');
  t.equal(await B.lookup('nope'), undefined);
  await B.forget('ABC123');
  t.equal(await A.lookup('ABC123'), undefined, 'forgotten for both');

  const short = new RedisLearnedSessions(one.conn, one.keys, 50);
  await short.learn('SHORT', 'b');
  await waitFor(async () => (await B.lookup('SHORT')) === undefined, 10_000, 'the session id to expire');
  t.pass('expired');

  // Redis frozen: the lookup gives up after the command timeout and says "unknown".
  await A.learn('FROZEN', 'a');
  redis.pause();
  t.equal(await A.lookup('FROZEN'), undefined, 'no answer in time: unknown');
  redis.resume();

  await redis.kill();
  await waitFor(() => !one.conn.state.up, 10_000, 'down');
  t.equal(await A.lookup('ABC123'), undefined, 'Redis down: unknown, at once');
  await t.rejects(A.learn('X', 'a'), SharedStateUnreachableError);
});

t.test('session counts are summed over live instances and leave when an instance stops', { skip }, async (t) => {
  const redis = await startRedis(t);
  const one = await connectInstance(t, redis);
  const two = await connectInstance(t, redis);
  const three = await connectInstance(t, redis);
  const A = new RedisSessionCounts(one.conn, one.keys, 'A', { everyMs: 100, ttlMs: 1000 });
  const B = new RedisSessionCounts(two.conn, two.keys, 'B', { everyMs: 100, ttlMs: 1000 });
  const C = new RedisSessionCounts(three.conn, three.keys, 'C', { everyMs: 100, ttlMs: 1000 });
  let aCounts = new Map([['s1', 3], ['s2', 1]]);
  A.start(() => aCounts);
  B.start(() => new Map([['s1', 2]]));
  C.start(() => new Map());
  t.teardown(() => Promise.all([A.stop(), B.stop(), C.stop()]));

  const totalIs = (want: Record<string, number>) => () => JSON.stringify(Object.fromEntries([...C.total].sort())) === JSON.stringify(want);
  await waitFor(totalIs({ s1: 5, s2: 1 }), 10_000, 'the sum of A and B as C reads it');
  t.same([...C.byInstance.keys()].sort(), ['A', 'B', 'C'], 'an instance without sessions is live too');
  aCounts = new Map([['s1', 4]]);
  await waitFor(totalIs({ s1: 6 }), 10_000, "A's new counts");

  await B.stop();
  await waitFor(totalIs({ s1: 4 }), 10_000, 'B gone at once after a clean stop');
  await A.stop(false);
  await waitFor(totalIs({}), 10_000, "A's counts to expire (stopped without cleaning: as if it died)");
  t.same([...C.byInstance.keys()], ['C'], 'only C is left');
  t.same(await three.conn.run((c) => c.smembers(three.keys.countInstances)), ['C'], 'the instance set is pruned');

  const defaults = new RedisSessionCounts(three.conn, three.keys, 'D');
  t.same(Object.fromEntries(await defaults.exchange(new Map([['s9', 1]]))), { s9: 1 }, 'one exchange with the default timing');
  t.ok((await three.conn.run((c) => c.pttl(three.keys.counts('D')))) > 1000, 'written with the default expiry (5 s)');
  await defaults.stop();

  await C.stop(false); // no tick of its own from here on
  const last = Object.fromEntries(C.total);
  await redis.kill();
  await waitFor(() => !three.conn.state.up, 10_000, 'down');
  await t.rejects(C.exchange(new Map()), SharedStateUnreachableError, 'an exchange while down fails typed (the timer skips it)');
  t.same(Object.fromEntries(C.total), last, 'the last sum is kept');
});
