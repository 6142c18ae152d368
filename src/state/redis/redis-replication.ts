/**
 * Whether a new partition assignment must wait for a replica: `WAIT 1 <ms>` only makes
 * sense on a master that has replicas (without one it would always time out), so the
 * number of connected replicas is read from `INFO replication` (refreshed on every resync
 * and after a reconnect, when a failover may have changed it).
 */

/** connectedReplicas reads `connected_slaves:N` of a master's INFO replication (0 for a replica or an unreadable answer). */
export function connectedReplicas(info: string): number {
  const role = /^role:(\w+)/m.exec(info)?.[1];
  if (role !== 'master') return 0;
  return Number(/^connected_slaves:(\d+)/m.exec(info)?.[1] ?? 0);
}

/** ReplicaAck says what WAIT gave for a new assignment. */
export type ReplicaAck =
  /** The master has no replica: nothing to wait for. */
  | { readonly kind: 'none' }
  /** At least one replica holds the assignment. */
  | { readonly kind: 'acknowledged'; readonly replicas: number }
  /** The master has replicas but none acknowledged within the wait: a failover now could forget it. */
  | { readonly kind: 'unacknowledged'; readonly waitedMs: number };

/** replicaAck words the answer of `WAIT 1 waitedMs` (acks may be undefined: no WAIT was sent). */
export function replicaAck(acks: number | undefined, waitedMs: number): ReplicaAck {
  if (acks === undefined) return { kind: 'none' };
  return acks >= 1 ? { kind: 'acknowledged', replicas: acks } : { kind: 'unacknowledged', waitedMs };
}
