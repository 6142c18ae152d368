/**
 * A worker's copy of the primary's pool. The primary sends its members (config and state
 * of every backend) whenever they change; applying them to a local Pool gives the worker a
 * snapshot built by the same code from the same facts, so every worker routes exactly as
 * the primary would (same backends, same order, same states, same hashes).
 */
import { Pool, type MemberState } from '../pool/pool.js';
import type { MemberInput } from './protocol.js';

/** memberInputs is what the primary sends of its pool. */
export function memberInputs(members: readonly MemberState[]): MemberInput[] {
  return members.map((m) => ({ config: m.config, admin: m.admin, healthy: m.healthy, drained: m.drained, maintenance: m.maintenance, holding: m.holding, drainingSince: m.drainingSince }));
}

/** PoolMirror keeps a Pool equal to the primary's; see the file comment. */
export class PoolMirror {
  readonly pool: Pool;

  constructor(members: readonly MemberInput[]) {
    this.pool = new Pool([]);
    this.apply(members);
  }

  /** apply makes the pool equal to `members`; returns the ids of backends that left it. */
  apply(members: readonly MemberInput[]): string[] {
    const pool = this.pool;
    const cause = 'primary';
    const ids = new Set<string>();
    for (const m of members) {
      const id = m.config.id;
      ids.add(id);
      if (pool.has(id)) pool.update(m.config, cause);
      else pool.add(m.config, cause);
      pool.setAdmin(id, m.admin, cause, m.drainingSince);
      pool.setHealth(id, m.healthy, cause);
      pool.setDrained(id, m.drained, cause);
      pool.setMaintenance(id, m.maintenance, cause);
      pool.setHolding(id, m.holding, cause);
    }
    const removed = pool.configs().filter((b) => !ids.has(b.id)).map((b) => b.id);
    for (const id of removed) pool.remove(id, cause);
    return removed;
  }
}
