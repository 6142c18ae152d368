/**
 * FleetHostAdapter is what the primary's control plane answers to its workers (`start
 * --workers N`): their proxy outcomes go to outlier detection, their maintenance 503s to
 * the backoff, their latency to the metrics, their partition questions to the
 * PartitionAdmin, and the session ids they learn to the state store (for other instances). An explicit adapter, so the WorkerFleet knows these few calls and not
 * the Balancer.
 */
import { AdminError } from '../admin/control.js';
import type { BalancerMetrics } from '../admin/metrics.js';
import type { FleetHost } from '../cluster/fleet.js';
import type { AssignAnswer } from '../cluster/protocol.js';
import type { OutcomeRecorder } from './outcome-recorder.js';
import type { PartitionAdmin } from './partition-admin.js';
import type { StateStore } from '../state/state-store.js';

/** FleetHostAdapter forwards the workers' reports and questions; see the file comment. */
export class FleetHostAdapter implements FleetHost {
  constructor(
    private readonly outcomes: OutcomeRecorder,
    readonly metricsRegistry: BalancerMetrics,
    /** Partition mode only. */
    private readonly partitions: PartitionAdmin | undefined,
    /** Where a learned session id is shared with other instances. */
    private readonly store: Pick<StateStore, 'publishLearned'>,
    /** The sessions other instances hold, per backend (bounded load and maxSessions for the whole pool). */
    readonly sessionsOnOtherInstances: () => Record<string, number>,
  ) {}

  recordOutcomes(backendId: string, runs: readonly number[]): void {
    this.outcomes.recordOutcomes(backendId, runs);
  }

  backendInMaintenance(backendId: string): void {
    this.outcomes.backendInMaintenance(backendId);
  }

  assignPartition(key: string, backendId: string, replacing: string | undefined): Promise<AssignAnswer> {
    if (this.partitions === undefined) return Promise.reject(new AdminError('NOT_PARTITION_MODE', 'partition mode is not enabled (affinity.mode is not "partition")'));
    return this.partitions.assign(key, backendId, replacing);
  }

  partitionsSeen(keys: readonly string[]): void {
    this.partitions?.seen(keys);
  }

  partitionCounts(): Record<string, number> {
    return this.partitions?.counts() ?? {};
  }

  learned(sessionId: string, backendId: string | undefined): void {
    this.store.publishLearned(sessionId, backendId);
  }
}
