/**
 * Pool is the one mutable owner of the backend list and each backend's state. Every real
 * change builds a new immutable PoolSnapshot, swaps it in and emits 'change' once; the
 * router only ever reads `pool.snapshot`. Health checks, admin calls and config reloads
 * are the writers (state flows one way: writers -> pool -> snapshot -> router).
 */
import { EventEmitter } from 'node:events';
import type { BackendConfig } from '../config/schema.js';
import { buildSnapshot, type BackendState, type PoolSnapshot } from './snapshot.js';

interface Member {
  config: BackendConfig;
  state: BackendState;
}

/** PoolChange is emitted with every new snapshot: what changed, for one log line. */
export interface PoolChange {
  readonly snapshot: PoolSnapshot;
  readonly backendId: string;
  readonly from: BackendState | 'absent';
  readonly to: BackendState | 'absent';
}

/** Pool holds the backends and publishes snapshots of them. */
export class Pool extends EventEmitter<{ change: [PoolChange] }> {
  readonly #members = new Map<string, Member>();
  #snapshot: PoolSnapshot;
  #version = 0;

  constructor(backends: readonly BackendConfig[]) {
    super();
    // A backend counts as up from the start until its checks say otherwise (as HAProxy).
    for (const config of backends) this.#members.set(config.id, { config, state: 'up' });
    this.#snapshot = this.#build();
  }

  /** snapshot is the current immutable view; cheap to read on every request. */
  get snapshot(): PoolSnapshot {
    return this.#snapshot;
  }

  /** setState changes a backend's state; a no-op (no new snapshot) when nothing changes. */
  setState(id: string, state: BackendState): boolean {
    const member = this.#members.get(id);
    if (member === undefined || member.state === state) return false;
    const from = member.state;
    member.state = state;
    this.#publish(id, from, state);
    return true;
  }

  /** add puts a new backend into the pool, in state `up`. */
  add(config: BackendConfig, state: BackendState = 'up'): void {
    if (this.#members.has(config.id)) throw new Error(`backend ${config.id} already exists`);
    this.#members.set(config.id, { config, state });
    this.#publish(config.id, 'absent', state);
  }

  /** update replaces a backend's config (weight, url, maxSessions) keeping its state. */
  update(config: BackendConfig): void {
    const member = this.#members.get(config.id);
    if (member === undefined) throw new Error(`backend ${config.id} does not exist`);
    member.config = config;
    this.#publish(config.id, member.state, member.state);
  }

  /** remove takes a backend out of the pool. */
  remove(id: string): void {
    const member = this.#members.get(id);
    if (member === undefined) return;
    this.#members.delete(id);
    this.#publish(id, member.state, 'absent');
  }

  /** configs lists the current backend configs (for persistence and reload diffs). */
  configs(): BackendConfig[] {
    return [...this.#members.values()].map((m) => m.config);
  }

  #build(): PoolSnapshot {
    return buildSnapshot([...this.#members.values()], ++this.#version);
  }

  #publish(backendId: string, from: PoolChange['from'], to: PoolChange['to']): void {
    this.#snapshot = this.#build();
    this.emit('change', { snapshot: this.#snapshot, backendId, from, to });
  }
}
