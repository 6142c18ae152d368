/**
 * The local copy of the last shared state, kept beside state.file, so an instance can
 * start while Redis is down (SPEC "Several balancers"): the pool, the partition
 * assignments and the cookie secret as this instance last knew them. Written atomically
 * (a temp file in the same directory, fsynced, renamed over the copy), so a crash leaves
 * the old copy or the new one, never half of one; private (0600: it holds the secret).
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { BackendConfig } from '../../config/schema.js';
import type { AdminRecord } from '../backend-records.js';
import type { PoolSnapshot } from './pool-changes.js';
import type { SharedPartition } from './redis-partitions.js';

/** SharedCopy is the content of the local copy. */
export interface SharedCopy {
  readonly version: 1;
  /** When it was written (ms since epoch). */
  readonly savedAt: number;
  readonly pool: PoolSnapshot;
  readonly partitions: Readonly<Record<string, SharedPartition>>;
  readonly cookieSecret?: string;
  /** The epoch of the Redis data the partitions were read from (RedisPartitions.epoch). */
  readonly partitionsEpoch?: string;
}

/** CopyRead is what reading the local copy found. */
export type CopyRead = { readonly kind: 'ok'; readonly copy: SharedCopy } | { readonly kind: 'missing' } | { readonly kind: 'damaged'; readonly reason: string };

/** localCopyFile is where the copy of a balancer whose state file is `stateFile` lives. */
export function localCopyFile(stateFile: string): string {
  return `${stateFile}.shared`;
}

/** parseCopy checks the shape of a copy read from disk (never trusted blindly). */
export function parseCopy(text: string): CopyRead {
  let value: Partial<SharedCopy> | null;
  try {
    value = JSON.parse(text) as Partial<SharedCopy> | null;
  } catch {
    return { kind: 'damaged', reason: text.length === 0 ? 'empty' : 'not JSON' };
  }
  if (value === null || typeof value !== 'object' || value.version !== 1) return { kind: 'damaged', reason: 'not a copy of version 1' };
  const pool = value.pool as Partial<PoolSnapshot> | undefined;
  if (typeof value.savedAt !== 'number' || typeof pool?.version !== 'number' || !Array.isArray(pool.backends) || typeof pool.admin !== 'object' || pool.admin === null) {
    return { kind: 'damaged', reason: 'pool or savedAt missing' };
  }
  if (typeof value.partitions !== 'object' || value.partitions === null || Array.isArray(value.partitions)) return { kind: 'damaged', reason: 'partitions missing' };
  if (value.cookieSecret !== undefined && typeof value.cookieSecret !== 'string') return { kind: 'damaged', reason: 'cookieSecret is not a string' };
  if (value.partitionsEpoch !== undefined && typeof value.partitionsEpoch !== 'string') return { kind: 'damaged', reason: 'partitionsEpoch is not a string' };
  const backends = (pool.backends as unknown[]).filter((b): b is BackendConfig => typeof (b as BackendConfig)?.id === 'string' && typeof (b as BackendConfig)?.url === 'string');
  return {
    kind: 'ok',
    copy: { ...(value as SharedCopy), pool: { version: pool.version, backends, admin: pool.admin as Record<string, AdminRecord> } },
  };
}

/** copyFrom is the copy of what an instance knows now (saved after every resync by the wiring). */
export function copyFrom(pool: PoolSnapshot, partitions: ReadonlyMap<string, SharedPartition>, cookieSecret: string | undefined, partitionsEpoch: string | undefined, now = Date.now()): SharedCopy {
  return {
    version: 1,
    savedAt: now,
    pool,
    partitions: Object.fromEntries(partitions),
    ...(cookieSecret === undefined ? {} : { cookieSecret }),
    ...(partitionsEpoch === undefined ? {} : { partitionsEpoch }),
  };
}

/** partitionsOf is the copy's assignments as the map RedisPartitions.start takes. */
export function partitionsOf(copy: SharedCopy): Map<string, SharedPartition> {
  return new Map(Object.entries(copy.partitions));
}

/** LocalSharedCopy reads and atomically writes the copy; see the file comment. */
export class LocalSharedCopy {
  #writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  /** read returns the copy, or says it is missing or damaged (why, in a few words). */
  async read(): Promise<CopyRead> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
      return { kind: 'damaged', reason: `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
    }
    return parseCopy(text);
  }

  /** save writes the copy atomically; saves issued together are written in call order. */
  save(copy: SharedCopy): Promise<void> {
    const next = this.#writing.then(() => this.#write(copy));
    this.#writing = next.catch(() => undefined);
    return next;
  }

  async #write(copy: SharedCopy): Promise<void> {
    const temp = join(dirname(this.file), `.${basename(this.file)}.${process.pid}.tmp`);
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(copy)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temp, this.file);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    }
  }
}
