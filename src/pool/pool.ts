/**
 * Pool is the one mutable owner of the backend list and each backend's state. A backend
 * has an admin state (ready / draining / disabled, set by an administrator), a health
 * state (up / down, set by health checks and outlier detection), a drained flag (set by
 * the drain monitor), a maintenance flag (set when the backend answers a new session
 * with Servoy's maintenance 503, or a health probe with 503) and a hold flag (a backend
 * that went down keeps its sessions for `affinity.failoverDelay`). Together they give the state SPEC shows
 * (BackendState). Every real change builds a new immutable PoolSnapshot, swaps it in and
 * emits 'change' once; the router only ever reads `pool.snapshot`. State flows one way:
 * writers -> pool -> snapshot -> router.
 */
import { EventEmitter } from 'node:events';
import type { BackendConfig } from '../config/schema.js';
import { buildSnapshot, type BackendState, type PoolSnapshot } from './snapshot.js';

/** AdminState is what an administrator set (HAProxy: ready / drain / maint). */
export type AdminState = 'ready' | 'draining' | 'disabled';

/** MemberState is everything the pool knows about one backend. */
export interface MemberState {
  readonly config: BackendConfig;
  readonly admin: AdminState;
  readonly healthy: boolean;
  readonly drained: boolean;
  readonly maintenance: boolean;
  /**
   * Down, and its sessions are still held for it (503 to them) until failoverDelay has
   * passed since it went down; false otherwise. Only meaningful while not healthy.
   */
  readonly holding: boolean;
  /** When draining started (ms since epoch); undefined unless admin is draining. */
  readonly drainingSince: number | undefined;
  /** The state shown to administrators, derived from the fields above. */
  readonly state: BackendState;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Member = Mutable<MemberState>;

/** PoolChange is emitted with every new snapshot: what changed, for one log line. */
export interface PoolChange {
  readonly snapshot: PoolSnapshot;
  readonly backendId: string;
  readonly from: BackendState | 'absent';
  readonly to: BackendState | 'absent';
  /** Why, in a few words: "health check failed", "admin drain", "config reload", ... */
  readonly cause: string;
}

/** deriveState is the one place the shown state is computed from a member's fields. */
export function deriveState(m: Pick<MemberState, 'admin' | 'healthy' | 'drained' | 'maintenance'>): BackendState {
  if (m.admin === 'disabled') return 'disabled';
  if (!m.healthy) return 'down';
  if (m.admin === 'draining') return m.drained ? 'drained' : 'draining';
  if (m.maintenance) return 'maintenance';
  return 'up';
}

/** Pool holds the backends and publishes snapshots of them. */
export class Pool extends EventEmitter<{ change: [PoolChange] }> {
  readonly #members = new Map<string, Member>();
  #snapshot: PoolSnapshot;
  #version = 0;

  constructor(backends: readonly BackendConfig[], private readonly now: () => number = Date.now) {
    super();
    // A backend counts as up from the start until its checks say otherwise (as HAProxy).
    for (const config of backends) this.#members.set(config.id, newMember(config));
    this.#snapshot = this.#build();
  }

  /** snapshot is the current immutable view; cheap to read on every request. */
  get snapshot(): PoolSnapshot {
    return this.#snapshot;
  }

  /** member returns a backend's full state, or undefined. */
  member(id: string): MemberState | undefined {
    return this.#members.get(id);
  }

  /** members lists every backend's state, in id order. */
  members(): MemberState[] {
    return [...this.#members.values()].sort((a, b) => (a.config.id < b.config.id ? -1 : 1));
  }

  /** configs lists the current backend configs (for persistence and reload diffs). */
  configs(): BackendConfig[] {
    return this.members().map((m) => m.config);
  }

  /** has says whether a backend id is in the pool. */
  has(id: string): boolean {
    return this.#members.has(id);
  }

  /** setAdmin sets the admin state; draining restarts its clock unless `since` is given (restore). */
  setAdmin(id: string, admin: AdminState, cause: string, since?: number): boolean {
    return this.#change(id, cause, (m) => {
      if (m.admin === admin) return;
      m.admin = admin;
      m.drained = false;
      m.drainingSince = admin === 'draining' ? (since ?? this.now()) : undefined;
    });
  }

  /**
   * setHealth records the health checks' (or outlier detection's) verdict. When an up
   * backend goes down, `hold` says whether its sessions are held for it (failoverDelay);
   * the owner of the delay ends the hold with setHolding. Coming back up ends it too.
   */
  setHealth(id: string, healthy: boolean, cause: string, hold = false): boolean {
    return this.#change(id, cause, (m) => {
      if (healthy) m.holding = false;
      else if (m.healthy) m.holding = hold;
      m.healthy = healthy;
    });
  }

  /** setHolding ends (or, in a worker's mirror, copies) the failover hold of a down backend. */
  setHolding(id: string, holding: boolean, cause: string): boolean {
    return this.#change(id, cause, (m) => {
      m.holding = holding && !m.healthy;
    });
  }

  /** setDrained is the drain monitor's verdict for a draining backend. */
  setDrained(id: string, drained: boolean, cause: string): boolean {
    return this.#change(id, cause, (m) => {
      if (m.admin === 'draining') m.drained = drained;
    });
  }

  /** setMaintenance marks a backend as in Servoy maintenance mode (no new sessions) or not. */
  setMaintenance(id: string, maintenance: boolean, cause: string): boolean {
    return this.#change(id, cause, (m) => {
      m.maintenance = maintenance;
    });
  }

  /** add puts a new backend into the pool (up until checks say otherwise). */
  add(config: BackendConfig, cause: string): void {
    if (this.#members.has(config.id)) throw new Error(`backend ${config.id} already exists`);
    const member = newMember(config);
    this.#members.set(config.id, member);
    this.#publish(config.id, 'absent', member.state, cause);
  }

  /** update replaces a backend's config (weight, url, maxSessions, route), keeping its state. */
  update(config: BackendConfig, cause: string): boolean {
    const member = this.#members.get(config.id);
    if (member === undefined) return false;
    if (JSON.stringify(member.config) === JSON.stringify(config)) return false;
    member.config = config;
    this.#publish(config.id, member.state, member.state, cause);
    return true;
  }

  /** remove takes a backend out of the pool. */
  remove(id: string, cause: string): boolean {
    const member = this.#members.get(id);
    if (member === undefined) return false;
    this.#members.delete(id);
    this.#publish(id, member.state, 'absent', cause);
    return true;
  }

  #change(id: string, cause: string, mutate: (m: Member) => void): boolean {
    const member = this.#members.get(id);
    if (member === undefined) return false;
    const before = { ...member };
    mutate(member);
    member.state = deriveState(member);
    const changed = before.admin !== member.admin || before.healthy !== member.healthy || before.drained !== member.drained || before.maintenance !== member.maintenance || before.holding !== member.holding;
    if (changed) this.#publish(id, before.state, member.state, cause);
    return changed;
  }

  #build(): PoolSnapshot {
    return buildSnapshot([...this.#members.values()], ++this.#version);
  }

  #publish(backendId: string, from: PoolChange['from'], to: PoolChange['to'], cause: string): void {
    this.#snapshot = this.#build();
    this.emit('change', { snapshot: this.#snapshot, backendId, from, to, cause });
  }
}

function newMember(config: BackendConfig): Member {
  return { config, admin: 'ready', healthy: true, drained: false, maintenance: false, holding: false, drainingSince: undefined, state: 'up' };
}
