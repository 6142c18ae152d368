/**
 * The admin API (SPEC "Admin API"): a small node:http server that translates HTTP calls
 * into AdminControl calls and AdminErrors into JSON error answers
 * `{ "error": { "code", "message", "details"? } }`. It holds no balancer logic, so the
 * same API can run against the real Balancer or a test double.
 *
 * Security, in order of the checks each request passes:
 * - with admin.allow only peers in that list are answered at all (403, then the connection
 *   is closed), /healthz included: a keepalived check runs from an allowed address;
 * - without a token the server only binds to loopback (the constructor refuses anything
 *   else) and only answers requests whose Host is a loopback name, so a web page cannot
 *   reach it through DNS rebinding;
 * - state changes (any method but GET/HEAD) coming from another origin (Origin header or
 *   Sec-Fetch-Site) are refused, so neither a page on the balancer's own host nor any
 *   other site can drive the API through a visitor's browser;
 * - with a token every call but /healthz, the dashboard's files and the sign-in calls needs
 *   `Authorization: Bearer TOKEN` (compared in constant time on SHA-256 digests, so neither
 *   content nor length leaks) or the dashboard's HttpOnly SameSite=Strict cookie, which
 *   holds a random session id of this process (dashboard-sessions.ts), never the token.
 * Bodies are limited to 64 KiB; errors never carry a stack trace.
 *
 * What the calls do is in admin-routes.ts, the dashboard's files in dashboard-assets.ts,
 * the HTTP plumbing (routing, body reader, cookies) in admin-http.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { isLoopback } from '../config/cross-checks.js';
import { TrustedProxies } from '../proxy/trusted-proxies.js';
import {
  ADMIN_COOKIE,
  bearerToken,
  checkSameOrigin,
  cookieAttributes,
  isObject,
  matchRoute,
  pathSegments,
  readJsonBody,
  route,
  send,
  sessionCookie,
  sha256,
  type AdminLogger,
  type Call,
  type Reply,
  type Route,
} from './admin-http.js';
import { adminRoutes } from './admin-routes.js';
import { AdminError, type AdminControl } from './control.js';
import { dashboardRoutes, type DashboardFile } from './dashboard-assets.js';
import { DashboardSessions } from './dashboard-sessions.js';

export { ADMIN_COOKIE, MAX_BODY_BYTES, type AdminLogger } from './admin-http.js';

/** AdminServerOptions: where to listen and the token that guards the API (none: loopback only). */
export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly token?: string;
  /** admin.allow: the peer addresses or CIDRs that may use the API; undefined: every peer that can connect. */
  readonly allow?: readonly string[] | undefined;
  /** admin.tls: serve HTTPS (TLS 1.2+) with this certificate and key. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  readonly logger: AdminLogger;
  /** The dashboard's files (tests); by default the package's dashboard/ and uPlot (dashboard-assets.ts). */
  readonly dashboardFiles?: readonly DashboardFile[];
}

const SAFE_METHODS = new Set(['GET', 'HEAD']);

/** AdminServer serves the admin API and dashboard for one AdminControl; see the file comment. */
export class AdminServer {
  readonly #control: AdminControl;
  readonly #options: AdminServerOptions;
  readonly #tokenDigest: Buffer | undefined;
  readonly #sessions = new DashboardSessions();
  readonly #routes: readonly Route[];
  readonly #server: Server;
  /** admin.allow as a CIDR list (the same matcher as trustedProxies); undefined when not set. */
  readonly #allow: TrustedProxies | undefined;

  constructor(control: AdminControl, options: AdminServerOptions) {
    if (options.token === undefined && !isLoopback(options.host)) {
      throw new Error(`the admin API needs admin.token to listen on ${options.host}, which is not a loopback address`);
    }
    if (options.token === '') throw new Error('admin.token must not be empty');
    this.#control = control;
    this.#options = options;
    this.#tokenDigest = options.token === undefined ? undefined : sha256(options.token);
    this.#routes = this.#buildRoutes();
    this.#allow = options.allow === undefined ? undefined : new TrustedProxies(options.allow);
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.#handle(req, res);
    this.#server = options.tls === undefined ? createServer(handler) : createHttpsServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, handler);
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 60_000;
    this.#server.keepAliveTimeout = 5_000;
  }

  /** listen binds the server and resolves with the address actually bound (port 0 picks one). */
  listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.#options;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const reason = err.code === 'EADDRINUSE' ? 'the address is already in use' : err.code === 'EADDRNOTAVAIL' ? 'no such local address' : err.message;
        reject(new Error(`the admin API cannot listen on ${host}:${port}: ${reason}`));
      };
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        this.#server.on('error', (err) => this.#options.logger.error({ err: err.message }, 'admin API server error'));
        const address = this.#server.address() as AddressInfo;
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  /** close stops accepting, lets running calls finish for up to a second, then closes. */
  close(): Promise<void> {
    if (!this.#server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => this.#server.closeAllConnections(), 1000);
      force.unref();
      this.#server.close(() => {
        clearTimeout(force);
        resolve();
      });
      this.#server.closeIdleConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (this.#allow !== undefined && !this.#allow.trusts(req.socket.remoteAddress)) {
        res.setHeader('connection', 'close');
        throw new AdminError('FORBIDDEN', `the admin API does not answer ${req.socket.remoteAddress ?? 'this address'}: it is not in admin.allow`);
      }
      const url = new URL(req.url ?? '/', 'http://admin.invalid');
      const segments = pathSegments(url.pathname);
      const matches = segments === undefined ? [] : this.#routes.flatMap((r) => {
        const params = matchRoute(r, segments);
        return params === undefined ? [] : [{ route: r, params }];
      });
      if (matches.length === 0) throw new AdminError('NOT_FOUND', `no such admin API call: ${req.method} ${url.pathname}`);
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      const match = matches.find((m) => m.route.method === method);
      if (match === undefined) {
        const allow: string[] = [...new Set(matches.map((m) => m.route.method))];
        if (allow.includes('GET')) allow.push('HEAD');
        res.setHeader('allow', allow.join(', '));
        throw new AdminError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname} (use ${allow.join(' or ')})`);
      }
      const isHealth = match.route.path.join('/') === 'healthz';
      if (!isHealth) this.#checkHost(req);
      if (!SAFE_METHODS.has(req.method ?? '')) checkSameOrigin(req);
      if (match.route.auth) this.#authorize(req);
      let body: Promise<unknown> | undefined;
      const call: Call = { req, params: match.params, query: url.searchParams, body: () => (body ??= readJsonBody(req)) };
      send(res, await match.route.handle(call));
    } catch (err) {
      this.#sendError(req, res, err);
    }
  }

  /** Without a token, only Host names of this machine are answered (DNS rebinding). */
  #checkHost(req: IncomingMessage): void {
    if (this.#tokenDigest !== undefined) return;
    let hostname = '';
    try {
      hostname = new URL(`http://${req.headers.host ?? ''}`).hostname;
    } catch {
      // an unparsable Host is not a loopback name
    }
    if (!isLoopback(hostname)) {
      throw new AdminError('FORBIDDEN', 'the admin API runs without a token and only answers requests addressed to a loopback host such as 127.0.0.1');
    }
  }

  #authorize(req: IncomingMessage): void {
    if (this.#tokenDigest === undefined) return;
    const token = bearerToken(req);
    if (token !== undefined) {
      this.#checkToken(token, req, 'admin API: wrong token');
      return;
    }
    const session = sessionCookie(req);
    if (session === undefined) {
      throw new AdminError('UNAUTHORIZED', 'this call needs the admin token: send the header "Authorization: Bearer TOKEN"');
    }
    if (!this.#sessions.valid(session)) {
      throw new AdminError('UNAUTHORIZED', 'the dashboard session has ended (signed out, expired, or the balancer restarted): sign in again');
    }
  }

  /** checkToken compares a given token with admin.token in constant time (on SHA-256 digests: equal lengths). */
  #checkToken(given: string, req: IncomingMessage, logLine: string): void {
    if (!timingSafeEqual(sha256(given), this.#tokenDigest!)) {
      this.#options.logger.warn({ remote: req.socket.remoteAddress, path: req.url }, logLine);
      throw new AdminError('UNAUTHORIZED', 'the admin token is wrong');
    }
  }

  #sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    let error: AdminError;
    if (err instanceof AdminError) error = err;
    else {
      this.#options.logger.error({ err: err instanceof Error ? (err.stack ?? err.message) : String(err), method: req.method, path: req.url }, 'admin API call failed');
      error = new AdminError('INTERNAL', 'internal error in the balancer; see its log');
    }
    const headers: Record<string, string> = {};
    if (error.code === 'UNAUTHORIZED') headers['www-authenticate'] = 'Bearer realm="servoy-lb"';
    // A body we refused may still be arriving: do not keep reading it on this connection.
    if (error.code === 'BODY_TOO_LARGE') headers.connection = 'close';
    const detail = error.details === undefined ? {} : { details: error.details };
    send(res, { status: error.status, json: { error: { code: error.code, message: error.message, ...detail } }, headers });
  }

  #buildRoutes(): Route[] {
    return [
      ...dashboardRoutes(this.#options.dashboardFiles),
      route('GET', '/login', (call) => this.#signedIn(call), false),
      route('POST', '/login', (call) => this.#login(call), false),
      route('POST', '/logout', (call) => this.#logout(call), false),
      ...adminRoutes(this.#control, this.#options.logger),
    ];
  }

  /**
   * GET /login tells the dashboard, with a 200 either way, whether it must ask for the
   * token: a page that probed the API instead would log a failed (401) request in the
   * browser's console on every first visit.
   */
  #signedIn(call: Call): Reply {
    if (this.#tokenDigest === undefined) return { status: 200, json: { tokenRequired: false, signedIn: true } };
    const session = sessionCookie(call.req);
    return { status: 200, json: { tokenRequired: true, signedIn: session !== undefined && this.#sessions.valid(session) } };
  }

  async #login(call: Call): Promise<Reply> {
    const body = await call.body();
    const token = isObject(body) ? body.token : undefined;
    if (typeof token !== 'string' || token === '') throw new AdminError('INVALID_BODY', 'expected a JSON body {"token": "..."}');
    if (this.#tokenDigest === undefined) return { status: 200, json: { status: 'ok' } };
    this.#checkToken(token, call.req, 'admin dashboard: wrong token');
    const cookie = `${ADMIN_COOKIE}=${this.#sessions.create()}; ${cookieAttributes(call.req)}`;
    return { status: 200, json: { status: 'ok' }, headers: { 'set-cookie': cookie } };
  }

  /** Sign-out ends the session on the balancer too, not only in this browser. */
  #logout(call: Call): Reply {
    const session = sessionCookie(call.req);
    if (session !== undefined) this.#sessions.delete(session);
    return { status: 200, json: { status: 'ok' }, headers: { 'set-cookie': `${ADMIN_COOKIE}=; ${cookieAttributes(call.req)}; Max-Age=0` } };
  }
}
