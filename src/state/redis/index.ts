/**
 * Shared state in Redis for several balancer instances (issue 12, SPEC "Several
 * balancers"): standalone building blocks, each tested on a real redis-server
 * (test/redis-*.test.ts) and in pure tables. NOT wired into the balancer yet.
 *
 * The blocks (one concern each):
 * - redis-settings.ts     state.redis (URL, {url, pool}, Sentinel) -> ioredis options, key prefix, address for messages
 * - redis-keys.ts         every key and channel of a pool, in one table
 * - redis-connection.ts   command + subscriber connections: no offline queue, command timeout,
 *                         reconnect with backoff forever, observable up/down/since/lastError
 * - redis-errors.ts       SharedStateUnreachableError ("shared state unreachable: Redis at H:P: why; ...")
 * - redis-partitions.ts   first-writer-wins assignment (Lua), WAIT for a replica where there is one,
 *                         admin move, counts, local copy kept by pub/sub + periodic/reconnect resync;
 *                         assignments Redis lost are written back first-writer-wins
 * - redis-replication.ts  replicas from INFO replication; what WAIT said
 * - pool-changes.ts       pure: pool snapshot, change messages with versions, gap -> resync, config drift
 * - redis-pool-state.ts   the shared pool (backends, weights, admin states): Lua change + publish,
 *                         seeding from the config only at the pool's first start (marker key)
 * - redis-cookie-secret.ts  the generated secret, first instance wins (SET NX)
 * - redis-learned-sessions.ts  learned session ids, one expiring key each
 * - redis-session-counts.ts    per-instance counts with a TTL every ~1 s, summed over live instances
 * - local-copy.ts         the last shared state beside state.file (atomic temp + rename), to start with Redis down
 * - failure-policy.ts     pure: start from Redis / the copy / refuse; new key -> 503 Retry-After;
 *                         admin change -> refused; /healthz state
 *
 * How they are meant to be wired, behind the state-store seam (the interface over what
 * must be durable or shared, whose file implementation is the FileStateStore and the
 * PartitionStore): a RedisStateStore owns one RedisConnection (redisTarget(config.state.redis))
 * and one of each block on its keys (redisKeys(target.prefix)). At start it waits a short
 * while for Redis (waitUntilUp), reads the local copy, and applies startDecision; it seeds
 * the pool with the config's backends (RedisPoolState.seed: a no-op after the first start,
 * logging configDrift), takes sharedCookieSecret unless the config names one, and starts
 * the partitions' and the pool's sync. The router reads RedisPartitions.get (memory) and
 * on a miss asks newPartitionAnswer, then assign (one round trip, WAIT where there are
 * replicas); the pool follows RedisPoolState.onChange; bounded load, maxSessions and
 * `drained` read RedisSessionCounts.total; admin commands check adminRefusal and turn a
 * SharedStateUnreachableError into their error answer; /healthz and status show
 * stateHealth. Every resync also saves the LocalSharedCopy. With --workers, only the
 * primary talks to Redis and hands snapshots to its workers, as it does for the file
 * store today.
 *
 * What remains: that wiring (after the state-store seam and the control-plane split of
 * src/balancer.ts land), start-checks accepting state.redis, a test with two balancer
 * processes (and a --workers 2 one) on one Redis, and the bench of Redis mode against
 * file mode on the sticky path. Sentinel is tested with one real sentinel, a master and a
 * replica (connect, WAIT, a forced failover followed by the same connection); a failover
 * under load, with several sentinels, is not.
 */
export * from './failure-policy.js';
export * from './local-copy.js';
export * from './pool-changes.js';
export * from './redis-connection.js';
export * from './redis-cookie-secret.js';
export * from './redis-errors.js';
export * from './redis-keys.js';
export * from './redis-learned-sessions.js';
export * from './redis-partitions.js';
export * from './redis-pool-state.js';
export * from './redis-replication.js';
export * from './redis-session-counts.js';
export * from './redis-settings.js';
