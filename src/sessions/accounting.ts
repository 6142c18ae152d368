/**
 * Session accounting: per backend, how many sessions are active (a request seen within
 * sessionIdle, or an open WebSocket), how many WebSockets are open, and counters of
 * requests, errors and bytes. The router reads activeSessions() for bounded load and
 * maxSessions; the admin plane reads stats() for status, drain and metrics.
 *
 * Hand-written rather than on lru-cache because it must keep a live count per backend as
 * entries expire: one Map in last-seen order, swept from its oldest end each second, so
 * the cost of expiry is proportional to what expires, never to the table's size.
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

interface SessionEntry {
  backendId: string;
  /** Partition mode: the partition this session belongs to (counted per partition). */
  partition: string | undefined;
  lastSeen: number;
  /** Time the entry was last moved to the end of the map; keeps the map ordered. */
  placedAt: number;
  websockets: number;
}

/** How stale the ordering may get before a touch moves an entry to the end (ms). */
const REORDER_AFTER_MS = 1000;

/** SessionAccounting tracks sessions and counters per backend id. */
export class SessionAccounting {
  readonly #sessions = new Map<string, SessionEntry>();
  readonly #counters = new Map<string, BackendCounters>();
  /** Partition mode: active sessions per partition key. */
  readonly #partitionSessions = new Map<string, number>();
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private idleMs: number,
    private readonly maxSessions = 2_000_000,
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
    return this.#sessions.get(sessionKey)?.backendId;
  }

  /** partitionSessions is the number of active sessions of a partition. */
  partitionSessions(partition: string): number {
    return this.#partitionSessions.get(partition) ?? 0;
  }

  /** touch records a request of a session on a backend (moving it there if it was elsewhere). */
  touch(sessionKey: string, backendId: string, partition?: string): void {
    const now = this.now();
    const entry = this.#sessions.get(sessionKey);
    if (entry === undefined) {
      if (this.#sessions.size >= this.maxSessions) this.#evictOldest();
      this.#sessions.set(sessionKey, { backendId, partition, lastSeen: now, placedAt: now, websockets: 0 });
      this.counters(backendId).sessions++;
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
      // Open WebSockets stay counted where they are open; see websocketClosed.
      entry.backendId = backendId;
    }
    entry.lastSeen = now;
    if (now - entry.placedAt > REORDER_AFTER_MS) {
      entry.placedAt = now;
      this.#sessions.delete(sessionKey);
      this.#sessions.set(sessionKey, entry);
    }
  }

  /** websocketOpened counts an open WebSocket; its session stays active while it is open. */
  websocketOpened(sessionKey: string, backendId: string): void {
    this.touch(sessionKey, backendId);
    const entry = this.#sessions.get(sessionKey);
    if (entry !== undefined) entry.websockets++;
    this.counters(backendId).websockets++;
  }

  /** websocketClosed undoes websocketOpened; the session then idles out as usual. */
  websocketClosed(sessionKey: string, backendId: string): void {
    const entry = this.#sessions.get(sessionKey);
    if (entry !== undefined && entry.websockets > 0) {
      entry.websockets--;
      entry.lastSeen = this.now();
    }
    const c = this.counters(backendId);
    if (c.websockets > 0) c.websockets--;
  }

  /** forgetBackend drops a removed backend's sessions and counters. */
  forgetBackend(backendId: string): void {
    for (const [key, entry] of this.#sessions) {
      if (entry.backendId === backendId) this.#drop(key, entry);
    }
    this.#counters.delete(backendId);
  }

  #drop(key: string, entry: SessionEntry): void {
    this.#sessions.delete(key);
    this.counters(entry.backendId).sessions--;
    if (entry.partition !== undefined) this.#countPartition(entry.partition, -1);
  }

  #countPartition(partition: string, delta: number): void {
    const n = (this.#partitionSessions.get(partition) ?? 0) + delta;
    if (n > 0) this.#partitionSessions.set(partition, n);
    else this.#partitionSessions.delete(partition);
  }

  /** sweep expires sessions idle for longer than sessionIdle, oldest first. */
  sweep(): void {
    const now = this.now();
    const cutoff = now - this.idleMs;
    for (const [key, entry] of this.#sessions) {
      if (entry.placedAt >= cutoff) break; // everything after was placed later
      if (entry.lastSeen >= cutoff || entry.websockets > 0) {
        // Seen recently (or held by a WebSocket): move it to the end and keep going.
        if (entry.websockets > 0) entry.lastSeen = now;
        entry.placedAt = entry.lastSeen;
        this.#sessions.delete(key);
        this.#sessions.set(key, entry);
        continue;
      }
      this.#drop(key, entry);
    }
  }

  #evictOldest(): void {
    for (const [key, entry] of this.#sessions) {
      this.#drop(key, entry);
      return;
    }
  }
}
