/**
 * Session counts summed over the instances of a pool, so that bounded load, maxSessions
 * and `drained` hold for the pool as a whole (SPEC "Several balancers"). Each instance
 * writes its own counts (backend id -> sessions) to its own hash every `everyMs` (about
 * 1 s) with an expiry of a few periods; readers sum the hashes that still exist, so an
 * instance that stops, or dies, drops out of the sum within `ttlMs` by itself. A clean
 * stop deletes its hash at once.
 *
 * The sum is one Lua script (read every live instance's hash, prune the ones that
 * expired from the instance set): one round trip per read, made by the same timer, so
 * the request path reads the last sum from memory (at most about `everyMs` old).
 */
import type { RedisConnection } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';

// KEYS: instances set. ARGV: prefix of the count keys. Returns a flat list instance, backend, count, ...
const SUM = `
local out = {}
for _, instance in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local flat = redis.call('HGETALL', ARGV[1] .. instance)
  if #flat == 0 then
    redis.call('SREM', KEYS[1], instance)
  else
    for i = 1, #flat, 2 do
      out[#out + 1] = instance
      out[#out + 1] = flat[i]
      out[#out + 1] = flat[i + 1]
    end
  end
end
return out
`;

/** InstanceCounts are the sessions per backend, by instance. */
export type InstanceCounts = ReadonlyMap<string, ReadonlyMap<string, number>>;

/** sumCounts adds the counts of every instance per backend. */
export function sumCounts(byInstance: InstanceCounts): Map<string, number> {
  const total = new Map<string, number>();
  for (const counts of byInstance.values()) for (const [backend, n] of counts) total.set(backend, (total.get(backend) ?? 0) + n);
  return total;
}

/** groupCounts reads the flat answer of the sum script (instance, backend, count, ...). */
export function groupCounts(flat: readonly string[]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (let i = 0; i + 2 < flat.length; i += 3) {
    const n = Number(flat[i + 2]);
    if (!Number.isFinite(n)) continue;
    let counts = out.get(flat[i]!);
    if (counts === undefined) out.set(flat[i]!, (counts = new Map()));
    counts.set(flat[i + 1]!, n);
  }
  return out;
}

/** SessionCountOptions tune the exchange; the defaults suit production. */
export interface SessionCountOptions {
  /** Write and read this often (default 1000 ms). */
  everyMs?: number;
  /** An instance's counts expire this long after its last write (default 5000 ms). */
  ttlMs?: number;
}

/** RedisSessionCounts writes this instance's counts and reads the pool's sum; see the file comment. */
export class RedisSessionCounts {
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<unknown> | undefined;
  #byInstance: InstanceCounts = new Map();
  #total = new Map<string, number>();
  readonly #everyMs: number;
  readonly #ttlMs: number;
  readonly #countPrefix: string;

  constructor(
    readonly conn: RedisConnection,
    readonly keys: RedisKeys,
    /** This instance's id in the pool (unique: host name and pid, say). */
    readonly instance: string,
    opts: SessionCountOptions = {},
  ) {
    this.#everyMs = opts.everyMs ?? 1000;
    this.#ttlMs = opts.ttlMs ?? 5000;
    this.#countPrefix = keys.counts('');
  }

  /** start writes `local()` and reads the sum now and every `everyMs` (errors while Redis is down are skipped). */
  start(local: () => ReadonlyMap<string, number>): void {
    const tick = (): void => {
      if (this.#inFlight !== undefined) return; // Redis slow: skip a beat rather than pile up
      this.#inFlight = this.exchange(local())
        .catch(() => undefined)
        .then(() => (this.#inFlight = undefined));
    };
    tick();
    this.#timer = setInterval(tick, this.#everyMs);
    this.#timer.unref();
  }

  /** stop ends the timer; `clean` also deletes this instance's counts at once (a graceful stop). */
  async stop(clean = true): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight; // an exchange in flight would write the counts back after the delete
    if (clean) await this.conn.run((c) => c.multi().del(this.keys.counts(this.instance)).srem(this.keys.countInstances, this.instance).exec()).catch(() => undefined);
  }

  /** total is the last sum over the live instances, this one included (no round trip). */
  get total(): ReadonlyMap<string, number> {
    return this.#total;
  }

  /** byInstance is the last read, per instance. */
  get byInstance(): InstanceCounts {
    return this.#byInstance;
  }

  /** exchange writes this instance's counts (with their expiry) and reads everyone's, in one round trip. */
  async exchange(local: ReadonlyMap<string, number>): Promise<ReadonlyMap<string, number>> {
    const key = this.keys.counts(this.instance);
    const fields = [...local].flatMap(([backend, n]) => [backend, String(n)]);
    const res = await this.conn.run(async (c) => {
      const tx = c.multi().del(key);
      // An empty hash does not exist: write a marker field so an instance with no session still counts as live.
      tx.hset(key, '', '0', ...fields).pexpire(key, this.#ttlMs).sadd(this.keys.countInstances, this.instance);
      tx.eval(SUM, 1, this.keys.countInstances, this.#countPrefix);
      return tx.exec();
    });
    const last = res?.[res.length - 1];
    if (last === undefined || last[0]) throw last?.[0] ?? new Error('no answer to the session count exchange');
    const grouped = groupCounts(last[1] as string[]);
    for (const counts of grouped.values()) counts.delete('');
    this.#byInstance = grouped;
    this.#total = sumCounts(grouped);
    return this.#total;
  }
}
