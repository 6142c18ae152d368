/**
 * Shared state in Redis for several balancer instances (issue 12, SPEC "Several
 * balancers"): standalone building blocks, each tested on a real redis-server
 * (test/redis-*.test.ts) and in pure tables, wired into the balancer by
 * redis-state-store.ts (the StateStore of `state.redis`, chosen by src/control/startup.ts).
 *
 * The blocks (one concern each):
 * - redis-settings.ts     state.redis (URL, {url, pool}, Sentinel) -> ioredis options, key prefix, address for messages
 * - redis-keys.ts         every key and channel of a pool, in one table
 * - redis-connection.ts   command + subscriber connections: no offline queue, command timeout,
 *                         reconnect with backoff forever, observable up/down/since/lastError
 * - redis-errors.ts       SharedStateUnreachableError ("shared state unreachable: Redis at H:P: why; ...")
 * - redis-partitions.ts   first-writer-wins assignment (Lua), WAIT for a replica where there is one,
 *                         admin move, clearPrevious (a drained move settled), delete, counts; a local
 *                         copy kept by pub/sub + periodic/reconnect resync; assignments Redis lost
 *                         (an epoch key tells) are written back first-writer-wins
 * - redis-replication.ts  replicas from INFO replication; what WAIT said
 * - lua-script.ts         scripts by EVALSHA, the script itself only on NOSCRIPT
 * - pool-changes.ts       pure: pool snapshot, change messages with versions, gap -> resync, config drift
 * - redis-pool-state.ts   the shared pool (backends, weights, admin states): Lua change + publish,
 *                         seeding from the config only at the pool's first start (marker key)
 * - redis-cookie-secret.ts  the generated secret, first instance wins (SET NX)
 * - redis-learned-sessions.ts  learned session ids, one expiring key each
 * - redis-session-counts.ts    per-instance counts with a TTL every ~1 s, summed over live instances
 * - local-copy.ts         the last shared state beside state.file (atomic temp + rename), to start with Redis down
 * - failure-policy.ts     pure: start from Redis / the copy / refuse; new key -> 503 Retry-After;
 *                         admin change -> refused; /healthz state
 * - redis-shared-state.ts all of the above opened together with the start-up rule applied
 *                         (RedisSharedState.open -> ok + warnings, or the refusal sentence),
 *                         and the local copy saved whenever the shared state changed
 *
 * - redis-state-store.ts  the StateStore on top of RedisSharedState (records, partition table,
 *                         session counts every second, learned ids by pub/sub on sessions:changes)
 * - redis-partition-table.ts  the router's in-memory PartitionTable over the shared copy
 * - shared-records.ts     pure: the shared pool as records against the config file, and back
 *
 * How they are wired, behind the state-store seam (the interface over what
 * must be durable or shared, whose file implementation is the FileStateStore and the
 * PartitionStore): the Redis implementation calls RedisSharedState.open, which makes one
 * RedisConnection (redisTarget(config.state.redis)) and one of each block on
 * redisKeys(target.prefix), waits a short while for Redis, reads the local copy and
 * applies startDecision, seeds the pool with the config's backends (a no-op after the
 * first start; configDrift comes back as a warning to log), takes sharedCookieSecret
 * unless the config names one, and starts the pool's and the partitions' sync. Then:
 * - the router reads RedisPartitions.get (memory, no round trip); on a miss it asks
 *   newPartitionAnswer (503 + Retry-After while Redis is down), else assign (one round
 *   trip, WAIT where the master has replicas);
 * - the pool follows RedisPoolState.onChange; admin commands call setAdmin / setBackend /
 *   removeBackend, check adminRefusal first, and answer a SharedStateUnreachableError
 *   with its message;
 * - bounded load, maxSessions and `drained` add the other instances' counts, which the
 *   store exchanges every second (RedisSessionCounts.exchange) and reports per instance;
 * - a learned session id is stored (RedisLearnedSessions' key, with its expiry) and
 *   published; the other instances add it to their own table;
 * - /healthz and status show RedisSharedState.health (never a 503 for Redis alone);
 * - with --workers, the primary opens it and answers its workers as it does today
 *   (WorkerPartitions asks the primary): workers never talk to Redis.
 *
 * Tested end to end with two balancer processes (and a --workers 2 one) on one Redis
 * (test/redis-two-balancers*.test.ts, test/redis-workers.test.ts). Learned session ids
 * reach the other instances by pub/sub (the request path never looks one up in Redis);
 * an instance started later only knows the ids learned after it subscribed. Sentinel is tested with one real sentinel, a master and a
 * replica (connect, WAIT, a forced failover followed by the same connection); a failover
 * under load, with several sentinels, is not. Also open: shared events (the seam's event
 * log is not in Redis yet); what to do when WAIT is not acknowledged in time (assign
 * reports `unacknowledged`, the caller decides); `move` reads, then writes (two round
 * trips: fine for an admin command, not atomic against a concurrent move); Redis Cluster
 * is not supported (the scripts touch keys they compute, e.g. the per-instance counts).
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
export * from './redis-shared-state.js';
export * from './redis-settings.js';
