/**
 * Balancer is the composition root of one running servoy-lb, and the AdminControl the admin
 * plane talks to. It builds the parts, wires them, runs their lifecycle and fans a reload
 * out to them; the jobs themselves live in src/control/:
 * - startup.ts: start-up I/O (files, state store, cookie secret, partition journal);
 * - failover-holds.ts, maintenance-backoff.ts: health verdicts into the pool, and their timers;
 * - outcome-recorder.ts: proxy outcomes into outlier detection and metrics;
 * - backend-admin.ts: run-time backend changes and admin states, persisted;
 * - partition-admin.ts: partition assignments, moves, settling;
 * - reloader.ts: reading and checking a reload;
 * - fleet-host.ts: what the workers report to the primary (`--workers`).
 *
 * State flows one way: health checks, outlier detection, the drain monitor, admin calls and
 * the state store write to the Pool; client traffic is carried by a TrafficPlane that routes
 * through the pure router on the pool's current snapshot: in one process a LocalTraffic, with
 * `--workers N` a WorkerFleet whose workers mirror the pool's snapshots and report their
 * counts back. The Balancer owns every resource it creates (sockets, timers, files) and
 * releases them in close().
 */
import type { Logger } from 'pino';
import { explainRoute } from './admin/route-explanation.js';
import { AdminError, type AdminControl, type AdminStateOptions, type BackendStatus, type PartitionStatus, type ReloadResult, type RouteExplanation, type RouteQuery } from './admin/control.js';
import { AdminServer } from './admin/admin-server.js';
import { backendStatus } from './admin/backend-status.js';
import { DashboardData } from './admin/dashboard-data.js';
import { mergeSharedEvents, type EventList } from './admin/events.js';
import type { SeriesWindow } from './admin/series.js';
import type { SessionList, SessionQuery } from './admin/sessions-view.js';
import { BalancerMetrics } from './admin/metrics.js';
import type { WorkerFleet } from './cluster/fleet.js';
import type { Config } from './config/schema.js';
import type { TlsPair } from './config/tls-files.js';
import { ActiveHealthChecker } from './health/active-checker.js';
import { OutlierDetector } from './health/outlier-detector.js';
import { DrainMonitor } from './pool/drain-monitor.js';
import { Pool } from './pool/pool.js';
import type { StateHealth } from './pool/readiness.js';
import type { SessionTotals } from './sessions/accounting.js';
import { explainPath, PathRules, type PathExplanation } from './routing/path-rules.js';
import { mergeBackends } from './state/backend-records.js';
import { PartitionDirectory } from './state/partition-directory.js';
import type { StateStore } from './state/state-store.js';
import { StartupError } from './startup-error.js';
import { displayHost, LocalTraffic, type TrafficPlane, type TrafficSettings } from './traffic-plane.js';
import { BackendAdmin } from './control/backend-admin.js';
import { FailoverHolds } from './control/failover-holds.js';
import { FleetHostAdapter } from './control/fleet-host.js';
import { InstanceLoad, withOtherInstances } from './control/instance-load.js';
import { MaintenanceBackoff } from './control/maintenance-backoff.js';
import { OutcomeRecorder } from './control/outcome-recorder.js';
import { PartitionAdmin } from './control/partition-admin.js';
import { readReload } from './control/reloader.js';
import { readStart, secretsOf, type OpenStore } from './control/startup.js';
import { requireWritable } from './control/state-guard.js';

export { StartupError } from './startup-error.js';

/** BalancerOptions are what `start` knows besides the config. */
export interface BalancerOptions {
  /** The config file, for reload; without it reload is refused. */
  readonly configFile?: string;
  /** Start the admin API (default true). */
  readonly admin?: boolean;
  /** Processes sharing the client port (`start --workers N`); 1, the default, serves in this process. */
  readonly workers?: number;
  /** Opens the state store (default: the file store beside state.file); where a shared store plugs in. */
  readonly openStore?: OpenStore;
}

/** How often a shared store is told this instance's session counts (SPEC: counts at most ~1 s old). */
const PUBLISH_SESSIONS_MS = 1000;

/** What the worker metrics show before the fleet exists (never scraped: the fleet is built with the metrics). */
const NO_WORKERS = { alive: 0, restarts: 0, changes: 0, behind: 0 };

/** Balancer is one running load balancer; create it with Balancer.start(). */
export class Balancer implements AdminControl {
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
  readonly #store: StateStore;
  /** The workers (`--workers N`), the same object as `traffic`; undefined in one process. */
  readonly #fleet: WorkerFleet | undefined;
  readonly #checker: ActiveHealthChecker;
  readonly #outlier: OutlierDetector;
  readonly #drainMonitor: DrainMonitor;
  readonly #maintenance: MaintenanceBackoff;
  readonly #holds: FailoverHolds;
  readonly #backendAdmin: BackendAdmin;
  /** Partition mode only. */
  readonly #partitions: PartitionAdmin | undefined;
  /** The sessions of other instances sharing the state store (none with the file store). */
  readonly #instances = new InstanceLoad();
  /** This instance's session totals plus the other instances' sessions: what status and drains read. */
  readonly #totals: SessionTotals;
  /** Shares this instance's session counts (a shared store only). */
  #publishTimer: NodeJS.Timeout | undefined;
  #admin: AdminServer | undefined;
  /** Stops following the state store's changes. */
  readonly #unfollow: () => void;
  #closed = false;
  /** Events, time series, state times and last probes for the dashboard. */
  readonly #dashboard: DashboardData;

  private constructor(
    settings: TrafficSettings,
    store: StateStore,
    private readonly logger: Logger,
    private readonly options: BalancerOptions,
    /** admin.tls, read and checked at start (a change needs a restart, like every admin.* key). */
    private readonly adminTls: TlsPair | undefined,
    Fleet: typeof WorkerFleet | undefined,
  ) {
    const config = settings.config;
    this.#config = config;
    this.#settings = settings;
    this.#store = store;
    const merged = mergeBackends(config.backends, store.backendRecords());
    this.pool = new Pool(merged.backends);
    for (const [id, record] of Object.entries(merged.records.admin)) this.pool.setAdmin(id, record.admin, 'restored from state file', record.since);

    this.metricsRegistry = new BalancerMetrics(
      () => this.backends(),
      Fleet !== undefined ? { latency: 'merged', workers: () => this.#fleet ?? NO_WORKERS, inFlight: () => this.inFlight } : { inFlight: () => this.inFlight },
    );
    this.#maintenance = new MaintenanceBackoff(this.pool, () => this.#config.affinity.maintenanceBackoff);
    this.#holds = new FailoverHolds(this.pool, {
      logger,
      failoverDelay: () => this.#config.affinity.failoverDelay,
      maintenance: this.#maintenance,
      probe: (id) => this.#checker.probeOnce(id),
      endEjection: (id, cause) => this.#outlier.endEjection(id, cause),
    });
    this.#checker = new ActiveHealthChecker(config.healthCheck, this.#holds, { logger, maintenanceLimit: () => this.#config.drain.maxWait, onProbe: (report) => this.#dashboard.probed(report) });
    this.#outlier = new OutlierDetector(config.outlier, this.#holds, { logger, probe: (id: string) => this.#checker.probeOnce(id) });
    const outcomes = new OutcomeRecorder({ pool: this.pool, outlier: this.#outlier, maintenance: this.#maintenance, metrics: this.metricsRegistry, metricsEnabled: () => this.#config.metrics.enabled });

    const partitionTable = store.partitions;
    const directory = partitionTable === undefined ? undefined : new PartitionDirectory(partitionTable, store, config.affinity.partitions);
    this.#partitions =
      directory === undefined
        ? undefined
        : new PartitionAdmin(directory, store, {
            pool: this.pool,
            logger,
            partitionSessions: (key) => this.traffic.totals.partitionSessions(key),
            partitionChanged: (key, lookup) => this.traffic.partitionChanged(key, lookup),
            drainMaxWait: () => this.#config.drain.maxWait,
          });

    const workers = options.workers ?? 1;
    const shared = store.kind !== 'file';
    if (Fleet !== undefined) {
      const host = new FleetHostAdapter(outcomes, this.metricsRegistry, this.#partitions, store, () => this.#instances.all());
      this.#fleet = new Fleet(settings, { workers, pool: this.pool, logger, host });
      this.traffic = this.#fleet;
    } else {
      const partitions = this.#partitions;
      this.traffic = new LocalTraffic(settings, {
        pool: this.pool,
        logger,
        observer: outcomes,
        partitions: directory,
        resolvePartition: partitions === undefined ? undefined : (key, backendId) => partitions.resolve(key, backendId),
        onLearn: (sessionId, backendId) => store.publishLearned(sessionId, backendId),
        // A shared store: the other instances' sessions count for bounded load and maxSessions.
        cluster: shared ? { sessionsElsewhere: (backendId) => this.#instances.sessions(backendId) } : undefined,
      });
    }
    this.#totals = withOtherInstances(() => this.traffic.totals, this.#instances);
    this.#dashboard = new DashboardData(this.pool, () => this.#totals, (id) => this.metricsRegistry.recent.p95Ms(id));
    this.#drainMonitor = new DrainMonitor(this.pool, this.#totals, config.drain.maxWait);
    this.#drainMonitor.sessionIdle = config.affinity.sessionIdle;
    this.#backendAdmin = new BackendAdmin(
      this.pool,
      store,
      {
        logger,
        configBackends: () => this.#config.backends,
        forget: (id) => {
          this.#outlier.forget(id);
          this.traffic.forgetBackend(id);
          this.metricsRegistry.forgetBackend(id);
        },
        closeTunnels: (id) => this.traffic.closeTunnels(id),
        adminStateChanged: () => this.#drainMonitor.check(),
      },
      merged,
    );

    // Changes made elsewhere (another instance sharing the store): the file store has none.
    this.#unfollow = store.onChange((change) => {
      if (change.kind === 'backends') this.#backendAdmin.follow(change.records);
      else if (change.kind === 'learned') this.traffic.learnedElsewhere(change.sessionId, change.backendId);
      else if (change.kind === 'sessions') this.#instances.update(change.instance, change.counts);
    });
    this.pool.on('change', (change) => {
      if (change.from !== change.to) logger.info({ backend: change.backendId, from: change.from, to: change.to, cause: change.cause }, 'backend state changed');
      this.#checker.setTargets(this.pool.configs());
    });
  }

  /** start validates what the config points at (files, state), then listens. */
  static async start(config: Config, logger: Logger, options: BalancerOptions = {}): Promise<Balancer> {
    const { settings, store, adminTls } = await readStart(config, logger, options.openStore);
    // The cluster code is loaded only with --workers: one process runs exactly as it always did.
    const Fleet = (options.workers ?? 1) > 1 ? (await import('./cluster/fleet.js')).WorkerFleet : undefined;
    const balancer = new Balancer(settings, store, logger, options, options.admin !== false ? adminTls : undefined, Fleet);
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
      this.#admin = new AdminServer(this, { host, port, token, allow, tls: this.adminTls, logger: this.logger });
      // The admin server words its own listen errors ("the admin API cannot listen on ...").
      const admin = await this.#admin.listen().catch(async (err: Error) => {
        await this.traffic.close(0);
        throw new StartupError(err.message);
      });
      this.adminUrl = `${this.adminTls === undefined ? 'http' : 'https'}://${displayHost(admin.host)}:${admin.port}`;
    }
    this.#drainMonitor.start();
    this.#dashboard.start();
    this.#checker.setTargets(this.pool.configs());
    this.#checker.start();
    this.#partitions?.start();
    if (this.#store.kind !== 'file') this.#publishTimer = setInterval(() => this.#store.publishSessions(this.#localSessions()), PUBLISH_SESSIONS_MS).unref();
  }

  /** #localSessions is this instance's own active sessions per backend (what it shares with the others). */
  #localSessions(): Record<string, number> {
    const totals = this.traffic.totals;
    return Object.fromEntries(this.pool.configs().map((b) => [b.id, totals.activeSessions(b.id)]));
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
    this.#unfollow();
    clearInterval(this.#publishTimer);
    this.#partitions?.close();
    this.#maintenance.close();
    this.#holds.close();
    await Promise.all([this.#checker.close(), this.traffic.close(graceMs), this.#admin?.close()]);
    await this.#store.close();
  }

  // ---- AdminControl --------------------------------------------------------------------

  /** stateHealth is the state store's health for status and /healthz. */
  stateHealth(): StateHealth {
    return this.#store.health();
  }

  backends(): BackendStatus[] {
    const totals = this.#totals;
    return this.pool.members().map((m) => this.#dashboard.decorate(backendStatus(m, { ...totals.counters(m.config.id) }, this.#backendAdmin.sourceOf(m.config.id))));
  }

  async sessions(query: SessionQuery): Promise<SessionList> {
    if (query.backend !== undefined && !this.pool.has(query.backend)) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${query.backend}"`);
    return { ...(await this.traffic.listSessions(query)), instance: true };
  }

  /** events is this instance's events, merged with the pool's shared ones with a shared store (its own when Redis does not answer in time). */
  async events(limit: number): Promise<EventList> {
    const local = this.#dashboard.events.latest(limit);
    const store = this.#store;
    if (store.sharedEvents === undefined || store.instance === undefined) return { events: local };
    try {
      return { events: mergeSharedEvents(local, await store.sharedEvents(limit), store.instance, limit) };
    } catch (err) {
      return { events: local, sharedError: `the other instances' events are not listed: ${(err as Error).message}` };
    }
  }

  series(seconds: number): SeriesWindow {
    return this.#dashboard.series.window(seconds);
  }

  recordAdminAction(action: { backend: string | null; what: string; who: string; from: string | null; to: string | null }): void {
    this.#dashboard.adminAction(action);
    this.#store.publishEvent({ at: Date.now(), backend: action.backend, what: action.what, who: action.who, from: action.from, to: action.to });
  }

  #status(id: string): BackendStatus {
    const found = this.backends().find((b) => b.id === id);
    if (found === undefined) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${id}"`);
    return found;
  }

  async addBackend(input: { id: string; url: string; weight?: number; maxSessions?: number; route?: string }): Promise<BackendStatus> {
    await this.#backendAdmin.add(input);
    return this.#status(input.id);
  }

  async removeBackend(id: string, force: boolean): Promise<void> {
    await this.#backendAdmin.remove(id, force);
  }

  async setWeight(id: string, weight: number): Promise<BackendStatus> {
    await this.#backendAdmin.setWeight(id, weight);
    return this.#status(id);
  }

  async setAdminState(id: string, action: 'drain' | 'undrain' | 'disable' | 'enable', options: AdminStateOptions = {}): Promise<BackendStatus> {
    await this.#backendAdmin.setAdminState(id, action, options);
    return this.#status(id);
  }

  /** explainRoute is the router's own trace of a request (see src/admin/route-explanation.ts). */
  explainRoute(query: RouteQuery): RouteExplanation {
    const totals = this.#totals;
    return explainRoute(query, {
      snapshot: this.pool.snapshot,
      activeSessions: (id) => totals.activeSessions(id),
      balanceFactor: this.#config.affinity.balanceFactor,
      secrets: this.#settings.secrets,
      partitions: this.#partitions?.directory,
    });
  }

  /** explainPath says what the path rules do with a request path from a client address (shown beside the route explanation). */
  explainPath(path: string, clientAddress: string | undefined): PathExplanation {
    return explainPath(PathRules.compile(this.#config.paths), path, clientAddress);
  }

  #requirePartitions(): PartitionAdmin {
    if (this.#partitions === undefined) throw new AdminError('NOT_PARTITION_MODE', 'partition mode is not enabled (affinity.mode is not "partition")');
    return this.#partitions;
  }

  listPartitions(offset: number, limit: number): { total: number; offset: number; partitions: PartitionStatus[] } {
    return this.#requirePartitions().list(offset, limit);
  }

  movePartition(rawKey: string, backendId: string, drain: boolean): Promise<PartitionStatus> {
    return this.#requirePartitions().move(rawKey, backendId, drain);
  }

  /** reload re-reads the config file (reloader.ts) and applies it to every part; nothing running is dropped. */
  async reload(): Promise<ReloadResult> {
    const { next, pages, tls, diff } = await readReload(this.options.configFile, this.#config, this.logger);
    // A shared store that cannot take changes: a reload that would change the shared pool is refused before anything is applied.
    if (this.#backendAdmin.wouldChange(next.backends)) requireWritable(this.#store);
    this.#store.useConfigBackends?.(next.backends);
    const backends = this.#backendAdmin.reconcile(next.backends);
    const result: ReloadResult = { ...backends, settings: diff.settings, needsRestart: diff.needsRestart };
    // Settings that apply without dropping anything.
    this.#partitions?.directory.setPins(next.affinity.partitions);
    this.#settings = { config: next, secrets: secretsOf(next, this.#store.cookieSecret) ?? this.#settings.secrets, pages, tls };
    this.traffic.reconfigure(this.#settings);
    this.#checker.updateSettings(next.healthCheck);
    this.#outlier.updateSettings(next.outlier);
    this.#drainMonitor.maxWait = next.drain.maxWait;
    this.#drainMonitor.sessionIdle = next.affinity.sessionIdle;
    this.logger.level = next.log.level;
    this.#config = next;
    await this.#backendAdmin.persist();
    this.logger.info(result, 'config reloaded');
    return result;
  }

  async metrics(): Promise<{ contentType: string; body: string }> {
    if (!this.#config.metrics.enabled) throw new AdminError('NOT_FOUND', 'metrics are disabled in the config (metrics.enabled: false)');
    return { contentType: this.metricsRegistry.contentType, body: await this.metricsRegistry.text() };
  }
}
