/**
 * RedisPartitions: the partition assignments of partition mode, shared by every instance
 * of the pool (SPEC "Several balancers"): the first instance to assign a new key wins,
 * atomically (a Lua script: read, set if absent, count, publish, in one step), and every
 * instance routes it the same.
 *
 * The request path never waits for Redis for a known key: each instance keeps a full copy
 * (`get`), filled by a full read at start (`resync`), kept current by the change channel,
 * and read again in full every `resyncEveryMs` and after the subscriber reconnects, so a
 * missed message cannot leave an instance wrong for long. Only a key this instance has
 * not seen pays a round trip (`assign`), and where the master has replicas the new
 * assignment waits for one to acknowledge it (`WAIT 1 <ms>`) before it is used, so a
 * Sentinel failover cannot forget it.
 *
 * Redis down: `get` goes on answering from the copy; `assign` and `move` throw a
 * SharedStateUnreachableError at once (the router answers a new key 503 + Retry-After:
 * a tenant is never placed on two servers).
 */
import { randomUUID } from 'node:crypto';
import { followChannel } from './follow-channel.js';
import { LuaScript } from './lua-script.js';
import type { RedisConnection } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';
import { connectedReplicas, replicaAck, type ReplicaAck } from './redis-replication.js';

/** SharedPartition is one assignment as stored (the key is the hash field). */
export interface SharedPartition {
  readonly backend: string;
  /** When it was first assigned (ms since epoch). */
  readonly assignedAt: number;
  /** The backend before the last move. */
  readonly previous?: string;
  /** When it was last moved. */
  readonly movedAt?: number;
  /** Moved with --drain: sessions on `previous` finish there. */
  readonly drainPrevious?: boolean;
}

/** AssignResult is the winner for a key and whether this call made the assignment. */
export interface AssignResult {
  readonly partition: SharedPartition;
  /** True when this call assigned the key; false when another instance (or an earlier call) had. */
  readonly created: boolean;
  /** Only for created assignments: what the replicas said. */
  readonly ack: ReplicaAck;
}

/** PartitionOptions tune the sync; the defaults suit production. */
export interface PartitionOptions {
  /** How long a new assignment waits for a replica's acknowledgement (default 500 ms). */
  waitMs?: number;
  /** Full read this often (default 10 s). */
  resyncEveryMs?: number;
}

// KEYS: partitions, counts, channel. ARGV: key, record JSON, backend.
const ASSIGN = new LuaScript(`
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then return {0, current} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('PUBLISH', KEYS[3], '{"key":' .. cjson.encode(ARGV[1]) .. ',"partition":' .. ARGV[2] .. '}')
return {1, ARGV[2]}
`);

// KEYS: partitions, counts, channel. ARGV: key, record JSON, new backend. Returns the previous record or false.
const MOVE = new LuaScript(`
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local old = cjson.decode(current)['backend']
  if redis.call('HINCRBY', KEYS[2], old, -1) <= 0 then redis.call('HDEL', KEYS[2], old) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('PUBLISH', KEYS[3], '{"key":' .. cjson.encode(ARGV[1]) .. ',"partition":' .. ARGV[2] .. '}')
return current
`);

// KEYS: partitions, counts, channel. ARGV: key. Returns 1 when the key was assigned, else 0.
const DELETE = new LuaScript(`
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
local old = cjson.decode(current)['backend']
if redis.call('HINCRBY', KEYS[2], old, -1) <= 0 then redis.call('HDEL', KEYS[2], old) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[3], '{"key":' .. cjson.encode(ARGV[1]) .. ',"deleted":true}')
return 1
`);

/** parsePartition reads a stored record; undefined when it is not one (never trusted blindly). */
export function parsePartition(text: string): SharedPartition | undefined {
  try {
    const value = JSON.parse(text) as Partial<SharedPartition> | null;
    if (typeof value?.backend !== 'string' || typeof value.assignedAt !== 'number') return undefined;
    return value as SharedPartition;
  } catch {
    return undefined;
  }
}

/** PartitionChange is one message of the change channel: a key's new record, or its deletion. */
export type PartitionChange = { key: string; partition: SharedPartition } | { key: string; deleted: true };

/** parsePartitionChange reads a message of the change channel. */
export function parsePartitionChange(text: string): PartitionChange | undefined {
  try {
    const value = JSON.parse(text) as { key?: unknown; partition?: unknown; deleted?: unknown } | null;
    if (typeof value?.key !== 'string') return undefined;
    if (value.deleted === true) return { key: value.key, deleted: true };
    const partition = parsePartition(JSON.stringify(value.partition));
    return partition === undefined ? undefined : { key: value.key, partition };
  } catch {
    return undefined;
  }
}

/** samePartition compares two records field by field (JSON order may differ between writers). */
function samePartition(a: SharedPartition | undefined, b: SharedPartition): boolean {
  return a !== undefined && a.backend === b.backend && a.assignedAt === b.assignedAt && a.movedAt === b.movedAt && a.previous === b.previous && a.drainPrevious === b.drainPrevious;
}

/** RedisPartitions is the shared assignment table with a local copy; see the file comment. */
export class RedisPartitions {
  #copy = new Map<string, SharedPartition>();
  #replicas = 0;
  /** Stops following the channel (see follow-channel.ts); nothing to stop before start(). */
  #stopFollowing: () => void = () => undefined;
  readonly #waitMs: number;
  readonly #resyncEveryMs: number;
  #lastResync = 0;
  readonly #listeners = new Set<() => void>();
  /** The epoch of the Redis data the copy came from (undefined: not read from Redis yet). */
  #epoch: string | undefined;
  /** Keys changed by this instance or a message while a resync reads: newer than what it read. */
  #touched: Set<string> | undefined;

  constructor(
    readonly conn: RedisConnection,
    readonly keys: RedisKeys,
    opts: PartitionOptions = {},
  ) {
    this.#waitMs = opts.waitMs ?? 500;
    this.#resyncEveryMs = opts.resyncEveryMs ?? 10_000;
  }

  /**
   * start subscribes to changes, reads everything once (when Redis is up) and then every
   * `resyncEveryMs` and after a reconnect. `initial` is a copy to serve from meanwhile
   * (the local copy of the last shared state when Redis is down at start), and `epoch`
   * the epoch it was read under (see resync).
   */
  async start(initial?: ReadonlyMap<string, SharedPartition>, epoch?: string): Promise<void> {
    if (initial !== undefined) this.#copy = new Map(initial);
    this.#epoch = epoch;
    this.#stopFollowing = await followChannel(this.conn, {
      channel: this.keys.partitionChanges,
      onMessage: (message) => this.#onMessage(message),
      resync: () => this.resync(),
      everyMs: this.#resyncEveryMs,
    });
  }

  /** stop ends the timers and listeners (the connection is the caller's). */
  stop(): void {
    this.#stopFollowing();
    this.#stopFollowing = () => undefined;
    this.#listeners.clear();
  }

  /** onChange calls fn whenever the local copy changed (a message, an assignment, a move, a resync that found a difference). */
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** get is the request path's read: the local copy, no Redis round trip. */
  get(key: string): SharedPartition | undefined {
    return this.#copy.get(key);
  }

  /** size is how many assignments the local copy holds. */
  get size(): number {
    return this.#copy.size;
  }

  /** snapshot is the whole local copy (for the local copy file and the admin list). */
  snapshot(): ReadonlyMap<string, SharedPartition> {
    return this.#copy;
  }

  /** lastResync is when the last full read finished (ms since epoch; 0 before the first). */
  get lastResync(): number {
    return this.#lastResync;
  }

  /** replicas is the number of replicas the master had at the last check. */
  get replicas(): number {
    return this.#replicas;
  }

  /** epoch identifies the Redis data the copy was last read from (kept in the local copy file). */
  get epoch(): string | undefined {
    return this.#epoch;
  }

  /** delete forgets a key's assignment everywhere (its next request is a new partition); false when it had none. */
  async delete(key: string): Promise<boolean> {
    const deleted = Number(await this.conn.run((c) => DELETE.run(c, this.#scriptKeys(), [key]))) === 1;
    this.#remove(key);
    return deleted;
  }

  /**
   * clearPrevious forgets where a key was before its last move (the sessions left on
   * the old backend after a move with --drain have ended); undefined when the key has none.
   */
  async clearPrevious(key: string): Promise<SharedPartition | undefined> {
    const stored = await this.conn.run((c) => c.hget(this.keys.partitions, key));
    const current = stored === null ? undefined : parsePartition(stored);
    if (current === undefined) return undefined;
    const { previous: _previous, drainPrevious: _drain, ...rest } = current;
    const partition: SharedPartition = rest;
    await this.conn.run((c) => MOVE.run(c, this.#scriptKeys(), [key, JSON.stringify(partition), partition.backend]));
    this.#set(key, partition);
    return partition;
  }

  /**
   * assign gives `key` to `backend` unless some instance already assigned it: returns the
   * winner either way. A created assignment waits for a replica where there is one.
   */
  async assign(key: string, backend: string, now = Date.now()): Promise<AssignResult> {
    const record = JSON.stringify({ backend, assignedAt: now } satisfies SharedPartition);
    const [created, stored] = await this.conn.run(
      (c) => ASSIGN.run(c, this.#scriptKeys(), [key, record, backend]) as Promise<[number, string]>,
    );
    const partition = parsePartition(stored) ?? { backend, assignedAt: now };
    this.#set(key, partition);
    if (created !== 1) return { partition, created: false, ack: { kind: 'none' } };
    return { partition, created: true, ack: await this.#waitForReplica() };
  }

  /**
   * move gives `key` to `backend` whatever it had (an admin's explicit overwrite),
   * remembering the previous backend; `drain` keeps the old one's sessions there.
   */
  async move(key: string, backend: string, opts: { drain?: boolean; now?: number } = {}): Promise<{ partition: SharedPartition; previous?: SharedPartition; ack: ReplicaAck }> {
    const now = opts.now ?? Date.now();
    const before = await this.conn.run((c) => c.hget(this.keys.partitions, key));
    const old = before === null ? undefined : parsePartition(before);
    const partition: SharedPartition = {
      backend,
      assignedAt: old?.assignedAt ?? now,
      movedAt: now,
      ...(old !== undefined && old.backend !== backend ? { previous: old.backend, ...(opts.drain === true ? { drainPrevious: true } : {}) } : {}),
    };
    await this.conn.run((c) => MOVE.run(c, this.#scriptKeys(), [key, JSON.stringify(partition), backend]));
    this.#set(key, partition);
    const ack = await this.#waitForReplica();
    return old === undefined ? { partition, ack } : { partition, previous: old, ack };
  }

  /** counts is the number of partitions per backend, read from Redis (bounded load for new keys). */
  async counts(): Promise<Map<string, number>> {
    const flat = await this.conn.run((c) => c.hgetall(this.keys.partitionCounts));
    return new Map(Object.entries(flat).map(([backend, n]) => [backend, Number(n)]));
  }

  /** localCounts is the number of partitions per backend in the local copy (no round trip). */
  localCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const p of this.#copy.values()) counts.set(p.backend, (counts.get(p.backend) ?? 0) + 1);
    return counts;
  }

  /**
   * resync reads every assignment (HSCAN in chunks, so a large table never blocks Redis)
   * and replaces the local copy; it also refreshes the replica count.
   *
   * Redis is the truth, except when it has lost the data (restarted without persistence,
   * replaced): an epoch key, set by the first read of a fresh Redis, tells. When the
   * epoch is missing, or not the one the copy was read under (or the copy's epoch is
   * unknown), the keys the copy holds and Redis lacks are written back first-writer-wins
   * (that tenant's data is still where this instance sent it; if another instance wrote
   * it back first, its answer is taken): forgetting an assignment could split a tenant
   * over two servers, bringing back a deleted one cannot. When the epoch is the same, a
   * key Redis lacks was deleted, and goes.
   */
  async resync(): Promise<{ restored: number }> {
    const next = new Map<string, SharedPartition>();
    let restored = 0;
    const touched = new Set<string>();
    this.#touched = touched;
    try {
      await this.conn.run(async (c) => {
        const stored = await c.get(this.keys.partitionsEpoch);
        if (stored === null) await c.set(this.keys.partitionsEpoch, randomUUID(), 'NX');
        const epoch = stored ?? (await c.get(this.keys.partitionsEpoch)) ?? '';
        let cursor = '0';
        do {
          const [nextCursor, flat] = await c.hscan(this.keys.partitions, cursor, 'COUNT', 1000);
          for (let i = 0; i + 1 < flat.length; i += 2) {
            const partition = parsePartition(flat[i + 1]!);
            if (partition !== undefined) next.set(flat[i]!, partition);
          }
          cursor = nextCursor;
        } while (cursor !== '0');
        this.#replicas = connectedReplicas(await c.info('replication'));
        if (stored === null || this.#epoch !== epoch) {
          for (const [key, partition] of [...this.#copy].filter(([key]) => !next.has(key))) {
            const [created, winner] = (await ASSIGN.run(c, this.#scriptKeys(), [key, JSON.stringify(partition), partition.backend])) as [number, string];
            next.set(key, parsePartition(winner) ?? partition);
            if (created === 1) restored++;
          }
        }
        this.#epoch = epoch;
      });
    } finally {
      this.#touched = undefined;
    }
    // Keys changed while the read ran: the copy has them newer than the read (or deleted).
    for (const key of touched) {
      const partition = this.#copy.get(key);
      if (partition === undefined) next.delete(key);
      else next.set(key, partition);
    }
    const changed = next.size !== this.#copy.size || [...next].some(([key, p]) => !samePartition(this.#copy.get(key), p));
    this.#copy = next;
    this.#lastResync = Date.now();
    if (changed) this.#notify();
    return { restored };
  }

  #scriptKeys(): string[] {
    return [this.keys.partitions, this.keys.partitionCounts, this.keys.partitionChanges];
  }

  async #waitForReplica(): Promise<ReplicaAck> {
    if (this.#replicas === 0) return replicaAck(undefined, this.#waitMs);
    const acks = await this.conn.run((c) => c.wait(1, this.#waitMs));
    return replicaAck(Number(acks), this.#waitMs);
  }

  #onMessage(message: string): void {
    const change = parsePartitionChange(message);
    if (change === undefined) return;
    if ('deleted' in change) this.#remove(change.key);
    else this.#set(change.key, change.partition);
  }

  #set(key: string, partition: SharedPartition): void {
    this.#touched?.add(key);
    if (samePartition(this.#copy.get(key), partition)) return;
    this.#copy.set(key, partition);
    this.#notify();
  }

  #remove(key: string): void {
    this.#touched?.add(key);
    if (this.#copy.delete(key)) this.#notify();
  }

  #notify(): void {
    for (const fn of this.#listeners) fn();
  }
}
