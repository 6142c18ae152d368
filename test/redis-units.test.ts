/**
 * The pure parts of src/state/redis/ in tables (no Redis, no sockets): state.redis in the
 * config (URL, {url, pool}, Sentinel) and what it connects to, key names, the wording of
 * client errors, replicas and WAIT answers, the pool's change messages and how they apply
 * (a gap means a resync), config drift, stored records that do not parse, summed session
 * counts, reconnect backoff, the local copy (atomic file, damaged copies), and the
 * failure decisions: start from Redis, the copy or refuse; new partition key 503; admin
 * changes refused; /healthz state.
 */
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfigText } from '../src/config/load.js';
import type { BackendConfig, RedisSettings } from '../src/config/schema.js';
import { adminRefusal, newPartitionAnswer, startDecision, stateHealth } from '../src/state/redis/failure-policy.js';
import { copyFrom, LocalSharedCopy, localCopyFile, parseCopy, partitionsOf, type SharedCopy } from '../src/state/redis/local-copy.js';
import { applyChange, configDrift, EMPTY_POOL, parseAdmin, parseEntry, parsePoolChange, snapshotFrom, type PoolSnapshot } from '../src/state/redis/pool-changes.js';
import { reconnectDelay } from '../src/state/redis/redis-connection.js';
import { describeRedisError, isConnectionFailure, SharedStateUnreachableError } from '../src/state/redis/redis-errors.js';
import { redisKeys } from '../src/state/redis/redis-keys.js';
import { parsePartition, parsePartitionChange } from '../src/state/redis/redis-partitions.js';
import { connectedReplicas, replicaAck } from '../src/state/redis/redis-replication.js';
import { groupCounts, sumCounts } from '../src/state/redis/redis-session-counts.js';
import { parseHostPort, redact, redisTarget } from '../src/state/redis/redis-settings.js';
import * as index from '../src/state/redis/index.js';

const minimal = { backends: [{ id: 'a', url: 'http://127.0.0.1:8080' }] };

function stateOf(redis: unknown): { ok: true; redis: RedisSettings } | { ok: false; problems: string[] } {
  try {
    const config = parseConfigText(JSON.stringify({ ...minimal, state: { redis } }), { env: { PW: 'pw' }, baseDir: '/etc' });
    return { ok: true, redis: (config.state as { redis: RedisSettings }).redis };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, problems: err.problems };
    throw err;
  }
}

t.test('state.redis in the config: a URL, {url, pool} or Sentinel', async (t) => {
  const cases: { desc: string; redis: unknown; want?: unknown; problems?: string[] }[] = [
    { desc: 'a URL (the form of earlier versions)', redis: 'redis://10.0.0.5:6379/0', want: 'redis://10.0.0.5:6379/0' },
    { desc: 'a URL with a pool', redis: { url: 'rediss://r:6380', pool: 'eu' }, want: { url: 'rediss://r:6380', pool: 'eu' } },
    {
      desc: 'sentinel, defaults filled',
      redis: { sentinels: ['s1:26379', '[::1]:26380'], masterName: 'mymaster', password: '${PW}' },
      want: { sentinels: ['s1:26379', '[::1]:26380'], masterName: 'mymaster', password: 'pw', db: 0, tls: false },
    },
    { desc: 'not a redis URL', redis: 'http://x', problems: ['state.redis: expected a redis:// URL'] },
    { desc: 'url not a redis URL', redis: { url: 'http://x' }, problems: ['state.redis.url: expected a redis:// URL'] },
    { desc: 'a bad pool', redis: { url: 'redis://x', pool: 'a b' }, problems: ['state.redis.pool: use 1-64 letters, digits, "_" or "-"'] },
    { desc: 'sentinel without master name', redis: { sentinels: ['s1:26379'] }, problems: ['state.redis.masterName: missing (required)'] },
    { desc: 'sentinel not host:port', redis: { sentinels: ['s1'], masterName: 'm' }, problems: ['state.redis.sentinels[0]: expected "host:port"'] },
    { desc: 'no sentinel', redis: { sentinels: [], masterName: 'm' }, problems: ['state.redis.sentinels: must not be empty'] },
  ];
  for (const c of cases) {
    const got = stateOf(c.redis);
    if (c.problems !== undefined) t.same(got, { ok: false, problems: c.problems }, c.desc);
    else t.same(got, { ok: true, redis: c.want }, c.desc);
  }
  const unknown = stateOf({ url: 'redis://x', sentinel: [] });
  t.equal(unknown.ok, false, 'an unknown key is an error');
  t.same(stateOf(5), { ok: false, problems: ['state.redis: expected a string or an object, got number'] }, 'neither a URL nor an object');
});

t.test('redisTarget: what to connect to, the address for messages, the key prefix', async (t) => {
  const cases: { desc: string; settings: RedisSettings; want: unknown }[] = [
    { desc: 'plain URL', settings: 'redis://10.0.0.5', want: { options: { host: '10.0.0.5', port: 6379, db: 0 }, address: '10.0.0.5:6379', prefix: 'servoy-lb:default:' } },
    {
      desc: 'user, password, db, TLS',
      settings: { url: 'rediss://lb:p%40ss@r.example:6380/2', pool: 'eu' },
      want: { options: { host: 'r.example', port: 6380, db: 2, username: 'lb', password: 'p@ss', tls: { servername: 'r.example' } }, address: 'r.example:6380', prefix: 'servoy-lb:eu:' },
    },
    { desc: '{url} without a pool', settings: { url: 'redis://h:1/3' }, want: { options: { host: 'h', port: 1, db: 3 }, address: 'h:1', prefix: 'servoy-lb:default:' } },
    { desc: 'IPv6', settings: 'redis://[::1]:7000', want: { options: { host: '::1', port: 7000, db: 0 }, address: '[::1]:7000', prefix: 'servoy-lb:default:' } },
    {
      desc: 'sentinel',
      settings: { sentinels: ['s1:26379', '[::1]:26380'], masterName: 'mymaster', db: 1, tls: true, username: 'u', password: 'p', sentinelPassword: 'sp', pool: 'p1' },
      want: {
        options: { sentinels: [{ host: 's1', port: 26379 }, { host: '::1', port: 26380 }], name: 'mymaster', db: 1, username: 'u', password: 'p', sentinelPassword: 'sp', tls: {} },
        address: 'master mymaster via sentinels s1:26379, [::1]:26380',
        prefix: 'servoy-lb:p1:',
      },
    },
    { desc: 'sentinel, minimal', settings: { sentinels: ['s:1'], masterName: 'm', db: 0, tls: false }, want: { options: { sentinels: [{ host: 's', port: 1 }], name: 'm', db: 0 }, address: 'master m via sentinels s:1', prefix: 'servoy-lb:default:' } },
  ];
  for (const c of cases) t.same(redisTarget(c.settings), { ok: true, target: c.want }, c.desc);
  const bad: [string, RedisSettings, string][] = [
    ['not a URL', 'redis://a b', 'state.redis: redis://a b is not a valid URL'],
    ['no host', 'redis://', 'state.redis: redis:// names no host'],
    ['db not a number, password hidden', 'redis://u:secret@h/x', 'state.redis: the database in redis://u:***@h/x must be a number (redis://host:port/0)'],
  ];
  for (const [desc, settings, error] of bad) t.same(redisTarget(settings), { ok: false, error }, desc);
  t.equal(redact('redis://:pw@h:1/0'), 'redis://:***@h:1/0');
  t.equal(redact('redis://h:1/0'), 'redis://h:1/0');
  t.same(parseHostPort('[fe80::1]:26379'), { host: 'fe80::1', port: 26379 });
});

t.test('keys of a pool', async (t) => {
  const k = redisKeys('servoy-lb:eu:');
  t.equal(k.partitions, 'servoy-lb:eu:partitions');
  t.equal(k.session('ABC'), 'servoy-lb:eu:session:ABC');
  t.equal(k.counts('host-1'), 'servoy-lb:eu:counts:host-1');
  t.ok(Object.values(k).every((v) => typeof v === 'function' || v.startsWith('servoy-lb:eu:')), 'every key under the prefix');
});

t.test('client errors in a few words; connection failures told from reply errors', async (t) => {
  const reply = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' });
  const cases: [unknown, string, boolean][] = [
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'connection refused', true],
    [{ code: 'ECONNRESET' }, 'connection reset', true],
    [{ code: 'ETIMEDOUT' }, 'connection timed out', true],
    [{ code: 'ENOTFOUND' }, 'host not found', true],
    [{ code: 'EAI_AGAIN' }, 'host not found', true],
    [{ code: 'EHOSTUNREACH' }, 'host unreachable', true],
    [{ code: 'ENETUNREACH' }, 'host unreachable', true],
    [new Error('Command timed out'), 'no answer in time', true],
    [new Error('Connection is closed.'), 'not connected', true],
    [new Error("Stream isn't writeable and enableOfflineQueue options is false"), 'not connected', true],
    [Object.assign(new Error('Reached the max retries per request limit'), { name: 'MaxRetriesPerRequestError' }), 'not connected', true],
    [new Error('All sentinels are unreachable. Retrying from scratch after 10ms. Last error: Connection is closed.'), 'all sentinels unreachable', true],
    [new Error('something else\nsecond line'), 'something else', true],
    ['a string', 'a string', true],
    [undefined, 'undefined', true],
    [reply('WRONGTYPE Operation against a key holding the wrong kind of value'), 'WRONGTYPE Operation against a key holding the wrong kind of value', false],
    [reply('LOADING Redis is loading the dataset in memory'), 'LOADING Redis is loading the dataset in memory', true],
    [reply('READONLY You can\'t write against a read only replica.'), "READONLY You can't write against a read only replica.", true],
  ];
  for (const [err, words, connection] of cases) {
    t.equal(describeRedisError(err), words, words);
    t.equal(isConnectionFailure(err), connection, `${words}: connection failure ${connection}`);
  }
  const e = new SharedStateUnreachableError('10.0.0.5:6379', 'connection refused');
  t.equal(e.message, 'shared state unreachable: Redis at 10.0.0.5:6379: connection refused; try again when it is back');
  t.equal(e.name, 'SharedStateUnreachableError');
  t.equal(e.code, 'SHARED_STATE_UNREACHABLE');
});

t.test('replicas and WAIT', async (t) => {
  t.equal(connectedReplicas('# Replication\r\nrole:master\r\nconnected_slaves:2\r\n'), 2);
  t.equal(connectedReplicas('role:master\r\nconnected_slaves:0\r\n'), 0);
  t.equal(connectedReplicas('role:slave\r\nmaster_host:x\r\n'), 0, 'a replica has none to wait for');
  t.equal(connectedReplicas('role:master\r\n'), 0, 'unreadable: none');
  t.same(replicaAck(undefined, 500), { kind: 'none' });
  t.same(replicaAck(1, 500), { kind: 'acknowledged', replicas: 1 });
  t.same(replicaAck(0, 500), { kind: 'unacknowledged', waitedMs: 500 });
});

t.test('reconnect backoff: 100 ms doubling to the cap, with jitter', async (t) => {
  t.same([1, 2, 3, 4, 5, 6, 50].map((n) => reconnectDelay(n, 2000, () => 0)), [100, 200, 400, 800, 1600, 2000, 2000]);
  t.equal(reconnectDelay(0, 2000, () => 0), 100);
  t.equal(reconnectDelay(1, 2000, () => 1), 110, 'up to 10% jitter');
  t.ok(reconnectDelay(3, 2000) >= 400 && reconnectDelay(3, 2000) <= 440);
});

const b = (id: string, weight = 1): BackendConfig => ({ id, url: `http://h/${id}`, weight }) as BackendConfig;
const entry = (at: number, backend: BackendConfig): string => JSON.stringify({ at, backend });

t.test('pool change messages and how they apply', async (t) => {
  t.same(parsePoolChange('3\nset-admin\ns1\n{"admin":"draining"}'), { version: 3, op: 'set-admin', id: 's1', value: '{"admin":"draining"}' });
  t.same(parsePoolChange('4\nseed\n\n'), { version: 4, op: 'seed', id: '', value: '' });
  t.same(parsePoolChange('5\nremove-backend\ns1'), { version: 5, op: 'remove-backend', id: 's1', value: '' });
  for (const bad of ['', 'x\nseed\n\n', '0\nseed\n\n', '1\nexplode\ns1\n', '1']) t.equal(parsePoolChange(bad), undefined, `not a change: ${JSON.stringify(bad)}`);

  t.same(parseEntry(entry(1, b('s1'))), { at: 1, backend: b('s1') });
  for (const bad of ['nope', 'null', '{"at":"1","backend":{"id":"a","url":"u"}}', '{"at":1,"backend":{"id":"a"}}', '{"at":1}']) t.equal(parseEntry(bad), undefined, `not an entry: ${bad}`);
  t.same(parseAdmin('{"admin":"disabled"}'), { admin: 'disabled' });
  for (const bad of ['nope', 'null', '{"admin":"ready"}']) t.equal(parseAdmin(bad), undefined, `not an admin record: ${bad}`);

  const pool = snapshotFrom(7, { s2: entry(1, b('s2')), s1: entry(0, b('s1')), s0: entry(1, b('s0')), bad: 'x' }, { s1: '{"admin":"draining","since":5}', gone: '{"admin":"disabled"}', s2: 'bad' });
  t.same(pool, { version: 7, backends: [b('s1'), b('s0'), b('s2')], admin: { s1: { admin: 'draining', since: 5 } } }, 'ordered by join order then id; unknown and garbled skipped');

  const cases: [string, string, PoolSnapshot | 'resync' | 'ignore'][] = [
    ['an old version', '7\nset-admin\ns1\n', 'ignore'],
    ['a gap', '9\nset-admin\ns1\n', 'resync'],
    ['a seed', '8\nseed\n\n', 'resync'],
    ['set-backend, unparsable', '8\nset-backend\ns9\nnope', 'resync'],
    ['set-admin, unparsable', '8\nset-admin\ns1\nnope', 'resync'],
    ['a new backend joins at the end', `8\nset-backend\ns9\n${entry(1000008, b('s9'))}`, { version: 8, backends: [b('s1'), b('s0'), b('s2'), b('s9')], admin: pool.admin }],
    ['a changed backend keeps its place', `8\nset-backend\ns0\n${entry(1, b('s0', 5))}`, { version: 8, backends: [b('s1'), b('s0', 5), b('s2')], admin: pool.admin }],
    ['a removed backend loses its admin state', '8\nremove-backend\ns1\n', { version: 8, backends: [b('s0'), b('s2')], admin: {} }],
    ['ready clears the admin state', '8\nset-admin\ns1\n', { version: 8, backends: pool.backends, admin: {} }],
    ['disabled', '8\nset-admin\ns2\n{"admin":"disabled"}', { version: 8, backends: pool.backends, admin: { ...pool.admin, s2: { admin: 'disabled' } } }],
  ];
  for (const [desc, message, want] of cases) t.same(applyChange(pool, parsePoolChange(message)!), want, desc);
  t.same(EMPTY_POOL, { version: 0, backends: [], admin: {} });
});

t.test('configDrift words the difference between the config file and the shared pool', async (t) => {
  const shared: PoolSnapshot = { version: 1, backends: [b('a'), b('b')], admin: {} };
  t.equal(configDrift([b('b'), b('a')], shared), undefined, 'the same ids: nothing to say');
  t.equal(configDrift([b('a'), b('c')], shared), 'the config file lists c, which the shared pool does not have and the shared pool has b, which the config file does not list; the shared pool in Redis is used (change it with servoy-lb backends add/remove, which every instance follows)');
  t.match(configDrift([b('a'), b('b'), b('c')], shared), /^the config file lists c, which the shared pool does not have; /);
  t.match(configDrift([b('a')], shared), /^the shared pool has b, which the config file does not list; /);
});

t.test('stored partitions and their messages are checked, never trusted', async (t) => {
  t.same(parsePartition('{"backend":"a","assignedAt":1}'), { backend: 'a', assignedAt: 1 });
  for (const bad of ['nope', 'null', '{"backend":1,"assignedAt":1}', '{"backend":"a"}']) t.equal(parsePartition(bad), undefined, bad);
  t.same(parsePartitionChange('{"key":"k","partition":{"backend":"a","assignedAt":1}}'), { key: 'k', partition: { backend: 'a', assignedAt: 1 } });
  t.same(parsePartitionChange('{"key":"k","deleted":true}'), { key: 'k', deleted: true });
  for (const bad of ['nope', 'null', '{"partition":{"backend":"a","assignedAt":1}}', '{"key":"k"}', '{"key":"k","partition":{"backend":"a"}}']) t.equal(parsePartitionChange(bad), undefined, bad);
});

t.test('session counts: grouped by instance and summed', async (t) => {
  const grouped = groupCounts(['A', 's1', '3', 'A', 's2', '1', 'B', 's1', '2', 'B', 's3', 'x', 'C']);
  t.same([...grouped].map(([i, c]) => [i, Object.fromEntries(c)]), [['A', { s1: 3, s2: 1 }], ['B', { s1: 2 }]], 'a count that is no number is skipped, a cut-off triple ignored');
  t.same(Object.fromEntries(sumCounts(grouped)), { s1: 5, s2: 1 });
  t.same(Object.fromEntries(sumCounts(new Map())), {});
});

const copy = (over: Partial<SharedCopy> = {}): SharedCopy => ({
  version: 1,
  savedAt: 1_000_000,
  pool: { version: 3, backends: [b('a')], admin: { a: { admin: 'draining', since: 2 } } },
  partitions: { acme: { backend: 'a', assignedAt: 1 } },
  cookieSecret: 'secret',
  ...over,
});

t.test('the local copy: atomic writes, private, damaged copies reported', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-redis-copy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = localCopyFile(join(dir, 'servoy-lb.state.json'));
  t.equal(file, join(dir, 'servoy-lb.state.json.shared'), 'beside state.file');
  const store = new LocalSharedCopy(file);
  t.same(await store.read(), { kind: 'missing' });
  await Promise.all([store.save(copy({ savedAt: 1 })), store.save(copy({ savedAt: 2 })), store.save(copy())]);
  t.same(await store.read(), { kind: 'ok', copy: copy() }, 'saves land in call order');
  t.equal(statSync(file).mode & 0o777, 0o600, 'private: it holds the secret');
  t.same(readdirSync(dir), ['servoy-lb.state.json.shared'], 'no temp file left');
  t.match(readFileSync(file, 'utf8'), /\n$/);

  const cases: [string, string, string][] = [
    ['empty', '', 'empty'],
    ['garbage', 'garbage', 'not JSON'],
    ['another version', '{"version":2}', 'not a copy of version 1'],
    ['null', 'null', 'not a copy of version 1'],
    ['no pool', JSON.stringify({ ...copy(), pool: undefined }), 'pool or savedAt missing'],
    ['no savedAt', JSON.stringify({ ...copy(), savedAt: 'x' }), 'pool or savedAt missing'],
    ['admin null', JSON.stringify({ ...copy(), pool: { version: 1, backends: [], admin: null } }), 'pool or savedAt missing'],
    ['partitions a list', JSON.stringify({ ...copy(), partitions: [] }), 'partitions missing'],
    ['secret a number', JSON.stringify({ ...copy(), cookieSecret: 5 }), 'cookieSecret is not a string'],
    ['epoch a number', JSON.stringify({ ...copy(), partitionsEpoch: 5 }), 'partitionsEpoch is not a string'],
  ];
  for (const [desc, text, reason] of cases) {
    writeFileSync(file, text);
    t.same(await store.read(), { kind: 'damaged', reason }, desc);
  }
  t.same(parseCopy(JSON.stringify(copy({ pool: { version: 1, backends: [b('a'), { id: 'x' } as BackendConfig], admin: {} } }))), { kind: 'ok', copy: copy({ pool: { version: 1, backends: [b('a')], admin: {} } }) }, 'a backend without url is dropped');

  const unreadable = new LocalSharedCopy(dir);
  t.match(await unreadable.read(), { kind: 'damaged', reason: /^cannot read it \(EISDIR\)$/ });
  const nowhere = new LocalSharedCopy(join(dir, 'missing-dir', 'copy'));
  await t.rejects(nowhere.save(copy()), { code: 'ENOENT' });
  const blocked = new LocalSharedCopy(join(dir, 'a-dir'));
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'a-dir', 'inside'), { recursive: true });
  await t.rejects(blocked.save(copy()), 'cannot rename over a directory');
  t.notOk(readdirSync(dir).some((f) => f.endsWith('.tmp')), 'the temp file is removed after a failed rename');
});

t.test('a copy of what an instance knows, and back', async (t) => {
  const c = copy();
  const made = copyFrom(c.pool, partitionsOf(c), 'secret', undefined, c.savedAt);
  t.same(made, c, 'round trip');
  t.same(copyFrom(c.pool, new Map(), undefined, 'e1', 5), { version: 1, savedAt: 5, pool: c.pool, partitions: {}, partitionsEpoch: 'e1' }, 'no secret: none written; the epoch kept');
});

t.test('failure decisions', async (t) => {
  const down = { up: false, since: 1000, lastError: 'connection refused' };
  const up = { up: true, since: 1000 };
  const copyFile = '/var/lib/servoy-lb/state.json.shared';

  t.same(startDecision(true, 'r:6379', undefined, { kind: 'missing' }, copyFile), { kind: 'redis' });
  t.same(startDecision(false, 'r:6379', 'connection refused', { kind: 'ok', copy: copy() }, copyFile, 1_060_400), {
    kind: 'local-copy',
    copy: copy(),
    warning: `Redis at r:6379 is unreachable (connection refused); serving from the local copy of the shared state ${copyFile} (saved 60 s ago) until it is back: new partition keys get 503 and admin changes are refused meanwhile`,
  });
  t.same(startDecision(false, 'r:6379', undefined, { kind: 'missing' }, copyFile), {
    kind: 'refuse',
    error: `cannot start: Redis at r:6379 is unreachable (no answer) and there is no local copy of the shared state (${copyFile}); start Redis (or fix state.redis) and try again`,
  });
  t.same(startDecision(false, 'r:6379', 'host not found', { kind: 'damaged', reason: 'not JSON' }, copyFile), {
    kind: 'refuse',
    error: `cannot start: Redis at r:6379 is unreachable (host not found) and the local copy of the shared state ${copyFile} is damaged (not JSON); start Redis (or fix state.redis) and try again`,
  });

  t.same(newPartitionAnswer(up, 'r:6379'), { kind: 'assign' });
  t.same(newPartitionAnswer(down, 'r:6379'), { kind: 'retry-later', status: 503, retryAfterSeconds: 5, reason: 'new partition key while Redis at r:6379 is unreachable (connection refused)' });
  t.match(newPartitionAnswer({ up: false, since: 0 }, 'r:6379', 2), { retryAfterSeconds: 2, reason: /\(not connected\)$/ });

  t.equal(adminRefusal(up, 'r:6379'), undefined);
  t.equal(adminRefusal(down, 'r:6379')?.message, 'shared state unreachable: Redis at r:6379: connection refused; try again when it is back');
  t.equal(adminRefusal({ up: false, since: 0 }, 'r:6379')?.reason, 'not connected');

  t.same(stateHealth(up, 'r:6379'), { kind: 'redis', ok: true });
  t.same(stateHealth(down, 'r:6379', 13_000), { kind: 'redis', ok: false, reason: 'Redis at r:6379 unreachable for 12 s (connection refused); serving from the last known shared state' });
  t.match(stateHealth({ up: false, since: 5000 }, 'r:6379', 0), { reason: /unreachable for 0 s \(not connected\)/ });
});

t.test('the index exports every block', async (t) => {
  for (const name of ['RedisConnection', 'RedisPartitions', 'RedisPoolState', 'RedisSessionCounts', 'RedisLearnedSessions', 'LocalSharedCopy', 'sharedCookieSecret', 'startDecision', 'redisTarget', 'redisKeys']) {
    t.ok(name in index, name);
  }
});
