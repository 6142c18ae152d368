/**
 * Session accounting: per backend, how many sessions are active (a request seen within
 * sessionIdle, or an open WebSocket), how many WebSockets are open, and counters of
 * requests, errors and bytes. The router reads activeSessions() for bounded load and
 * maxSessions; the drain monitor and the admin plane read the rest.
 *
 * A session is *confirmed* once its client came back with the balancer's cookie. Until
 * then it is *pending* and idles out after at most a minute: a client that never keeps
 * cookies (a monitoring probe, a bot, a flood) would otherwise leave one session per
 * request behind for the whole sessionIdle, inflating counts, skewing bounded load,
 * holding drains open and growing memory. A browser confirms on its second request.
 *
 * Hand-written rather than on lru-cache because it must keep a live count per backend as
 * entries expire: each table is a Map in last-seen order, swept from its oldest end once
 * a second, so the cost of expiry is proportional to what expires, never to the size.
 */

/** BackendCounters are the per-backend numbers shown by `servoy-lb status` and /metrics. */
export interface BackendCounters {
  sessions: number;
  websockets: number;
  requests: number;
  errors: number;
  clientAborts: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * SessionTotals is the read side of session accounting: what the drain monitor, the admin
 * plane and bounded load ask. SessionAccounting answers it for the traffic this process
 * saw; with `--workers` the primary answers it from the workers' reports (ClusterTotals).
 */
export interface SessionTotals {
  /** The counters of a backend (read only; a backend never seen has all zeros). */
  counters(backendId: string): Readonly<BackendCounters>;
  /** Active sessions on a backend. */
  activeSessions(backendId: string): number;
  /** Active sessions of a partition (partition mode). */
  partitionSessions(partition: string): number;
}

interface SessionEntry {
  backendId: string;
  /** Partition mode: the partition this session belongs to (counted per partition). */
  partition: string | undefined;
  lastSeen: number;
  /** Time the entry was last moved to the end of its map; keeps the map ordered. */
  placedAt: number;
  websockets: number;
  /** First request (ms since the epoch) and requests since: for the sessions list. */
  readonly createdAt: number;
  requests: number;
}

/** ActiveSession is one session as the sessions list needs it (the full key: callers shorten it). */
export interface ActiveSession {
  readonly key: string;
  readonly backend: string;
  readonly createdAt: number;
  readonly lastSeen: number;
  readonly requests: number;
  readonly websockets: number;
}

/** How stale the ordering may get before a touch moves an entry to the end (ms). */
const REORDER_AFTER_MS = 1000;
/** Longest a pending (never confirmed) session counts as active (ms). */
const PENDING_IDLE_MS = 60_000;

/** SessionAccounting tracks sessions and counters per backend id. */
export class SessionAccounting implements SessionTotals {
  /** Sessions whose client came back with the cookie; idle out after sessionIdle. */
  readonly #confirmed = new Map<string, SessionEntry>();
  /** Sessions placed but not seen again yet; idle out after min(sessionIdle, 1 min). */
  readonly #pending = new Map<string, SessionEntry>();
  readonly #counters = new Map<string, BackendCounters>();
  /** Partition mode: active sessions per partition key. */
  readonly #partitionSessions = new Map<string, number>();
  #sweepTimer: NodeJS.Timeout | undefined;
  /** Partitions whose session count changed since takeChangedPartitions(); only when tracking. */
  #changedPartitions: Set<string> | undefined;
  /** Sessions placed, moved or ended since takeChangedSessions(): their backend now (null: ended); only when tracking. */
  #changedSessions: Map<string, string | null> | undefined;

  constructor(
    private idleMs: number,
    private readonly maxSessions = 1_000_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** start sweeps expired sessions once a second (the timer does not keep the process alive). */
  start(): void {
    this.#sweepTimer ??= setInterval(() => this.sweep(), 1000).unref();
  }

  /** stop ends the sweep timer. */
  stop(): void {
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  /** setIdle changes sessionIdle (on reload); applies from the next sweep. */
  setIdle(idleMs: number): void {
    this.idleMs = idleMs;
  }

  /** counters returns (creating) the counters of a backend. */
  counters(backendId: string): BackendCounters {
    let c = this.#counters.get(backendId);
    if (c === undefined) {
      c = { sessions: 0, websockets: 0, requests: 0, errors: 0, clientAborts: 0, bytesIn: 0, bytesOut: 0 };
      this.#counters.set(backendId, c);
    }
    return c;
  }

  /** activeSessions is the router's view: sessions seen within sessionIdle on a backend. */
  activeSessions(backendId: string): number {
    return this.#counters.get(backendId)?.sessions ?? 0;
  }

  /** sessionBackend is the backend an active session was last seen on, or undefined. */
  sessionBackend(sessionKey: string): string | undefined {
    return (this.#confirmed.get(sessionKey) ?? this.#pending.get(sessionKey))?.backendId;
  }

  /** partitionSessions is the number of active sessions of a partition. */
  partitionSessions(partition: string): number {
    return this.#partitionSessions.get(partition) ?? 0;
  }

  /**
   * touch records a request of a session on a backend (moving it there if it was
   * elsewhere). `confirmed` says the client presented the balancer's cookie: the session
   * is a real one, not a first request that may never come back.
   */
  touch(sessionKey: string, backendId: string, partition?: string, confirmed = true): void {
    const now = this.now();
    let entry = this.#confirmed.get(sessionKey);
    let table = this.#confirmed;
    if (entry === undefined) {
      entry = this.#pending.get(sessionKey);
      table = this.#pending;
    }
    if (entry === undefined) {
      if (this.#confirmed.size + this.#pending.size >= this.maxSessions) this.#evictOldest();
      entry = { backendId, partition, lastSeen: now, placedAt: now, websockets: 0, createdAt: now, requests: 1 };
      (confirmed ? this.#confirmed : this.#pending).set(sessionKey, entry);
      this.counters(backendId).sessions++;
      this.#changedSessions?.set(sessionKey, backendId);
      if (partition !== undefined) this.#countPartition(partition, 1);
      return;
    }
    if (partition !== entry.partition) {
      if (entry.partition !== undefined) this.#countPartition(entry.partition, -1);
      if (partition !== undefined) this.#countPartition(partition, 1);
      entry.partition = partition;
    }
    if (entry.backendId !== backendId) {
      this.counters(entry.backendId).sessions--;
      this.counters(backendId).sessions++;
      entry.backendId = backendId;
      this.#changedSessions?.set(sessionKey, backendId);
    }
    entry.lastSeen = now;
    entry.requests++;
    if (confirmed && table === this.#pending) {
      this.#pending.delete(sessionKey);
      entry.placedAt = now;
      this.#confirmed.set(sessionKey, entry);
    } else if (now - entry.placedAt > REORDER_AFTER_MS) {
      entry.placedAt = now;
      table.delete(sessionKey);
      table.set(sessionKey, entry);
    }
  }

  /** websocketOpened counts an open WebSocket; its session stays active while it is open. */
  websocketOpened(sessionKey: string, backendId: string, partition?: string, confirmed = true): void {
    this.touch(sessionKey, backendId, partition, confirmed);
    const entry = this.#confirmed.get(sessionKey) ?? this.#pending.get(sessionKey);
    if (entry !== undefined) entry.websockets++;
    this.counters(backendId).websockets++;
  }

  /** websocketClosed undoes websocketOpened; the session then idles out as usual. */
  websocketClosed(sessionKey: string, backendId: string): void {
    const entry = this.#confirmed.get(sessionKey) ?? this.#pending.get(sessionKey);
    if (entry !== undefined && entry.websockets > 0) {
      entry.websockets--;
      entry.lastSeen = this.now();
    }
    const c = this.counters(backendId);
    if (c.websockets > 0) c.websockets--;
  }

  /** forgetBackend drops a removed backend's sessions and counters. */
  forgetBackend(backendId: string): void {
    for (const table of [this.#confirmed, this.#pending]) {
      for (const [key, entry] of table) {
        if (entry.backendId === backendId) this.#drop(table, key, entry);
      }
    }
    this.#counters.delete(backendId);
  }

  /** sweep expires sessions idle for longer than sessionIdle (pending ones sooner), oldest first. */
  sweep(): void {
    const now = this.now();
    this.#sweepTable(this.#confirmed, now, now - this.idleMs);
    this.#sweepTable(this.#pending, now, now - Math.min(this.idleMs, PENDING_IDLE_MS));
  }

  #sweepTable(table: Map<string, SessionEntry>, now: number, cutoff: number): void {
    for (const [key, entry] of table) {
      if (entry.placedAt >= cutoff) break; // everything after was placed later
      if (entry.lastSeen >= cutoff || entry.websockets > 0) {
        // Seen recently (or held by a WebSocket): move it to the end and keep going.
        if (entry.websockets > 0) entry.lastSeen = now;
        entry.placedAt = entry.lastSeen;
        table.delete(key);
        table.set(key, entry);
        continue;
      }
      this.#drop(table, key, entry);
    }
  }

  #drop(table: Map<string, SessionEntry>, key: string, entry: SessionEntry): void {
    table.delete(key);
    this.counters(entry.backendId).sessions--;
    this.#changedSessions?.set(key, null);
    if (entry.partition !== undefined) this.#countPartition(entry.partition, -1);
  }

  /**
   * trackPartitionChanges makes the accounting remember which partitions' session counts
   * changed, so a worker reports only those to the primary (there may be many partitions).
   */
  trackPartitionChanges(): void {
    this.#changedPartitions ??= new Set();
  }

  /** takeChangedPartitions returns [partition, active sessions] for each changed partition, and forgets them. */
  takeChangedPartitions(): [string, number][] {
    const changed = this.#changedPartitions;
    if (changed === undefined || changed.size === 0) return [];
    const out: [string, number][] = [];
    for (const key of changed) out.push([key, this.#partitionSessions.get(key) ?? 0]);
    changed.clear();
    return out;
  }

  /**
   * trackSessionChanges makes the accounting remember which sessions were placed, moved or
   * ended, so a worker can tell the primary (with `--workers`): a browser whose connections
   * reach two workers is then counted once (ClusterTotals).
   */
  trackSessionChanges(): void {
    this.#changedSessions ??= new Map();
  }

  /** takeChangedSessions returns [session key, backend now or null when ended] for each changed session, and forgets them. */
  takeChangedSessions(): [string, string | null][] {
    const changed = this.#changedSessions;
    if (changed === undefined || changed.size === 0) return [];
    const out = [...changed];
    changed.clear();
    return out;
  }

  /**
   * listSessions lists the active sessions (of `backend`, or all), most recently seen
   * first, at most `limit` of them, with the number that matched. Costs a pass over the
   * sessions: an admin call, never the request path.
   */
  listSessions(backend: string | undefined, limit: number): { sessions: ActiveSession[]; total: number } {
    const all: ActiveSession[] = [];
    for (const table of [this.#confirmed, this.#pending]) {
      for (const [key, e] of table) {
        if (backend !== undefined && e.backendId !== backend) continue;
        all.push({ key, backend: e.backendId, createdAt: e.createdAt, lastSeen: e.websockets > 0 ? this.now() : e.lastSeen, requests: e.requests, websockets: e.websockets });
      }
    }
    all.sort((a, b) => b.lastSeen - a.lastSeen);
    return { sessions: all.slice(0, limit), total: all.length };
  }

  /** backendIds lists every backend that has counters. */
  backendIds(): string[] {
    return [...this.#counters.keys()];
  }

  #countPartition(partition: string, delta: number): void {
    this.#changedPartitions?.add(partition);
    const n = (this.#partitionSessions.get(partition) ?? 0) + delta;
    if (n > 0) this.#partitionSessions.set(partition, n);
    else this.#partitionSessions.delete(partition);
  }

  /** Makes room: the oldest pending session goes first, then the oldest confirmed one. */
  #evictOldest(): void {
    for (const table of [this.#pending, this.#confirmed]) {
      for (const [key, entry] of table) {
        this.#drop(table, key, entry);
        return;
      }
    }
  }
}
