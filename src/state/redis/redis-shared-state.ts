/**
 * RedisSharedState: the blocks of this directory opened together as one instance needs
 * them, with the start-up rule of SPEC "Several balancers" applied: wait a moment for
 * Redis; if it answers, seed the pool from the config (only at the pool's first start),
 * take the shared cookie secret (unless the config names one) and read everything; if
 * it does not, serve from the local copy of the last shared state, or refuse to start
 * with one sentence. While running, the local copy is saved whenever the shared state
 * changed (at most every `copyEveryMs`), so the next start with Redis down has it.
 *
 * This is the piece the state-store seam wraps; nothing here knows the balancer.
 */
import type { BackendConfig, RedisSettings } from '../../config/schema.js';
import type { StateHealth } from '../../pool/readiness.js';
import { startDecision, stateHealth } from './failure-policy.js';
import { copyFrom, LocalSharedCopy, localCopyFile, partitionsOf } from './local-copy.js';
import { configDrift } from './pool-changes.js';
import { RedisConnection, type ConnectionOptions } from './redis-connection.js';
import { sharedCookieSecret } from './redis-cookie-secret.js';
import { redisKeys, type RedisKeys } from './redis-keys.js';
import { RedisLearnedSessions } from './redis-learned-sessions.js';
import { RedisPartitions } from './redis-partitions.js';
import { RedisPoolState } from './redis-pool-state.js';
import { RedisSessionCounts } from './redis-session-counts.js';
import { redisTarget } from './redis-settings.js';

/** OpenOptions is what an instance brings to the shared state. */
export interface OpenOptions {
  readonly settings: RedisSettings;
  /** state.file: the local copy is kept beside it. */
  readonly stateFile: string;
  /** The config file's backends: they seed the pool at its first start. */
  readonly configBackends: readonly BackendConfig[];
  /** The config's affinity.cookie.secret, if it names one (then nothing is shared). */
  readonly configSecret?: string;
  /** This instance's id in the pool (host name and pid, say). */
  readonly instance: string;
  /** How long a learned session id is kept without use (ms). */
  readonly learnedTtlMs: number;
  /** How long to wait for Redis at start before the local copy is used (default 3000 ms). */
  readonly connectWaitMs?: number;
  /** Save the local copy at most this often when something changed (default 5000 ms). */
  readonly copyEveryMs?: number;
  /** Full reads of the pool and the partitions this often (default 10 s). */
  readonly resyncEveryMs?: number;
  readonly connection?: ConnectionOptions;
}

/** OpenResult: the running shared state, with what to log; or why the instance must not start. */
export type OpenResult = { readonly ok: true; readonly shared: RedisSharedState; readonly warnings: readonly string[] } | { readonly ok: false; readonly error: string };

/** RedisSharedState holds the opened blocks; see the file comment. */
export class RedisSharedState {
  #timer: NodeJS.Timeout | undefined;
  #dirty = false;
  #cookieSecret: string | undefined;
  readonly copy: LocalSharedCopy;

  private constructor(
    readonly conn: RedisConnection,
    readonly keys: RedisKeys,
    readonly pool: RedisPoolState,
    readonly partitions: RedisPartitions,
    readonly sessions: RedisLearnedSessions,
    /** Session counts: the wiring starts them with its own counts (`counts.start(local)`). */
    readonly counts: RedisSessionCounts,
    stateFile: string,
  ) {
    this.copy = new LocalSharedCopy(localCopyFile(stateFile));
  }

  /** open starts an instance's shared state; see the file comment. Never throws for Redis being down. */
  static async open(opts: OpenOptions): Promise<OpenResult> {
    const target = redisTarget(opts.settings);
    if (!target.ok) return { ok: false, error: target.error };
    const conn = new RedisConnection(target.target, opts.connection);
    const keys = redisKeys(target.target.prefix);
    const resync = { resyncEveryMs: opts.resyncEveryMs ?? 10_000 };
    const shared = new RedisSharedState(
      conn,
      keys,
      new RedisPoolState(conn, keys, resync),
      new RedisPartitions(conn, keys, resync),
      new RedisLearnedSessions(conn, keys, opts.learnedTtlMs),
      new RedisSessionCounts(conn, keys, opts.instance),
      opts.stateFile,
    );
    const up = await conn.waitUntilUp(opts.connectWaitMs ?? 3000);
    const decision = startDecision(up, conn.address, conn.state.lastError, await shared.copy.read(), shared.copy.file);
    if (decision.kind === 'refuse') {
      await conn.close();
      return { ok: false, error: decision.error };
    }
    const warnings: string[] = [];
    let secret = opts.configSecret;
    if (decision.kind === 'local-copy') {
      warnings.push(decision.warning);
      await shared.pool.start(decision.copy.pool);
      await shared.partitions.start(partitionsOf(decision.copy), decision.copy.partitionsEpoch);
      secret ??= decision.copy.cookieSecret;
    } else {
      try {
        await shared.pool.start();
        await shared.partitions.start();
        const { seeded, snapshot } = await shared.pool.seed(opts.configBackends);
        const drift = seeded ? undefined : configDrift(opts.configBackends, snapshot);
        if (drift !== undefined) warnings.push(drift);
        secret ??= await sharedCookieSecret(conn, keys);
      } catch (err) {
        // Redis went away during the start: as if it had been down.
        shared.close(false).catch(() => undefined);
        return { ok: false, error: `cannot start: ${(err as Error).message}` };
      }
    }
    shared.#cookieSecret = secret;
    shared.#watch(opts.copyEveryMs ?? 5000, decision.kind === 'redis');
    return { ok: true, shared, warnings };
  }

  /** cookieSecret is the affinity cookie's secret to use: the config's, else the shared one, else the local copy's. */
  get cookieSecret(): string | undefined {
    return this.#cookieSecret;
  }

  /** health is the `state` part of /healthz and status. */
  health(now = Date.now()): StateHealth {
    return stateHealth(this.conn.state, this.conn.address, now);
  }

  /** saveCopy writes the local copy of what this instance knows now. */
  async saveCopy(): Promise<void> {
    this.#dirty = false;
    await this.copy.save(copyFrom(this.pool.snapshot, this.partitions.snapshot(), this.cookieSecret, this.partitions.epoch));
  }

  /** close stops the sync and the counts (a clean stop removes this instance's counts), saves the copy, and disconnects. */
  async close(saveCopy = true): Promise<void> {
    clearInterval(this.#timer);
    this.pool.stop();
    this.partitions.stop();
    await this.counts.stop();
    if (saveCopy) await this.saveCopy().catch(() => undefined);
    await this.conn.close();
  }

  #watch(everyMs: number, saveNow: boolean): void {
    this.#dirty = saveNow;
    this.pool.onChange(() => (this.#dirty = true));
    this.partitions.onChange(() => (this.#dirty = true));
    const tick = (): void => {
      if (this.#dirty) void this.saveCopy().catch(() => (this.#dirty = true));
    };
    tick();
    this.#timer = setInterval(tick, everyMs);
    this.#timer.unref();
  }
}
