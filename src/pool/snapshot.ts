/**
 * Pool snapshots: the immutable view of the backend pool that the router reads. State
 * flows one way: health checks, admin calls and config reloads change the Pool, which
 * builds a new snapshot and swaps it in; routing a request never mutates a snapshot.
 */
import type { BackendConfig } from '../config/schema.js';
import { hash32 } from '../routing/hash.js';

/** BackendState is what an administrator sees (SPEC "Backend states"). */
export type BackendState = 'up' | 'draining' | 'drained' | 'maintenance' | 'disabled' | 'down';

/** BackendView is one backend as the router sees it in one snapshot. */
export interface BackendView {
  /** Position in PoolSnapshot.backends. */
  readonly index: number;
  readonly id: string;
  /** Origin such as "http://10.0.0.11:8080"; never shown to clients. */
  readonly url: string;
  readonly weight: number;
  /** Infinity when the config sets no maxSessions. */
  readonly maxSessions: number;
  /** Tomcat jvmRoute suffix matched in JSESSIONID values. */
  readonly route: string;
  readonly state: BackendState;
  /** True only in state `up`: the backend may take new sessions. */
  readonly acceptsNew: boolean;
  /** True in `up`, `draining`, `drained` and `maintenance`: sessions already there keep going there. */
  readonly servesExisting: boolean;
  /**
   * True while the backend is down but its sessions are held for it (affinity.failoverDelay):
   * they get 503 instead of being placed anew, since Servoy takes a client back for 60 s.
   */
  readonly holdsSessions: boolean;
  /** 32-bit hash of the id, precomputed for rendezvous hashing. */
  readonly idHash: number;
}

/** PoolSnapshot is the immutable pool the router decides against. */
export interface PoolSnapshot {
  /** Increases with every change; lets caches know when to drop what they derived. */
  readonly version: number;
  readonly backends: readonly BackendView[];
  readonly byId: ReadonlyMap<string, BackendView>;
  readonly byRoute: ReadonlyMap<string, BackendView>;
  /** The backends with acceptsNew, in id order: the candidates for new sessions. */
  readonly acceptingNew: readonly BackendView[];
}

/** BackendInput is what a snapshot is built from: the configured backend and its current state. */
export interface BackendInput {
  readonly config: BackendConfig;
  readonly state: BackendState;
  /** Down with its sessions held (see BackendView.holdsSessions); false when not given. */
  readonly holding?: boolean;
}

/** buildSnapshot freezes a pool: backends sorted by id so every worker sees the same order. */
export function buildSnapshot(inputs: readonly BackendInput[], version: number): PoolSnapshot {
  const sorted = [...inputs].sort((a, b) => (a.config.id < b.config.id ? -1 : a.config.id > b.config.id ? 1 : 0));
  const backends = sorted.map(({ config, state, holding }, index): BackendView =>
    Object.freeze({
      index,
      id: config.id,
      url: new URL(config.url).origin,
      weight: config.weight,
      maxSessions: config.maxSessions ?? Infinity,
      route: config.route ?? config.id,
      state,
      acceptsNew: state === 'up',
      servesExisting: state === 'up' || state === 'draining' || state === 'drained' || state === 'maintenance',
      holdsSessions: state === 'down' && holding === true,
      idHash: hash32(config.id),
    }),
  );
  return Object.freeze({
    version,
    backends: Object.freeze(backends),
    byId: new Map(backends.map((b) => [b.id, b])),
    byRoute: new Map(backends.map((b) => [b.route, b])),
    acceptingNew: Object.freeze(backends.filter((b) => b.acceptsNew)),
  });
}
