/**
 * The pure half of the shared pool (redis-pool-state.ts): the snapshot every instance
 * holds, the change messages of the pool channel, and how a message applies to a
 * snapshot. Messages carry a version; a gap means a missed message, and the answer to a
 * gap is a full read, never a guess.
 */
import type { BackendConfig } from '../../config/schema.js';
import type { AdminRecord } from '../backend-records.js';

/** PoolSnapshot is the shared pool as one instance knows it. */
export interface PoolSnapshot {
  /** The pool's change counter in Redis (0: never seeded, or not read yet). */
  readonly version: number;
  /** In the order they joined (the config's order for the seeded ones). */
  readonly backends: readonly BackendConfig[];
  /** Admin states by backend id; `ready` is absent. */
  readonly admin: Readonly<Record<string, AdminRecord>>;
}

/** EMPTY_POOL is the snapshot before anything was read. */
export const EMPTY_POOL: PoolSnapshot = Object.freeze({ version: 0, backends: [], admin: {} });

/** PoolOp is one kind of pool change. */
export type PoolOp = 'set-backend' | 'remove-backend' | 'set-admin' | 'seed';

/** PoolChange is one message of the pool channel: `<version>\n<op>\n<id>\n<value>`. */
export interface PoolChange {
  readonly version: number;
  readonly op: PoolOp;
  readonly id: string;
  /** set-backend: the stored entry `{"at":N,"backend":{...}}`; set-admin: the AdminRecord JSON or '' for ready. */
  readonly value: string;
}

const OPS: ReadonlySet<string> = new Set(['set-backend', 'remove-backend', 'set-admin', 'seed']);

/** parsePoolChange reads a message; undefined when it is not one. */
export function parsePoolChange(message: string): PoolChange | undefined {
  const [version, op, id, ...rest] = message.split('\n');
  const v = Number(version);
  if (!Number.isInteger(v) || v < 1 || op === undefined || !OPS.has(op) || id === undefined) return undefined;
  return { version: v, op: op as PoolOp, id, value: rest.join('\n') };
}

/** BackendEntry is the stored value of one backend: its place in the order and its config. */
export interface BackendEntry {
  readonly at: number;
  readonly backend: BackendConfig;
}

/** parseEntry reads a stored backend entry; undefined when it is not one. */
export function parseEntry(text: string): BackendEntry | undefined {
  try {
    const value = JSON.parse(text) as Partial<BackendEntry> | null;
    const b = value?.backend as Partial<BackendConfig> | undefined;
    if (typeof value?.at !== 'number' || typeof b?.id !== 'string' || typeof b.url !== 'string') return undefined;
    return value as BackendEntry;
  } catch {
    return undefined;
  }
}

/** parseAdmin reads a stored admin record; undefined when it is not one. */
export function parseAdmin(text: string): AdminRecord | undefined {
  try {
    const value = JSON.parse(text) as Partial<AdminRecord> | null;
    if (value?.admin !== 'draining' && value?.admin !== 'disabled') return undefined;
    return value as AdminRecord;
  } catch {
    return undefined;
  }
}

/** snapshotFrom builds a snapshot from the two hashes as read (entries that do not parse are skipped). */
export function snapshotFrom(version: number, backends: Record<string, string>, admin: Record<string, string>): PoolSnapshot {
  const entries = Object.values(backends)
    .map(parseEntry)
    .filter((e): e is BackendEntry => e !== undefined)
    .sort((a, b) => a.at - b.at || a.backend.id.localeCompare(b.backend.id));
  const ids = new Set(entries.map((e) => e.backend.id));
  const states: Record<string, AdminRecord> = {};
  for (const [id, text] of Object.entries(admin)) {
    const record = parseAdmin(text);
    if (record !== undefined && ids.has(id)) states[id] = record;
  }
  return { version, backends: entries.map((e) => e.backend), admin: states };
}

/**
 * applyChange is the snapshot after `change`, or `resync` when the message cannot be
 * applied (a gap in versions, a seed, a value that does not parse), or `ignore` when
 * the snapshot already has it.
 */
export function applyChange(snapshot: PoolSnapshot, change: PoolChange): PoolSnapshot | 'resync' | 'ignore' {
  if (change.version <= snapshot.version) return 'ignore';
  if (change.version !== snapshot.version + 1 || change.op === 'seed') return 'resync';
  const version = change.version;
  switch (change.op) {
    case 'set-backend': {
      const entry = parseEntry(change.value);
      if (entry === undefined) return 'resync';
      // A changed backend keeps its place; a new one joins at the end (its order is the newest version).
      const known = snapshot.backends.some((b) => b.id === entry.backend.id);
      const backends = known ? snapshot.backends.map((b) => (b.id === entry.backend.id ? entry.backend : b)) : [...snapshot.backends, entry.backend];
      return { ...snapshot, version, backends };
    }
    case 'remove-backend': {
      const admin = { ...snapshot.admin };
      delete admin[change.id];
      return { version, backends: snapshot.backends.filter((b) => b.id !== change.id), admin };
    }
    default: {
      const admin = { ...snapshot.admin };
      if (change.value === '') {
        delete admin[change.id];
      } else {
        const record = parseAdmin(change.value);
        if (record === undefined) return 'resync';
        admin[change.id] = record;
      }
      return { ...snapshot, version, admin };
    }
  }
}

/**
 * configDrift says, for the log, how the config file's backends differ from the shared
 * pool (the shared pool wins once seeded); undefined when they list the same ids.
 */
export function configDrift(fromConfig: readonly BackendConfig[], shared: PoolSnapshot): string | undefined {
  const sharedIds = new Set(shared.backends.map((b) => b.id));
  const configIds = new Set(fromConfig.map((b) => b.id));
  const onlyFile = [...configIds].filter((id) => !sharedIds.has(id));
  const onlyShared = [...sharedIds].filter((id) => !configIds.has(id));
  if (onlyFile.length === 0 && onlyShared.length === 0) return undefined;
  const parts: string[] = [];
  if (onlyFile.length > 0) parts.push(`the config file lists ${onlyFile.join(', ')}, which the shared pool does not have`);
  if (onlyShared.length > 0) parts.push(`the shared pool has ${onlyShared.join(', ')}, which the config file does not list`);
  return `${parts.join(' and ')}; the shared pool in Redis is used (change it with servoy-lb backends add/remove, which every instance follows)`;
}
