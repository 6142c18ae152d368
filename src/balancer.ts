/**
 * Balancer is the control plane of one running servoy-lb and the AdminControl the admin
 * plane talks to. The config (merged with the durable state) goes into a Pool; health
 * checks, outlier detection, the drain monitor, Servoy maintenance handling and admin calls
 * write to the pool. Client traffic is carried by a TrafficPlane that routes through the
 * pure router on the pool's current snapshot: in one process a LocalTraffic (the proxy
 * here), with `--workers N` a WorkerFleet whose workers mirror the pool's snapshots and
 * report their counts back. The Balancer owns every resource it creates (sockets, timers,
 * files) and releases them in close().
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { explainRoute } from './admin/route-explanation.js';
import { AdminError, type AdminControl, type AdminStateOptions, type BackendStatus, type PartitionStatus, type ReloadResult, type RouteExplanation, type RouteQuery } from './admin/control.js';
import { AdminServer } from './admin/admin-server.js';
import { backendStatus } from './admin/backend-status.js';
import { DashboardData } from './admin/dashboard-data.js';
import type { AdminEvent } from './admin/events.js';
import type { SeriesWindow } from './admin/series.js';
import type { SessionList, SessionQuery } from './admin/sessions-view.js';
import { BalancerMetrics } from './admin/metrics.js';
import type { WorkerFleet } from './cluster/fleet.js';
import type { AssignAnswer } from './cluster/protocol.js';
import { ConfigError, loadConfig } from './config/load.js';
import { settingsDiff } from './config/reload-diff.js';
import { backendSchema, type BackendConfig, type Config } from './config/schema.js';
import type { TlsPair } from './config/tls-files.js';
import { ActiveHealthChecker } from './health/active-checker.js';
import { OutlierDetector } from './health/outlier-detector.js';
import type { HealthSink } from './health/health-sink.js';
import { DrainMonitor } from './pool/drain-monitor.js';
import { Pool } from './pool/pool.js';
import { FILE_STATE_HEALTH, type StateHealth } from './pool/readiness.js';
import type { ExchangeOutcome } from './proxy/http-exchange.js';
import type { ProxyObserver } from './proxy/proxy-server.js';
import { explainPath, PathRules, type PathExplanation } from './routing/path-rules.js';
import { mergeBackends, readRecords, type BackendRecords } from './state/backend-records.js';
import { FileStateStore, type StateData } from './state/file-store.js';
import { PartitionDirectory } from './state/partition-directory.js';
import { PartitionStore, PartitionStoreError } from './state/partition-store.js';
import { normalizePartitionKey } from './routing/partition-key.js';
import { StartupError } from './startup-error.js';
import { checkLogFile } from './log-file.js';
import { checkStartFiles, readPages, readTls } from './start-checks.js';
import { displayHost, LocalTraffic, type TrafficPlane, type TrafficSettings } from './traffic-plane.js';

export { StartupError } from './startup-error.js';

/** BalancerOptions are what `start` knows besides the config. */
export interface BalancerOptions {
  /** The config file, for reload; without it reload is refused. */
  readonly configFile?: string;
  /** Start the admin API (default true). */
  readonly admin?: boolean;
  /** Processes sharing the client port (`start --workers N`); 1, the default, serves in this process. */
  readonly workers?: number;
}

/** Balancer is one running load balancer; create it with Balancer.start(). */
export class Balancer implements AdminControl, ProxyObserver, HealthSink {
  url = '';
  adminUrl: string | undefined;
  /** URL of the plain-HTTP listener that redirects to HTTPS (listen.tls.redirectPort), if any. */
  redirectUrl: string | undefined;
  readonly pool: Pool;
  /** What carries client traffic: the proxy of this process, or the workers. */
  readonly traffic: TrafficPlane;
  readonly metricsRegistry: BalancerMetrics;
  #config: Config;
  #settings: TrafficSettings;
  #records: BackendRecords;
  #source: Map<string, 'config' | 'runtime'>;
  readonly #state: StateData;
  readonly #store: FileStateStore;
  readonly #checker: ActiveHealthChecker;
  readonly #outlier: OutlierDetector;
  readonly #drainMonitor: DrainMonitor;
  readonly #maintenanceTimers = new Map<string, NodeJS.Timeout>();
  /** Per down backend: when affinity.failoverDelay ends and its held sessions are placed anew. */
  readonly #holdTimers = new Map<string, NodeJS.Timeout>();
  #settleTimer: NodeJS.Timeout | undefined;
  #admin: AdminServer | undefined;
  /** admin.tls, read and checked at start (a change needs a restart, like every admin.* key). */
  #adminTls: TlsPair | undefined;
  #closed = false;
  /** Events, time series, state times and last probes for the dashboard. */
  readonly #dashboard: DashboardData;

  private constructor(
    settings: TrafficSettings,
    state: StateData,
    store: FileStateStore,
    private readonly logger: Logger,
    private readonly options: BalancerOptions,
    readonly partitions: PartitionDirectory | undefined,
    Fleet: typeof WorkerFleet | undefined,
  ) {
    const config = settings.config;
    this.#config = config;
    this.#settings = settings;
    this.#state = state;
    this.#store = store;
    const merged = mergeBackends(config.backends, readRecords(state));
    this.#records = merged.records;
    this.#source = new Map(merged.source);
    this.pool = new Pool(merged.backends);
    for (const [id, record] of Object.entries(merged.records.admin)) this.pool.setAdmin(id, record.admin, 'restored from state file', record.since);

    const workers = options.workers ?? 1;
    this.metricsRegistry = new BalancerMetrics(
      () => this.backends(),
      workers > 1
        ? { latency: 'merged', workers: () => this.traffic as WorkerFleet, inFlight: () => this.inFlight }
        : { inFlight: () => this.inFlight },
    );
    this.traffic =
      Fleet !== undefined
        ? new Fleet(settings, { workers, pool: this.pool, logger, host: this })
        : new LocalTraffic(settings, {
            pool: this.pool,
            logger,
            observer: this,
            partitions,
            assignPartition: partitions === undefined ? undefined : (key, backendId) => partitions.assign(key, backendId),
          });
    this.#dashboard = new DashboardData(this.pool, () => this.traffic.totals, (id) => this.metricsRegistry.recent.p95Ms(id));
    this.#checker = new ActiveHealthChecker(config.healthCheck, this, { logger, maintenanceLimit: () => this.#config.drain.maxWait, onProbe: (report) => this.#dashboard.probed(report) });
    this.#outlier = new OutlierDetector(config.outlier, this, { logger, probe: (id: string) => this.#checker.probeOnce(id) });
    this.#drainMonitor = new DrainMonitor(this.pool, this.traffic.totals, config.drain.maxWait);
    this.#drainMonitor.sessionIdle = config.affinity.sessionIdle;

    this.pool.on('change', (change) => {
      if (change.from !== change.to) logger.info({ backend: change.backendId, from: change.from, to: change.to, cause: change.cause }, 'backend state changed');
      this.#checker.setTargets(this.pool.configs());
    });
  }

  /** start validates what the config points at (files, state), then listens. */
  static async start(config: Config, logger: Logger, options: BalancerOptions = {}): Promise<Balancer> {
    const checked = await checkStartFiles(config);
    if (!checked.ok) throw new StartupError(checked.problems.join('\n'));
    const { stateFile, pages, tls, adminTls } = checked.files;
    const store = new FileStateStore(stateFile);
    const state = await store.load().catch((err: Error) => {
      throw new StartupError(err.message);
    });
    for (const warning of store.loadReport.warnings) logger.warn({ file: stateFile, from: store.loadReport.source }, warning);
    if (config.affinity.cookie.secret === undefined && state.cookieSecret === undefined) {
      // No secret configured: generate one and keep it, so cookies survive restarts (and,
      // with --workers, every worker signs and verifies with the same key).
      state.cookieSecret = randomBytes(32).toString('base64url');
      await store.save(state).catch((err: Error) => {
        throw new StartupError(`cannot write state file ${stateFile}: ${err.message}`);
      });
    }
    // log.file is opened (created) now, so a bad path stops start before anything listens.
    if (config.log.file !== undefined) checkLogFile(config.log.file);
    const partitions = config.affinity.mode === 'partition' ? openPartitions(stateFile, config, logger) : undefined;
    const settings: TrafficSettings = { config, secrets: secretsOf(config, state)!, pages, tls };
    // The cluster code is loaded only with --workers: one process runs exactly as it always did.
    const Fleet = (options.workers ?? 1) > 1 ? (await import('./cluster/fleet.js')).WorkerFleet : undefined;
    const balancer = new Balancer(settings, state, store, logger, options, partitions, Fleet);
    balancer.#adminTls = options.admin !== false ? adminTls : undefined;
    await balancer.#listen();
    return balancer;
  }

  async #listen(): Promise<void> {
    const config = this.#config;
    const bound = await this.traffic.listen();
    this.url = bound.url;
    this.redirectUrl = bound.redirectUrl;
    if (this.redirectUrl !== undefined) this.logger.info({ redirectUrl: this.redirectUrl, to: Number(new URL(this.url).port) }, 'HTTP-to-HTTPS redirect listening');
    if (this.options.admin !== false) {
      const { host, port, token, allow } = config.admin;
      this.#admin = new AdminServer(this, { host, port, token, allow, tls: this.#adminTls, logger: this.logger });
      // The admin server words its own listen errors ("the admin API cannot listen on ...").
      const admin = await this.#admin.listen().catch(async (err: Error) => {
        await this.traffic.close(0);
        throw new StartupError(err.message);
      });
      this.adminUrl = `${this.#adminTls === undefined ? 'http' : 'https'}://${displayHost(admin.host)}:${admin.port}`;
    }
    this.#drainMonitor.start();
    this.#dashboard.start();
    this.#checker.setTargets(this.pool.configs());
    this.#checker.start();
    if (this.partitions !== undefined) this.#settleTimer = setInterval(() => this.#settleDrainedMoves(), 10_000).unref();
  }

  /**
   * A partition moved with --drain keeps sending its live sessions to the old server; once
   * the partition has no active session left (or drain.maxWait passed) the old server is
   * forgotten.
   */
  #settleDrainedMoves(): void {
    const now = Date.now();
    const totals = this.traffic.totals;
    const settled = this.partitions!.settleDrainedMoves(
      (key, record) => totals.partitionSessions(key) === 0 || now - (record.movedAt ?? 0) >= this.#config.drain.maxWait,
    );
    for (const key of settled) {
      this.logger.info({ key }, 'partition move finished: no live session left on the old server');
      this.traffic.partitionChanged(key, this.partitions!.lookup(key));
    }
  }

  /** inFlight is the number of HTTP requests being served right now (this process, or all workers as last reported). */
  get inFlight(): number {
    return this.traffic.inFlight;
  }

  /** reopenLog reopens the access log's file (SIGUSR1: logrotate moved it), in every worker. */
  reopenLog(): void {
    this.traffic.reopenLog();
  }

  /** close stops accepting and lets in-flight work finish for up to graceMs. */
  async close(graceMs = this.#config.timeouts.shutdownGrace): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#outlier.close();
    this.#drainMonitor.stop();
    this.#dashboard.stop();
    clearInterval(this.#settleTimer);
    for (const timer of this.#maintenanceTimers.values()) clearTimeout(timer);
    for (const timer of this.#holdTimers.values()) clearTimeout(timer);
    await Promise.all([this.#checker.close(), this.traffic.close(graceMs), this.#admin?.close()]);
    await this.partitions?.store.close();
  }

  // ---- HealthSink and ProxyObserver: writers of backend health -------------------------

  /**
   * setHealth takes the checks' verdict. A backend that goes down after being up holds its
   * sessions for affinity.failoverDelay (they get 503, not a new server: Servoy takes a
   * client back for 60 s after a drop, so a short outage must not cost every user their
   * client); the hold ends when the delay passes or the backend is back.
   */
  setHealth(backendId: string, healthy: boolean, cause: string): void {
    const delay = this.#config.affinity.failoverDelay;
    const wasHealthy = this.pool.member(backendId)?.healthy;
    this.pool.setHealth(backendId, healthy, cause, delay > 0);
    if (healthy || wasHealthy === true) {
      clearTimeout(this.#holdTimers.get(backendId));
      this.#holdTimers.delete(backendId);
    }
    if (!healthy && wasHealthy === true && this.pool.member(backendId)?.holding === true) {
      this.logger.info({ backend: backendId, failoverDelay: delay }, 'backend down: its sessions wait for it (503) for affinity.failoverDelay before they are placed anew');
      const timer = setTimeout(() => {
        this.#holdTimers.delete(backendId);
        void this.#endHold(backendId);
      }, delay).unref();
      this.#holdTimers.set(backendId, timer);
    }
  }

  /**
   * #endHold runs when failoverDelay has passed for a down backend. One probe first: a
   * server that is already back (its checks pass again, but an outlier ejection still holds
   * it out, or the next scheduled probe has not come yet) takes its users back instead of
   * losing them by a hair. Otherwise its sessions are placed anew from now on.
   */
  async #endHold(backendId: string): Promise<void> {
    const good = await this.#checker.probeOnce(backendId);
    if (this.#closed) return;
    if (good) this.#outlier.endEjection(backendId, 'ejection ended early: its health checks pass at the end of failoverDelay');
    const member = this.pool.member(backendId);
    if (member === undefined || member.healthy || !member.holding) return;
    if (this.pool.setHolding(backendId, false, 'failoverDelay passed while down')) {
      this.logger.info({ backend: backendId }, 'failoverDelay passed while down: its sessions are placed anew');
    }
  }

  /**
   * inMaintenance is the health checker's report of a probe answered 503 (Servoy
   * maintenance mode): the backend takes no new sessions for maintenanceBackoff after the
   * last such answer, while its sessions keep reaching it.
   */
  inMaintenance(backendId: string): void {
    this.#enterMaintenance(backendId, 'health probe answered 503 (Servoy maintenance mode)');
  }

  requestFinished(backendId: string, outcome: ExchangeOutcome, seconds: number): void {
    if (outcome === 'backend-error' || outcome === 'timeout') this.#outlier.recordFailure(backendId, outcome);
    else if (outcome === 'ok') this.#outlier.recordSuccess(backendId);
    if (this.#config.metrics.enabled) this.metricsRegistry.observeRequest(backendId, seconds, outcome);
  }

  backendFailed(backendId: string): void {
    this.#outlier.recordFailure(backendId, 'connect');
  }

  backendInMaintenance(backendId: string): void {
    this.#enterMaintenance(backendId, 'answered a new session with 503 (Servoy maintenance mode)');
  }

  #enterMaintenance(backendId: string, cause: string): void {
    const backoff = this.#config.affinity.maintenanceBackoff;
    this.pool.setMaintenance(backendId, true, cause);
    clearTimeout(this.#maintenanceTimers.get(backendId));
    const timer = setTimeout(() => {
      this.#maintenanceTimers.delete(backendId);
      this.pool.setMaintenance(backendId, false, 'maintenanceBackoff passed');
    }, backoff).unref();
    this.#maintenanceTimers.set(backendId, timer);
  }

  // ---- FleetHost: what workers report to the primary (--workers) ------------------------

  /**
   * recordOutcomes replays a worker's proxy outcomes for one backend into outlier
   * detection, in the order they happened: runs of successes (n > 0) and failures (n < 0).
   */
  recordOutcomes(backendId: string, runs: readonly number[]): void {
    if (!this.pool.has(backendId)) return;
    for (const run of runs) {
      if (run > 0) this.#outlier.recordSuccess(backendId);
      else for (let i = 0; i < -run; i++) this.#outlier.recordFailure(backendId, 'proxy-error');
    }
  }

  /**
   * assignPartition is a worker's request for a new partition assignment: the first
   * request wins and is made durable before the answer goes back; a later one for the same
   * key is told where the key lives. `replacing` is the backend that refused the request
   * the worker had assigned the key to a moment ago: only then is the key moved.
   */
  assignPartition(key: string, backendId: string, replacing: string | undefined): AssignAnswer {
    const directory = this.#requirePartitions();
    const current = directory.lookup(key);
    const free = current === undefined || (replacing !== undefined && !current.pinned && current.backend === replacing);
    if (!free || !this.pool.has(backendId)) return { accepted: false, lookup: current };
    directory.assign(key, backendId);
    this.logger.info({ key, backend: backendId }, 'partition assigned');
    const lookup = directory.lookup(key);
    this.traffic.partitionChanged(key, lookup);
    return { accepted: true, lookup };
  }

  /** partitionsSeen notes requests for partition keys (last-seen in listings). */
  partitionsSeen(keys: readonly string[]): void {
    for (const key of keys) this.partitions?.seen(key);
  }

  /** partitionCounts is how many partitions each backend holds (bounded load for new ones). */
  partitionCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    if (this.partitions !== undefined) for (const id of this.pool.configs().map((b) => b.id)) counts[id] = this.partitions.count(id);
    return counts;
  }

  // ---- AdminControl --------------------------------------------------------------------

  /** stateHealth is the shared state store's health for /healthz; the file store has no failure mode while running. */
  stateHealth(): StateHealth {
    return FILE_STATE_HEALTH;
  }

  backends(): BackendStatus[] {
    const totals = this.traffic.totals;
    return this.pool.members().map((m) => this.#dashboard.decorate(backendStatus(m, { ...totals.counters(m.config.id) }, this.#source.get(m.config.id) ?? 'config')));
  }

  async sessions(query: SessionQuery): Promise<SessionList> {
    if (query.backend !== undefined && !this.pool.has(query.backend)) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${query.backend}"`);
    return { ...(await this.traffic.listSessions(query)), instance: true };
  }

  events(limit: number): AdminEvent[] {
    return this.#dashboard.events.latest(limit);
  }

  series(seconds: number): SeriesWindow {
    return this.#dashboard.series.window(seconds);
  }

  recordAdminAction(action: { backend: string | null; what: string; who: string; from: string | null; to: string | null }): void {
    this.#dashboard.adminAction(action);
  }

  #status(id: string): BackendStatus {
    const found = this.backends().find((b) => b.id === id);
    if (found === undefined) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${id}"`);
    return found;
  }

  async addBackend(input: { id: string; url: string; weight?: number; maxSessions?: number; route?: string }): Promise<BackendStatus> {
    const parsed = backendSchema.safeParse(input);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
      throw new AdminError('INVALID_BODY', `invalid backend: ${problems.join('; ')}`, problems);
    }
    const config: BackendConfig = { ...parsed.data, route: parsed.data.route ?? parsed.data.id };
    if (this.pool.has(config.id)) throw new AdminError('BACKEND_EXISTS', `a backend "${config.id}" already exists`);
    const clash = this.pool.configs().find((b) => b.route === config.route);
    if (clash !== undefined) throw new AdminError('BACKEND_EXISTS', `backend "${clash.id}" already uses route "${config.route}"`);
    this.pool.add(config, 'added by an administrator');
    this.#source.set(config.id, 'runtime');
    this.#records.removed = this.#records.removed.filter((id) => id !== config.id);
    if (!this.#config.backends.some((b) => b.id === config.id)) this.#records.added.push(config);
    await this.#persist();
    return this.#status(config.id);
  }

  async removeBackend(id: string, force: boolean): Promise<void> {
    const member = this.pool.member(id);
    if (member === undefined) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${id}"`);
    if (!force && member.state !== 'drained') {
      throw new AdminError('NOT_DRAINED', `backend "${id}" is ${member.state}; drain it first and wait until it is drained (servoy-lb drain ${id} --wait), or force the removal`);
    }
    if (this.pool.members().length === 1) throw new AdminError('LAST_BACKEND', `backend "${id}" is the last one; add another first`);
    this.pool.remove(id, force ? 'removed by an administrator (forced)' : 'removed by an administrator');
    this.#source.delete(id);
    this.#outlier.forget(id);
    this.traffic.forgetBackend(id);
    this.metricsRegistry.forgetBackend(id);
    this.#records.added = this.#records.added.filter((b) => b.id !== id);
    if (this.#config.backends.some((b) => b.id === id)) this.#records.removed.push(id);
    delete this.#records.admin[id];
    if (this.#records.weights !== undefined) delete this.#records.weights[id];
    await this.#persist();
  }

  /**
   * setWeight changes a backend's share of new sessions at run time (`backends set ID
   * --weight N`, PATCH /api/backends/ID). It is persisted: on a config-file backend as a
   * weight record that lasts until the file says the same weight (backend-records.ts), on
   * a run-time backend in its recorded addition.
   */
  async setWeight(id: string, weight: number): Promise<BackendStatus> {
    const member = this.pool.member(id);
    if (member === undefined) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${id}"`);
    if (!Number.isInteger(weight) || weight < 1 || weight > 1000) throw new AdminError('INVALID_BODY', `weight: expected a whole number from 1 to 1000, got ${JSON.stringify(weight)}`);
    this.pool.update({ ...member.config, weight }, `weight set to ${weight} by an administrator`);
    const added = this.#records.added.findIndex((b) => b.id === id);
    if (added >= 0) this.#records.added[added] = { ...this.#records.added[added]!, weight };
    else {
      const weights = (this.#records.weights ??= {});
      if (this.#config.backends.find((b) => b.id === id)?.weight === weight) delete weights[id];
      else weights[id] = weight;
    }
    await this.#persist();
    return this.#status(id);
  }

  async setAdminState(id: string, action: 'drain' | 'undrain' | 'disable' | 'enable', options: AdminStateOptions = {}): Promise<BackendStatus> {
    const member = this.pool.member(id);
    if (member === undefined) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${id}"`);
    const cause = `${action} by an administrator`;
    switch (action) {
      case 'drain':
        this.pool.setAdmin(id, 'draining', cause);
        break;
      case 'disable':
        this.pool.setAdmin(id, 'disabled', cause);
        // After the state change: a client that reconnects at once is routed elsewhere.
        if (options.close === true) this.traffic.closeTunnels(id);
        break;
      case 'undrain':
        if (member.admin === 'draining') this.pool.setAdmin(id, 'ready', cause);
        break;
      case 'enable':
        if (member.admin === 'disabled') this.pool.setAdmin(id, 'ready', cause);
        break;
    }
    const after = this.pool.member(id)!;
    if (after.admin === 'ready') delete this.#records.admin[id];
    else this.#records.admin[id] = after.drainingSince === undefined ? { admin: after.admin } : { admin: after.admin, since: after.drainingSince };
    this.#drainMonitor.check();
    await this.#persist();
    return this.#status(id);
  }

  /** explainRoute is the router's own trace of a request (see src/admin/route-explanation.ts). */
  explainRoute(query: RouteQuery): RouteExplanation {
    const totals = this.traffic.totals;
    return explainRoute(query, {
      snapshot: this.pool.snapshot,
      activeSessions: (id) => totals.activeSessions(id),
      balanceFactor: this.#config.affinity.balanceFactor,
      secrets: this.#settings.secrets,
      partitions: this.partitions,
    });
  }

  /** explainPath says what the path rules do with a request path from a client address (shown beside the route explanation). */
  explainPath(path: string, clientAddress: string | undefined): PathExplanation {
    return explainPath(PathRules.compile(this.#config.paths), path, clientAddress);
  }

  #requirePartitions(): PartitionDirectory {
    if (this.partitions === undefined) throw new AdminError('NOT_PARTITION_MODE', 'partition mode is not enabled (affinity.mode is not "partition")');
    return this.partitions;
  }

  listPartitions(offset: number, limit: number): { total: number; offset: number; partitions: PartitionStatus[] } {
    const directory = this.#requirePartitions();
    const totals = this.traffic.totals;
    return { total: directory.total, offset, partitions: directory.page(offset, limit, (key) => totals.partitionSessions(key)) };
  }

  async movePartition(rawKey: string, backendId: string, drain: boolean): Promise<PartitionStatus> {
    const directory = this.#requirePartitions();
    const key = normalizePartitionKey(rawKey);
    if (key === undefined) throw new AdminError('INVALID_BODY', 'that is not a valid partition key (1-256 characters, no control characters)');
    if (!this.pool.has(backendId)) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${backendId}"`);
    if (directory.isPinned(key)) throw new AdminError('PARTITION_PINNED', `partition "${key}" is pinned in the config file (affinity.partitions); change the pin there and reload`);
    const before = directory.lookup(key)?.backend;
    try {
      directory.move(key, backendId, drain);
    } catch (err) {
      throw new AdminError('INTERNAL', `the partition could not be stored: ${(err as Error).message}`);
    }
    this.logger.info({ key, from: before ?? null, to: backendId, drain }, 'partition moved by an administrator');
    this.traffic.partitionChanged(key, directory.lookup(key));
    return directory.status(key, this.traffic.totals.partitionSessions(key))!;
  }

  async reload(): Promise<ReloadResult> {
    if (this.options.configFile === undefined) throw new AdminError('INVALID_CONFIG', 'this balancer was not started from a config file');
    let next: Config;
    try {
      next = (await loadConfig(this.options.configFile)).config;
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      this.logger.error({ problems }, 'reload refused: the config file is invalid; the running config is kept');
      throw new AdminError('INVALID_CONFIG', `the config file is invalid; the running config is kept: ${problems.join('; ')}`, problems);
    }
    if ((next.listen.tls === undefined) !== (this.#config.listen.tls === undefined)) {
      throw new AdminError('INVALID_CONFIG', `listen.tls was ${next.listen.tls ? 'added' : 'removed'}: switching between HTTP and HTTPS needs a restart; the running config is kept`);
    }
    if (next.affinity.mode !== this.#config.affinity.mode) {
      throw new AdminError('INVALID_CONFIG', `affinity.mode changed from "${this.#config.affinity.mode}" to "${next.affinity.mode}": that needs a restart; the running config is kept`);
    }
    const pages = readPages(next);
    if (typeof pages === 'string') throw new AdminError('INVALID_CONFIG', `${pages}; the running config is kept`);
    const tls = next.listen.tls ? await readTls(next.listen.tls) : undefined;
    if (typeof tls === 'string') throw new AdminError('INVALID_CONFIG', `${tls}; the running config is kept`);
    const running = this.#config;
    const diff = settingsDiff(running, next);
    // Backends: the new file's list, merged with run-time changes as at start.
    const merged = mergeBackends(next.backends, this.#records);
    const before = new Map(this.pool.configs().map((b) => [b.id, b]));
    const nextIds = new Set(merged.backends.map((b) => b.id));
    const result: ReloadResult = { added: [], removed: [], updated: [], settings: diff.settings, needsRestart: diff.needsRestart };
    for (const config of merged.backends) {
      if (!before.has(config.id)) {
        this.pool.add(config, 'config reload');
        result.added.push(config.id);
      } else if (this.pool.update(config, 'config reload')) {
        result.updated.push(config.id);
      }
    }
    for (const id of before.keys()) {
      if (nextIds.has(id)) continue;
      this.pool.remove(id, 'config reload');
      this.#outlier.forget(id);
      this.traffic.forgetBackend(id);
      this.metricsRegistry.forgetBackend(id);
      result.removed.push(id);
    }
    this.#records = merged.records;
    this.#source = new Map(merged.source);
    // Settings that apply without dropping anything.
    this.partitions?.setPins(next.affinity.partitions);
    this.#settings = { config: next, secrets: secretsOf(next, this.#state) ?? this.#settings.secrets, pages, tls };
    this.traffic.reconfigure(this.#settings);
    this.#checker.updateSettings(next.healthCheck);
    this.#outlier.updateSettings(next.outlier);
    this.#drainMonitor.maxWait = next.drain.maxWait;
    this.#drainMonitor.sessionIdle = next.affinity.sessionIdle;
    this.logger.level = next.log.level;
    this.#config = next;
    await this.#persist();
    this.logger.info(result, 'config reloaded');
    return result;
  }

  async metrics(): Promise<{ contentType: string; body: string }> {
    if (!this.#config.metrics.enabled) throw new AdminError('NOT_FOUND', 'metrics are disabled in the config (metrics.enabled: false)');
    return { contentType: this.metricsRegistry.contentType, body: await this.metricsRegistry.text() };
  }

  async #persist(): Promise<void> {
    this.#state.backends = this.#records;
    try {
      await this.#store.save(this.#state);
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'cannot write the state file; the change is live but will not survive a restart');
      throw new AdminError('INTERNAL', `the change is live, but the state file could not be written: ${(err as Error).message}`);
    }
  }
}

/** openPartitions opens the durable partition store next to the state file, logging what loading found. */
function openPartitions(stateFile: string, config: Config, logger: Logger): PartitionDirectory {
  let store: PartitionStore;
  try {
    store = PartitionStore.open(stateFile);
  } catch (err) {
    throw new StartupError(err instanceof PartitionStoreError ? err.message : `cannot open the partition store: ${(err as Error).message}`);
  }
  const report = store.loadReport;
  logger.info({ partitions: report.records, from: report.base, ms: Math.round(report.ms) }, 'partition store loaded');
  for (const warning of report.warnings) logger.warn(warning);
  for (const error of report.errors) logger.error(error);
  return new PartitionDirectory(store, config.affinity.partitions);
}

/**
 * secretsOf is the list of cookie keys: the configured secret(s), else the generated one
 * from the state file (undefined when there is neither: a reload then keeps the running keys).
 */
function secretsOf(config: Config, state: StateData): string[] | undefined {
  const configured = config.affinity.cookie.secret ?? state.cookieSecret;
  return typeof configured === 'string' ? [configured] : configured;
}
