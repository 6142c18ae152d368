/**
 * RedisStateStore is the StateStore of several balancers sharing one Redis (SPEC "Several
 * balancers"), on top of RedisSharedState (the blocks of this directory, opened with the
 * start-up rule). What the seam promises (src/state/state-store.ts), and how:
 * - reads are in memory: the pool as records (shared-records.ts), the partitions as a
 *   RedisPartitionTable; the request path of an existing session or a known tenant never
 *   waits for Redis;
 * - a new partition key is assigned first-writer-wins in Redis (one round trip, WAIT where
 *   there is a replica); while Redis is down it is refused at once (the proxy answers 503
 *   with Retry-After);
 * - admin changes are written as the differences they make to the shared pool; changes
 *   made by others arrive by pub/sub (and the periodic resync) and are reported through
 *   onChange, as are other instances' session counts and learned session ids; the live
 *   learned ids are also loaded from Redis at open, every resync and after a reconnect, so
 *   an instance that starts later (or missed a message) knows them too;
 * - admin actions go to the pool's capped event list (sharedEvents reads the others');
 * - health() is the connection's: the control plane refuses admin changes while it is down.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { BackendConfig, Config } from '../../config/schema.js';
import type { StateHealth } from '../../pool/readiness.js';
import { StartupError } from '../../startup-error.js';
import type { BackendRecords } from '../backend-records.js';
import type { PartitionRecord } from '../partition-store.js';
import type { AssignResult, SharedEvent, StateChange, StateStore } from '../state-store.js';
import { RedisPartitionTable } from './redis-partition-table.js';
import { RedisSharedState } from './redis-shared-state.js';
import { poolWrites, recordsFromSnapshot } from './shared-records.js';

/** How often this instance's session counts are exchanged (SPEC: counts at most ~1 s old). */
const COUNTS_EVERY_MS = 1000;

/** How many recently published session ids are remembered (then the memory starts over). */
const LEARNED_MEMORY = 100_000;

/** How many events the pool's shared list keeps (LTRIM after each LPUSH). */
export const SHARED_EVENTS_KEPT = 500;

/** parseSharedEvent reads one entry of the shared event list; undefined for one that is not an event. */
export function parseSharedEvent(text: string): SharedEvent | undefined {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || typeof v.at !== 'number' || typeof v.what !== 'string') return undefined;
  const str = (x: unknown): string | null => (typeof x === 'string' ? x : null);
  return {
    at: v.at,
    backend: str(v.backend),
    what: v.what,
    ...(typeof v.who === 'string' ? { who: v.who } : {}),
    from: str(v.from),
    to: str(v.to),
    ...(typeof v.instance === 'string' ? { instance: v.instance } : {}),
  };
}

/** RedisStoreOptions tune timings (tests make them short); the defaults suit production. */
export interface RedisStoreOptions {
  readonly connectWaitMs?: number;
  readonly resyncEveryMs?: number;
  /** This instance's id in the pool (default host name and pid; tests open several in one process). */
  readonly instance?: string;
}

/** RedisStateStore is the shared StateStore; see the file comment. */
export class RedisStateStore implements StateStore {
  readonly kind = 'redis';
  readonly partitions: RedisPartitionTable | undefined;
  readonly instance: string;
  #config: readonly BackendConfig[];
  /** The config file's backends the records were last written against (a reload's changes are the difference). */
  #writtenConfig: readonly BackendConfig[];
  #records: BackendRecords;
  #saving = false;
  #local: Readonly<Record<string, number>> = {};
  #others = new Map<string, string>();
  /** Session ids published lately, so a repeated Set-Cookie is not published again. */
  readonly #learned = new Map<string, { backend: string | undefined; at: number }>();
  /** Session ids learned by other instances as last heard (pub/sub or a load), so a load reports only what is new. */
  #known = new Map<string, string>();
  #loading: Promise<void> | undefined;
  #loadTimer: NodeJS.Timeout | undefined;
  #timer: NodeJS.Timeout | undefined;
  #exchanging: Promise<unknown> | undefined;
  readonly #listeners = new Set<(change: StateChange) => void>();
  readonly #unsubscribe: (() => void)[] = [];
  #closing: Promise<void> | undefined;

  private constructor(
    private readonly shared: RedisSharedState,
    config: Config,
    private readonly logger: Logger,
    instance: string,
  ) {
    this.instance = instance;
    this.#config = config.backends;
    this.#writtenConfig = config.backends;
    this.#records = recordsFromSnapshot(this.#config, shared.pool.snapshot);
    if (config.affinity.mode === 'partition') {
      const table = new RedisPartitionTable(shared.partitions);
      this.partitions = table;
      this.#unsubscribe.push(
        shared.partitions.onChange(() => {
          for (const key of table.sync()) this.#emit({ kind: 'partition', key, record: table.get(key) });
        }),
      );
    }
    this.#unsubscribe.push(
      shared.pool.onChange((snapshot) => {
        if (this.#saving) return;
        this.#records = recordsFromSnapshot(this.#config, snapshot);
        this.#emit({ kind: 'backends', records: structuredClone(this.#records) });
      }),
      shared.conn.onResubscribed(() => void this.#loadLearned()),
      shared.conn.onState((state) => {
        if (state.up) void this.#loadLearned();
        if (state.up) logger.info({ redis: shared.conn.address }, 'shared state reachable again (Redis is back): catching up');
        else logger.warn({ redis: shared.conn.address, err: state.lastError }, 'shared state unreachable (Redis): serving from the last known state; new partition keys get 503 and admin changes are refused');
      }),
    );
  }

  /** open is the OpenStore of `state.redis`: Redis, else the local copy, else a StartupError. */
  static async open(stateFile: string, config: Config, logger: Logger, opts: RedisStoreOptions = {}): Promise<RedisStateStore> {
    const settings = config.state.redis;
    if (settings === undefined) throw new StartupError('state.redis is not set');
    const secret = config.affinity.cookie.secret;
    const instance = opts.instance ?? `${hostname()}:${process.pid}`;
    const opened = await RedisSharedState.open({
      settings,
      stateFile,
      configBackends: config.backends,
      ...(secret === undefined ? {} : { configSecret: typeof secret === 'string' ? secret : secret[0]! }),
      instance,
      learnedTtlMs: config.affinity.sessionIdle,
      ...(opts.connectWaitMs === undefined ? {} : { connectWaitMs: opts.connectWaitMs }),
      ...(opts.resyncEveryMs === undefined ? {} : { resyncEveryMs: opts.resyncEveryMs }),
      connection: { name: `servoy-lb:${instance}` },
    });
    if (!opened.ok) throw new StartupError(opened.error);
    for (const warning of opened.warnings) logger.warn({ redis: opened.shared.conn.address }, warning);
    const store = new RedisStateStore(opened.shared, config, logger, instance);
    await opened.shared.conn.subscribe(opened.shared.keys.sessionChanges, (message) => store.#onLearned(message));
    store.#timer = setInterval(() => store.#exchange(), COUNTS_EVERY_MS);
    store.#timer.unref();
    // Session ids learned before this instance started: loaded now, and again with every resync.
    await store.#loadLearned();
    store.#loadTimer = setInterval(() => void store.#loadLearned(), opts.resyncEveryMs ?? 10_000);
    store.#loadTimer.unref();
    logger.info({ redis: opened.shared.conn.address, instance, backends: opened.shared.pool.snapshot.backends.length, partitions: opened.shared.partitions.size }, 'shared state opened (Redis)');
    return store;
  }

  get cookieSecret(): string | undefined {
    return this.shared.cookieSecret;
  }

  backendRecords(): BackendRecords {
    // A copy: the control plane changes its records in place, and the difference is what gets written.
    return structuredClone(this.#records);
  }

  /** useConfigBackends tells the store the config file's backends after a reload (the records are relative to them). */
  useConfigBackends(backends: readonly BackendConfig[]): void {
    this.#config = backends;
  }

  async saveBackends(records: BackendRecords): Promise<void> {
    const writes = poolWrites({ config: this.#writtenConfig, records: this.#records }, { config: this.#config, records });
    if (writes.length === 0) {
      this.#records = structuredClone(records);
      this.#writtenConfig = this.#config;
      return;
    }
    this.#saving = true;
    try {
      for (const w of writes) {
        if (w.op === 'set-backend') await this.shared.pool.setBackend(w.backend);
        else if (w.op === 'remove-backend') await this.shared.pool.removeBackend(w.id);
        else await this.shared.pool.setAdmin(w.id, w.record);
      }
      this.#records = structuredClone(records);
      this.#writtenConfig = this.#config;
    } finally {
      this.#saving = false;
    }
    // Someone else may have changed the pool meanwhile: what Redis says wins.
    const now = recordsFromSnapshot(this.#config, this.shared.pool.snapshot);
    if (JSON.stringify(now) !== JSON.stringify(recordsFromSnapshot(this.#config, this.#mergedSnapshotOf(records)))) {
      this.#records = now;
      this.#emit({ kind: 'backends', records: structuredClone(now) });
    }
  }

  async assignPartition(key: string, backend: string, replacing?: string): Promise<AssignResult> {
    const table = this.#table();
    if (!this.shared.conn.state.up) throw this.shared.conn.unreachable();
    const current = table.get(key);
    if (current !== undefined && replacing !== undefined && current.backend === replacing) {
      await this.shared.partitions.move(key, backend);
      return { record: table.get(key)!, won: true };
    }
    const { created } = await this.shared.partitions.assign(key, backend);
    return { record: table.get(key)!, won: created };
  }

  async movePartition(key: string, backend: string, drain: boolean): Promise<PartitionRecord> {
    const table = this.#table();
    await this.shared.partitions.move(key, backend, { drain });
    return table.get(key)!;
  }

  async settlePartition(key: string): Promise<PartitionRecord | undefined> {
    const table = this.#table();
    await this.shared.partitions.clearPrevious(key);
    return table.get(key);
  }

  publishSessions(counts: Readonly<Record<string, number>>): void {
    this.#local = counts;
  }

  publishLearned(sessionId: string, backendId: string | undefined): void {
    if (!this.shared.conn.state.up) return;
    // A backend repeats its Set-Cookie (a client that never sends it back): publish an id
    // again only when its backend changed or half its expiry went by, never once per request.
    const now = Date.now();
    const last = this.#learned.get(sessionId);
    if (last !== undefined && last.backend === backendId && now - last.at < this.shared.sessions.ttlMs / 2) return;
    if (this.#learned.size >= LEARNED_MEMORY) this.#learned.clear();
    this.#learned.set(sessionId, { backend: backendId, at: now });
    const key = this.shared.keys.session(sessionId);
    const message = JSON.stringify({ id: sessionId, backend: backendId ?? null, from: this.instance });
    void this.shared.conn
      .run((c) => {
        const tx = c.multi();
        if (backendId === undefined) tx.del(key);
        else tx.set(key, backendId, 'PX', this.shared.sessions.ttlMs);
        return tx.publish(this.shared.keys.sessionChanges, message).exec();
      })
      .catch(() => undefined);
  }

  /** publishEvent puts the event (with this instance's id) at the head of the pool's capped event list; dropped while Redis is down. */
  publishEvent(event: SharedEvent): void {
    if (!this.shared.conn.state.up) return;
    const entry = JSON.stringify({ ...event, instance: this.instance });
    void this.shared.conn
      .run((c) => c.multi().lpush(this.shared.keys.events, entry).ltrim(this.shared.keys.events, 0, SHARED_EVENTS_KEPT - 1).exec())
      .catch(() => undefined);
  }

  /** sharedEvents reads the newest events of the other instances from the shared list (rejects when Redis does not answer). */
  async sharedEvents(limit: number): Promise<SharedEvent[]> {
    const n = Math.min(Math.max(1, Math.floor(limit)), SHARED_EVENTS_KEPT);
    const raw = await this.shared.conn.run((c) => c.lrange(this.shared.keys.events, 0, SHARED_EVENTS_KEPT - 1));
    const out: SharedEvent[] = [];
    for (const text of raw) {
      const event = parseSharedEvent(text);
      if (event === undefined || event.instance === this.instance) continue;
      out.push(event);
      if (out.length >= n) break;
    }
    return out;
  }

  onChange(listener: (change: StateChange) => void): () => void {
    this.#listeners.add(listener);
    // The learned ids loaded at open reach a listener that subscribes afterwards (the Balancer does).
    const known = [...this.#known];
    if (known.length > 0)
      queueMicrotask(() => {
        if (!this.#listeners.has(listener)) return;
        for (const [sessionId, backendId] of known) listener({ kind: 'learned', sessionId, backendId });
      });
    return () => void this.#listeners.delete(listener);
  }

  health(): StateHealth {
    return this.shared.health();
  }

  /** close is idempotent: the second call waits for the first. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearInterval(this.#timer);
    clearInterval(this.#loadTimer);
    for (const fn of this.#unsubscribe.splice(0)) fn();
    await this.#exchanging;
    await this.#loading;
    this.#listeners.clear();
    await this.shared.close();
  }

  /** #exchange shares this instance's counts and reports the others' (skipped while one is in flight or Redis is down). */
  #exchange(): void {
    if (this.#exchanging !== undefined || !this.shared.conn.state.up) return;
    this.#exchanging = this.shared.counts
      .exchange(new Map(Object.entries(this.#local)))
      .then(() => this.#reportOthers())
      .catch(() => undefined)
      .finally(() => (this.#exchanging = undefined));
  }

  #reportOthers(): void {
    const seen = new Map<string, string>();
    for (const [instance, counts] of this.shared.counts.byInstance) {
      if (instance === this.instance) continue;
      const record = Object.fromEntries(counts);
      const text = JSON.stringify(record);
      seen.set(instance, text);
      if (this.#others.get(instance) !== text) this.#emit({ kind: 'sessions', instance, counts: record });
    }
    for (const instance of this.#others.keys()) if (!seen.has(instance)) this.#emit({ kind: 'sessions', instance, counts: {} });
    this.#others = seen;
  }

  #onLearned(message: string): void {
    let parsed: { id?: unknown; backend?: unknown; from?: unknown };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return;
    }
    if (typeof parsed.id !== 'string' || parsed.from === this.instance) return;
    if (typeof parsed.backend === 'string') this.#known.set(parsed.id, parsed.backend);
    else this.#known.delete(parsed.id);
    this.#emit({ kind: 'learned', sessionId: parsed.id, backendId: typeof parsed.backend === 'string' ? parsed.backend : undefined });
  }

  /**
   * #loadLearned reads every live learned session id from Redis and reports those this
   * instance did not know (or knew on another backend) as 'learned' changes, as pub/sub
   * would have; its own ids are not reported back. One load at a time; a failure waits
   * for the next resync or reconnect.
   */
  #loadLearned(): Promise<void> {
    if (this.#loading !== undefined || this.#closing !== undefined || !this.shared.conn.state.up) return this.#loading ?? Promise.resolve();
    this.#loading = this.shared.sessions
      .loadAll()
      .then((live) => {
        if (this.#closing !== undefined) return;
        const known = new Map<string, string>();
        for (const [sessionId, backendId] of live) {
          const own = this.#learned.get(sessionId);
          if (own !== undefined && own.backend === backendId) continue;
          known.set(sessionId, backendId);
          if (this.#known.get(sessionId) !== backendId) this.#emit({ kind: 'learned', sessionId, backendId });
        }
        this.#known = known;
      })
      .catch((err: unknown) => this.logger.debug({ redis: this.shared.conn.address, err: (err as Error).message }, 'learned session ids not loaded (next resync tries again)'))
      .finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  #mergedSnapshotOf(records: BackendRecords): { version: number; backends: BackendConfig[]; admin: BackendRecords['admin'] } {
    // The pool the saved records describe, in the shape of a snapshot (to compare with Redis's).
    const ids = new Set(this.#config.map((b) => b.id));
    const removed = new Set(records.removed);
    const backends = [...this.#config.filter((b) => !removed.has(b.id)).map((b) => (records.weights?.[b.id] === undefined ? b : { ...b, weight: records.weights[b.id]! })), ...records.added.filter((b) => !ids.has(b.id))];
    return { version: 0, backends, admin: records.admin };
  }

  #table(): RedisPartitionTable {
    if (this.partitions === undefined) throw new Error('partition mode is not enabled (affinity.mode is not "partition")');
    return this.partitions;
  }

  #emit(change: StateChange): void {
    for (const fn of this.#listeners) fn(change);
  }
}
