/**
 * WorkerFleet is the primary's TrafficPlane with `start --workers N`: N worker processes
 * (node:cluster) that share the client port, each running the same proxy on a mirror of
 * the primary's pool. The primary keeps everything that must exist once (config, pool,
 * health checks, outlier ejection, drain monitor, state file, partition store, admin API,
 * metrics); the fleet is how it reaches the workers and hears from them:
 *
 * - pool changes are pushed to every worker as they happen (coalesced per tick);
 * - reports (every REPORT_INTERVAL_MS) are summed into ClusterTotals, their outcomes
 *   replayed into outlier detection, their latency added to the metrics; each worker gets
 *   back the sessions the others hold (bounded load sees the whole cluster);
 * - a session id one worker learns is passed on to the others (and kept here, to seed a
 *   replacement worker); a new partition is assigned here, first request wins;
 * - every change a worker routes by is numbered, and the worker says when it has applied it:
 *   `behind` counts the workers that have not yet (what tests wait on after a change);
 * - a worker that dies is replaced, after a back-off that grows while workers keep dying
 *   young (100 ms doubling to 10 s; reset once one has lived 30 s);
 * - close() asks every worker to finish in-flight work within the grace period, and kills
 *   what is left a few seconds after it.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { BalancerMetrics } from '../admin/metrics.js';
import type { Pool } from '../pool/pool.js';
import type { PartitionLookup } from '../routing/types.js';
import { LearnedSessions } from '../sessions/learned-sessions.js';
import { StartupError } from '../startup-error.js';
import type { TrafficPlane, TrafficSettings } from '../traffic-plane.js';
import { memberInputs } from './pool-mirror.js';
import { mergeSessionLists, type SessionList, type SessionQuery, type SessionRow } from '../admin/sessions-view.js';
import { REPORT_INTERVAL_MS, SESSIONS_ASK_TIMEOUT_MS, type AssignAnswer, type Change, type ToPrimary, type ToWorker } from './protocol.js';
import { ClusterTotals } from './totals.js';

/** The compiled worker entry (dist/src/cluster/worker-main.js). */
const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));
/** A worker that lived this long (ms) was not dying young: the back-off starts over. */
const STABLE_AFTER_MS = 30_000;
const MAX_BACKOFF_MS = 10_000;
/** How long after the grace period close() waits before it kills a worker (ms). */
const KILL_AFTER_GRACE_MS = 5_000;

/** FleetHost is what the fleet needs from the primary's control plane (the Balancer). */
export interface FleetHost {
  recordOutcomes(backendId: string, runs: readonly number[]): void;
  backendInMaintenance(backendId: string): void;
  /** A worker's new partition assignment: first writer wins, durable (and shared) before it resolves. */
  assignPartition(key: string, backendId: string, replacing: string | undefined): Promise<AssignAnswer>;
  partitionsSeen(keys: readonly string[]): void;
  partitionCounts(): Record<string, number>;
  /** The sessions other balancer instances hold, per backend: added to what each worker hears of the others. */
  sessionsOnOtherInstances(): Record<string, number>;
  /** A worker learned (or forgot) a session id from a backend's Set-Cookie: shared with other instances. */
  learned(sessionId: string, backendId: string | undefined): void;
  readonly metricsRegistry: BalancerMetrics;
}

/** FleetOptions are the fleet's collaborators. */
export interface FleetOptions {
  readonly workers: number;
  readonly pool: Pool;
  readonly logger: Logger;
  readonly host: FleetHost;
}

interface Slot {
  worker: Worker | undefined;
  startedAt: number;
  youngDeaths: number;
  listening: boolean;
  restartTimer: NodeJS.Timeout | undefined;
}

/** WorkerFleet runs and talks to the workers; see the file comment. */
export class WorkerFleet implements TrafficPlane {
  readonly totals = new ClusterTotals();
  /** Workers replaced after dying. */
  restarts = 0;
  #settings: TrafficSettings;
  readonly #learned: LearnedSessions;
  readonly #slots: Slot[];
  readonly #exits = new Map<Worker, Promise<void>>();
  /** Workers that have their init message: the ones broadcasts go to. */
  readonly #initialized = new Set<Worker>();
  #poolPushScheduled = false;
  /** Changes pushed to the workers so far (protocol.ts Change). */
  #changes = 0;
  /** Per initialized worker: the last change sent to it, and the last one it applied. */
  readonly #sync = new Map<Worker, { sent: number; applied: number }>();
  #totalsTimer: NodeJS.Timeout | undefined;
  /** Open `sessions` questions to the workers, by id: what to do with each answer. */
  readonly #asks = new Map<number, (worker: Worker, answer: { sessions: SessionRow[]; total: number }) => void>();
  #nextAsk = 0;
  #running = false;
  #closing = false;

  constructor(
    settings: TrafficSettings,
    private readonly options: FleetOptions,
  ) {
    this.#settings = settings;
    const affinity = settings.config.affinity;
    this.#learned = new LearnedSessions({ max: affinity.learnedSessions, ttlMs: affinity.sessionIdle });
    this.#slots = Array.from({ length: options.workers }, () => ({ worker: undefined, startedAt: 0, youngDeaths: 0, listening: false, restartTimer: undefined }));
    cluster.setupPrimary({ exec: WORKER_MAIN, args: [], serialization: 'advanced' });
    options.pool.on('change', () => this.#schedulePoolPush());
  }

  /** alive is the number of workers serving now. */
  get alive(): number {
    return this.#slots.filter((s) => s.listening).length;
  }

  /** changes is the number of changes pushed to the workers so far (pool, settings, learned ids, partitions). */
  get changes(): number {
    return this.#changes;
  }

  /** behind is the number of workers that have not yet applied every change sent to them. */
  get behind(): number {
    let n = 0;
    for (const s of this.#sync.values()) if (s.applied < s.sent) n++;
    return n;
  }

  get inFlight(): number {
    return this.totals.inFlight;
  }

  async listen(): Promise<{ url: string; redirectUrl: string | undefined }> {
    try {
      const bound = await Promise.all(this.#slots.map((slot) => this.#start(slot)));
      this.#running = true;
      this.#totalsTimer = setInterval(() => this.#sendTotals(), REPORT_INTERVAL_MS);
      return bound[0]!;
    } catch (err) {
      await this.close(0);
      throw err;
    }
  }

  reconfigure(settings: TrafficSettings): void {
    this.#settings = settings;
    this.#broadcastChange({ type: 'reconfigure', settings, logLevel: settings.config.log.level, change: ++this.#changes });
  }

  forgetBackend(id: string): void {
    this.totals.forgetBackend(id);
  }

  closeTunnels(id: string): void {
    for (const worker of this.#initialized) this.#send(worker, { type: 'closeTunnels', backend: id });
  }

  partitionChanged(key: string, lookup: PartitionLookup | undefined): void {
    this.#broadcastChange({ type: 'partition', key, lookup, partitionCounts: this.options.host.partitionCounts(), change: ++this.#changes });
  }

  /**
   * listSessions asks every serving worker for its sessions and merges the answers; a
   * worker that does not answer within SESSIONS_ASK_TIMEOUT_MS is named in missingWorkers
   * (its sessions are not listed) rather than holding the admin call.
   */
  async listSessions(query: SessionQuery): Promise<Omit<SessionList, 'instance'>> {
    const workers = [...this.#initialized];
    const id = ++this.#nextAsk;
    const answers = new Map<Worker, { sessions: SessionRow[]; total: number }>();
    await new Promise<void>((resolve) => {
      if (workers.length === 0) return resolve();
      const timer = setTimeout(resolve, SESSIONS_ASK_TIMEOUT_MS);
      this.#asks.set(id, (worker, answer) => {
        answers.set(worker, answer);
        if (answers.size < workers.length) return;
        clearTimeout(timer);
        resolve();
      });
      for (const worker of workers) this.#send(worker, { type: 'sessions', id, backend: query.backend, limit: query.limit });
    });
    this.#asks.delete(id);
    const merged = mergeSessionLists([...answers.values()], query.limit);
    const missing = workers.filter((w) => !answers.has(w)).map((w) => w.id);
    return missing.length === 0 ? merged : { ...merged, missingWorkers: missing };
  }

  reopenLog(): void {
    // Each worker appends to log.file through its own descriptor: each reopens its own.
    for (const worker of this.#initialized) this.#send(worker, { type: 'reopen-log' });
  }

  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    clearInterval(this.#totalsTimer);
    for (const slot of this.#slots) clearTimeout(slot.restartTimer);
    const killer = setTimeout(() => {
      for (const worker of this.#exits.keys()) worker.process.kill('SIGKILL');
    }, graceMs + KILL_AFTER_GRACE_MS);
    for (const worker of this.#exits.keys()) {
      if (this.#initialized.has(worker)) this.#send(worker, { type: 'shutdown', graceMs });
      else worker.process.kill('SIGTERM');
    }
    await Promise.all(this.#exits.values());
    clearTimeout(killer);
  }

  // ---- workers -------------------------------------------------------------------------

  /** Forks the worker of a slot; resolves when it listens, rejects if it cannot. */
  #start(slot: Slot): Promise<{ url: string; redirectUrl: string | undefined }> {
    const { pool, host, logger } = this.options;
    const worker = cluster.fork();
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.listening = false;
    return new Promise((resolve, reject) => {
      worker.on('message', (message: ToPrimary) => {
        if (message.type === 'ready') {
          // The pool, settings and learned ids as they are now: the worker starts up to date.
          this.#send(worker, {
            type: 'init',
            settings: this.#settings,
            members: memberInputs(pool.members()),
            learned: this.#learned.entries(),
            partitionCounts: host.partitionCounts(),
            logLevel: logger.level,
            change: this.#changes,
          });
          this.#initialized.add(worker);
          this.#sync.set(worker, { sent: this.#changes, applied: -1 });
        } else if (message.type === 'listening') {
          slot.listening = true;
          resolve({ url: message.url, redirectUrl: message.redirectUrl });
        } else if (message.type === 'failed') {
          reject(new StartupError(message.message));
        } else {
          this.#onMessage(worker, message);
        }
      });
      // A worker that cannot be forked at all (or whose IPC breaks) also ends in 'exit'.
      worker.on('error', (err) => logger.warn({ worker: worker.id, err: err.message }, 'worker IPC error'));
      this.#exits.set(
        worker,
        new Promise<void>((exited) => {
          worker.once('exit', (code, signal) => {
            this.#exits.delete(worker);
            this.#initialized.delete(worker);
            this.#sync.delete(worker);
            this.totals.retire(worker.id);
            const wasListening = slot.listening;
            slot.worker = undefined;
            slot.listening = false;
            exited();
            reject(new StartupError(`a worker process exited before it was listening (${signal ?? `exit code ${code}`})`));
            if (this.#closing || !this.#running) return;
            this.#restart(slot, worker.id, code, signal, wasListening);
          });
        }),
      );
    });
  }

  #restart(slot: Slot, id: number, code: number | null, signal: string | null, wasListening: boolean): void {
    const lived = Date.now() - slot.startedAt;
    slot.youngDeaths = lived >= STABLE_AFTER_MS ? 0 : slot.youngDeaths + 1;
    const delay = slot.youngDeaths === 0 ? 0 : Math.min(MAX_BACKOFF_MS, 100 * 2 ** (slot.youngDeaths - 1));
    const logger = this.options.logger;
    logger.error({ worker: id, code, signal, livedMs: lived, wasListening, restartInMs: delay }, 'worker process died; starting a new one');
    this.restarts++;
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.#closing) return;
      this.#start(slot).then(
        () => logger.info({ worker: slot.worker?.id }, 'replacement worker listening'),
        (err: Error) => logger.error({ err: err.message }, 'replacement worker could not start'),
      );
    }, delay);
  }

  #onMessage(worker: Worker, message: ToPrimary): void {
    const { host, pool, logger } = this.options;
    switch (message.type) {
      case 'report': {
        this.totals.update(worker.id, message, (id) => pool.has(id));
        for (const [backend, runs] of Object.entries(message.outcomes)) host.recordOutcomes(backend, runs);
        if (this.#settings.config.metrics.enabled) {
          for (const l of message.latency) if (pool.has(l.backend)) host.metricsRegistry.addLatency(l.backend, l.outcome, l.buckets, l.sum);
        }
        if (message.partitionsSeen.length > 0) host.partitionsSeen(message.partitionsSeen);
        break;
      }
      case 'learned': {
        this.#learn(message.sessionId, message.backend, worker);
        host.learned(message.sessionId, message.backend);
        break;
      }
      case 'applied': {
        const sync = this.#sync.get(worker);
        if (sync !== undefined) sync.applied = Math.max(sync.applied, message.change);
        break;
      }
      case 'sessions':
        this.#asks.get(message.id)?.(worker, message);
        break;
      case 'maintenance':
        if (pool.has(message.backend)) host.backendInMaintenance(message.backend);
        break;
      case 'assign':
        host.assignPartition(message.key, message.backend, message.replacing).then(
          (answer) => this.#send(worker, { type: 'assigned', id: message.id, ...answer }),
          (err: Error) => {
            logger.error({ key: message.key, err: err.message }, 'cannot store a new partition assignment; answering 503');
            this.#send(worker, { type: 'assigned', id: message.id, accepted: false, lookup: undefined, error: err.message });
          },
        );
        break;
    }
  }

  /** learnedElsewhere: another instance learned (or forgot) a session id; every worker is told. */
  learnedElsewhere(sessionId: string, backendId: string | undefined): void {
    this.#learn(sessionId, backendId, undefined);
  }

  /** #learn keeps a learned session id for workers that start later, and tells every worker but `from`. */
  #learn(sessionId: string, backendId: string | undefined, from: Worker | undefined): void {
    if (backendId === undefined) this.#learned.forget(sessionId);
    else this.#learned.learn(sessionId, backendId);
    this.#broadcastChange({ type: 'learned', sessionId, backend: backendId, change: ++this.#changes }, from);
  }

  #schedulePoolPush(): void {
    if (this.#poolPushScheduled) return;
    this.#poolPushScheduled = true;
    queueMicrotask(() => {
      this.#poolPushScheduled = false;
      this.#broadcastChange({ type: 'pool', members: memberInputs(this.options.pool.members()), change: ++this.#changes });
    });
  }

  #sendTotals(): void {
    const partitionCounts = this.options.host.partitionCounts();
    const otherInstances = this.options.host.sessionsOnOtherInstances();
    for (const worker of this.#initialized) {
      const elsewhere = this.totals.sessionsElsewhere(worker.id);
      for (const [id, n] of Object.entries(otherInstances)) elsewhere[id] = (elsewhere[id] ?? 0) + n;
      this.#send(worker, { type: 'totals', sessionsElsewhere: elsewhere, partitionCounts });
    }
  }

  /** Sends a numbered change to every initialized worker but `except`, and notes it as sent. */
  #broadcastChange(message: Extract<ToWorker, Change>, except?: Worker): void {
    for (const worker of this.#initialized) {
      if (worker === except) continue;
      const sync = this.#sync.get(worker);
      if (sync !== undefined) sync.sent = message.change;
      this.#send(worker, message);
    }
  }

  #send(worker: Worker, message: ToWorker | ToPrimary): void {
    if (!worker.isConnected()) return;
    try {
      worker.send(message);
    } catch {
      // The channel closed under us: the worker is exiting; 'exit' handles it.
    }
  }
}
