/**
 * StateStore is the seam between the control plane and what must outlive a restart or be
 * shared by several balancers (SPEC.md, *Several balancers*): admin states and run-time
 * pool changes (added and removed backends, weights), partition assignments, the generated
 * cookie secret, learned session ids, per-instance session counts and events. The control
 * plane writes through it and reads an in-memory copy; the request path never waits for it,
 * except for the first assignment of a new partition key (assignPartition).
 *
 * Two implementations are meant to sit behind it:
 * - the file store (src/state/file-shared-state.ts): the state file and the partition
 *   journal of one instance, exactly as before; nothing is shared, so the publish calls
 *   are no-ops, onChange never fires and health() is always ok;
 * - a Redis store, which must guarantee:
 *   1. assignPartition is atomic first-writer-wins across every instance (HSETNX or a Lua
 *      script; the replacement of a refused backend is one compare-and-set), and where
 *      Redis has a replica the assignment is acknowledged by it (WAIT) before it resolves,
 *      so a failover cannot forget it;
 *   2. a change made by one instance reaches onChange on every other within 1 s (pub/sub
 *      or keyspace notifications), and a periodic full resync (every few seconds) repairs
 *      whatever a missed message left wrong, reported through onChange like any change;
 *      an instance's own changes are not reported back to it, and an instance that stops
 *      publishing its session counts is reported gone (empty counts) after a few seconds;
 *   3. on failure (SPEC): reads keep answering from the last known copy, so existing
 *      sessions and known partitions route as before; assignPartition rejects (the proxy
 *      answers 503 with Retry-After, a tenant is never placed on two servers); health()
 *      says ok: false with a one-sentence reason, which is what makes the control plane
 *      refuse admin changes before applying anything (src/control/state-guard.ts), and
 *      saveBackends / movePartition reject if it fails mid-change; publish calls are
 *      dropped; it reconnects by itself and catches up (a full resync, then onChange);
 *   4. at start with Redis unreachable it opens from the local copy of the last shared
 *      state kept beside state.file, or refuses with a clear error when there is none.
 */
import type { BackendConfig } from '../config/schema.js';
import type { StateHealth } from '../pool/readiness.js';
import type { BackendRecords } from './backend-records.js';
import type { PartitionRecord } from './partition-store.js';

/** AssignResult is where a partition key lives after an assignment attempt, and whether this attempt placed it. */
export interface AssignResult {
  readonly record: PartitionRecord;
  /** True when this call's backend was stored; false when another writer got there first. */
  readonly won: boolean;
}

/**
 * PartitionTable is the in-memory copy of the partition assignments: every read the router
 * and the admin plane make is synchronous and local.
 */
export interface PartitionTable {
  /** Number of assignments. */
  readonly size: number;
  /** The assignment of `key` (O(1)). */
  get(key: string): PartitionRecord | undefined;
  /** Up to `limit` records from `offset`, in stable key order. */
  entries(offset?: number, limit?: number): PartitionRecord[];
  /** Assignments per backend id (a live view). */
  counts(): ReadonlyMap<string, number>;
  /** Notes a request for `key` (last-seen; memory only, never shared). */
  touch(key: string): void;
  /** When `key` was last touched in this instance. */
  lastSeen(key: string): number | undefined;
}

/** StateChange is a change made elsewhere (another instance, or a resync), as onChange reports it. */
export type StateChange =
  /** Admin states or run-time pool changes: the whole new record set. */
  | { readonly kind: 'backends'; readonly records: BackendRecords }
  /** A partition was assigned, moved or settled (record undefined: removed). */
  | { readonly kind: 'partition'; readonly key: string; readonly record: PartitionRecord | undefined }
  /**
   * Another instance's session counts per backend (summed into status, drains, bounded load
   * and maxSessions); empty counts: that instance is gone (the store says so once it has
   * not heard from it for a few seconds).
   */
  | { readonly kind: 'sessions'; readonly instance: string; readonly counts: Readonly<Record<string, number>> }
  /** A session id learned by another instance, and its backend (undefined: forget it). */
  | { readonly kind: 'learned'; readonly sessionId: string; readonly backendId: string | undefined };

/** SharedEvent is one entry of the shared event list (admin actions and state changes for the dashboard). */
export interface SharedEvent {
  readonly at: number;
  readonly backend: string | null;
  readonly what: string;
  /** Who asked (the peer address of the admin call). */
  readonly who?: string;
  /** The backend state before and after, when the action changed one. */
  readonly from?: string | null;
  readonly to?: string | null;
  /** The instance that made the event (set by the store that shares it). */
  readonly instance?: string;
}

/** PartitionWriter is the part of the store that changes partition assignments (partition mode only). */
export interface PartitionWriter {
  /**
   * assignPartition places a new key on `backend`, first writer wins: when the key already
   * lives elsewhere the answer says where and `won` is false. `replacing`: the backend that
   * refused the request that assigned the key a moment ago; only an assignment still on
   * that backend is moved.
   */
  assignPartition(key: string, backend: string, replacing?: string): Promise<AssignResult>;
  /** movePartition is an administrator's move (`partitions move KEY ID [--drain]`). */
  movePartition(key: string, backend: string, drain: boolean): Promise<PartitionRecord>;
  /** settlePartition forgets the old backend of a move made with --drain once its sessions have ended. */
  settlePartition(key: string): Promise<PartitionRecord | undefined>;
}

/** StateStore is the durable and shared state; see the file comment. */
export interface StateStore extends PartitionWriter {
  readonly kind: StateHealth['kind'];
  /** The generated cookie secret (used only when the config names none); set at open. */
  readonly cookieSecret: string | undefined;
  /** The admin states and run-time pool changes as last loaded or saved. */
  backendRecords(): BackendRecords;
  /**
   * useConfigBackends tells a shared store the config file's backends after a reload: the
   * records are relative to them, and only what a change of records makes different is
   * written to the shared pool. The file store keeps the records as they are and needs no such call.
   */
  useConfigBackends?(backends: readonly BackendConfig[]): void;
  /** saveBackends makes a changed record set durable (and shared); rejects when it cannot. */
  saveBackends(records: BackendRecords): Promise<void>;
  /** The partition assignments, read in memory; undefined unless affinity.mode is partition. */
  readonly partitions: PartitionTable | undefined;
  /** publishSessions shares this instance's own session counts per backend; the Balancer calls it every second with a shared store only. */
  publishSessions(counts: Readonly<Record<string, number>>): void;
  /** publishLearned shares a session id learned from a backend's Set-Cookie (no-op for one instance). */
  publishLearned(sessionId: string, backendId: string | undefined): void;
  /** publishEvent adds to the shared event list (no-op for one instance: the dashboard keeps its own). */
  publishEvent(event: SharedEvent): void;
  /**
   * sharedEvents reads up to `limit` events of the shared list made by other instances,
   * newest first (a shared store only; the admin plane calls it, never the request path).
   * Rejects when the shared state cannot be read within the connection's command timeout.
   */
  sharedEvents?(limit: number): Promise<SharedEvent[]>;
  /** This instance's id in a shared pool (a shared store only). */
  readonly instance?: string;
  /** onChange is told of changes made elsewhere; returns the unsubscribe function. */
  onChange(listener: (change: StateChange) => void): () => void;
  /** health is what `status` and /healthz show; never a reason for /healthz to answer 503. */
  health(): StateHealth;
  /** close stops writing and releases files and connections. */
  close(): Promise<void>;
}
