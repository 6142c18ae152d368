/**
 * How the durable state and the config file's backend list combine. The rule, also in
 * the README:
 * - The pool is the config file's backends, minus those removed at run time, plus those
 *   added at run time.
 * - A run-time addition is kept until the config file lists the same id (then the file's
 *   entry is used and the record is dropped); a run-time removal is kept until the file
 *   no longer lists the id. So a restart or a reload never undoes an administrator's
 *   change, and writing the change into the file retires the record.
 * - Admin states (draining, disabled) are kept per id and apply to whichever entry has
 *   that id; they are dropped when the backend leaves the pool.
 * - A weight set at run time (`backends set ID --weight N`) on a backend of the config file
 *   wins over the file's weight until the file says the same weight (then the record is
 *   dropped, as an addition is once the file lists it). On a backend added at run time it
 *   simply changes the recorded addition.
 * Pure functions: the Balancer does the I/O.
 */
import type { BackendConfig } from '../config/schema.js';
import type { AdminState } from '../pool/pool.js';

/** AdminRecord is a persisted admin state; `ready` is the default and never stored. */
export interface AdminRecord {
  readonly admin: Exclude<AdminState, 'ready'>;
  /** When draining started (ms since epoch), so a restart mid-drain keeps its clock. */
  readonly since?: number;
}

/** BackendRecords is the part of the state file about backends. */
export interface BackendRecords {
  added: BackendConfig[];
  removed: string[];
  admin: Record<string, AdminRecord>;
  /** Run-time weights of config-file backends, by id (absent in state files of older versions). */
  weights?: Record<string, number>;
}

/** emptyRecords is the state of a balancer nobody has changed at run time. */
export function emptyRecords(): BackendRecords {
  return { added: [], removed: [], admin: {}, weights: {} };
}

/** readRecords takes the records out of a loaded state file, tolerating an older or partial one. */
export function readRecords(data: Record<string, unknown>): BackendRecords {
  const raw = (data.backends ?? {}) as Partial<BackendRecords>;
  return {
    added: Array.isArray(raw.added) ? raw.added.filter((b) => typeof b?.id === 'string' && typeof b?.url === 'string') : [],
    removed: Array.isArray(raw.removed) ? raw.removed.filter((id) => typeof id === 'string') : [],
    admin: typeof raw.admin === 'object' && raw.admin !== null ? raw.admin : {},
    weights: readWeights(raw.weights),
  };
}

function readWeights(raw: unknown): Record<string, number> {
  if (typeof raw !== 'object' || raw === null) return {};
  return Object.fromEntries(Object.entries(raw).filter(([, weight]) => Number.isInteger(weight) && weight >= 1 && weight <= 1000));
}

/** MergedPool is the backend list to run with, where each came from, and the records still needed. */
export interface MergedPool {
  readonly backends: BackendConfig[];
  readonly source: ReadonlyMap<string, 'config' | 'runtime'>;
  readonly records: BackendRecords;
}

/** mergeBackends applies the rule in the file comment. */
export function mergeBackends(fromConfig: readonly BackendConfig[], records: BackendRecords): MergedPool {
  const configIds = new Set(fromConfig.map((b) => b.id));
  const removed = records.removed.filter((id) => configIds.has(id));
  const added = records.added.filter((b) => !configIds.has(b.id));
  const removedSet = new Set(removed);
  const weights: Record<string, number> = {};
  for (const [id, weight] of Object.entries(records.weights ?? {})) {
    const fileEntry = fromConfig.find((b) => b.id === id);
    if (fileEntry !== undefined && !removedSet.has(id) && fileEntry.weight !== weight) weights[id] = weight;
  }
  const withWeight = (b: BackendConfig): BackendConfig => (weights[b.id] === undefined ? b : { ...b, weight: weights[b.id]! });
  const backends = [...fromConfig.filter((b) => !removedSet.has(b.id)).map(withWeight), ...added];
  const ids = new Set(backends.map((b) => b.id));
  const admin: Record<string, AdminRecord> = {};
  for (const [id, record] of Object.entries(records.admin)) if (ids.has(id)) admin[id] = record;
  const source = new Map<string, 'config' | 'runtime'>(backends.map((b) => [b.id, configIds.has(b.id) ? 'config' : 'runtime']));
  return { backends, source, records: { added, removed, admin, weights } };
}
