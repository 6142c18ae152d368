/**
 * PartitionDirectory answers "where does partition K live?" for the router: a pin from
 * the config (affinity.partitions) wins, else the assignment in the state store's
 * in-memory table (a synchronous read). It lists partitions for the admin plane, and runs
 * administrators' moves through the store (new assignments are the PartitionAdmin's, also
 * through the store). It follows moves made with --drain until their old server is settled.
 */
import type { PartitionStatus } from '../admin/control.js';
import type { PartitionLookup } from '../routing/types.js';
import type { PartitionRecord } from './partition-store.js';
import type { PartitionTable, PartitionWriter } from './state-store.js';

/** PartitionDirectory combines config pins and the durable store; see the file comment. */
export class PartitionDirectory {
  #pins: ReadonlyMap<string, string>;
  #pinCounts = new Map<string, number>();
  #sortedPins: string[] = [];
  /** Last request per pinned key (memory only; the store keeps last-seen only for its own records). */
  readonly #pinSeen = new Map<string, number>();

  /** Keys moved with --drain whose old server may still hold live sessions. */
  readonly #drainingMoves = new Set<string>();

  constructor(
    readonly table: PartitionTable,
    private readonly writer: PartitionWriter,
    pins: Readonly<Record<string, string>>,
  ) {
    this.#pins = new Map();
    this.setPins(pins);
    // Once at start-up: find the moves still draining (a restart mid-drain keeps them).
    for (let offset = 0; offset < table.size; offset += 10_000) {
      for (const record of table.entries(offset, 10_000)) if (record.drainPrevious === true) this.#drainingMoves.add(record.key);
    }
  }

  /**
   * settleDrainedMoves forgets the old server of moves made with --drain once `done` says
   * their live sessions there have ended; the store records the change.
   */
  async settleDrainedMoves(done: (key: string, record: PartitionRecord) => boolean): Promise<string[]> {
    const settled: string[] = [];
    for (const key of [...this.#drainingMoves]) {
      const record = this.table.get(key);
      if (record === undefined || record.drainPrevious !== true) {
        this.#drainingMoves.delete(key);
      } else if (done(key, record)) {
        await this.writer.settlePartition(key);
        this.#drainingMoves.delete(key);
        settled.push(key);
      }
    }
    return settled;
  }

  /** setPins replaces the config's pins (on reload). */
  setPins(pins: Readonly<Record<string, string>>): void {
    this.#pins = new Map(Object.entries(pins));
    this.#pinCounts = new Map();
    for (const backend of this.#pins.values()) this.#pinCounts.set(backend, (this.#pinCounts.get(backend) ?? 0) + 1);
    this.#sortedPins = [...this.#pins.keys()].sort();
    for (const key of this.#pinSeen.keys()) if (!this.#pins.has(key)) this.#pinSeen.delete(key);
  }

  /** lookup is the router's read: pin first, then the durable assignment. */
  lookup(key: string): PartitionLookup | undefined {
    const pinned = this.#pins.get(key);
    if (pinned !== undefined) return { backend: pinned, pinned: true };
    const record = this.table.get(key);
    if (record === undefined) return undefined;
    return { backend: record.backend, pinned: false, previous: record.drainPrevious === true ? record.previous : undefined };
  }

  /** count is how many partitions a backend holds (pins included): bounded load for new ones. */
  count(backendId: string): number {
    return (this.table.counts().get(backendId) ?? 0) + (this.#pinCounts.get(backendId) ?? 0);
  }

  /** move is `partitions move KEY ID [--drain]`. Pinned keys are moved by editing the config. */
  async move(key: string, backendId: string, drain: boolean): Promise<PartitionRecord> {
    const record = await this.writer.movePartition(key, backendId, drain);
    if (record.drainPrevious === true) this.#drainingMoves.add(key);
    else this.#drainingMoves.delete(key);
    return record;
  }

  /** changed follows an assignment changed elsewhere (another instance, a resync): a move with --drain is followed until settled. */
  changed(key: string, record: PartitionRecord | undefined): void {
    if (record?.drainPrevious === true) this.#drainingMoves.add(key);
    else this.#drainingMoves.delete(key);
  }

  /** isPinned says whether the config pins a key. */
  isPinned(key: string): boolean {
    return this.#pins.has(key);
  }

  /** seen notes a request for a key (last-seen, memory only). */
  seen(key: string): void {
    if (this.#pins.has(key)) this.#pinSeen.set(key, Date.now());
    this.table.touch(key);
  }

  /** total is the number of partitions: pins plus assignments not shadowed by a pin. */
  get total(): number {
    let shadowed = 0;
    for (const key of this.#pins.keys()) if (this.table.get(key) !== undefined) shadowed++;
    return this.#pins.size + this.table.size - shadowed;
  }

  /** page lists partitions: pins first (by key), then assignments (by key). */
  page(offset: number, limit: number, sessionsOf: (key: string) => number): PartitionStatus[] {
    const rows: PartitionStatus[] = [];
    const pins = this.#sortedPins;
    for (let i = offset; i < pins.length && rows.length < limit; i++) {
      const key = pins[i]!;
      rows.push({ key, backend: this.#pins.get(key)!, pinned: true, assignedAt: null, lastSeen: iso(this.#pinSeen.get(key)), previous: null, sessions: sessionsOf(key) });
    }
    if (rows.length < limit) {
      let skip = Math.max(0, offset - pins.length);
      let from = 0;
      // Assignments shadowed by a pin are not listed twice.
      while (rows.length < limit) {
        const chunk = this.table.entries(from, 1000);
        if (chunk.length === 0) break;
        from += chunk.length;
        for (const record of chunk) {
          if (this.#pins.has(record.key)) continue;
          if (skip > 0) {
            skip--;
            continue;
          }
          if (rows.length >= limit) break;
          rows.push(this.#status(record, sessionsOf(record.key)));
        }
      }
    }
    return rows;
  }

  /** status is one partition's row. */
  status(key: string, sessions: number): PartitionStatus | undefined {
    const pinned = this.#pins.get(key);
    if (pinned !== undefined) return { key, backend: pinned, pinned: true, assignedAt: null, lastSeen: iso(this.#pinSeen.get(key)), previous: null, sessions };
    const record = this.table.get(key);
    return record === undefined ? undefined : this.#status(record, sessions);
  }

  #status(record: PartitionRecord, sessions: number): PartitionStatus {
    return {
      key: record.key,
      backend: record.backend,
      pinned: false,
      assignedAt: iso(record.assignedAt),
      lastSeen: iso(this.table.lastSeen(record.key)),
      previous: record.drainPrevious === true ? (record.previous ?? null) : null,
      sessions,
    };
  }
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}
