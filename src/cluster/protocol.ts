/**
 * The messages between the primary and its workers (`start --workers N`), over the
 * cluster IPC channel with advanced (structured clone) serialization, so Buffers (TLS
 * keys, error pages) and Maps cross as they are.
 *
 * State flows one way, as in one process: health checks, admin calls and reloads change the
 * primary's Pool; the primary pushes the pool's members to every worker when they change
 * (`pool`), and each worker rebuilds the same snapshot from them. Workers push back what
 * only traffic knows (`report`, every REPORT_INTERVAL_MS): counts, outcomes for outlier
 * detection, latency, partition sessions. The few things that cannot wait for a report go
 * at once: a session id learned from a backend (`learned`, passed on to the other
 * workers), a backend's maintenance 503 (`maintenance`), and a new partition's
 * assignment, which the worker waits for before it forwards the request (`assign`).
 */
import type { MemberState } from '../pool/pool.js';
import type { PartitionLookup } from '../routing/types.js';
import type { BackendCounters } from '../sessions/accounting.js';
import type { TrafficSettings } from '../traffic-plane.js';
import type { SessionRow } from '../admin/sessions-view.js';

/** How long the primary waits for the workers' sessions lists (GET /api/sessions) before it answers without the late ones (ms). */
export const SESSIONS_ASK_TIMEOUT_MS = 1000;

/** How often a worker reports to the primary, and the primary sends totals back (ms). */
export const REPORT_INTERVAL_MS = 250;

/**
 * MemberInput is one backend as the primary's pool holds it, without the derived state: what a
 * worker's mirror pool is set to (the mirror derives the state with the same code).
 */
export type MemberInput = Omit<MemberState, 'state'>;

/** AssignAnswer is the primary's answer to a new partition assignment. */
export interface AssignAnswer {
  /** True when the key was assigned to the backend the worker asked for (durably). */
  readonly accepted: boolean;
  /** Where the key lives now (undefined: nowhere, the asked-for backend left the pool). */
  readonly lookup: PartitionLookup | undefined;
}

/** LatencyDelta is one backend and outcome's latency observations since the last report. */
export interface LatencyDelta {
  readonly backend: string;
  readonly outcome: string;
  /** Counts per LATENCY_BUCKETS bucket (not cumulative), then +Inf. */
  readonly buckets: number[];
  readonly sum: number;
}

/** WorkerReport is a worker's periodic report. */
export interface WorkerReport {
  readonly type: 'report';
  /** Per backend: sessions and websockets now, the other counters since the worker started. */
  readonly counters: Record<string, BackendCounters>;
  /** HTTP requests being served now. */
  readonly inFlight: number;
  /** Per backend, in order: runs of proxy successes (n > 0) and failures (n < 0). */
  readonly outcomes: Record<string, number[]>;
  readonly latency: LatencyDelta[];
  /** Partition mode: [key, active sessions in this worker] for every key whose count changed. */
  readonly partitionSessions: [string, number][];
  /** Partition mode: keys that had requests (last-seen). */
  readonly partitionsSeen: string[];
  /**
   * [session key, backend] for every session placed or moved since the last report, [key,
   * null] for every one that ended: the primary counts a browser seen by two workers once.
   * Absent from reports that know nothing of it (then nothing is de-duplicated).
   */
  readonly sessionChanges?: [string, string | null][];
}

/** ToPrimary is every message a worker sends. */
export type ToPrimary =
  /** The worker's code is loaded and listening for messages: send init (one sent earlier could be lost). */
  | { readonly type: 'ready' }
  | { readonly type: 'listening'; readonly url: string; readonly redirectUrl: string | undefined }
  | { readonly type: 'failed'; readonly message: string }
  | WorkerReport
  | { readonly type: 'learned'; readonly sessionId: string; readonly backend: string | undefined }
  | { readonly type: 'maintenance'; readonly backend: string }
  | { readonly type: 'assign'; readonly id: number; readonly key: string; readonly backend: string; readonly replacing: string | undefined }
  /** The worker has applied every change up to and including this one (see Change). */
  | { readonly type: 'applied'; readonly change: number }
  /** The answer to a `sessions` question: this worker's active sessions (ids shortened already). */
  | { readonly type: 'sessions'; readonly id: number; readonly sessions: SessionRow[]; readonly total: number };

/** WorkerInit is everything a worker needs to start serving exactly as every other one. */
export interface WorkerInit {
  readonly type: 'init';
  readonly settings: TrafficSettings;
  readonly members: MemberInput[];
  /** The learned session ids so far (a replacement worker starts knowing them). */
  readonly learned: [string, string][];
  /** Partition mode: partitions per backend (bounded load for new partitions). */
  readonly partitionCounts: Record<string, number>;
  /** The log level in force (a --log-level override, or log.level). */
  readonly logLevel: string;
  /** The number of the last change the init already contains. */
  readonly change: number;
}

/**
 * Change numbers the messages that change what a worker routes by (pool, settings, a
 * learned session id, a partition): the worker answers `applied` once it has applied one,
 * so the primary knows which workers are behind (the `servoylb_workers_behind` metric, and
 * what tests wait on instead of sleeping).
 */
export interface Change {
  readonly change: number;
}

/** ToWorker is every message the primary sends. */
export type ToWorker =
  | WorkerInit
  | ({ readonly type: 'pool'; readonly members: MemberInput[] } & Change)
  | ({ readonly type: 'reconfigure'; readonly settings: TrafficSettings; readonly logLevel: string } & Change)
  | {
      readonly type: 'totals';
      /** Active sessions per backend held by the other workers. */
      readonly sessionsElsewhere: Record<string, number>;
      readonly partitionCounts: Record<string, number>;
    }
  | ({ readonly type: 'learned'; readonly sessionId: string; readonly backend: string | undefined } & Change)
  | ({ readonly type: 'partition'; readonly key: string; readonly lookup: PartitionLookup | undefined; readonly partitionCounts: Record<string, number> } & Change)
  | ({ readonly type: 'assigned'; readonly id: number; readonly error?: string } & AssignAnswer)
  | { readonly type: 'shutdown'; readonly graceMs: number }
  /** SIGUSR1 reached the primary: reopen log.file (logrotate moved it away). */
  | { readonly type: 'reopen-log' }
  /** GET /api/sessions: list this worker's active sessions (answered with `sessions` and the same id). */
  | { readonly type: 'sessions'; readonly id: number; readonly backend: string | undefined; readonly limit: number }
  /** `disable ID --close`: close this worker's open WebSockets to the backend. */
  | { readonly type: 'closeTunnels'; readonly backend: string };
