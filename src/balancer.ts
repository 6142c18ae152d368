/**
 * Balancer wires one running servoy-lb and is the AdminControl the admin plane talks to.
 * The config (merged with the durable state) goes into a Pool; health checks, outlier
 * detection, the drain monitor, Servoy maintenance handling and admin calls write to the
 * pool; the ProxyServer routes client traffic through the pure router using the pool's
 * current snapshot. The Balancer owns every resource it creates (sockets, timers, files)
 * and releases them in close().
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { AdminError, type AdminControl, type BackendStatus, type PartitionStatus, type ReloadResult, type RouteExplanation } from './admin/control.js';
import { AdminServer } from './admin/admin-server.js';
import { backendStatus } from './admin/backend-status.js';
import { BalancerMetrics } from './admin/metrics.js';
import { ConfigError, loadConfig } from './config/load.js';
import { settingsDiff } from './config/reload-diff.js';
import { backendSchema, type BackendConfig, type Config } from './config/schema.js';
import { ActiveHealthChecker } from './health/active-checker.js';
import { OutlierDetector } from './health/outlier-detector.js';
import type { HealthSink } from './health/health-sink.js';
import { DrainMonitor } from './pool/drain-monitor.js';
import { Pool } from './pool/pool.js';
import { type ErrorPages, loadErrorPages } from './proxy/error-pages.js';
import type { ExchangeOutcome } from './proxy/http-exchange.js';
import { ProxyServer, type ProxyObserver } from './proxy/proxy-server.js';
import { proxySettings } from './proxy/proxy-settings.js';
import { RedirectServer } from './proxy/redirect-server.js';
import { TrustedProxies } from './proxy/trusted-proxies.js';
import { Upstreams } from './proxy/upstreams.js';
import { AffinityCookieCodec, type CookieAttributes } from './routing/affinity-cookie.js';
import { rankCandidates } from './routing/router.js';
import { SessionAccounting } from './sessions/accounting.js';
import { LearnedSessions } from './sessions/learned-sessions.js';
import { SessionContext } from './sessions/session-context.js';
import { mergeBackends, readRecords, type BackendRecords } from './state/backend-records.js';
import { FileStateStore, type StateData } from './state/file-store.js';
import { PartitionDirectory } from './state/partition-directory.js';
import { PartitionStore, PartitionStoreError } from './state/partition-store.js';
import { normalizePartitionKey } from './routing/partition-key.js';

/** StartupError is a problem that stops the balancer from starting, said in one sentence. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** BalancerOptions are what `start` knows besides the config. */
export interface BalancerOptions {
  /** The config file, for reload; without it reload is refused. */
  readonly configFile?: string;
  /** Start the admin API (default true). */
  readonly admin?: boolean;
}

/** Balancer is one running load balancer; create it with Balancer.start(). */
export class Balancer implements AdminControl, ProxyObserver, HealthSink {
  url = '';
  adminUrl: string | undefined;
  /** URL of the plain-HTTP listener that redirects to HTTPS (listen.tls.redirectPort), if any. */
  redirectUrl: string | undefined;
  readonly pool: Pool;
  readonly sessions: SessionContext;
  readonly proxy: ProxyServer;
  readonly metricsRegistry: BalancerMetrics;
  #config: Config;
  #records: BackendRecords;
  #source: Map<string, 'config' | 'runtime'>;
  readonly #state: StateData;
  readonly #store: FileStateStore;
  readonly #upstreams: Upstreams;
  readonly #checker: ActiveHealthChecker;
  readonly #outlier: OutlierDetector;
  readonly #drainMonitor: DrainMonitor;
  readonly #maintenanceTimers = new Map<string, NodeJS.Timeout>();
  #settleTimer: NodeJS.Timeout | undefined;
  #admin: AdminServer | undefined;
  #redirect: RedirectServer | undefined;
  #closed = false;

  private constructor(
    config: Config,
    state: StateData,
    store: FileStateStore,
    secrets: string[],
    pages: ErrorPages,
    tls: { cert: Buffer; key: Buffer } | undefined,
    private readonly logger: Logger,
    private readonly options: BalancerOptions,
    readonly partitions: PartitionDirectory | undefined,
  ) {
    this.#config = config;
    this.#state = state;
    this.#store = store;
    const merged = mergeBackends(config.backends, readRecords(state));
    this.#records = merged.records;
    this.#source = new Map(merged.source);
    this.pool = new Pool(merged.backends);
    for (const [id, record] of Object.entries(merged.records.admin)) this.pool.setAdmin(id, record.admin, 'restored from state file', record.since);

    const accounting = new SessionAccounting(config.affinity.sessionIdle);
    const learned = new LearnedSessions({ max: config.affinity.learnedSessions, ttlMs: config.affinity.sessionIdle });
    this.sessions = new SessionContext(new AffinityCookieCodec(secrets), learned, accounting, config.affinity.balanceFactor, cookieAttributes(config), partitions);
    this.#upstreams = new Upstreams({ connect: config.timeouts.connect, response: config.timeouts.response });
    this.proxy = new ProxyServer(
      {
        pool: this.pool,
        upstreams: this.#upstreams,
        sessions: this.sessions,
        trusted: new TrustedProxies(config.trustedProxies),
        pages,
        logger,
        settings: proxySettings(config),
        observer: this,
        assignPartition: partitions === undefined ? undefined : (key, backendId) => partitions.assign(key, backendId),
      },
      {
        host: config.listen.host,
        port: config.listen.port,
        tls,
        maxHeaderBytes: config.limits.maxHeaderBytes,
        maxConnections: config.limits.maxConnections,
        clientIdle: config.timeouts.clientIdle,
      },
    );
    this.metricsRegistry = new BalancerMetrics(() => this.backends());
    this.#checker = new ActiveHealthChecker(config.healthCheck, this, { logger });
    this.#outlier = new OutlierDetector(config.outlier, this, { logger, probe: (id: string) => this.#checker.probeOnce(id) });
    this.#drainMonitor = new DrainMonitor(this.pool, accounting, config.drain.maxWait);
    this.#drainMonitor.sessionIdle = config.affinity.sessionIdle;

    this.pool.on('change', (change) => {
      if (change.from !== change.to) logger.info({ backend: change.backendId, from: change.from, to: change.to, cause: change.cause }, 'backend state changed');
      this.#checker.setTargets(this.pool.configs());
    });
  }

  /** start validates what the config points at (files, state), then listens. */
  static async start(config: Config, logger: Logger, options: BalancerOptions = {}): Promise<Balancer> {
    if (!('file' in config.state)) throw new StartupError('state.redis is not supported in this version yet; use state.file');
    const stateFile = config.state.file;
    const store = new FileStateStore(stateFile);
    const state = await store.load().catch((err: Error) => {
      throw new StartupError(err.message);
    });
    for (const warning of store.loadReport.warnings) logger.warn({ file: stateFile, from: store.loadReport.source }, warning);
    let secrets: string[];
    const configured = config.affinity.cookie.secret;
    if (configured !== undefined) {
      secrets = typeof configured === 'string' ? [configured] : configured;
    } else {
      if (state.cookieSecret === undefined) {
        // No secret configured: generate one and keep it, so cookies survive restarts.
        state.cookieSecret = randomBytes(32).toString('base64url');
        await store.save(state).catch((err: Error) => {
          throw new StartupError(`cannot write state file ${stateFile}: ${err.message}`);
        });
      }
      secrets = [state.cookieSecret];
    }
    const pages = readPages(config);
    const tls = config.listen.tls ? await readTls(config.listen.tls) : undefined;
    const partitions = config.affinity.mode === 'partition' ? openPartitions(stateFile, config, logger) : undefined;
    const balancer = new Balancer(config, state, store, secrets, pages, tls, logger, options, partitions);
    await balancer.#listen();
    return balancer;
  }

  async #listen(): Promise<void> {
    const config = this.#config;
    const bound = await listenOrExplain(`${config.listen.host}:${config.listen.port}`, () => this.proxy.listen(config.listen.host, config.listen.port));
    this.url = `${config.listen.tls ? 'https' : 'http'}://${displayHost(bound.host)}:${bound.port}`;
    const redirectPort = config.listen.tls?.redirectPort;
    if (redirectPort !== undefined) {
      const redirect = new RedirectServer({ httpsPort: bound.port, maxHeaderBytes: config.limits.maxHeaderBytes, maxConnections: config.limits.maxConnections });
      const where = `${config.listen.host}:${redirectPort} (listen.tls.redirectPort)`;
      const at = await listenOrExplain(where, () => redirect.listen(config.listen.host, redirectPort)).catch(async (err: Error) => {
        await this.proxy.close(0);
        throw err;
      });
      this.#redirect = redirect;
      this.redirectUrl = `http://${displayHost(at.host)}:${at.port}`;
      this.logger.info({ redirectUrl: this.redirectUrl, to: bound.port }, 'HTTP-to-HTTPS redirect listening');
    }
    if (this.options.admin !== false) {
      this.#admin = new AdminServer(this, { host: config.admin.host, port: config.admin.port, token: config.admin.token, logger: this.logger });
      // The admin server words its own listen errors ("the admin API cannot listen on ...").
      const admin = await this.#admin.listen().catch(async (err: Error) => {
        await Promise.all([this.proxy.close(0), this.#redirect?.close(0)]);
        throw new StartupError(err.message);
      });
      this.adminUrl = `http://${displayHost(admin.host)}:${admin.port}`;
    }
    this.sessions.accounting.start();
    this.#drainMonitor.start();
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
    const accounting = this.sessions.accounting;
    const settled = this.partitions!.settleDrainedMoves(
      (key, record) => accounting.partitionSessions(key) === 0 || now - (record.movedAt ?? 0) >= this.#config.drain.maxWait,
    );
    for (const key of settled) this.logger.info({ key }, 'partition move finished: no live session left on the old server');
  }

  /** close stops accepting and lets in-flight work finish for up to graceMs. */
  async close(graceMs = this.#config.timeouts.shutdownGrace): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#outlier.close();
    this.#drainMonitor.stop();
    clearInterval(this.#settleTimer);
    for (const timer of this.#maintenanceTimers.values()) clearTimeout(timer);
    await Promise.all([this.#checker.close(), this.proxy.close(graceMs), this.#redirect?.close(graceMs), this.#admin?.close()]);
    this.sessions.accounting.stop();
    await Promise.all([this.#upstreams.close(), this.partitions?.store.close()]);
  }

  // ---- HealthSink and ProxyObserver: writers of backend health -------------------------

  setHealth(backendId: string, healthy: boolean, cause: string): void {
    this.pool.setHealth(backendId, healthy, cause);
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
    const backoff = this.#config.affinity.maintenanceBackoff;
    this.pool.setMaintenance(backendId, true, 'answered a new session with 503 (Servoy maintenance mode)');
    clearTimeout(this.#maintenanceTimers.get(backendId));
    const timer = setTimeout(() => {
      this.#maintenanceTimers.delete(backendId);
      this.pool.setMaintenance(backendId, false, 'maintenanceBackoff passed');
    }, backoff).unref();
    this.#maintenanceTimers.set(backendId, timer);
  }

  // ---- AdminControl --------------------------------------------------------------------

  backends(): BackendStatus[] {
    const accounting = this.sessions.accounting;
    return this.pool.members().map((m) => backendStatus(m, accounting.counters(m.config.id), this.#source.get(m.config.id) ?? 'config'));
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
    this.sessions.accounting.forgetBackend(id);
    this.metricsRegistry.forgetBackend(id);
    void this.#upstreams.drop(id);
    this.#records.added = this.#records.added.filter((b) => b.id !== id);
    if (this.#config.backends.some((b) => b.id === id)) this.#records.removed.push(id);
    delete this.#records.admin[id];
    await this.#persist();
  }

  async setAdminState(id: string, action: 'drain' | 'undrain' | 'disable' | 'enable'): Promise<BackendStatus> {
    const member = this.pool.member(id);
    if (member === undefined) throw new AdminError('UNKNOWN_BACKEND', `there is no backend "${id}"`);
    const cause = `${action} by an administrator`;
    switch (action) {
      case 'drain':
        this.pool.setAdmin(id, 'draining', cause);
        break;
      case 'disable':
        this.pool.setAdmin(id, 'disabled', cause);
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

  explainRoute(key: string): RouteExplanation {
    if (this.partitions !== undefined) return this.#explainPartition(key);
    const snapshot = this.pool.snapshot;
    const ranked = rankCandidates(key, snapshot, this.sessions);
    const chosen = ranked.find((c) => c.fits);
    return {
      key,
      backend: chosen?.backend.id ?? null,
      reason:
        chosen !== undefined
          ? `a new session from "${key}" goes to ${chosen.backend.id}: the highest-scoring backend (weighted rendezvous hashing) that takes new sessions and is under its bounded-load cap`
          : snapshot.acceptingNew.length === 0
            ? 'no backend takes new sessions (all down, draining, disabled or in maintenance)'
            : 'every backend that takes new sessions is full (maxSessions or bounded-load cap)',
      candidates: ranked.map((c) => ({
        id: c.backend.id,
        state: c.backend.state,
        sessions: c.activeSessions ?? this.sessions.activeSessions(c.backend.id),
        cap: c.cap === undefined || !Number.isFinite(c.cap) ? null : c.cap,
        fits: c.fits ?? false,
      })),
    };
  }

  #explainPartition(rawKey: string): RouteExplanation {
    const key = normalizePartitionKey(rawKey);
    if (key === undefined) throw new AdminError('INVALID_BODY', 'that is not a valid partition key (1-256 characters, no control characters)');
    const snapshot = this.pool.snapshot;
    const lookup = this.partitions!.lookup(key);
    const candidates = (backends: RouteExplanation['candidates']) => backends;
    if (lookup !== undefined) {
      const home = snapshot.byId.get(lookup.backend);
      const how = lookup.pinned ? 'pinned in the config file (affinity.partitions)' : 'durably assigned';
      const serves = home?.servesExisting === true;
      return {
        key,
        backend: serves ? lookup.backend : null,
        reason: serves
          ? `partition "${key}" is ${how} to ${lookup.backend}${lookup.previous ? `; live sessions on ${lookup.previous} finish there (moved with --drain)` : ''}`
          : `partition "${key}" is ${how} to ${lookup.backend}, which is ${home?.state ?? 'not in the pool'}: its requests get 503 until it is back (it is never sent to a server that does not hold its data)`,
        candidates: candidates(home === undefined ? [] : [{ id: home.id, state: home.state, sessions: this.sessions.activeSessions(home.id), cap: null, fits: serves }]),
      };
    }
    const load = { activeSessions: (id: string) => this.partitions!.count(id), balanceFactor: this.sessions.balanceFactor };
    const ranked = rankCandidates(key, snapshot, load);
    const chosen = ranked.find((c) => c.fits && this.sessions.activeSessions(c.backend.id) < c.backend.maxSessions);
    return {
      key,
      backend: chosen?.backend.id ?? null,
      reason:
        chosen !== undefined
          ? `partition "${key}" is not assigned yet; its first request would assign it to ${chosen.backend.id} (weighted rendezvous hashing of the key, bounded by the partitions each server holds), durably`
          : 'partition is not assigned yet, and no backend takes new partitions now',
      candidates: ranked.map((c) => ({ id: c.backend.id, state: c.backend.state, sessions: c.activeSessions ?? 0, cap: c.cap === undefined || !Number.isFinite(c.cap) ? null : c.cap, fits: c.fits ?? false })),
    };
  }

  #requirePartitions(): PartitionDirectory {
    if (this.partitions === undefined) throw new AdminError('NOT_PARTITION_MODE', 'partition mode is not enabled (affinity.mode is not "partition")');
    return this.partitions;
  }

  listPartitions(offset: number, limit: number): { total: number; offset: number; partitions: PartitionStatus[] } {
    const directory = this.#requirePartitions();
    const accounting = this.sessions.accounting;
    return { total: directory.total, offset, partitions: directory.page(offset, limit, (key) => accounting.partitionSessions(key)) };
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
    return directory.status(key, this.sessions.accounting.partitionSessions(key))!;
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
    let pages: ErrorPages;
    let tls: { cert: Buffer; key: Buffer } | undefined;
    try {
      pages = readPages(next);
      tls = next.listen.tls ? await readTls(next.listen.tls) : undefined;
    } catch (err) {
      throw new AdminError('INVALID_CONFIG', `${(err as Error).message}; the running config is kept`);
    }
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
      this.sessions.accounting.forgetBackend(id);
      this.metricsRegistry.forgetBackend(id);
      void this.#upstreams.drop(id);
      result.removed.push(id);
    }
    this.#records = merged.records;
    this.#source = new Map(merged.source);
    // Settings that apply without dropping anything.
    const sessions = this.sessions;
    sessions.balanceFactor = next.affinity.balanceFactor;
    this.partitions?.setPins(next.affinity.partitions);
    sessions.cookie = cookieAttributes(next);
    const secrets = next.affinity.cookie.secret ?? this.#state.cookieSecret;
    if (!isDeepEqualSecret(running.affinity.cookie.secret ?? this.#state.cookieSecret, secrets) && secrets !== undefined) {
      sessions.codec = new AffinityCookieCodec(typeof secrets === 'string' ? [secrets] : secrets);
    }
    sessions.accounting.setIdle(next.affinity.sessionIdle);
    this.proxy.reconfigure({ settings: proxySettings(next), trusted: new TrustedProxies(next.trustedProxies), pages });
    if (tls !== undefined && 'setSecureContext' in this.proxy.server) {
      (this.proxy.server as unknown as { setSecureContext(o: object): void }).setSecureContext({ ...tls, minVersion: 'TLSv1.2' });
    }
    if (diff.settings.includes('timeouts')) this.#upstreams.setTimeouts({ connect: next.timeouts.connect, response: next.timeouts.response });
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

function isDeepEqualSecret(a: string | string[] | undefined, b: string | string[] | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function cookieAttributes(config: Config): CookieAttributes {
  const cookie = config.affinity.cookie;
  return {
    name: cookie.name,
    secure: cookie.secure ?? config.listen.tls !== undefined,
    sameSite: cookie.sameSite,
    maxAgeMs: cookie.ttl,
  };
}

function readPages(config: Config): ErrorPages {
  try {
    return loadErrorPages(config.errorPages);
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
}

async function readTls(tls: { cert: string; key: string }): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new StartupError(`listen.tls.${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  const pair = { cert: await read(tls.cert, 'cert'), key: await read(tls.key, 'key') };
  // Try the pair now, so a bad or mismatched file is one clear sentence at start (or a
  // refused reload), not an error half-way through applying it.
  try {
    createSecureContext({ ...pair, minVersion: 'TLSv1.2' });
  } catch (err) {
    const reason = (err as Error).message;
    const which = /key|mismatch/i.test(reason) ? 'key' : 'cert';
    throw new StartupError(`listen.tls.${which}: the certificate and key cannot be used (${reason})`);
  }
  return pair;
}

async function listenOrExplain<T>(where: string, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new StartupError(
      code === 'EADDRINUSE'
        ? `cannot listen on ${where}: the address is already in use`
        : code === 'EACCES'
          ? `cannot listen on ${where}: permission denied`
          : `cannot listen on ${where}: ${(err as Error).message}`,
    );
  }
}

function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
