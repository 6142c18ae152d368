/**
 * AdminControl is everything the admin plane (REST API, dashboard, metrics, CLI through
 * the API) may ask of a running balancer. The Balancer implements it; the admin server
 * only translates HTTP to these calls and AdminError to JSON error answers, so the API can
 * be tested against a real balancer and read without knowing its internals.
 */
import type { AdminState } from '../pool/pool.js';
import type { BackendState } from '../pool/snapshot.js';
import type { StateHealth } from '../pool/readiness.js';
import type { RouteStep } from '../routing/types.js';
import type { PathExplanation } from '../routing/path-rules.js';
import type { EventList } from './events.js';
import type { SeriesWindow } from './series.js';
import type { SessionList, SessionQuery } from './sessions-view.js';

/** BackendStatus is one row of `servoy-lb status` / GET /api/backends. */
export interface BackendStatus {
  readonly id: string;
  readonly url: string;
  readonly route: string;
  readonly weight: number;
  /** null when unlimited. */
  readonly maxSessions: number | null;
  readonly state: BackendState;
  readonly admin: AdminState;
  readonly health: 'up' | 'down';
  /** Down, and its sessions wait for it (503) until affinity.failoverDelay has passed since it went down. */
  readonly holdingSessions: boolean;
  /** ISO time draining started, when draining. */
  readonly drainingSince: string | null;
  readonly sessions: number;
  readonly websockets: number;
  readonly requests: number;
  readonly errors: number;
  /** Optional breakdown of `errors` by kind (e.g. refused, timeout, backend-error) for the metrics; sums to `errors`. */
  readonly errorsByKind?: Readonly<Record<string, number>>;
  readonly clientAborts: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Where the backend came from: the config file, or added at run time. */
  readonly source: 'config' | 'runtime';
  /** ISO time the backend entered its current state (the balancer's start for one that never changed). */
  readonly stateSince?: string;
  /** Latency p95 (ms) of its requests of the last one to two minutes; null without requests (or with metrics.enabled false). */
  readonly p95Ms?: number | null;
  /** The active health checker's last probe of it; null before the first one (or with checks off). */
  readonly lastCheck?: LastCheck | null;
}

/** LastCheck is the last health probe of a backend: the HTTP status it answered, or why it failed. */
export interface LastCheck {
  readonly ok: boolean;
  readonly status?: number;
  readonly error?: string;
  readonly ms: number;
  /** ISO time the probe finished. */
  readonly at: string;
}

/** RouteQuery is what `servoy-lb route` / GET /api/route asks about: a request with these facts. */
export interface RouteQuery {
  /** Partition mode: the partition key. In session mode a key stands for the client address (older CLIs send only this). */
  readonly key?: string | undefined;
  /** The real client address (the hash key of a new session). */
  readonly client?: string | undefined;
  /** The request path, for path rules. */
  readonly path?: string | undefined;
  /** The value of the balancer's affinity cookie the request carries (explains rule 2's cookie step). */
  readonly cookie?: string | undefined;
  /** The servlet session id (JSESSIONID) the request carries (explains the route-suffix step). */
  readonly session?: string | undefined;
}

/**
 * RouteExplanation answers `servoy-lb route` / GET /api/route: the router's own trace of a
 * request from `client` (with partition key `key`, affinity cookie and session id as
 * given), made by the same route() call that routes real requests.
 */
export interface RouteExplanation {
  /** The partition key (partition mode), or the key given in session mode. */
  readonly key: string | null;
  readonly client: string;
  /** The backend such a request would reach now, or null if none can take it. */
  readonly backend: string | null;
  /** The rule that decided (as in the access log's `route`), or why nothing could. */
  readonly rule: string;
  /** The deciding step in one sentence. */
  readonly reason: string;
  /** Every rule the router tried, in order. */
  readonly steps: readonly RouteStep[];
  /** New-session placement's candidates in score order, with their load and whether they would take the session (empty when placement did not run). */
  readonly candidates: readonly { id: string; state: BackendState; sessions: number; cap: number | null; fits: boolean; score: number; skipped?: string }[];
  /** With ?path=P: what the path rules do with that path (src/routing/path-rules.ts explainPath). */
  readonly path?: PathExplanation;
}

/** ReloadResult says what a reload changed. */
export interface ReloadResult {
  readonly added: string[];
  readonly removed: string[];
  readonly updated: string[];
  /** Settings that changed and were applied (e.g. "healthCheck", "timeouts"). */
  readonly settings: string[];
  /** Settings that changed but need a restart (e.g. "listen.port"). */
  readonly needsRestart: string[];
}

/** PartitionStatus is one row of `servoy-lb partitions` / GET /api/partitions. */
export interface PartitionStatus {
  readonly key: string;
  readonly backend: string;
  /** Pinned in the config file (affinity.partitions) rather than assigned. */
  readonly pinned: boolean;
  readonly assignedAt: string | null;
  /** Last request seen for this key since the balancer started (kept in memory only). */
  readonly lastSeen: string | null;
  /** After a move with --drain: the old server still finishing live sessions. */
  readonly previous: string | null;
  /** Active sessions of this partition (seen within sessionIdle or with an open WebSocket). */
  readonly sessions: number;
}

/** AdminErrorCode is the stable code of every admin failure; never reused. */
export type AdminErrorCode =
  | 'NOT_FOUND'
  | 'UNKNOWN_BACKEND'
  | 'BACKEND_EXISTS'
  | 'NOT_DRAINED'
  | 'INVALID_BODY'
  | 'INVALID_CONFIG'
  | 'UNAUTHORIZED'
  | 'METHOD_NOT_ALLOWED'
  | 'LAST_BACKEND'
  | 'NOT_PARTITION_MODE'
  | 'PARTITION_PINNED'
  | 'BODY_TOO_LARGE'
  | 'FORBIDDEN'
  | 'STATE_UNAVAILABLE'
  | 'INTERNAL';

const STATUS: Record<AdminErrorCode, number> = {
  NOT_FOUND: 404,
  UNKNOWN_BACKEND: 404,
  BACKEND_EXISTS: 409,
  NOT_DRAINED: 409,
  INVALID_BODY: 400,
  INVALID_CONFIG: 422,
  UNAUTHORIZED: 401,
  METHOD_NOT_ALLOWED: 405,
  LAST_BACKEND: 409,
  /** Partition calls while affinity.mode is not "partition". */
  NOT_PARTITION_MODE: 409,
  PARTITION_PINNED: 409,
  /** A request body over the admin API's limit (64 KiB). */
  BODY_TOO_LARGE: 413,
  /** A cross-origin state change, or a tokenless API addressed by a non-loopback Host (DNS rebinding). */
  FORBIDDEN: 403,
  /** The shared state store cannot take changes now (Redis unreachable): the change is refused, nothing applied. */
  STATE_UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** AdminError is a refused admin call: a stable code, an HTTP status, one clear sentence. */
export class AdminError extends Error {
  override name = 'AdminError';
  readonly status: number;

  constructor(
    readonly code: AdminErrorCode,
    message: string,
    /** Extra detail for the JSON body, e.g. the list of config problems. */
    readonly details?: unknown,
  ) {
    super(message);
    this.status = STATUS[code];
  }
}

/** AdminStateOptions refine an admin state change. */
export interface AdminStateOptions {
  /** disable: also close the backend's open WebSockets now (otherwise they stay until they end). */
  readonly close?: boolean;
}

/** AdminControl is implemented by the Balancer; see the file comment. */
export interface AdminControl {
  /**
   * The balancer's client-facing URL (its traffic listener; a wildcard bind shows as
   * 127.0.0.1): the dashboard links each server's admin pages through it. Empty or absent
   * while unknown (a control that does not listen for clients).
   */
  readonly url?: string;
  backends(): BackendStatus[];
  /** Adds a backend at run time (persisted). Throws BACKEND_EXISTS / INVALID_BODY. */
  addBackend(input: { id: string; url: string; weight?: number; maxSessions?: number; route?: string }): Promise<BackendStatus>;
  /** Removes a backend (persisted). Needs state drained (or disabled/down with force). Throws NOT_DRAINED / UNKNOWN_BACKEND / LAST_BACKEND. */
  removeBackend(id: string, force: boolean): Promise<void>;
  /** Sets a backend's weight (1-1000) at run time (persisted; a later equal weight in the config file retires the record). Throws UNKNOWN_BACKEND / INVALID_BODY. */
  setWeight(id: string, weight: number): Promise<BackendStatus>;
  /** drain / undrain / disable / enable: admin state changes (persisted). Throw UNKNOWN_BACKEND. */
  setAdminState(id: string, action: 'drain' | 'undrain' | 'disable' | 'enable', options?: AdminStateOptions): Promise<BackendStatus>;
  explainRoute(query: RouteQuery): RouteExplanation;
  /**
   * What the path rules do with a request path from a client address (`servoy-lb route
   * --path P`, GET /api/route?path=P&client=C): shown as the `path` field next to the route
   * explanation. Optional so that a control without path rules need not answer it.
   */
  explainPath?(path: string, clientAddress: string | undefined): PathExplanation;
  /** Re-reads the config file; throws INVALID_CONFIG (details: problem lines) and keeps the running config. */
  reload(): Promise<ReloadResult>;
  /** Partition mode: a page of partitions in key order (pins first). Throws NOT_PARTITION_MODE otherwise. */
  listPartitions(offset: number, limit: number): { total: number; offset: number; partitions: PartitionStatus[] };
  /** Partition mode: move a key to another backend; with drain, live sessions on the old one finish there. */
  movePartition(key: string, backend: string, drain: boolean): Promise<PartitionStatus>;
  /** Prometheus text exposition of the balancer's metrics. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Health of the shared state store, reported by /healthz (never a reason for 503). */
  stateHealth(): StateHealth;
  /** This instance's active sessions (with --workers: gathered from every worker). Throws UNKNOWN_BACKEND for a backend filter not in the pool. */
  sessions(query: SessionQuery): Promise<SessionList>;
  /** The latest state changes and admin actions, newest first. */
  events(limit: number): Promise<EventList>;
  /** The balancer's own history of the last `seconds` (sessions, WebSockets, requests/s, errors/s). */
  series(seconds: number): SeriesWindow;
  /** The admin API tells the control about an admin action that succeeded, for events(). */
  recordAdminAction(action: { backend: string | null; what: string; who: string; from: string | null; to: string | null }): void;
}
