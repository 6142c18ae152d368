/**
 * RedisPartitionTable is the PartitionTable of a Redis store: the router's and the admin
 * plane's synchronous view of RedisPartitions' local copy, as PartitionRecords with
 * counts per backend kept current. `sync` compares it with the copy after every change
 * the copy reports (a message, an assignment, a resync) and returns the keys that
 * changed, which the store reports through onChange. Reads never touch Redis.
 */
import type { PartitionRecord } from '../partition-store.js';
import type { PartitionTable } from '../state-store.js';
import type { RedisPartitions, SharedPartition } from './redis-partitions.js';

/** RedisPartitionTable mirrors RedisPartitions; see the file comment. */
export class RedisPartitionTable implements PartitionTable {
  readonly #records = new Map<string, PartitionRecord>();
  readonly #counts = new Map<string, number>();
  readonly #lastSeen = new Map<string, number>();
  #sorted: string[] | undefined;

  constructor(private readonly shared: RedisPartitions) {
    this.sync();
  }

  get size(): number {
    return this.#records.size;
  }

  get(key: string): PartitionRecord | undefined {
    return this.#records.get(key);
  }

  entries(offset = 0, limit = Number.MAX_SAFE_INTEGER): PartitionRecord[] {
    this.#sorted ??= [...this.#records.keys()].sort();
    return this.#sorted.slice(offset, offset + limit).map((key) => this.#records.get(key)!);
  }

  counts(): ReadonlyMap<string, number> {
    return this.#counts;
  }

  touch(key: string): void {
    this.#lastSeen.set(key, Date.now());
  }

  lastSeen(key: string): number | undefined {
    return this.#lastSeen.get(key);
  }

  /** sync takes the shared copy's assignments and returns the keys whose record changed. */
  sync(): string[] {
    const copy = this.shared.snapshot();
    const changed: string[] = [];
    for (const [key, partition] of copy) {
      const current = this.#records.get(key);
      if (current !== undefined && sameRecord(current, partition)) continue;
      this.#set(key, Object.freeze({ key, ...partition }));
      changed.push(key);
    }
    if (this.#records.size !== copy.size || changed.length > 0) {
      for (const key of [...this.#records.keys()]) {
        if (copy.has(key)) continue;
        this.#set(key, undefined);
        changed.push(key);
      }
    }
    return changed;
  }

  #set(key: string, record: PartitionRecord | undefined): void {
    const before = this.#records.get(key);
    if (before !== undefined) this.#count(before.backend, -1);
    else this.#sorted = undefined;
    if (record === undefined) {
      this.#records.delete(key);
      this.#lastSeen.delete(key);
      this.#sorted = undefined;
      return;
    }
    this.#records.set(key, record);
    this.#count(record.backend, 1);
  }

  #count(backend: string, by: number): void {
    const n = (this.#counts.get(backend) ?? 0) + by;
    if (n === 0) this.#counts.delete(backend);
    else this.#counts.set(backend, n);
  }
}

function sameRecord(record: PartitionRecord, partition: SharedPartition): boolean {
  return (
    record.backend === partition.backend &&
    record.assignedAt === partition.assignedAt &&
    record.previous === partition.previous &&
    record.movedAt === partition.movedAt &&
    record.drainPrevious === partition.drainPrevious
  );
}
