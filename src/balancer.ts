/**
 * Balancer wires one running servoy-lb: the config goes into a Pool (backends and their
 * states), session tables and the cookie codec; the ProxyServer routes client traffic
 * through the pure router to per-backend connection pools. It owns every resource it
 * creates and releases them in close() (graceful) — nothing else starts timers or sockets.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from './config/schema.js';
import { Pool } from './pool/pool.js';
import { AffinityCookieCodec, type CookieAttributes } from './routing/affinity-cookie.js';
import { SessionAccounting } from './sessions/accounting.js';
import { LearnedSessions } from './sessions/learned-sessions.js';
import { SessionContext } from './sessions/session-context.js';
import { FileStateStore } from './state/file-store.js';
import { loadErrorPages } from './proxy/error-pages.js';
import { ProxyServer } from './proxy/proxy-server.js';
import { proxySettings } from './proxy/proxy-settings.js';
import { TrustedProxies } from './proxy/trusted-proxies.js';
import { Upstreams } from './proxy/upstreams.js';

/** StartupError is a problem that stops the balancer from starting, said in one sentence. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** Balancer is one running load balancer; create it with Balancer.start(). */
export class Balancer {
  private constructor(
    readonly config: Config,
    readonly pool: Pool,
    readonly sessions: SessionContext,
    readonly proxy: ProxyServer,
    readonly upstreams: Upstreams,
    readonly url: string,
    private readonly logger: Logger,
  ) {}

  /** start validates what the config points at (files, state), then listens. */
  static async start(config: Config, logger: Logger): Promise<Balancer> {
    if (!('file' in config.state)) throw new StartupError('state.redis is not supported in this version yet; use state.file');
    if (config.affinity.mode === 'partition') throw new StartupError('affinity.mode "partition" is not supported in this version yet; use "session"');
    const stateFile = config.state.file;
    const store = new FileStateStore(stateFile);
    const state = await store.load().catch((err: Error) => {
      throw new StartupError(err.message);
    });
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
    let pages;
    try {
      pages = loadErrorPages(config.errorPages);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    const tls = config.listen.tls ? await readTls(config.listen.tls) : undefined;

    const pool = new Pool(config.backends);
    const accounting = new SessionAccounting(config.affinity.sessionIdle);
    accounting.start();
    const learned = new LearnedSessions({ max: config.affinity.learnedSessions, ttlMs: config.affinity.sessionIdle });
    const sessions = new SessionContext(new AffinityCookieCodec(secrets), learned, accounting, config.affinity.balanceFactor, cookieAttributes(config));
    const upstreams = new Upstreams({ connect: config.timeouts.connect, response: config.timeouts.response });
    const proxy = new ProxyServer(
      { pool, upstreams, sessions, trusted: new TrustedProxies(config.trustedProxies), pages, logger, settings: proxySettings(config) },
      {
        host: config.listen.host,
        port: config.listen.port,
        tls,
        maxHeaderBytes: config.limits.maxHeaderBytes,
        maxConnections: config.limits.maxConnections,
        clientIdle: config.timeouts.clientIdle,
      },
    );
    pool.on('change', (change) => logger.info({ backend: change.backendId, from: change.from, to: change.to }, 'backend state changed'));
    let bound;
    try {
      bound = await proxy.listen(config.listen.host, config.listen.port);
    } catch (err) {
      accounting.stop();
      const code = (err as NodeJS.ErrnoException).code;
      const where = `${config.listen.host}:${config.listen.port}`;
      throw new StartupError(
        code === 'EADDRINUSE' ? `cannot listen on ${where}: the address is already in use` : code === 'EACCES' ? `cannot listen on ${where}: permission denied` : `cannot listen on ${where}: ${(err as Error).message}`,
      );
    }
    const host = bound.host.includes(':') ? `[${bound.host}]` : bound.host;
    const url = `${tls ? 'https' : 'http'}://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${bound.port}`;
    return new Balancer(config, pool, sessions, proxy, upstreams, url, logger);
  }

  /** close stops accepting and lets in-flight work finish for up to graceMs. */
  async close(graceMs = this.config.timeouts.shutdownGrace): Promise<void> {
    await this.proxy.close(graceMs);
    this.sessions.accounting.stop();
    await this.upstreams.close();
  }
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

async function readTls(tls: { cert: string; key: string }): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new StartupError(`listen.tls.${what}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  return { cert: await read(tls.cert, 'cert'), key: await read(tls.key, 'key') };
}
