/**
 * RedisPoolState: the pool shared by every instance (SPEC "Several balancers"): the
 * backends (added and removed at run time, with their weights) and their admin states
 * (draining, disabled), as two hashes in Redis. Every change is one Lua script: change
 * the hash, bump the pool's version, publish `<version>\n<op>\n<id>\n<value>` on the
 * pool channel, so every instance follows within a message's time (well under 1 s). A
 * message that does not follow the version an instance holds (it missed one) makes it
 * read the whole pool; so does a reconnect of its subscriber, and a timer every
 * `resyncEveryMs`, so a missed message cannot leave an instance wrong for long.
 *
 * Seeding: the config file's backends become the shared pool only at the pool's first
 * start (a marker key, set in the same script); after that run-time changes win, and
 * configDrift (pool-changes.ts) words the difference for the log. If Redis loses the pool
 * (restarted without persistence), an instance that knew it writes it back, first writer
 * wins, as the first start would.
 *
 * Redis down: `snapshot` goes on answering what was known; every change throws a
 * SharedStateUnreachableError (the admin plane refuses the change with its message).
 */
import type { BackendConfig } from '../../config/schema.js';
import type { AdminRecord } from '../backend-records.js';
import { followChannel } from './follow-channel.js';
import { LuaScript } from './lua-script.js';
import { applyChange, EMPTY_POOL, parsePoolChange, snapshotFrom, type PoolOp, type PoolSnapshot } from './pool-changes.js';
import type { RedisConnection } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';

// KEYS: backends, admin, version. ARGV: channel, op, id, value.
// Returns the new version, or -1 when the backend does not exist (remove-backend, set-admin).
const CHANGE = new LuaScript(`
local op, id, value = ARGV[2], ARGV[3], ARGV[4]
local stored = value
if op == 'set-backend' then
  local current = redis.call('HGET', KEYS[1], id)
  local at
  if current then at = string.match(current, '^{"at":(%d+),') end
  if not at then at = tostring(1000001 + tonumber(redis.call('GET', KEYS[3]) or '0')) end
  stored = '{"at":' .. at .. ',"backend":' .. value .. '}'
  redis.call('HSET', KEYS[1], id, stored)
elseif op == 'remove-backend' then
  if redis.call('HDEL', KEYS[1], id) == 0 then return -1 end
  redis.call('HDEL', KEYS[2], id)
else
  if redis.call('HEXISTS', KEYS[1], id) == 0 then return -1 end
  if value == '' then redis.call('HDEL', KEYS[2], id) else redis.call('HSET', KEYS[2], id, value) end
end
local version = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[1], version .. '\\n' .. op .. '\\n' .. id .. '\\n' .. stored)
return version
`);

// KEYS: backends, admin, version, seeded. ARGV: channel, now, n, then n (id, entry) pairs, then (id, admin) pairs.
// Returns the new version, or 0 when the pool was seeded before.
const SEED = new LuaScript(`
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local n = tonumber(ARGV[3])
for i = 0, n - 1 do redis.call('HSET', KEYS[1], ARGV[4 + 2 * i], ARGV[5 + 2 * i]) end
for i = 4 + 2 * n, #ARGV - 1, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[4], ARGV[2])
local version = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[1], version .. '\\nseed\\n\\n')
return version
`);

/** UnknownBackendError: a change names a backend the shared pool does not have. */
export class UnknownBackendError extends Error {
  override name = 'UnknownBackendError';
  constructor(readonly id: string) {
    super(`no backend "${id}" in the shared pool`);
  }
}

/** PoolStateOptions tune the sync; the defaults suit production. */
export interface PoolStateOptions {
  /** Full read this often (default 10 s). */
  resyncEveryMs?: number;
}

/** RedisPoolState is the shared pool with a local snapshot; see the file comment. */
export class RedisPoolState {
  #snapshot: PoolSnapshot = EMPTY_POOL;
  /** Stops following the channel (see follow-channel.ts); nothing to stop before start(). */
  #stopFollowing: () => void = () => undefined;
  readonly #listeners = new Set<(snapshot: PoolSnapshot) => void>();
  readonly #resyncEveryMs: number;
  #resyncs = 0;

  constructor(
    readonly conn: RedisConnection,
    readonly keys: RedisKeys,
    opts: PoolStateOptions = {},
  ) {
    this.#resyncEveryMs = opts.resyncEveryMs ?? 10_000;
  }

  /**
   * start subscribes to changes, reads the pool once (when Redis is up), then every
   * `resyncEveryMs` and after a reconnect. `initial` is a snapshot to serve from
   * meanwhile (the local copy of the last shared state when Redis is down at start).
   */
  async start(initial?: PoolSnapshot): Promise<void> {
    if (initial !== undefined) this.#snapshot = initial;
    this.#stopFollowing = await followChannel(this.conn, {
      channel: this.keys.poolChanges,
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

  /** snapshot is the pool as this instance knows it (no round trip). */
  get snapshot(): PoolSnapshot {
    return this.#snapshot;
  }

  /** resyncs counts full reads so far (for tests and status). */
  get resyncs(): number {
    return this.#resyncs;
  }

  /** onChange calls fn with every new snapshot (after a message, a change of this instance or a resync that found a difference). */
  onChange(fn: (snapshot: PoolSnapshot) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * seed makes `backends` the shared pool if no instance did before (the first start of
   * the pool); returns whether this call seeded it, and the pool as it now is.
   */
  async seed(backends: readonly BackendConfig[], admin: Readonly<Record<string, AdminRecord>> = {}): Promise<{ seeded: boolean; snapshot: PoolSnapshot }> {
    const version = Number(await this.conn.run((c) => this.#seedCall(c, { version: 0, backends, admin })));
    await this.resync();
    return { seeded: version > 0, snapshot: this.#snapshot };
  }

  /** setBackend adds a backend or changes one (its weight, its URL): every instance follows. */
  async setBackend(backend: BackendConfig): Promise<PoolSnapshot> {
    return this.#change('set-backend', backend.id, JSON.stringify(backend));
  }

  /** removeBackend takes a backend (and its admin state) out of the shared pool. */
  async removeBackend(id: string): Promise<PoolSnapshot> {
    return this.#change('remove-backend', id, '');
  }

  /** setAdmin records a backend's admin state; undefined means ready. */
  async setAdmin(id: string, record: AdminRecord | undefined): Promise<PoolSnapshot> {
    return this.#change('set-admin', id, record === undefined ? '' : JSON.stringify(record));
  }

  /**
   * resync reads the whole pool in one transaction and replaces the snapshot. If Redis
   * lost the pool and this instance knew one, it writes it back (see the file comment).
   */
  async resync(): Promise<PoolSnapshot> {
    const [backends, admin, version, seeded] = await this.conn.run(async (c) => {
      const res = await c.multi().hgetall(this.keys.poolBackends).hgetall(this.keys.poolAdmin).get(this.keys.poolVersion).exists(this.keys.poolSeeded).exec();
      return (res ?? []).map(([err, value]) => {
        if (err) throw err;
        return value;
      }) as [Record<string, string>, Record<string, string>, string | null, number];
    });
    this.#resyncs++;
    const known = this.#snapshot;
    if (seeded === 0 && known.backends.length > 0) {
      await this.conn.run((c) => this.#seedCall(c, known));
      return this.resync();
    }
    this.#replace(snapshotFrom(Number(version ?? 0), backends, admin));
    return this.#snapshot;
  }

  async #seedCall(c: RedisConnection['client'], known: PoolSnapshot): Promise<unknown> {
    const args: string[] = [this.keys.poolChanges, String(Date.now()), String(known.backends.length)];
    known.backends.forEach((backend, i) => args.push(backend.id, JSON.stringify({ at: i, backend })));
    for (const [id, record] of Object.entries(known.admin)) args.push(id, JSON.stringify(record));
    return SEED.run(c, [this.keys.poolBackends, this.keys.poolAdmin, this.keys.poolVersion, this.keys.poolSeeded], args);
  }

  async #change(op: PoolOp, id: string, value: string): Promise<PoolSnapshot> {
    const version = Number(await this.conn.run((c) => CHANGE.run(c, [this.keys.poolBackends, this.keys.poolAdmin, this.keys.poolVersion], [this.keys.poolChanges, op, id, value])));
    if (version < 0) throw new UnknownBackendError(id);
    // Admin changes are rare: read the pool back, so the caller sees what every instance will.
    // (Our own message comes back too, and is ignored: its version is no longer new.) The
    // change is made even if that read fails; the catch-up after the reconnect brings it.
    return this.resync().catch(() => this.#snapshot);
  }

  #onMessage(message: string): void {
    const change = parsePoolChange(message);
    if (change === undefined) return;
    const next = applyChange(this.#snapshot, change);
    if (next === 'ignore') return;
    if (next === 'resync') {
      void this.resync().catch(() => undefined);
      return;
    }
    this.#replace(next);
  }

  #replace(next: PoolSnapshot): void {
    const before = this.#snapshot;
    this.#snapshot = next;
    if (JSON.stringify({ ...before, version: 0 }) === JSON.stringify({ ...next, version: 0 })) return;
    for (const fn of this.#listeners) fn(next);
  }
}
