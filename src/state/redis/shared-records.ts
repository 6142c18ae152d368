/**
 * The shared pool (a PoolSnapshot: every backend and its admin state, as Redis holds it)
 * seen through the BackendRecords the control plane works with (the config file's
 * backends, minus removed, plus added, with run-time weights and admin states). Pure: the
 * Redis state store reads the records from a snapshot, and turns a change of records
 * into the writes that make the shared pool say the same.
 */
import type { BackendConfig } from '../../config/schema.js';
import { mergeBackends, type AdminRecord, type BackendRecords } from '../backend-records.js';
import type { PoolSnapshot } from './pool-changes.js';

/**
 * recordsFromSnapshot is the shared pool as records against this instance's config file:
 * merged with the file's backends it gives the shared pool (a file entry whose id the pool
 * holds with another url or route keeps the file's; configDrift says so in the log).
 */
export function recordsFromSnapshot(configBackends: readonly BackendConfig[], snapshot: PoolSnapshot): BackendRecords {
  const shared = new Map(snapshot.backends.map((b) => [b.id, b]));
  const configIds = new Set(configBackends.map((b) => b.id));
  const weights: Record<string, number> = {};
  for (const b of configBackends) {
    const weight = shared.get(b.id)?.weight;
    if (weight !== undefined && weight !== b.weight) weights[b.id] = weight;
  }
  return {
    added: snapshot.backends.filter((b) => !configIds.has(b.id)).map((b) => ({ ...b })),
    removed: configBackends.filter((b) => !shared.has(b.id)).map((b) => b.id),
    admin: { ...snapshot.admin },
    weights,
  };
}

/** PoolWrite is one change to make to the shared pool. */
export type PoolWrite =
  | { readonly op: 'set-backend'; readonly backend: BackendConfig }
  | { readonly op: 'remove-backend'; readonly id: string }
  | { readonly op: 'set-admin'; readonly id: string; readonly record: AdminRecord | undefined };

/**
 * poolWrites is what changed between two record sets (each merged with the config file
 * in force when it was made): only the differences are written, so a backend nobody
 * touched keeps what the shared pool says.
 */
export function poolWrites(before: { config: readonly BackendConfig[]; records: BackendRecords }, after: { config: readonly BackendConfig[]; records: BackendRecords }): PoolWrite[] {
  const was = new Map(mergeBackends(before.config, before.records).backends.map((b) => [b.id, b]));
  const merged = mergeBackends(after.config, after.records);
  const writes: PoolWrite[] = [];
  for (const b of merged.backends) if (JSON.stringify(was.get(b.id)) !== JSON.stringify(b)) writes.push({ op: 'set-backend', backend: b });
  const now = new Set(merged.backends.map((b) => b.id));
  for (const id of was.keys()) if (!now.has(id)) writes.push({ op: 'remove-backend', id });
  const ids = new Set([...Object.keys(before.records.admin), ...Object.keys(merged.records.admin)]);
  for (const id of ids) {
    if (!now.has(id)) continue;
    const record = merged.records.admin[id];
    if (JSON.stringify(before.records.admin[id]) !== JSON.stringify(record)) writes.push({ op: 'set-admin', id, record });
  }
  return writes;
}
