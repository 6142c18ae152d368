/**
 * ClusterTotals is the primary's view of all the traffic with `--workers`: the sum of
 * every worker's last report. It answers SessionTotals, so the drain monitor, the admin
 * plane, status and metrics read it exactly as they read one process's SessionAccounting.
 *
 * Sessions and WebSockets are each worker's current counts; the other counters are
 * cumulative per worker. When a worker dies, its cumulative counters are kept ("retired")
 * so a total never goes backwards; its sessions and WebSockets go with it (its WebSockets
 * are closed; its clients' next requests are counted by whichever worker accepts them).
 *
 * A browser whose connections land on two workers within sessionIdle is held by both (each
 * counts it): the workers report which sessions they placed and ended (by the affinity
 * cookie's client id), and the primary subtracts the duplicates, so a browser counts once
 * per instance in status, bounded load and maxSessions. Only clients without the cookie
 * (whose parallel first requests each get a new id) can still count twice; see the README.
 */
import type { BackendCounters, SessionTotals } from '../sessions/accounting.js';
import type { WorkerReport } from './protocol.js';

const CUMULATIVE = ['requests', 'errors', 'clientAborts', 'bytesIn', 'bytesOut'] as const;

interface WorkerState {
  counters: Record<string, BackendCounters>;
  partitions: Map<string, number>;
  inFlight: number;
}

function zero(): BackendCounters {
  return { sessions: 0, websockets: 0, requests: 0, errors: 0, clientAborts: 0, bytesIn: 0, bytesOut: 0 };
}

/** ClusterTotals sums the workers' reports; see the file comment. */
export class ClusterTotals implements SessionTotals {
  readonly #workers = new Map<number, WorkerState>();
  /** Cumulative counters of workers that are gone. */
  readonly #retired = new Map<string, BackendCounters>();
  /** Active sessions per partition, summed over workers (kept up to date as reports arrive). */
  readonly #partitions = new Map<string, number>();
  /** Per session key held by some worker: the backend each such worker holds it on. */
  readonly #holders = new Map<string, Map<number, string>>();
  /** Per worker: the session keys it holds (to forget them when it dies). */
  readonly #keysOf = new Map<number, Set<string>>();
  /** Per backend: sessions counted by more than one worker, beyond the first (subtracted from the sum). */
  readonly #duplicates = new Map<string, number>();

  /** update takes a worker's report; `known` says which backends are still in the pool. */
  update(workerId: number, report: WorkerReport, known: (backendId: string) => boolean): void {
    let state = this.#workers.get(workerId);
    if (state === undefined) this.#workers.set(workerId, (state = { counters: {}, partitions: new Map(), inFlight: 0 }));
    const counters: Record<string, BackendCounters> = {};
    for (const [id, c] of Object.entries(report.counters)) if (known(id)) counters[id] = c;
    state.counters = counters;
    state.inFlight = report.inFlight;
    for (const [key, count] of report.partitionSessions) this.#setPartition(state, key, count);
    for (const [key, backend] of report.sessionChanges ?? []) this.#setHolder(workerId, key, backend !== null && known(backend) ? backend : undefined);
  }

  /** retire forgets a worker that is gone, keeping its cumulative counters. */
  retire(workerId: number): void {
    const state = this.#workers.get(workerId);
    if (state === undefined) return;
    this.#workers.delete(workerId);
    for (const [id, c] of Object.entries(state.counters)) {
      let kept = this.#retired.get(id);
      if (kept === undefined) this.#retired.set(id, (kept = zero()));
      for (const k of CUMULATIVE) kept[k] += c[k];
    }
    for (const key of [...state.partitions.keys()]) this.#setPartition(state, key, 0);
    for (const key of [...(this.#keysOf.get(workerId) ?? [])]) this.#setHolder(workerId, key, undefined);
    this.#keysOf.delete(workerId);
  }

  /** forgetBackend drops a removed backend from every worker's numbers. */
  forgetBackend(backendId: string): void {
    this.#retired.delete(backendId);
    for (const state of this.#workers.values()) delete state.counters[backendId];
    for (const [key, holders] of [...this.#holders]) {
      for (const [workerId, backend] of [...holders]) if (backend === backendId) this.#setHolder(workerId, key, undefined);
    }
    this.#duplicates.delete(backendId);
  }

  counters(backendId: string): BackendCounters {
    const sum = { ...(this.#retired.get(backendId) ?? zero()) };
    for (const state of this.#workers.values()) {
      const c = state.counters[backendId];
      if (c === undefined) continue;
      sum.sessions += c.sessions;
      sum.websockets += c.websockets;
      for (const k of CUMULATIVE) sum[k] += c[k];
    }
    sum.sessions = Math.max(0, sum.sessions - (this.#duplicates.get(backendId) ?? 0));
    return sum;
  }

  activeSessions(backendId: string): number {
    let n = 0;
    for (const state of this.#workers.values()) n += state.counters[backendId]?.sessions ?? 0;
    return Math.max(0, n - (this.#duplicates.get(backendId) ?? 0));
  }

  partitionSessions(partition: string): number {
    return this.#partitions.get(partition) ?? 0;
  }

  /**
   * sessionsElsewhere is, per backend, the active sessions every worker but `workerId`
   * holds and `workerId` does not: added to the worker's own count, each browser once.
   */
  sessionsElsewhere(workerId: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [id, state] of this.#workers) {
      if (id === workerId) continue;
      for (const [backend, c] of Object.entries(state.counters)) out[backend] = (out[backend] ?? 0) + c.sessions;
    }
    for (const [backend, n] of this.#duplicates) if (out[backend] !== undefined) out[backend] = Math.max(0, out[backend] - n);
    return out;
  }

  /** inFlight is the HTTP requests all workers were serving at their last report. */
  get inFlight(): number {
    let n = 0;
    for (const state of this.#workers.values()) n += state.inFlight;
    return n;
  }

  /** #setHolder records that a worker holds a session on a backend now (undefined: no longer), keeping #duplicates. */
  #setHolder(workerId: number, key: string, backend: string | undefined): void {
    let holders = this.#holders.get(key);
    if (holders?.get(workerId) === backend) return;
    const before = holders === undefined ? undefined : [...holders.values()];
    if (backend === undefined) {
      holders!.delete(workerId);
      this.#keysOf.get(workerId)?.delete(key);
      if (holders!.size === 0) this.#holders.delete(key);
    } else {
      if (holders === undefined) this.#holders.set(key, (holders = new Map()));
      holders.set(workerId, backend);
      let keys = this.#keysOf.get(workerId);
      if (keys === undefined) this.#keysOf.set(workerId, (keys = new Set()));
      keys.add(key);
    }
    const after = holders === undefined ? [] : [...holders.values()];
    for (const id of new Set([...(before ?? []), ...after])) {
      const delta = extra(after, id) - extra(before ?? [], id);
      if (delta === 0) continue;
      const n = (this.#duplicates.get(id) ?? 0) + delta;
      if (n > 0) this.#duplicates.set(id, n);
      else this.#duplicates.delete(id);
    }
  }

  #setPartition(state: WorkerState, key: string, count: number): void {
    const before = state.partitions.get(key) ?? 0;
    if (count > 0) state.partitions.set(key, count);
    else state.partitions.delete(key);
    const total = (this.#partitions.get(key) ?? 0) - before + count;
    if (total > 0) this.#partitions.set(key, total);
    else this.#partitions.delete(key);
  }
}

/** extra is how many holders beyond the first hold a session on `backendId`. */
function extra(backends: readonly string[], backendId: string): number {
  let n = 0;
  for (const b of backends) if (b === backendId) n++;
  return Math.max(0, n - 1);
}
