/**
 * The sessions of the other balancer instances sharing the state store (SPEC, *Several
 * balancers*: sessions are counted per instance and summed, so bounded load and
 * `maxSessions` hold for the pool as a whole, and a backend is drained only when no
 * instance holds a session on it). The store reports each instance's counts per backend
 * (StateChange `sessions`, at most about a second old); an instance reported with no
 * counts is gone. With the file store there are no other instances and this stays empty.
 */
import type { SessionTotals } from '../sessions/accounting.js';

/** InstanceLoad keeps the other instances' session counts; see the file comment. */
export class InstanceLoad {
  readonly #byInstance = new Map<string, Readonly<Record<string, number>>>();

  /** update takes an instance's counts per backend (empty: the instance is gone). */
  update(instance: string, counts: Readonly<Record<string, number>>): void {
    if (Object.keys(counts).length === 0) this.#byInstance.delete(instance);
    else this.#byInstance.set(instance, counts);
  }

  /** sessions is the sessions the other instances hold on a backend. */
  sessions(backendId: string): number {
    let n = 0;
    for (const counts of this.#byInstance.values()) n += counts[backendId] ?? 0;
    return n;
  }

  /** all is sessions() for every backend any other instance reported. */
  all(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const counts of this.#byInstance.values()) for (const [id, n] of Object.entries(counts)) out[id] = (out[id] ?? 0) + n;
    return out;
  }
}

/**
 * withOtherInstances is this instance's session totals with the other instances' sessions
 * added: what status, the dashboard, the metrics and the drain monitor read. Partition
 * sessions stay this instance's own.
 */
export function withOtherInstances(local: () => SessionTotals, others: InstanceLoad): SessionTotals {
  return {
    counters(backendId) {
      const counters = local().counters(backendId);
      const elsewhere = others.sessions(backendId);
      return elsewhere === 0 ? counters : { ...counters, sessions: counters.sessions + elsewhere };
    },
    activeSessions: (backendId) => local().activeSessions(backendId) + others.sessions(backendId),
    partitionSessions: (key) => local().partitionSessions(key),
  };
}
