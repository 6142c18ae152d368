/**
 * RedisConnection: the two ioredis connections of one balancer instance to the shared
 * state (one for commands, one for pub/sub, since a subscribed connection takes no other
 * command), with what status and /healthz need to say about them.
 *
 * - Commands never wait for a connection: the offline queue is off, so a command while
 *   Redis is down fails at once, and one in flight when the connection drops fails at
 *   once too (no retries per request); a command without an answer fails after
 *   `commandTimeoutMs`. Every such failure is a SharedStateUnreachableError.
 * - The connection comes back by itself: reconnect with exponential backoff (100 ms
 *   doubling, at most `maxBackoffMs`, with jitter), forever.
 * - `state` is observable: up or down, since when, the last error; `onState` listeners
 *   hear every flip, and `onResubscribed` listeners hear when the subscriber is back
 *   after a drop (messages may have been missed: resync).
 */
import { Redis, type RedisOptions } from 'ioredis';
import { describeRedisError, isConnectionFailure, SharedStateUnreachableError } from './redis-errors.js';
import type { RedisTarget } from './redis-settings.js';

/** ConnectionState is what status and /healthz show about the shared state. */
export interface ConnectionState {
  readonly up: boolean;
  /** When it last went up or down (ms since epoch). */
  readonly since: number;
  /** The last connection error, in a few words ("connection refused"), if any since start. */
  readonly lastError?: string;
}

/** ConnectionOptions tune the client; the defaults suit production. */
export interface ConnectionOptions {
  /** A command without an answer fails after this long (default 2000 ms). */
  commandTimeoutMs?: number;
  /** Connecting gives up after this long and retries (default 5000 ms). */
  connectTimeoutMs?: number;
  /** The longest pause between reconnect attempts (default 2000 ms). */
  maxBackoffMs?: number;
  /** Shown in CLIENT LIST (e.g. `servoy-lb:<instance>`). */
  name?: string;
}

/** reconnectDelay is the pause before reconnect attempt `times` (1, 2, ...): 100 ms doubling up to `max`, plus up to 10% jitter. */
export function reconnectDelay(times: number, max: number, random: () => number = Math.random): number {
  const base = Math.min(max, 100 * 2 ** Math.min(Math.max(times - 1, 0), 20));
  return Math.round(base + base * 0.1 * random());
}

/** RedisConnection owns the command and subscriber connections; see the file comment. */
export class RedisConnection {
  readonly client: Redis;
  readonly #subscriber: Redis;
  #state: ConnectionState;
  readonly #stateListeners = new Set<(state: ConnectionState) => void>();
  readonly #resubscribeListeners = new Set<() => void>();
  readonly #handlers = new Map<string, Set<(message: string) => void>>();
  #subscriberWasUp = false;
  #closed = false;

  constructor(
    readonly target: RedisTarget,
    opts: ConnectionOptions = {},
  ) {
    const maxBackoff = opts.maxBackoffMs ?? 2000;
    const options: RedisOptions = {
      ...target.options,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: opts.commandTimeoutMs ?? 2000,
      connectTimeout: opts.connectTimeoutMs ?? 5000,
      retryStrategy: (times) => reconnectDelay(times, maxBackoff),
      sentinelRetryStrategy: (times) => reconnectDelay(times, maxBackoff),
      maintNotifications: 'disabled',
      lazyConnect: true,
      // After a failover the old master may answer as a replica: reconnect (through the sentinels) to the new one.
      reconnectOnError: (err) => /^READONLY\b/.test(err.message),
    };
    // Sentinels announce a failover (+switch-master): reconnect at once, not on the next error.
    if (target.options.sentinels !== undefined) options.failoverDetector = true;
    if (opts.name !== undefined) options.connectionName = opts.name;
    this.#state = { up: false, since: Date.now(), lastError: 'no answer yet' };
    this.client = new Redis(options);
    this.#subscriber = new Redis({ ...options, autoResubscribe: true });
    this.client.on('ready', () => this.#set({ up: true, since: Date.now(), ...this.#lastError() }));
    this.client.on('close', () => {
      if (this.#state.up) this.#set({ up: false, since: Date.now(), lastError: this.#state.lastError ?? 'connection closed' });
    });
    this.client.on('error', (err: unknown) => {
      const lastError = describeRedisError(err);
      this.#state = { ...this.#state, lastError };
    });
    this.#subscriber.on('error', () => undefined);
    this.#subscriber.on('ready', () => {
      if (this.#subscriberWasUp) for (const fn of this.#resubscribeListeners) fn();
      this.#subscriberWasUp = true;
    });
    this.#subscriber.on('message', (channel: string, message: string) => {
      for (const fn of this.#handlers.get(channel) ?? []) fn(message);
    });
    // Both connect in the background and keep retrying; start() only waits for a first answer.
    this.client.connect().catch(() => undefined);
    this.#subscriber.connect().catch(() => undefined);
  }

  /** state is the current connection state (a copy). */
  get state(): ConnectionState {
    return this.#state;
  }

  /** address is where the shared state lives, for messages. */
  get address(): string {
    return this.target.address;
  }

  /** onState calls fn on every flip between up and down; returns a function that stops it. */
  onState(fn: (state: ConnectionState) => void): () => void {
    this.#stateListeners.add(fn);
    return () => this.#stateListeners.delete(fn);
  }

  /** onResubscribed calls fn when the subscriber is back after a drop (messages may have been missed). */
  onResubscribed(fn: () => void): () => void {
    this.#resubscribeListeners.add(fn);
    return () => this.#resubscribeListeners.delete(fn);
  }

  /**
   * waitUntilUp resolves true once the command connection is ready, false after
   * `timeoutMs` (Redis down at start: the caller decides from the local copy).
   */
  waitUntilUp(timeoutMs: number): Promise<boolean> {
    if (this.#state.up) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        stop();
        resolve(false);
      }, timeoutMs);
      const stop = this.onState((state) => {
        if (!state.up) return;
        clearTimeout(timer);
        stop();
        resolve(true);
      });
    });
  }

  /** subscribe delivers every message on `channel` to fn (resubscribed by itself after a reconnect). */
  async subscribe(channel: string, fn: (message: string) => void): Promise<void> {
    let set = this.#handlers.get(channel);
    if (set === undefined) {
      set = new Set();
      this.#handlers.set(channel, set);
    }
    set.add(fn);
    // While the subscriber is down, autoResubscribe takes the channel once it is back.
    if (this.#subscriber.status === 'ready') await this.#subscriber.subscribe(channel).catch(() => undefined);
    else this.#subscriber.once('ready', () => void this.#subscriber.subscribe(channel).catch(() => undefined));
  }

  /**
   * run sends commands through fn; a connection failure (down, closed, no answer in time)
   * becomes a SharedStateUnreachableError, without waiting when Redis is known to be down.
   */
  async run<T>(fn: (client: Redis) => Promise<T>): Promise<T> {
    if (!this.#state.up) throw this.unreachable();
    try {
      return await fn(this.client);
    } catch (err) {
      if (!isConnectionFailure(err)) throw err;
      throw new SharedStateUnreachableError(this.address, describeRedisError(err));
    }
  }

  /** unreachable is the error for "Redis is down", with the last reason known. */
  unreachable(): SharedStateUnreachableError {
    return new SharedStateUnreachableError(this.address, this.#state.lastError ?? 'not connected');
  }

  /** close ends both connections (no reconnect); idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stateListeners.clear();
    this.#resubscribeListeners.clear();
    await Promise.all([quit(this.client), quit(this.#subscriber)]);
  }

  #lastError(): { lastError?: string } {
    return this.#state.lastError === undefined || this.#state.lastError === 'no answer yet' ? {} : { lastError: this.#state.lastError };
  }

  #set(state: ConnectionState): void {
    this.#state = state;
    for (const fn of this.#stateListeners) fn(state);
  }
}

/** quit ends a connection politely when it is up, else at once. */
async function quit(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    await client.quit().catch(() => client.disconnect());
  } else {
    client.disconnect();
  }
}
