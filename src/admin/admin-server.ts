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
 * - with a token every call but /healthz and the dashboard shell needs
 *   `Authorization: Bearer TOKEN` (compared in constant time on SHA-256 digests, so neither
 *   content nor length leaks) or the dashboard's HttpOnly SameSite=Strict cookie, which
 *   holds a random session id of this process (dashboard-sessions.ts), never the token.
 * Bodies are limited to 64 KiB; errors never carry a stack trace.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP, type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log.js';
import { isLoopback } from '../config/cross-checks.js';
import { backendSchema } from '../config/schema.js';
import { friendlyErrorMap, issuesToProblems } from '../config/zod-problems.js';
import { AdminError, type AdminControl, type AdminErrorCode } from './control.js';
import { DashboardSessions } from './dashboard-sessions.js';
import { observeRoutes } from './observe-routes.js';
import { TrustedProxies } from '../proxy/trusted-proxies.js';
import { readiness } from '../pool/readiness.js';

/** The largest request body the admin API reads (the biggest real one is a few hundred bytes). */
export const MAX_BODY_BYTES = 64 * 1024;

/** Name of the dashboard's sign-in cookie (it holds a session id, see dashboard-sessions.ts). */
export const ADMIN_COOKIE = 'servoylb_admin';

/** The logging the admin server needs; a pino Logger fits. */
export type AdminLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

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
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** What a route answers: JSON, or a text body with its own content type. */
type Reply =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; text: string; contentType: string; headers?: Record<string, string> };

interface Call {
  readonly req: IncomingMessage;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The parsed JSON body; undefined when there is none. */
  body(): Promise<unknown>;
}

interface Route {
  readonly method: Method;
  /** Segments; ":name" captures one (percent-decoded) segment. */
  readonly path: readonly string[];
  /** false for /healthz, the dashboard shell and login/logout. */
  readonly auth: boolean;
  handle(call: Call): Promise<Reply> | Reply;
}

const ACTIONS = ['drain', 'undrain', 'disable', 'enable'] as const;
const SAFE_METHODS = new Set(['GET', 'HEAD']);
const COMMON_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

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
      const matches = segments === undefined ? [] : this.#routes.flatMap((route) => matchRoute(route, segments));
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
    const control = this.#control;
    const log = this.#options.logger;
    const audit = (call: Call, what: string, extra: object = {}): void =>
      log.info({ remote: call.req.socket.remoteAddress, ...extra }, `admin: ${what}`);
    /** An admin action that succeeded goes to the events (GET /api/events) with who asked. */
    const done = (call: Call, what: string, backend: string | null, to: string | null = null, from: string | null = null): void =>
      control.recordAdminAction({ backend, what, who: call.req.socket.remoteAddress ?? 'unknown', from, to });
    const route = (method: Method, path: string, handle: Route['handle'], auth = true): Route => ({
      method,
      path: path.split('/').filter(Boolean),
      auth,
      handle,
    });

    return [
      route('GET', '/healthz', () => {
        const report = readiness(control.backends().map((b) => b.state), control.stateHealth());
        return { status: report.ok ? 200 : 503, json: report };
      }, false),
      route('GET', '/', () => dashboardPage(), false),
      route('GET', '/dashboard.js', () => ({ status: 200, text: DASHBOARD_JS, contentType: 'text/javascript; charset=utf-8' }), false),
      route('POST', '/login', (call) => this.#login(call), false),
      route('POST', '/logout', (call) => this.#logout(call), false),

      route('GET', '/api/backends', () => ({ status: 200, json: { backends: control.backends() } })),
      route('POST', '/api/backends', async (call) => {
        const input = parseBackendInput(await call.body());
        audit(call, `add backend ${input.id}`, { url: input.url });
        const backend = await control.addBackend(input);
        done(call, `add ${input.url}`, input.id, backend.state, 'absent');
        return { status: 201, json: { backend } };
      }),
      route('DELETE', '/api/backends/:id', async (call) => {
        const id = call.params.id!;
        const force = ['1', 'true', 'yes'].includes(call.query.get('force') ?? '');
        audit(call, `remove backend ${id}`, { force });
        await control.removeBackend(id, force);
        done(call, force ? 'remove --force' : 'remove', id, 'absent');
        return { status: 200, json: { removed: id } };
      }),
      route('PATCH', '/api/backends/:id', async (call) => {
        const id = call.params.id!;
        const body = await call.body();
        const keys = isObject(body) ? Object.keys(body) : [];
        const weight = isObject(body) ? body.weight : undefined;
        if (keys.length !== 1 || keys[0] !== 'weight' || typeof weight !== 'number') {
          throw new AdminError('INVALID_BODY', 'expected a JSON body {"weight": N} (a whole number from 1 to 1000; weight is the one setting changed at run time)');
        }
        audit(call, `set weight of ${id}`, { weight });
        const backend = await control.setWeight(id, weight);
        done(call, `weight ${weight}`, id);
        return { status: 200, json: { backend } };
      }),
      ...ACTIONS.map((action) =>
        route('POST', `/api/backends/:id/${action}`, async (call) => {
          const id = call.params.id!;
          const close = action === 'disable' && ['1', 'true', 'yes'].includes(call.query.get('close') ?? '');
          audit(call, `${action} ${id}`, close ? { close } : undefined);
          const backend = await control.setAdminState(id, action, close ? { close } : undefined);
          done(call, close ? `${action} --close` : action, id, backend.state);
          return { status: 200, json: { backend } };
        }),
      ),
      route('GET', '/api/route', (call) => {
        const given = (name: string) => {
          const value = call.query.get(name);
          return value === null || value === '' ? undefined : value;
        };
        const query = { key: given('key'), client: given('client'), path: given('path'), cookie: given('cookie'), session: given('session') };
        if (query.key === undefined && query.client === undefined && query.cookie === undefined && query.session === undefined) throw new AdminError('INVALID_BODY', 'say which request to explain: client=ADDR (a client address) and, in partition mode, key=KEY, e.g. /api/route?client=10.0.0.5');
        const explained = control.explainRoute(query);
        if (query.path === undefined) return { status: 200, json: explained };
        // The path rules' answer goes next to the route explanation; the client defaults to the key when it is an address.
        const client = query.client ?? (query.key !== undefined && isIP(query.key) !== 0 ? query.key : undefined);
        const pathExplanation = control.explainPath?.(query.path, client);
        return { status: 200, json: { ...explained, ...(pathExplanation === undefined ? {} : { path: pathExplanation }) } };
      }),
      route('POST', '/api/reload', async (call) => {
        audit(call, 'reload');
        const result = await control.reload();
        done(call, 'reload', null);
        return { status: 200, json: result };
      }),
      route('GET', '/api/partitions', (call) => {
        const offset = pagingNumber(call.query.get('offset'), 0, 'offset');
        const limit = Math.min(pagingNumber(call.query.get('limit'), 1000, 'limit'), 10_000);
        return { status: 200, json: control.listPartitions(offset, limit) };
      }),
      route('PUT', '/api/partitions/:key', async (call) => {
        const key = call.params.key!;
        const body = await call.body();
        const backend = isObject(body) ? body.backend : undefined;
        const drain = isObject(body) ? body.drain === true : false;
        if (typeof backend !== 'string' || backend === '') throw new AdminError('INVALID_BODY', 'expected a JSON body {"backend": "<id>", "drain": false}');
        audit(call, `move partition ${key} to ${backend}`, { drain });
        const partition = await control.movePartition(key, backend, drain);
        done(call, `move partition ${key}${drain ? ' --drain' : ''}`, backend);
        return { status: 200, json: { partition } };
      }),
      ...observeRoutes(control).map((r) => route('GET', r.path, (call) => r.handle(call.query))),
      route('GET', '/metrics', async () => {
        const { contentType, body } = await control.metrics();
        return { status: 200, text: body, contentType };
      }),
    ];
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

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** pathSegments splits and decodes a path; a trailing slash is ignored, bad escapes match nothing. */
function pathSegments(pathname: string): string[] | undefined {
  try {
    return pathname.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}

function matchRoute(route: Route, segments: readonly string[]): { route: Route; params: Record<string, string> }[] {
  if (route.path.length !== segments.length) return [];
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const want = route.path[i]!;
    const got = segments[i]!;
    if (want.startsWith(':')) params[want.slice(1)] = got;
    else if (want !== got) return [];
  }
  return [{ route, params }];
}

/** Refuses state changes sent by a browser on behalf of another origin (CSRF). */
function checkSameOrigin(req: IncomingMessage): void {
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  let crossOrigin = site !== undefined && site !== 'same-origin' && site !== 'none';
  if (!crossOrigin && origin !== undefined) {
    try {
      crossOrigin = new URL(origin).host.toLowerCase() !== (req.headers.host ?? '').toLowerCase();
    } catch {
      crossOrigin = true; // "null" and garbage
    }
  }
  if (crossOrigin) throw new AdminError('FORBIDDEN', 'the admin API refuses changes requested by another origin');
}

function bearerToken(req: IncomingMessage): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

/** The session id in the dashboard's cookie, if the request has one. */
function sessionCookie(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== ADMIN_COOKIE) continue;
    return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** The sign-in cookie's attributes: script-proof, same-site only, whole admin origin; Secure over TLS. */
function cookieAttributes(req: IncomingMessage): string {
  return `HttpOnly; SameSite=Strict; Path=/${(req.socket as Partial<TLSSocket>).encrypted === true ? '; Secure' : ''}`;
}

/** readJsonBody reads at most MAX_BODY_BYTES and parses them; an empty body is undefined. */
function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const tooLarge = (): AdminError => new AdminError('BODY_TOO_LARGE', `the request body is larger than ${MAX_BODY_BYTES / 1024} KiB`);
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk);
      req.off('data', onData).off('end', onEnd);
      req.resume(); // discard the rest; the answer closes the connection
      reject(tooLarge());
    };
    const onEnd = (): void => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new AdminError('INVALID_BODY', `the request body is not valid JSON (${(err as Error).message})`));
      }
    };
    req.on('data', onData).on('end', onEnd).on('error', reject);
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** parseBackendInput checks a POST /api/backends body with the config file's own backend rules. */
function parseBackendInput(body: unknown): Parameters<AdminControl['addBackend']>[0] {
  if (!isObject(body)) {
    throw new AdminError('INVALID_BODY', 'expected a JSON object such as {"id": "servoy-c", "url": "http://10.0.0.13:8080", "weight": 1}');
  }
  const parsed = backendSchema.safeParse(body, { error: friendlyErrorMap });
  if (!parsed.success) {
    const problems = issuesToProblems(parsed.error.issues);
    throw new AdminError('INVALID_BODY', `invalid backend: ${problems.join('; ')}`, problems);
  }
  const { id, url, weight, maxSessions, route } = parsed.data;
  return { id, url, weight, ...(maxSessions === undefined ? {} : { maxSessions }), ...(route === undefined ? {} : { route }) };
}

function send(res: ServerResponse, reply: Reply): void {
  const isJson = 'json' in reply;
  const body = isJson ? `${JSON.stringify(reply.json, null, 2)}\n` : reply.text;
  res.writeHead(reply.status, {
    ...COMMON_HEADERS,
    'content-type': isJson ? 'application/json; charset=utf-8' : reply.contentType,
    'content-length': Buffer.byteLength(body),
    ...reply.headers,
  });
  res.end(body);
}

/** Error codes the dashboard script knows; kept here so a renamed code fails the build. */
const DASHBOARD_CODES: readonly AdminErrorCode[] = ['UNAUTHORIZED'];

function dashboardPage(): Reply {
  return {
    status: 200,
    text: DASHBOARD_HTML,
    contentType: 'text/html; charset=utf-8',
    headers: {
      'content-security-policy':
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
    },
  };
}

const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>servoy-lb</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: .35em .8em; border-bottom: 1px solid #ddd; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: #080; } .down { color: #b00; } .draining, .drained, .maintenance { color: #a60; } .disabled { color: #777; }
#msg { color: #b00; min-height: 1.4em; }
button { margin-right: .3em; }
</style>
</head>
<body>
<h1>servoy-lb</h1>
<form id="login" hidden>
  <p>The admin API needs its token (admin.token in the config).</p>
  <input id="token" type="password" autocomplete="current-password" placeholder="admin token" required>
  <button type="submit">Sign in</button>
</form>
<div id="main" hidden>
<table>
<thead><tr><th>id</th><th>url</th><th>state</th><th>health</th><th>weight</th><th>sessions</th><th>websockets</th><th>requests</th><th>errors</th><th></th></tr></thead>
<tbody id="rows"></tbody>
</table>
<p><button id="logout" type="button">Sign out</button></p>
</div>
<p id="msg"></p>
<script src="/dashboard.js"></script>
</body>
</html>
`;

const DASHBOARD_JS = `'use strict';
const $ = (id) => document.getElementById(id);
const CODES = ${JSON.stringify(DASHBOARD_CODES)};
let signedIn = true;

async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.error ? data.error.message : 'HTTP ' + res.status);
    err.code = data.error && data.error.code;
    throw err;
  }
  return data;
}

function show(loggedIn, message) {
  signedIn = loggedIn;
  $('login').hidden = loggedIn;
  $('main').hidden = !loggedIn;
  $('msg').textContent = message || '';
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (cls) td.className = cls;
  return td;
}

const ALLOWED = {
  drain: (b) => b.admin === 'ready',
  undrain: (b) => b.admin === 'draining',
  disable: (b) => b.admin !== 'disabled',
  enable: (b) => b.admin === 'disabled',
};

function row(b) {
  const tr = document.createElement('tr');
  tr.append(cell(b.id), cell(b.url), cell(b.state, b.state), cell(b.health, b.health),
    cell(b.weight, 'n'), cell(b.maxSessions ? b.sessions + '/' + b.maxSessions : b.sessions, 'n'),
    cell(b.websockets, 'n'), cell(b.requests, 'n'), cell(b.errors, 'n'));
  const actions = document.createElement('td');
  for (const action of Object.keys(ALLOWED)) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = action;
    button.disabled = !ALLOWED[action](b);
    button.addEventListener('click', () => act(b, action));
    actions.append(button);
  }
  tr.append(actions);
  return tr;
}

async function act(b, action) {
  if (action === 'disable' && !confirm('Disable ' + b.id + '? It gets no traffic at all; its ' + b.sessions + ' sessions are placed on other servers.')) return;
  try {
    await api('POST', '/api/backends/' + encodeURIComponent(b.id) + '/' + action);
    await refresh();
  } catch (err) { failed(err); }
}

function failed(err) {
  if (CODES.includes(err.code)) show(false, signedIn ? '' : err.message);
  else $('msg').textContent = err.message;
}

async function refresh() {
  try {
    const data = await api('GET', '/api/backends');
    $('rows').replaceChildren(...data.backends.map(row));
    show(true);
  } catch (err) { failed(err); }
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    await api('POST', '/login', { token: $('token').value });
    $('token').value = '';
    await refresh();
  } catch (err) { $('msg').textContent = err.message; }
});

$('logout').addEventListener('click', async () => {
  await api('POST', '/logout').catch(() => {});
  show(false);
});

refresh();
setInterval(() => { if (signedIn) refresh(); }, 2000);
`;

/** pagingNumber reads a non-negative integer query parameter, or answers 400. */
function pagingNumber(value: string | null, fallback: number, name: string): number {
  if (value === null || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new AdminError('INVALID_BODY', `the query parameter "${name}" must be a whole number >= 0`);
  return n;
}
