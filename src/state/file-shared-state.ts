/**
 * FileSharedState is the StateStore of a single balancer: the state file (FileStateStore:
 * cookie secret, admin states, run-time backends and weights) and, in partition mode, the
 * partition journal (PartitionStore) beside it. Nothing is shared with another instance, so
 * the publish calls do nothing, onChange never fires, and health() is always ok: the file
 * store has no failure mode while running (a failed write is reported to the caller).
 */
import { FILE_STATE_HEALTH, type StateHealth } from '../pool/readiness.js';
import { readRecords, type BackendRecords } from './backend-records.js';
import type { FileStateStore, StateData } from './file-store.js';
import { PartitionStoreError, type PartitionRecord, type PartitionStore } from './partition-store.js';
import type { AssignResult, StateChange, StateStore } from './state-store.js';

/** FileSharedState joins the state file and the partition journal behind StateStore; see the file comment. */
export class FileSharedState implements StateStore {
  readonly kind = 'file';
  #records: BackendRecords;

  constructor(
    private readonly file: FileStateStore,
    private readonly state: StateData,
    /** The partition journal, opened in partition mode only. */
    readonly partitions: PartitionStore | undefined,
  ) {
    this.#records = readRecords(state);
  }

  get cookieSecret(): string | undefined {
    return this.state.cookieSecret;
  }

  backendRecords(): BackendRecords {
    return this.#records;
  }

  async saveBackends(records: BackendRecords): Promise<void> {
    this.#records = records;
    this.state.backends = records;
    await this.file.save(this.state);
  }

  async assignPartition(key: string, backend: string, replacing?: string): Promise<AssignResult> {
    const table = this.#journal();
    const current = table.get(key);
    if (current === undefined) return { record: table.assign(key, backend), won: true };
    if (replacing !== undefined && current.backend === replacing) return { record: table.move(key, backend, false), won: true };
    return { record: current, won: false };
  }

  async movePartition(key: string, backend: string, drain: boolean): Promise<PartitionRecord> {
    return this.#journal().move(key, backend, drain);
  }

  async settlePartition(key: string): Promise<PartitionRecord | undefined> {
    return this.#journal().clearPrevious(key);
  }

  publishSessions(): void {
    // One instance: its counts are all there is.
  }

  publishLearned(): void {
    // One instance: the learned table is its own (and the workers'); nothing to share.
  }

  publishEvent(): void {
    // One instance: the dashboard keeps its own event list.
  }

  onChange(_listener: (change: StateChange) => void): () => void {
    return () => undefined;
  }

  health(): StateHealth {
    return FILE_STATE_HEALTH;
  }

  async close(): Promise<void> {
    await this.partitions?.close();
  }

  #journal(): PartitionStore {
    if (this.partitions === undefined) throw new PartitionStoreError('partition mode is not enabled (affinity.mode is not "partition")');
    return this.partitions;
  }
}
