/**
 * WorkerPartitions is a worker's view of the partition directory (partition mode with
 * `--workers`). The durable store has one writer, the primary; a worker keeps the config's
 * pins and a cache of the assignments it has been told about, and asks the primary when
 * its router wants to assign a key: the primary's answer is final (the first request for a
 * new key wins, everywhere), and it is durable before the worker forwards the request.
 *
 * A key assigned earlier (before this worker started) is simply not in the cache yet: the
 * router then proposes a new assignment, the primary answers where the key lives, and the
 * worker routes there. The primary also tells every worker about each assignment and move.
 */
import type { PartitionLookup } from '../routing/types.js';
import type { PartitionView } from '../sessions/session-context.js';
import type { AssignAnswer, ToPrimary } from './protocol.js';

/** How long a worker waits for the primary's answer before it answers 503 (ms). */
const ANSWER_TIMEOUT_MS = 10_000;

/** WorkerPartitions caches the primary's partition directory; see the file comment. */
export class WorkerPartitions implements PartitionView {
  #pins: Map<string, string>;
  readonly #cache = new Map<string, PartitionLookup>();
  #counts: Record<string, number>;
  #seen = new Set<string>();
  readonly #pending = new Map<number, { resolve: (answer: AssignAnswer) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  #nextId = 1;

  constructor(
    pins: Readonly<Record<string, string>>,
    counts: Record<string, number>,
    private readonly send: (message: ToPrimary) => void,
  ) {
    this.#pins = new Map(Object.entries(pins));
    this.#counts = counts;
  }

  lookup(key: string): PartitionLookup | undefined {
    const pinned = this.#pins.get(key);
    if (pinned !== undefined) return { backend: pinned, pinned: true };
    return this.#cache.get(key);
  }

  count(backendId: string): number {
    return this.#counts[backendId] ?? 0;
  }

  seen(key: string): void {
    this.#seen.add(key);
  }

  /** takeSeen returns the keys seen since the last call (for the report). */
  takeSeen(): string[] {
    if (this.#seen.size === 0) return [];
    const keys = [...this.#seen];
    this.#seen = new Set();
    return keys;
  }

  /** setPins applies reloaded config pins. */
  setPins(pins: Readonly<Record<string, string>>): void {
    this.#pins = new Map(Object.entries(pins));
  }

  /** setCounts takes the primary's partitions-per-backend. */
  setCounts(counts: Record<string, number>): void {
    this.#counts = counts;
  }

  /** changed is the primary telling where a key lives now. */
  changed(key: string, lookup: PartitionLookup | undefined): void {
    if (lookup === undefined || lookup.pinned) this.#cache.delete(key);
    else this.#cache.set(key, lookup);
  }

  /**
   * resolve asks the primary to assign `key` to `backendId`; true when it did. A key this
   * worker already has an assignment for is one whose server refused this very request
   * (the router re-places only such a key): the primary is told to replace that one.
   */
  resolve(key: string, backendId: string): Promise<boolean> {
    const id = this.#nextId++;
    const replacing = this.#cache.get(key)?.backend;
    return new Promise<AssignAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error('the primary did not answer a partition assignment'));
      }, ANSWER_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer });
      this.send({ type: 'assign', id, key, backend: backendId, replacing });
    }).then((answer) => {
      this.changed(key, answer.lookup);
      return answer.accepted;
    });
  }

  /** answered settles a pending resolve() with the primary's answer (`error`: it could not store it). */
  answered(id: number, answer: AssignAnswer, error?: string): void {
    const pending = this.#pending.get(id);
    if (pending === undefined) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (error === undefined) pending.resolve(answer);
    else pending.reject(new Error(error));
  }

  /** close fails every pending request (the worker is stopping). */
  close(): void {
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new Error('stopping'));
    }
    this.#pending.clear();
  }
}
