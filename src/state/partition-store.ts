/**
 * PartitionStore keeps the durable partition assignments of partition mode (routing rule 1):
 * which backend holds each tenant ("partition key"). An assignment never changes by itself;
 * only an admin move changes one.
 *
 * Files, all next to the state file's base path B (e.g. `./servoy-lb.state.json`):
 * - `B.partitions`                    snapshot: one JSON document, one record per line inside
 *                                     `"partitions": [...]` (see {@link SNAPSHOT_FORMAT}).
 * - `B.partitions.journal`            journal: JSON lines appended since the snapshot, one per
 *                                     change: `{"op":"assign"|"move"|"clear","key":..,"backend":..,
 *                                     "assignedAt":..,...}` (the whole record after the change) or
 *                                     `{"op":"delete","key":..,"at":..}`.
 * - `B.partitions.journal.compacting` the journal being folded into a new snapshot (only while a
 *                                     compaction runs, or after a crash during one).
 * - `B.partitions.prev`               the previous snapshot, and
 * - `B.partitions.journal.prev`       the journal that led from it to the current snapshot: if the
 *                                     snapshot is lost or damaged, `prev` + `journal.prev` + the
 *                                     journal give back the same state, nothing lost.
 * - `B.partitions.tmp`                a snapshot being written (removed at start-up if left over).
 * - `B.partitions.corrupt-<ms>`       a damaged snapshot, moved aside (kept for inspection).
 *
 * Replay is idempotent: every journal line carries the key's whole record after the change
 * (or says it was deleted), so applying a line means "the key is now exactly this". Replaying
 * lines whose effect is already in the base state changes nothing, as long as the journals
 * replayed end with every line written after the base state. Load therefore reads the base
 * (the snapshot, or `prev` with `journal.prev`) and replays `journal.compacting` then
 * `journal`, whatever step a compaction had reached.
 *
 * Durability: each change is written with one synchronous write() (fd opened 'a', O_APPEND)
 * before the method returns, so once `assign` returns, a `kill -9` of the process cannot lose
 * it (the kernel holds the data). Journal appends are NOT fsynced (unless `fsyncEachAppend`):
 * on a power loss or kernel crash the changes of the last seconds (the file system's commit
 * interval, 5 s on ext4 by default) can be lost, and those tenants are assigned anew after the
 * reboot, possibly to another backend. Compaction fsyncs the snapshot and the directory.
 *
 * The store is single-writer: one process owns the files (with `--workers`, the primary).
 * Start-up (`open`) is synchronous, so the balancer can route from its first request; a
 * compaction runs in the background (async fs, in chunks), never blocking the event loop for
 * long, while new changes go to a fresh journal.
 */
import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { copyFile, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';

/** PartitionRecord is one durable assignment. Records handed out are frozen. */
export interface PartitionRecord {
  key: string;
  backend: string;
  /** When the partition was first assigned (ms since epoch). */
  assignedAt: number;
  /** The backend it was on before the last move. */
  previous?: string;
  /** When it was last moved. */
  movedAt?: number;
  /** Moved with --drain: sessions that live on `previous` finish there. */
  drainPrevious?: boolean;
}

/** PartitionStoreOptions tunes a store; the defaults suit production. */
export interface PartitionStoreOptions {
  /**
   * Compact when the journal has more than max(compactEvery, size / 4) lines; default 10,000.
   * Loading reads the snapshot, then replays every journal line (each costs about what a
   * snapshot record costs, and moves cost more bytes), so this bounds a load to about 1.25x
   * the snapshot's time: ~430 ms at 100,000 partitions here. The price is a background
   * compaction every size / 4 changes (127 ms at 100,000, never blocking the event loop).
   */
  compactEvery?: number;
  /** Clock for assignedAt / movedAt / lastSeen (ms); default Date.now. */
  now?: () => number;
  /** fdatasync after every append: survives power loss too, at the cost of a disk flush per change. */
  fsyncEachAppend?: boolean;
  /** Called after every compaction the store starts by itself, successful or not (for the log). */
  onCompaction?: (report: CompactionReport) => void;
}

/** PartitionLoadReport says what `open` found; the balancer logs it. */
export interface PartitionLoadReport {
  /** Where the base state came from. */
  base: 'snapshot' | 'prev' | 'none';
  /** Records after loading. */
  records: number;
  /** Journal lines applied. */
  journalLines: number;
  /** Unreadable last lines (a crash mid-write); ignored, and cut off the active journal. */
  tornTail: number;
  /** Unreadable lines elsewhere; skipped. */
  garbled: number;
  /** One sentence per problem (garbled lines, damaged snapshot), at most 20 listed. */
  errors: string[];
  /** One sentence per notable but harmless finding. */
  warnings: string[];
  /** How long loading took. */
  ms: number;
}

/** CompactionReport describes one compaction. */
export interface CompactionReport {
  records: number;
  ms: number;
  snapshotBytes: number;
  error?: Error;
}

/** PartitionStoreError says a partition file cannot be used or written, in one sentence. */
export class PartitionStoreError extends Error {
  override name = 'PartitionStoreError';
}

/** The `format` field of a snapshot. */
export const SNAPSHOT_FORMAT = 'servoy-lb-partitions';
/** Longest partition key accepted (the caller normalises keys). */
export const MAX_KEY_LENGTH = 256;
const DEFAULT_COMPACT_EVERY = 10_000;
const SNAPSHOT_CHUNK = 1000;
const MAX_LISTED_ERRORS = 20;

type Op = 'assign' | 'move' | 'clear';

/** The file names used for base path `base`. */
export function partitionFiles(base: string) {
  const snapshot = `${base}.partitions`;
  return {
    snapshot,
    prev: `${snapshot}.prev`,
    tmp: `${snapshot}.tmp`,
    prevTmp: `${snapshot}.prev.tmp`,
    journal: `${snapshot}.journal`,
    compacting: `${snapshot}.journal.compacting`,
    journalPrev: `${snapshot}.journal.prev`,
  } as const;
}
type Files = ReturnType<typeof partitionFiles>;

/** PartitionStore: see the file comment. */
export class PartitionStore {
  readonly files: Files;
  /** What open found. */
  readonly loadReport: PartitionLoadReport;
  /** The last background compaction, if any ran. */
  lastCompaction: CompactionReport | undefined;

  readonly #records = new Map<string, PartitionRecord>();
  readonly #counts = new Map<string, number>();
  readonly #lastSeen = new Map<string, number>();
  #sortedKeys: string[] | undefined;
  readonly #now: () => number;
  readonly #compactEvery: number;
  readonly #fsync: boolean;
  readonly #onCompaction: ((report: CompactionReport) => void) | undefined;
  #fd = -1;
  #journalBytes = 0;
  #journalLines = 0;
  /** `journal.compacting` exists: the next compaction must fold it in before rotating again. */
  #compactingExists = false;
  #compaction: Promise<CompactionReport> | undefined;
  /** After a failed compaction, wait until the journal has this many lines before retrying. */
  #retryAtLines = 0;
  #closed = false;

  private constructor(base: string, options: PartitionStoreOptions) {
    this.files = partitionFiles(base);
    this.#now = options.now ?? Date.now;
    this.#compactEvery = Math.max(1, Math.floor(options.compactEvery ?? DEFAULT_COMPACT_EVERY));
    this.#fsync = options.fsyncEachAppend ?? false;
    this.#onCompaction = options.onCompaction;
    this.loadReport = { base: 'none', records: 0, journalLines: 0, tornTail: 0, garbled: 0, errors: [], warnings: [], ms: 0 };
  }

  /**
   * open loads the store synchronously (snapshot, then the journals) and opens the journal for
   * appending. Damaged journal lines are skipped and reported in `loadReport`; a damaged
   * snapshot is moved aside and `prev` used instead, or, without a usable `prev`, open throws
   * a PartitionStoreError naming the file.
   */
  static open(basePath: string, options: PartitionStoreOptions = {}): PartitionStore {
    const store = new PartitionStore(basePath, options);
    store.#load();
    return store;
  }

  /** Number of partitions. */
  get size(): number {
    return this.#records.size;
  }

  /** get returns the assignment of `key` (O(1)). */
  get(key: string): PartitionRecord | undefined {
    return this.#records.get(key);
  }

  /** assign durably records a NEW assignment; throws if `key` is already assigned (use move). */
  assign(key: string, backend: string): PartitionRecord {
    checkKey(key);
    checkBackend(backend);
    const existing = this.#records.get(key);
    if (existing !== undefined) {
      throw new PartitionStoreError(`partition "${key}" is already assigned to ${existing.backend}; use move to change it`);
    }
    return this.#commit('assign', { key, backend, assignedAt: this.#now() });
  }

  /**
   * move durably assigns `key` to `backend`. With `drain`, sessions still on the old backend
   * finish there (`previous` + `drainPrevious`). A key never assigned is assigned (pre-placing a
   * tenant); a move to the backend it is on changes nothing.
   */
  move(key: string, backend: string, drain: boolean): PartitionRecord {
    checkKey(key);
    checkBackend(backend);
    const existing = this.#records.get(key);
    if (existing === undefined) return this.#commit('assign', { key, backend, assignedAt: this.#now() });
    if (existing.backend === backend) return existing;
    return this.#commit('move', { key, backend, assignedAt: existing.assignedAt, previous: existing.backend, movedAt: this.#now(), drainPrevious: drain });
  }

  /** clearPrevious forgets the old backend of a moved partition (its sessions have ended). */
  clearPrevious(key: string): PartitionRecord | undefined {
    const existing = this.#records.get(key);
    if (existing === undefined || (existing.previous === undefined && existing.drainPrevious === undefined)) return existing;
    const next: PartitionRecord = { key, backend: existing.backend, assignedAt: existing.assignedAt };
    if (existing.movedAt !== undefined) next.movedAt = existing.movedAt;
    return this.#commit('clear', next);
  }

  /** delete durably removes an assignment; false if there was none. */
  delete(key: string): boolean {
    if (!this.#records.has(key)) return false;
    this.#append(JSON.stringify({ op: 'delete', key, at: this.#now() }));
    this.#applyDelete(key);
    this.#afterAppend();
    return true;
  }

  /**
   * entries returns up to `limit` records from `offset` in stable key order (UTF-16 code unit
   * order). The sorted key list is cached and rebuilt on the first call after a key was added
   * or deleted: O(n log n), about 50-100 ms at 100,000 keys; later pages cost O(limit).
   */
  entries(offset = 0, limit = 100): PartitionRecord[] {
    this.#sortedKeys ??= [...this.#records.keys()].sort();
    const start = Math.max(0, Math.floor(offset));
    const end = Math.min(this.#sortedKeys.length, start + Math.max(0, Math.floor(limit)));
    const out: PartitionRecord[] = [];
    for (let i = start; i < end; i++) out.push(this.#records.get(this.#sortedKeys[i]!)!);
    return out;
  }

  /** counts is the number of partitions per backend id, kept up to date (live view, O(1)). */
  counts(): ReadonlyMap<string, number> {
    return this.#counts;
  }

  /** touch notes that `key` was seen; kept in memory only, never written (lost on restart). */
  touch(key: string, now: number = this.#now()): void {
    if (this.#records.has(key)) this.#lastSeen.set(key, now);
  }

  /** lastSeen is when `key` was last touched in this process, if it was. */
  lastSeen(key: string): number | undefined {
    return this.#lastSeen.get(key);
  }

  /** compacting is the compaction in progress, if any. */
  get compacting(): Promise<CompactionReport> | undefined {
    return this.#compaction;
  }

  /**
   * compact writes a new snapshot and retires the journal, in the background: new changes go
   * to a fresh journal meanwhile. Runs by itself when the journal grows past
   * max(compactEvery, size / 4) lines. At most one runs at a time (a second call joins it).
   */
  compact(): Promise<CompactionReport> {
    if (this.#closed) return Promise.reject(new PartitionStoreError(`partition store ${this.files.snapshot} is closed`));
    this.#compaction ??= this.#runCompaction().finally(() => {
      this.#compaction = undefined;
    });
    return this.#compaction;
  }

  /** close stops writing (further changes throw) and resolves once a running compaction ended. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#closeFd();
    }
    await this.#compaction?.catch(() => undefined);
  }

  // ---- loading ------------------------------------------------------------------------

  #load(): void {
    const started = performance.now();
    const f = this.files;
    removeIfExists(f.tmp);
    removeIfExists(f.prevTmp);
    let base = readSnapshot(f.snapshot);
    let usePrev = false;
    if (base.kind === 'damaged') {
      const prev = readSnapshot(f.prev);
      if (prev.kind !== 'ok') {
        const why = prev.kind === 'missing' ? 'there is no previous snapshot to fall back on' : `the previous snapshot ${f.prev} is damaged too (${prev.reason})`;
        throw new PartitionStoreError(`partition snapshot ${f.snapshot} is not usable (${base.reason}) and ${why}; restore it from a backup or move it away to start without partitions`);
      }
      const aside = `${f.snapshot}.corrupt-${Date.now()}`;
      renameSync(f.snapshot, aside);
      this.#error(`partition snapshot ${f.snapshot} is not usable (${base.reason}); moved it to ${aside} and loaded the previous snapshot ${f.prev} with its journal instead`);
      base = prev;
      usePrev = true;
    } else if (base.kind === 'missing') {
      const prev = readSnapshot(f.prev);
      if (prev.kind === 'damaged') {
        this.loadReport.warnings.push(`previous partition snapshot ${f.prev} is not usable (${prev.reason}); ignored it`);
      } else if (prev.kind === 'ok') {
        this.loadReport.warnings.push(`partition snapshot ${f.snapshot} is missing (a compaction was interrupted, or it was removed); loaded ${f.prev} with its journal instead`);
        base = prev;
        usePrev = true;
      }
    }
    if (base.kind === 'ok') {
      this.loadReport.base = usePrev ? 'prev' : 'snapshot';
      this.#loadRecords(base.data, usePrev ? f.prev : f.snapshot);
    }
    if (usePrev) this.#replay(f.journalPrev, false);
    else if (base.kind !== 'ok' && this.#replay(f.journalPrev, false).exists) {
      this.#error(`partition snapshots ${f.snapshot} and ${f.prev} are both missing while ${f.journalPrev} exists; loaded what the journals hold, so assignments older than them are lost`);
    }
    this.#compactingExists = this.#replay(f.compacting, false).exists;
    const active = this.#replay(f.journal, true);
    this.#journalLines = active.lines;
    this.#journalBytes = active.bytes;
    try {
      this.#fd = openSync(f.journal, 'a', 0o600);
    } catch (err) {
      throw new PartitionStoreError(`cannot open partition journal ${f.journal} for writing: ${(err as Error).message}`);
    }
    if (active.bytes < fstatSync(this.#fd).size) ftruncateSync(this.#fd, active.bytes); // cut a torn tail
    this.loadReport.records = this.#records.size;
    this.loadReport.ms = Math.round((performance.now() - started) * 10) / 10;
    // Finish an interrupted compaction, and rebuild the snapshot when it had to be recovered.
    if (this.#compactingExists || usePrev) this.#startCompaction();
  }

  #loadRecords(data: unknown, file: string): void {
    const doc = data as { format?: unknown; version?: unknown; partitions?: unknown; count?: unknown };
    if (typeof doc !== 'object' || doc === null || doc.format !== SNAPSHOT_FORMAT || !Array.isArray(doc.partitions)) {
      throw new PartitionStoreError(`partition snapshot ${file} is not a servoy-lb partition snapshot (no "format": "${SNAPSHOT_FORMAT}" with a "partitions" list); move it away or restore it`);
    }
    if (doc.version !== 1) {
      throw new PartitionStoreError(`partition snapshot ${file} has version ${String(doc.version)}, which this servoy-lb cannot read; upgrade servoy-lb`);
    }
    let index = 0;
    for (const raw of doc.partitions as unknown[]) {
      index++;
      const record = toRecord(raw, true);
      if (record === undefined) {
        this.loadReport.garbled++;
        this.#error(`partition snapshot ${file} entry ${index} is not a valid record; skipped it`);
        continue;
      }
      this.#applySet(record);
    }
    if (typeof doc.count === 'number' && doc.count !== doc.partitions.length) {
      this.loadReport.warnings.push(`partition snapshot ${file} says it holds ${doc.count} records but holds ${doc.partitions.length}`);
    }
  }

  /** replay applies one journal file; for the active journal, `bytes` is where a torn tail starts. */
  #replay(file: string, active: boolean): { exists: boolean; lines: number; bytes: number } {
    let buf: Buffer;
    try {
      buf = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { exists: false, lines: 0, bytes: 0 };
      throw new PartitionStoreError(`cannot read partition journal ${file}: ${(err as Error).message}`);
    }
    const text = buf.toString('utf8');
    const lines = text.split('\n');
    // The last line written is the only one a crash can have torn.
    let last = lines.length - 1;
    while (last >= 0 && lines[last]!.trim() === '') last--;
    let good = 0;
    let chars = 0;
    let bytes = buf.length;
    for (let i = 0; i <= last; i++) {
      const line = lines[i]!;
      if (line.length === 0 || line.trim() === '') {
        // blank: nothing to apply
      } else if (this.#applyLine(line)) {
        good++;
      } else if (i === last) {
        this.loadReport.tornTail++;
        this.loadReport.warnings.push(`partition journal ${file} ends with an unreadable line ${i + 1} (the process stopped while writing it); ignored it`);
        if (active) bytes = Buffer.byteLength(text.slice(0, chars));
      } else {
        this.loadReport.garbled++;
        this.#error(`partition journal ${file} line ${i + 1} is not a valid record; skipped it`);
      }
      chars += line.length + 1;
    }
    this.loadReport.journalLines += good;
    return { exists: true, lines: last + 1, bytes };
  }

  #applyLine(line: string): boolean {
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      return false;
    }
    if (typeof entry !== 'object' || entry === null) return false;
    const op = (entry as { op?: unknown }).op;
    if (op === 'delete') {
      const key = (entry as { key?: unknown }).key;
      if (!validKey(key)) return false;
      this.#applyDelete(key);
      return true;
    }
    if (op !== 'assign' && op !== 'move' && op !== 'clear') return false;
    const record = toRecord(entry);
    if (record === undefined) return false;
    this.#applySet(record);
    return true;
  }

  #error(message: string): void {
    if (this.loadReport.errors.length < MAX_LISTED_ERRORS) this.loadReport.errors.push(message);
    else if (this.loadReport.errors.length === MAX_LISTED_ERRORS) this.loadReport.errors.push('more problems were found; only the first ones are listed');
  }

  // ---- changing -----------------------------------------------------------------------

  #commit(op: Op, record: PartitionRecord): PartitionRecord {
    const frozen = Object.freeze(record);
    this.#append(JSON.stringify({ op, ...frozen }));
    this.#applySet(frozen);
    this.#afterAppend();
    return frozen;
  }

  /** append writes one line with synchronous write()s; on failure the file is cut back and it throws. */
  #append(line: string): void {
    if (this.#closed) throw new PartitionStoreError(`partition store ${this.files.snapshot} is closed`);
    const buf = Buffer.from(`${line}\n`, 'utf8');
    let written = 0;
    try {
      if (this.#fd < 0) this.#fd = openSync(this.files.journal, 'a', 0o600);
      while (written < buf.length) written += writeSync(this.#fd, buf, written, buf.length - written);
      if (this.#fsync) fdatasyncSync(this.#fd);
    } catch (err) {
      if (written > 0 && this.#fd >= 0) {
        try {
          ftruncateSync(this.#fd, this.#journalBytes);
        } catch {
          // the next open cuts a torn tail anyway
        }
      }
      throw new PartitionStoreError(`cannot write partition journal ${this.files.journal}: ${(err as Error).message}`);
    }
    this.#journalBytes += buf.length;
    this.#journalLines++;
  }

  #afterAppend(): void {
    if (this.#journalLines > Math.max(this.#compactEvery, this.#records.size / 4, this.#retryAtLines)) this.#startCompaction();
  }

  #startCompaction(): void {
    if (this.#compaction !== undefined || this.#closed) return;
    this.compact().then(
      (report) => this.#onCompaction?.(report),
      (err: Error) => {
        this.#retryAtLines = this.#journalLines + this.#compactEvery;
        const report: CompactionReport = { records: this.#records.size, ms: 0, snapshotBytes: 0, error: err };
        this.lastCompaction = report;
        this.#onCompaction?.(report);
      },
    );
  }

  #applySet(record: PartitionRecord): void {
    const before = this.#records.get(record.key);
    if (before === undefined) this.#sortedKeys = undefined;
    else this.#count(before.backend, -1);
    this.#records.set(record.key, record);
    this.#count(record.backend, 1);
  }

  #applyDelete(key: string): void {
    const before = this.#records.get(key);
    if (before === undefined) return;
    this.#records.delete(key);
    this.#lastSeen.delete(key);
    this.#count(before.backend, -1);
    this.#sortedKeys = undefined;
  }

  #count(backend: string, delta: number): void {
    const n = (this.#counts.get(backend) ?? 0) + delta;
    if (n > 0) this.#counts.set(backend, n);
    else this.#counts.delete(backend);
  }

  #closeFd(): void {
    if (this.#fd >= 0) {
      const fd = this.#fd;
      this.#fd = -1;
      closeSync(fd);
    }
  }

  // ---- compaction ---------------------------------------------------------------------

  /**
   * The steps, and why a crash after any of them loses nothing (see the file comment for the
   * replay rule): 1. rotate: `journal` -> `journal.compacting`, new changes go to a fresh
   * `journal`; the records at this instant are the new snapshot's content. 2. write
   * `tmp`, fsync. 3. `snapshot` -> `prev`. 4. `tmp` -> `snapshot`. 5. `journal.compacting` ->
   * `journal.prev`. 6. fsync the directory. Until 4 the old snapshot (or, between 3 and 4,
   * `prev`, which is the same file) plus `journal.compacting` plus `journal` hold everything;
   * from 4 the new snapshot holds what `journal.compacting` added, and replaying it again is
   * harmless; from 5 `prev` + `journal.prev` + `journal` still give the full state.
   * When `journal.compacting` already exists (a crash or a failed compaction), step 1 is
   * skipped: the snapshot then holds the current records, a superset, and replay is still
   * exact.
   */
  async #runCompaction(): Promise<CompactionReport> {
    const started = performance.now();
    const f = this.files;
    if (!this.#compactingExists) {
      this.#closeFd();
      renameSync(f.journal, f.compacting);
      this.#compactingExists = true;
      this.#journalLines = 0;
      this.#journalBytes = 0;
      this.#fd = openSync(f.journal, 'a', 0o600);
    }
    this.#retryAtLines = 0;
    const records = [...this.#records.values()];
    const handle = await open(f.tmp, 'w', 0o600);
    let bytes = 0;
    try {
      const head = `{"format":${JSON.stringify(SNAPSHOT_FORMAT)},"version":1,"savedAt":${this.#now()},"count":${records.length},"partitions":[\n`;
      bytes += (await handle.write(head)).bytesWritten;
      for (let i = 0; i < records.length; i += SNAPSHOT_CHUNK) {
        const end = Math.min(records.length, i + SNAPSHOT_CHUNK);
        let chunk = '';
        for (let j = i; j < end; j++) chunk += (j === 0 ? '' : ',\n') + JSON.stringify(records[j]);
        bytes += (await handle.write(chunk)).bytesWritten;
      }
      bytes += (await handle.write('\n]}\n')).bytesWritten;
      await handle.sync();
    } finally {
      await handle.close();
    }
    let hadSnapshot = true;
    try {
      await rename(f.snapshot, f.prev);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      hadSnapshot = false;
    }
    await rename(f.tmp, f.snapshot);
    if (!hadSnapshot) {
      // No old snapshot to keep (first compaction, or it was damaged): `prev` becomes a copy of
      // the new one, so that `prev` + `journal.prev` + `journal` stays complete.
      await copyFile(f.snapshot, f.prevTmp);
      const copy = await open(f.prevTmp, 'r+');
      try {
        await copy.sync();
      } finally {
        await copy.close();
      }
      await rename(f.prevTmp, f.prev);
    }
    await rename(f.compacting, f.journalPrev);
    this.#compactingExists = false;
    await syncDir(dirname(f.snapshot));
    const report: CompactionReport = { records: records.length, ms: Math.round((performance.now() - started) * 10) / 10, snapshotBytes: bytes };
    this.lastCompaction = report;
    return report;
  }
}

// ---- helpers ------------------------------------------------------------------------------

type SnapshotRead = { kind: 'ok'; data: unknown } | { kind: 'missing' } | { kind: 'damaged'; reason: string };

function readSnapshot(file: string): SnapshotRead {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw new PartitionStoreError(`cannot read partition snapshot ${file}: ${(err as Error).message}`);
  }
  try {
    const data: unknown = JSON.parse(text);
    const doc = data as { format?: unknown };
    if (typeof doc !== 'object' || doc === null || doc.format !== SNAPSHOT_FORMAT) return { kind: 'damaged', reason: `not a ${SNAPSHOT_FORMAT} document` };
    return { kind: 'ok', data };
  } catch (err) {
    return { kind: 'damaged', reason: `not valid JSON: ${(err as Error).message}` };
  }
}

function validKey(key: unknown): key is string {
  return typeof key === 'string' && key.length > 0 && key.length <= MAX_KEY_LENGTH;
}

function checkKey(key: string): void {
  if (!validKey(key)) throw new PartitionStoreError(`partition key must be a string of 1 to ${MAX_KEY_LENGTH} characters`);
}

function checkBackend(backend: string): void {
  if (typeof backend !== 'string' || backend.length === 0) throw new PartitionStoreError('backend id must be a non-empty string');
}

/**
 * toRecord validates a parsed record and returns it frozen with only the known fields. With
 * `reuse`, a parsed object that has exactly those fields is frozen in place instead of copied
 * (loading a snapshot then allocates half as many objects).
 */
function toRecord(raw: unknown, reuse = false): PartitionRecord | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (!validKey(r.key) || typeof r.backend !== 'string' || r.backend === '' || typeof r.assignedAt !== 'number' || !Number.isFinite(r.assignedAt)) return undefined;
  let fields = 3;
  if (r.previous !== undefined) {
    if (typeof r.previous !== 'string') return undefined;
    fields++;
  }
  if (r.movedAt !== undefined) {
    if (typeof r.movedAt !== 'number') return undefined;
    fields++;
  }
  if (r.drainPrevious !== undefined) {
    if (typeof r.drainPrevious !== 'boolean') return undefined;
    fields++;
  }
  if (reuse) {
    let own = 0;
    for (const name in r) if (Object.hasOwn(r, name)) own++;
    if (own === fields) return Object.freeze(r as unknown as PartitionRecord);
  }
  const record: PartitionRecord = { key: r.key, backend: r.backend, assignedAt: r.assignedAt };
  if (r.previous !== undefined) record.previous = r.previous as string;
  if (r.movedAt !== undefined) record.movedAt = r.movedAt as number;
  if (r.drainPrevious !== undefined) record.drainPrevious = r.drainPrevious as boolean;
  return Object.freeze(record);
}

function removeIfExists(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
