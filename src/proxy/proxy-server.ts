/**
 * ProxyServer is the client-facing listener. It accepts connections (within
 * limits.maxConnections, behind the PROXY protocol when configured), parses requests with
 * the strict codec on raw `net`/`tls` sockets (src/proxy/front/), and hands each request to
 * the request path (request-path.ts) and each WebSocket handshake to the upgrade path
 * (websocket-upgrade.ts); neither the listener nor those paths decide where a request goes:
 * the router does (through placement.ts). It also closes gracefully: stop accepting, let
 * in-flight requests and tunnels finish within a grace period, then cut what is left.
 *
 * The rest is in its own file: per-backend in-flight counts in backend-in-flight.ts, the
 * connection limit in connection-limit.ts, and the balancer's own pages in error-pages.ts.
 */
import type { Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Pool } from '../pool/pool.js';
import type { SessionContext } from '../sessions/session-context.js';
import type { AccessLog } from './access-log.js';
import { BackendInFlight } from './backend-in-flight.js';
import { ConnectionLimit, type ConnectionCounts } from './connection-limit.js';
import { type ErrorPages, missingPartitionKeyPage } from './error-pages.js';
import type { ExchangeOutcome } from './exchange-outcome.js';
import { listenOn } from './listen.js';
import { Placement } from './placement.js';
import { gateProxyProtocol } from './proxy-protocol-gate.js';
import type { ProxySettings } from './proxy-settings.js';
import { RequestPath } from './request-path.js';
import type { TrustedProxies } from './trusted-proxies.js';
import { WebSocketUpgrade } from './websocket-upgrade.js';
import type { FrontSettings } from './front/front-connection.js';
import { RawListener } from './front/raw-listener.js';
import type { UpstreamPools } from './upstream/pools.js';

/**
 * ProxyObserver hears what happened to forwarded requests, so outlier detection, Servoy
 * maintenance handling and metrics can react without the proxy knowing them.
 */
export interface ProxyObserver {
  /** One exchange ended (not called for the balancer's own 503 when no backend was chosen). */
  requestFinished(backendId: string, outcome: ExchangeOutcome, seconds: number): void;
  /** A backend refused or could not be reached (counts as a proxy error). */
  backendFailed(backendId: string): void;
  /** A backend answered a new session with Servoy's maintenance 503. */
  backendInMaintenance(backendId: string): void;
}

/** ProxyDeps are the collaborators a ProxyServer is built from (all owned by the Balancer). */
export interface ProxyDeps {
  readonly pool: Pool;
  /** The backend connection pools (raw sockets). */
  readonly pools: UpstreamPools;
  readonly sessions: SessionContext;
  trusted: TrustedProxies;
  pages: ErrorPages;
  readonly logger: Logger;
  /** Where access-log lines go (stdout or log.file, in log.format). */
  readonly access: AccessLog;
  readonly settings: ProxySettings;
  readonly observer?: ProxyObserver;
  /**
   * Partition mode: the state store makes a new assignment (in one process through the
   * Balancer's PartitionAdmin, with `--workers` through the primary). Resolves true when the
   * key is now durably on the decision's backend (forward as decided), false when it lives
   * elsewhere (the partition view was updated: route again); a rejection answers 503. See
   * src/control/partition-admin.ts and src/cluster/worker-partitions.ts.
   */
  readonly resolvePartition?: (key: string, backendId: string) => Promise<boolean>;
}

/** ListenOptions say where and how the proxy listens. */
export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  readonly maxHeaderBytes: number;
  readonly maxConnections: number;
  readonly clientIdle: number;
}

/** ProxyServer forwards client traffic; see the file comment. */
export class ProxyServer {
  settings: ProxySettings;
  readonly #deps: ProxyDeps;
  /** Open tunnels: client socket to backend id. */
  readonly #tunnels = new Map<Duplex, string>();
  #closing = false;
  #idleWaiters: (() => void)[] = [];
  readonly #connections: ConnectionLimit;
  readonly #listener: RawListener;
  readonly #requests: RequestPath;
  readonly #upgrades: WebSocketUpgrade;

  constructor(deps: ProxyDeps, listen: ListenOptions) {
    this.#deps = deps;
    this.settings = deps.settings;
    const proxy = this;
    const front: FrontSettings = {
      maxHeaderBytes: listen.maxHeaderBytes,
      // A whole request may take as long as it needs (gigabyte uploads), but its headers must arrive within a minute.
      headersTimeout: Math.min(listen.clientIdle, 60_000),
      keepAliveTimeout: listen.clientIdle,
      get bodyIdleTimeout() {
        return proxy.settings.clientIdle;
      },
      get pages() {
        return proxy.#deps.pages;
      },
      get closing() {
        return proxy.#closing;
      },
    };
    this.#listener = new RawListener(listen.tls, front, {
      request: (req) => this.#requests.onRawRequest(req),
      upgrade: (head, socket, rest) => this.#upgrades.onUpgrade(head, socket, rest),
      malformed: (status, reason) => deps.logger.debug({ status, reason }, 'malformed request'),
    });
    const server = this.#listener.server;
    this.#connections = new ConnectionLimit(server, listen.maxConnections, deps.logger);
    // After every 'connection' listener (TLS's, ConnectionLimit's): they run once a PROXY header is read.
    gateProxyProtocol(server, {
      enabled: () => this.settings.proxyProtocol,
      trusts: (address) => this.#deps.trusted.trusts(address),
      rejected: (peer, reason) => deps.logger.debug({ peer, reason }, 'PROXY protocol: connection closed'),
    });
    const backendInFlight = new BackendInFlight();
    const placement = new Placement(deps, backendInFlight.of);
    const missingKeyPage = missingPartitionKeyPage();
    this.#requests = new RequestPath(
      {
        get settings() {
          return proxy.settings;
        },
        get closing() {
          return proxy.#closing;
        },
        requestsIdle: () => {
          if (this.#idle) this.#wakeIdleWaiters();
        },
      },
      { deps, connections: this.#connections, placement, backendInFlight, missingKeyPage },
    );
    // Made once: the upgrade path reads settings and shutdown state through it at each handshake.
    this.#upgrades = new WebSocketUpgrade({
      get settings() {
        return proxy.settings;
      },
      get closing() {
        return proxy.#closing;
      },
      deps,
      placement,
      connections: this.#connections,
      access: deps.access,
      missingKeyPage,
      trackTunnel: (socket, backendId) => {
        this.#tunnels.set(socket, backendId);
      },
      untrackTunnel: (socket, closed) => {
        if (this.#tunnels.delete(socket) && closed && this.#idle) this.#wakeIdleWaiters();
      },
    });
  }

  /** listen binds the port; resolves with the address actually bound (port 0 picks one). */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const bound = await listenOn(this.#server, host, port);
    this.#connections.checkOpenFileLimit();
    return bound;
  }

  get #server(): NetServer {
    return this.#listener.server;
  }

  /** setSecureContext applies a reloaded certificate (listen.tls) to new connections. */
  setSecureContext(options: { cert: Buffer; key: Buffer }): void {
    this.#listener.setSecureContext({ ...options, minVersion: 'TLSv1.2' });
  }

  /** connections are the client listener's connection figures (open, refused, dropped). */
  get connections(): ConnectionCounts {
    return this.#connections.counts;
  }

  /** reconfigure applies reloaded settings; requests in flight finish with the old ones. */
  reconfigure(update: { settings: ProxySettings; trusted: TrustedProxies; pages: ErrorPages }): void {
    this.settings = update.settings;
    this.#deps.trusted = update.trusted;
    this.#deps.pages = update.pages;
  }

  // ---- shutdown ------------------------------------------------------------------------

  /**
   * close stops accepting, lets in-flight requests and open tunnels finish for up to
   * graceMs, then destroys whatever is left. Idle keep-alive connections close at once.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    this.#connections.stop();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#listener.closeIdle();
    const idle = new Promise<void>((resolve) => {
      if (this.#idle) resolve();
      else this.#idleWaiters.push(resolve);
    });
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([idle, grace]);
    clearTimeout(timer);
    for (const socket of this.#tunnels.keys()) socket.destroy();
    this.#listener.destroyAll();
    await closed;
  }

  /**
   * closeTunnels closes every open WebSocket tunnel to a backend (`disable ID --close`):
   * disabling alone leaves them open until they end. Closing the client side closes the
   * backend side too; the client sees the connection drop and reconnects through the
   * balancer, to another backend. Returns how many were closed.
   */
  closeTunnels(backendId: string): number {
    let closed = 0;
    for (const [socket, id] of this.#tunnels) {
      if (id !== backendId) continue;
      socket.destroy();
      closed++;
    }
    return closed;
  }

  /** inFlight is the number of HTTP requests being served right now. */
  get inFlight(): number {
    return this.#requests.inFlight;
  }

  /** #idle: no HTTP request in flight and no tunnel open (shutdown may finish). */
  get #idle(): boolean {
    return this.#requests.inFlight === 0 && this.#tunnels.size === 0;
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
    if (this.#closing) this.#listener.closeIdle();
  }
}

