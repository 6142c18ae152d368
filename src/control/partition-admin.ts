/**
 * PartitionAdmin is the control plane's side of partition mode: new assignments (from this
 * process's proxy, or a worker's request with `--workers`), administrators' listings and
 * moves, the settling of moves made with --drain, and following assignments changed
 * elsewhere (the state store's onChange). Every change goes through the state store; the
 * directory is what the router reads.
 */
import type { Logger } from 'pino';
import { AdminError, type PartitionStatus } from '../admin/control.js';
import type { AssignAnswer } from '../cluster/protocol.js';
import type { Pool } from '../pool/pool.js';
import { normalizePartitionKey } from '../routing/partition-key.js';
import type { PartitionLookup } from '../routing/types.js';
import type { PartitionDirectory } from '../state/partition-directory.js';
import type { PartitionWriter, StateStore } from '../state/state-store.js';
import { requireWritable } from './state-guard.js';

/** How often moves made with --drain are checked for live sessions on their old server. */
const SETTLE_EVERY_MS = 10_000;

/** PartitionAdminDeps are the collaborators of a PartitionAdmin besides the directory and the store. */
export interface PartitionAdminDeps {
  readonly pool: Pool;
  readonly logger: Logger;
  /** Active sessions of a partition (all of this instance's traffic). */
  readonly partitionSessions: (key: string) => number;
  /** Tells the traffic plane where a key lives now (worker caches follow). */
  readonly partitionChanged: (key: string, lookup: PartitionLookup | undefined) => void;
  /** drain.maxWait of the running config: a move with --drain settles after it at the latest. */
  readonly drainMaxWait: () => number;
}

/** PartitionAdmin runs partition assignments and moves; see the file comment. */
export class PartitionAdmin {
  #settleTimer: NodeJS.Timeout | undefined;
  #settling = false;
  readonly #unsubscribe: () => void;

  constructor(
    readonly directory: PartitionDirectory,
    private readonly store: PartitionWriter & Pick<StateStore, 'onChange' | 'health'>,
    private readonly deps: PartitionAdminDeps,
  ) {
    this.#unsubscribe = store.onChange((change) => {
      if (change.kind !== 'partition') return;
      directory.changed(change.key, change.record);
      deps.partitionChanged(change.key, directory.lookup(change.key));
    });
  }

  /** start begins settling moves made with --drain. */
  start(): void {
    this.#settleTimer = setInterval(() => void this.settleDrainedMoves(), SETTLE_EVERY_MS).unref();
  }

  /** close stops the settle timer and stops following the store. */
  close(): void {
    clearInterval(this.#settleTimer);
    this.#unsubscribe();
  }

  /**
   * settleDrainedMoves: a partition moved with --drain keeps sending its live sessions to
   * the old server; once the partition has no active session left (or drain.maxWait
   * passed) the old server is forgotten.
   */
  async settleDrainedMoves(): Promise<void> {
    if (this.#settling) return;
    this.#settling = true;
    try {
      const now = Date.now();
      const settled = await this.directory.settleDrainedMoves(
        (key, record) => this.deps.partitionSessions(key) === 0 || now - (record.movedAt ?? 0) >= this.deps.drainMaxWait(),
      );
      for (const key of settled) {
        this.deps.logger.info({ key }, 'partition move finished: no live session left on the old server');
        this.deps.partitionChanged(key, this.directory.lookup(key));
      }
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, 'cannot settle a partition move; trying again later');
    } finally {
      this.#settling = false;
    }
  }

  /**
   * assign is a request for a new partition assignment: the first request wins and is
   * made durable before the answer goes back; a later one for the same key is told where
   * the key lives. `replacing` is the backend that refused the request the key was
   * assigned to a moment ago: only then is the key moved. Pinned keys are never assigned.
   */
  async assign(key: string, backendId: string, replacing: string | undefined): Promise<AssignAnswer> {
    const current = this.directory.lookup(key);
    if (current?.pinned === true || !this.deps.pool.has(backendId)) return { accepted: false, lookup: current };
    const { won } = await this.store.assignPartition(key, backendId, replacing);
    const lookup = this.directory.lookup(key);
    if (!won) return { accepted: false, lookup };
    this.deps.logger.info({ key, backend: backendId }, 'partition assigned');
    this.deps.partitionChanged(key, lookup);
    return { accepted: true, lookup };
  }

  /**
   * resolve is this process's proxy asking for a new assignment (one process, no workers):
   * true when the key is now on `backendId`. A key that already has an assignment here is
   * one whose server refused this very request (the router re-places only such a key).
   */
  async resolve(key: string, backendId: string): Promise<boolean> {
    const current = this.directory.lookup(key);
    const replacing = current === undefined || current.pinned ? undefined : current.backend;
    try {
      return (await this.assign(key, backendId, replacing)).accepted;
    } catch (err) {
      this.deps.logger.error({ key, err: (err as Error).message }, 'cannot store a new partition assignment; answering 503');
      throw err;
    }
  }

  /** seen notes requests for partition keys (last-seen in listings). */
  seen(keys: readonly string[]): void {
    for (const key of keys) this.directory.seen(key);
  }

  /** counts is how many partitions each backend holds (bounded load for new ones). */
  counts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const id of this.deps.pool.configs().map((b) => b.id)) counts[id] = this.directory.count(id);
    return counts;
  }

  /** list is a page of partitions in key order (pins first). */
  list(offset: number, limit: number): { total: number; offset: number; partitions: PartitionStatus[] } {
    return { total: this.directory.total, offset, partitions: this.directory.page(offset, limit, (key) => this.deps.partitionSessions(key)) };
  }

  /** move is `partitions move KEY ID [--drain]`; pinned keys are moved by editing the config. */
  async move(rawKey: string, backendId: string, drain: boolean): Promise<PartitionStatus> {
    requireWritable(this.store);
    const directory = this.directory;
    const key = normalizePartitionKey(rawKey);
    if (key === undefined) throw new AdminError('INVALID_BODY', 'that is not a valid partition key (1-256 characters, no control characters)');
    if (!this.deps.pool.has(backendId)) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${backendId}"`);
    if (directory.isPinned(key)) throw new AdminError('PARTITION_PINNED', `partition "${key}" is pinned in the config file (affinity.partitions); change the pin there and reload`);
    const before = directory.lookup(key)?.backend;
    try {
      await directory.move(key, backendId, drain);
    } catch (err) {
      throw new AdminError('INTERNAL', `the partition could not be stored: ${(err as Error).message}`);
    }
    this.deps.logger.info({ key, from: before ?? null, to: backendId, drain }, 'partition moved by an administrator');
    this.deps.partitionChanged(key, directory.lookup(key));
    return directory.status(key, this.deps.partitionSessions(key))!;
  }
}
