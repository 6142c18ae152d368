/**
 * The traffic plane: everything that carries client traffic. The proxy listener (and the
 * HTTP-to-HTTPS redirect listener), the backend connection pools, and the session state
 * the router reads (affinity cookie codec, learned session ids, session accounting).
 *
 * In one process the Balancer owns a LocalTraffic next to its control plane. With
 * `--workers N` every worker owns one (the listeners share the port) and the primary owns
 * a WorkerFleet in its place (src/cluster/fleet.ts): both answer the TrafficPlane
 * interface, so the control plane (pool, health, drain, admin, reload) is the same code.
 */
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import type { Pool } from './pool/pool.js';
import type { ErrorPages } from './proxy/error-pages.js';
import { ProxyServer, type ProxyObserver } from './proxy/proxy-server.js';
import { proxySettings } from './proxy/proxy-settings.js';
import { RedirectServer } from './proxy/redirect-server.js';
import { TrustedProxies } from './proxy/trusted-proxies.js';
import { UpstreamPools } from './proxy/upstream/pools.js';
import { AffinityCookieCodec, type CookieAttributes } from './routing/affinity-cookie.js';
import type { PartitionLookup } from './routing/types.js';
import { SessionAccounting, type SessionTotals } from './sessions/accounting.js';
import { LearnedSessions } from './sessions/learned-sessions.js';
import { SessionContext, type ClusterLoad, type PartitionView } from './sessions/session-context.js';
import { StartupError } from './startup-error.js';
import { AccessLog } from './proxy/access-log.js';
import { AccessFile, stdoutSink } from './log-file.js';
import { sessionRows, type SessionList, type SessionQuery } from './admin/sessions-view.js';

/** TrafficSettings are what the traffic plane is (re)configured with; the same in every worker. */
export interface TrafficSettings {
  readonly config: Config;
  /** Cookie HMAC keys: sign with the first, accept all. */
  readonly secrets: readonly string[];
  readonly pages: ErrorPages;
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | undefined;
}

/**
 * TrafficPlane is what the control plane needs from whatever carries client traffic: this
 * process's proxy (LocalTraffic) or the workers (WorkerFleet).
 */
export interface TrafficPlane {
  /** Session and request counts of all the traffic (summed over workers). */
  readonly totals: SessionTotals;
  /** Starts serving; resolves with the client URL (and the redirect listener's). */
  listen(): Promise<{ url: string; redirectUrl: string | undefined }>;
  /** Applies a reloaded config; requests in flight finish with the old settings. */
  reconfigure(settings: TrafficSettings): void;
  /** A backend left the pool: drop its sessions, counters and connections. */
  forgetBackend(id: string): void;
  /** Closes the open WebSockets to a backend (`disable ID --close`); in every worker with --workers. */
  closeTunnels(id: string): void;
  /** A partition's assignment changed (worker caches follow); no-op in one process. */
  partitionChanged(key: string, lookup: PartitionLookup | undefined): void;
  /** A session id learned (backendId) or forgotten (undefined) by another instance sharing the state: routed here the same. */
  learnedElsewhere(sessionId: string, backendId: string | undefined): void;
  /** HTTP requests being served right now (for the shutdown log line). */
  readonly inFlight: number;
  /** Stops accepting, lets in-flight work finish for up to graceMs, then cuts the rest. */
  close(graceMs: number): Promise<void>;
  /** Reopens log.file (SIGUSR1, after logrotate moved it); no-op when the access log is on stdout. */
  reopenLog(): void;
  /** The active sessions (with --workers: asked of every worker, which answer within about a second). */
  listSessions(query: SessionQuery): Promise<Omit<SessionList, 'instance'>>;
}

/** LocalTrafficDeps are the collaborators of a LocalTraffic besides its settings. */
export interface LocalTrafficDeps {
  /** The pool whose snapshots the router reads (the real pool, or a worker's mirror of the primary's). */
  readonly pool: Pool;
  readonly logger: Logger;
  readonly observer: ProxyObserver;
  /** Partition mode: the directory (or a worker's cache of it). */
  readonly partitions?: PartitionView | undefined;
  /** Partition mode: makes a new assignment (one process: the state store; worker: the primary); see ProxyDeps.resolvePartition. */
  readonly resolvePartition?: ((key: string, backendId: string) => Promise<boolean>) | undefined;
  /** Worker: the sessions other workers hold, for bounded load. */
  readonly cluster?: ClusterLoad | undefined;
  /** Tells others (the other workers, or other instances through the state store) about session ids learned from Set-Cookie. */
  readonly onLearn?: ((sessionId: string, backendId: string | undefined) => void) | undefined;
}

/** LocalTraffic is the proxy of this process and its session state; see the file comment. */
export class LocalTraffic implements TrafficPlane {
  readonly proxy: ProxyServer;
  readonly sessions: SessionContext;
  /** The backend connection pools (raw sockets, src/proxy/upstream/). */
  readonly #pools: UpstreamPools;
  readonly #access: AccessLog;
  /** The access log's file (log.file), undefined while it goes to stdout. */
  #accessFile: AccessFile | undefined;
  #redirect: RedirectServer | undefined;
  #settings: TrafficSettings;

  constructor(
    settings: TrafficSettings,
    private readonly deps: LocalTrafficDeps,
  ) {
    this.#settings = settings;
    const { config } = settings;
    const accounting = new SessionAccounting(config.affinity.sessionIdle);
    const learned = new LearnedSessions({ max: config.affinity.learnedSessions, ttlMs: config.affinity.sessionIdle, onChange: deps.onLearn });
    this.sessions = new SessionContext(new AffinityCookieCodec(settings.secrets), learned, accounting, config.affinity.balanceFactor, cookieAttributes(config), deps.partitions, deps.cluster);
    this.#pools = new UpstreamPools({ connect: config.timeouts.connect, response: config.timeouts.response });
    this.#accessFile = config.log.file === undefined ? undefined : new AccessFile(config.log.file, deps.logger);
    const worker = (deps.logger.bindings() as { worker?: number }).worker;
    this.#access = new AccessLog({ format: config.log.format, sink: this.#accessFile ?? stdoutSink(deps.logger), worker });
    this.proxy = new ProxyServer(
      {
        pool: deps.pool,
        pools: this.#pools,
        sessions: this.sessions,
        trusted: new TrustedProxies(config.trustedProxies),
        pages: settings.pages,
        logger: deps.logger,
        access: this.#access,
        settings: proxySettings(config),
        observer: deps.observer,
        ...(deps.resolvePartition === undefined ? {} : { resolvePartition: deps.resolvePartition }),
      },
      {
        host: config.listen.host,
        port: config.listen.port,
        tls: settings.tls,
        maxHeaderBytes: config.limits.maxHeaderBytes,
        maxConnections: config.limits.maxConnections,
        clientIdle: config.timeouts.clientIdle,
      },
    );
  }

  get totals(): SessionTotals {
    return this.sessions.accounting;
  }

  get inFlight(): number {
    return this.proxy.inFlight;
  }

  async listen(): Promise<{ url: string; redirectUrl: string | undefined }> {
    const { config } = this.#settings;
    const bound = await listenOrExplain(`${config.listen.host}:${config.listen.port}`, () => this.proxy.listen(config.listen.host, config.listen.port));
    const url = `${config.listen.tls ? 'https' : 'http'}://${displayHost(bound.host)}:${bound.port}`;
    let redirectUrl: string | undefined;
    const redirectPort = config.listen.tls?.redirectPort;
    if (redirectPort !== undefined) {
      const redirect = new RedirectServer({ httpsPort: bound.port, maxHeaderBytes: config.limits.maxHeaderBytes, maxConnections: config.limits.maxConnections });
      const where = `${config.listen.host}:${redirectPort} (listen.tls.redirectPort)`;
      const at = await listenOrExplain(where, () => redirect.listen(config.listen.host, redirectPort)).catch(async (err: Error) => {
        await this.proxy.close(0);
        throw err;
      });
      this.#redirect = redirect;
      redirectUrl = `http://${displayHost(at.host)}:${at.port}`;
    }
    this.sessions.accounting.start();
    return { url, redirectUrl };
  }

  reconfigure(next: TrafficSettings): void {
    const running = this.#settings;
    const config = next.config;
    const sessions = this.sessions;
    sessions.balanceFactor = config.affinity.balanceFactor;
    sessions.cookie = cookieAttributes(config);
    if (JSON.stringify(running.secrets) !== JSON.stringify(next.secrets)) sessions.codec = new AffinityCookieCodec(next.secrets);
    sessions.accounting.setIdle(config.affinity.sessionIdle);
    this.proxy.reconfigure({ settings: proxySettings(config), trusted: new TrustedProxies(config.trustedProxies), pages: next.pages });
    if (next.tls !== undefined) this.proxy.setSecureContext(next.tls);
    if (JSON.stringify(running.config.timeouts) !== JSON.stringify(config.timeouts)) {
      this.#pools.setTimeouts({ connect: config.timeouts.connect, response: config.timeouts.response });
    }
    this.#access.format = config.log.format;
    if (config.log.file !== this.#accessFile?.path) {
      this.#access.flush(); // the lines of requests before the reload go to the old file
      this.#accessFile?.close();
      this.#accessFile = config.log.file === undefined ? undefined : new AccessFile(config.log.file, this.deps.logger);
      this.#access.sink = this.#accessFile ?? stdoutSink(this.deps.logger);
    }
    this.#settings = next;
  }

  reopenLog(): void {
    this.#access.flush(); // lines pending from before the signal still go to the old file
    this.#accessFile?.reopen();
  }

  forgetBackend(id: string): void {
    this.sessions.accounting.forgetBackend(id);
    void this.#pools.drop(id);
  }

  closeTunnels(id: string): void {
    const closed = this.proxy.closeTunnels(id);
    if (closed > 0) this.deps.logger.info({ backend: id, websockets: closed }, 'closed the open websockets of a disabled backend');
  }

  partitionChanged(): void {
    // One process: the router reads the directory itself.
  }

  learnedElsewhere(sessionId: string, backendId: string | undefined): void {
    // learn() and forget() do not call onLearn: nothing is passed back.
    if (backendId === undefined) this.sessions.learned.forget(sessionId);
    else this.sessions.learned.learn(sessionId, backendId);
  }

  async listSessions(query: SessionQuery): Promise<Omit<SessionList, 'instance'>> {
    const { sessions, total } = this.sessions.accounting.listSessions(query.backend, query.limit);
    return { sessions: sessionRows(sessions, Date.now()), total };
  }

  async close(graceMs: number): Promise<void> {
    await Promise.all([this.proxy.close(graceMs), this.#redirect?.close(graceMs)]);
    this.sessions.accounting.stop();
    await this.#pools.close();
    this.#access.flush(); // the lines of this tick, before the file closes or the service log is flushed
    this.#accessFile?.close();
  }
}

/** cookieAttributes are the affinity cookie's attributes from the config. */
export function cookieAttributes(config: Config): CookieAttributes {
  const cookie = config.affinity.cookie;
  return {
    name: cookie.name,
    secure: cookie.secure ?? config.listen.tls !== undefined,
    sameSite: cookie.sameSite,
    maxAgeMs: cookie.ttl,
  };
}

/** listenOrExplain runs a listen and words its failure as one StartupError sentence. */
export async function listenOrExplain<T>(where: string, listen: () => Promise<T>): Promise<T> {
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

/** displayHost is how a bound address appears in a URL a person can open. */
export function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
