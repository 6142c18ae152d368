/**
 * A simulated Servoy server (Tomcat + Servoy NGClient, as far as a load balancer can tell).
 *
 * Tests, benchmarks and `servoy-lb demo` need a backend that fails *visibly* when
 * stickiness breaks, the way a real Servoy server does:
 * - sessions live in this process's memory, their ids carry a Tomcat route suffix
 *   (`JSESSIONID=<hex>.<route>`);
 * - a request carrying a session id this server does not know gets a "session lost"
 *   answer (a real user would see a fresh client) with `X-Session-Lost: 1`;
 * - a WebSocket without a known session is closed with 1008 `CLIENT-OUT-OF-SYNC`,
 *   and one whose `Origin` host does not match `Host` is refused with 403;
 * - in maintenance mode requests without a known session get 503, existing sessions
 *   keep being served;
 * - resumable uploads (`/tus/...`, `/resources/upload/...`) need the session whose
 *   "pieces on disk" they extend;
 * - like a stock Servoy server it has no health endpoint: `/` is its start page (a session
 *   is made for it, as Tomcat does), so a balancer probes `/` and keeps the cookie. "Broken"
 *   (setHealthy(false)) is a server whose application failed: 500 to every request;
 * - `/servoy-admin/` stands for Servoy's admin pages: a small page naming the server.
 *
 * Requests from servoy-lb's health checker (its User-Agent) are served exactly like any
 * other; they are only counted apart (`healthChecks`, and their sessions are not in
 * `sessions`), so tests can count what users did.
 * Every response carries `X-Servoy-Server: <route>`. Standalone:
 * `node dist/examples/servoy-sim.js --port 8091 --route servoy-a [--name N] [--host H]`.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';

/** Options for {@link startServoySim}. */
export interface ServoySimOptions {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Tomcat jvmRoute: the suffix of every session id this server hands out. */
  route: string;
  /** Display name (default: the route). */
  name?: string;
  /** A session unused (no request, no open WebSocket) this long is forgotten; default 30 min. */
  sessionIdleMs?: number;
}

/** Counters of a simulator, for assertions and the demo. */
export interface ServoySimStats {
  route: string;
  name: string;
  maintenance: boolean;
  healthy: boolean;
  /** live sessions */
  sessions: number;
  /** open WebSockets */
  websockets: number;
  /** HTTP requests answered (health checks excluded: see healthChecks) */
  requests: number;
  /** requests from servoy-lb's health checker (served like any other, counted apart) */
  healthChecks: number;
  /** sessions created (for users; those made for health probes are in probeSessionsCreated) */
  sessionsCreated: number;
  /** sessions created for servoy-lb's health probes */
  probeSessionsCreated: number;
  /** requests that carried a session id this server did not know */
  sessionsLost: number;
  /** new-session requests refused with 503 because of maintenance mode */
  maintenanceRefused: number;
  /** WebSockets closed with CLIENT-OUT-OF-SYNC */
  outOfSync: number;
  /** WebSocket upgrades refused because Origin did not match Host */
  originRejected: number;
  bytesDownloaded: number;
  bytesUploaded: number;
}

/** Handle on a running simulator. */
export interface ServoySim {
  /** `http://host:port` */
  url: string;
  port: number;
  route: string;
  name: string;
  /** Servoy maintenance mode: 503 to requests without a known session, existing sessions served. */
  setMaintenance(on: boolean): void;
  /** Breaks the application (false: every HTTP request gets 500, as a Servoy whose application failed) or mends it (true). */
  setHealthy(on: boolean): void;
  /** Number of live sessions (those the health checker made not included). */
  readonly sessions: number;
  /** Number of open WebSockets. */
  readonly websockets: number;
  stats(): ServoySimStats;
  /**
   * A network blip or a long GC pause: false stops listening and cuts every connection
   * (connections are refused) while the sessions stay in memory; true listens again on the
   * same port, and the sessions go on. Resolves when done.
   */
  setReachable(on: boolean): Promise<void>;
  /** Terminates every open WebSocket abruptly (a network drop), keeping the sessions. */
  dropWebSockets(): void;
  /** Stops listening and destroys every open socket and WebSocket. */
  close(): Promise<void>;
}

interface Session {
  id: string;
  requests: number;
  lastSeen: number;
  websockets: number;
  /** bytes received per resumable-upload path: the "pieces on disk" */
  uploads: Map<string, number>;
  /** Made for a health-check probe (counted apart, served alike). */
  probe: boolean;
}

/** The User-Agent of servoy-lb's health checker: its requests are counted apart, never served differently. */
const PROBE_AGENT = 'servoy-lb-health-check';

const PATTERN_MODULUS = 251;
/** 261 × 251 bytes: every chunk starts at a multiple of 251, so the pattern stays aligned. */
const PATTERN_CHUNK = Buffer.from(Array.from({ length: PATTERN_MODULUS * 261 }, (_, i) => i % PATTERN_MODULUS));

/** The byte `/download` sends at offset `i` (i % 251), so clients can verify what they got. */
export function patternByte(i: number): number {
  return i % PATTERN_MODULUS;
}

/** Index of the first byte of `buf` (found at stream offset `offset`) that breaks the download pattern, or -1. */
export function checkPattern(buf: Uint8Array, offset = 0): number {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== (offset + i) % PATTERN_MODULUS) return i;
  return -1;
}

/** Session ids a request carries, from its cookies and a `;jsessionid=` path parameter. */
function presentedSessionIds(req: http.IncomingMessage): string[] {
  const ids: string[] = [];
  const m = /;jsessionid=([^;?/#]*)/i.exec(req.url ?? '');
  if (m?.[1]) ids.push(m[1]);
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === 'JSESSIONID') {
      const v = part.slice(eq + 1).trim();
      if (v) ids.push(v);
    }
  }
  return ids;
}

function maintenancePage(name: string): string {
  return `<!doctype html><html><head><title>Maintenance</title></head><body><h1>Servoy server in maintenance</h1><p>${escapeHtml(name)} accepts no new clients at the moment. Please try again later.</p></body></html>\n`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Starts a simulator; resolves once it listens. */
export async function startServoySim(opts: ServoySimOptions): Promise<ServoySim> {
  const route = opts.route;
  const name = opts.name ?? route;
  const host = opts.host ?? '127.0.0.1';
  const idleMs = opts.sessionIdleMs ?? 30 * 60_000;
  const sessions = new Map<string, Session>();
  const sockets = new Set<Duplex>();
  const timers = new Set<NodeJS.Timeout>();
  let maintenance = false;
  let healthy = true;
  const counters = {
    requests: 0, healthChecks: 0, sessionsCreated: 0, probeSessionsCreated: 0, sessionsLost: 0, maintenanceRefused: 0,
    outOfSync: 0, originRejected: 0, bytesDownloaded: 0, bytesUploaded: 0,
  };

  const expired = (s: Session, now: number) => s.websockets === 0 && now - s.lastSeen > idleMs;
  const findSession = (ids: string[]): Session | undefined => {
    const now = Date.now();
    for (const id of ids) {
      const s = sessions.get(id);
      if (!s) continue;
      if (expired(s, now)) { sessions.delete(id); continue; }
      s.lastSeen = now;
      return s;
    }
    return undefined;
  };
  const newSession = (probe = false): Session => {
    const s: Session = { id: `${randomBytes(16).toString('hex')}.${route}`, requests: 0, lastSeen: Date.now(), websockets: 0, uploads: new Map(), probe };
    sessions.set(s.id, s);
    if (probe) counters.probeSessionsCreated++;
    else counters.sessionsCreated++;
    return s;
  };
  const sweep = () => {
    const now = Date.now();
    let live = 0;
    for (const [id, s] of sessions) {
      if (expired(s, now)) sessions.delete(id);
      else if (!s.probe) live++;
    }
    return live;
  };
  const sweeper = setInterval(sweep, Math.max(1000, Math.min(idleMs, 60_000)));
  sweeper.unref();

  const send = (res: http.ServerResponse, status: number, body: string | object, headers: http.OutgoingHttpHeaders = {}) => {
    if (status === 204 || status === 304) { res.writeHead(status, headers); res.end(); return; } // no body allowed
    const isJson = typeof body !== 'string';
    const text = isJson ? JSON.stringify(body) : body;
    const type = isJson ? 'application/json' : text.startsWith('<!doctype') ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8';
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };

  const server = http.createServer((req, res) => {
    res.setHeader('x-servoy-server', route);
    let url: URL;
    try {
      const raw = (req.url ?? '/').replace(/;jsessionid=[^;?/#]*/i, '');
      url = new URL(raw.startsWith('/') ? `http://sim${raw}` : raw);
    } catch {
      req.resume();
      return send(res, 400, 'bad request\n');
    }
    const path = url.pathname;

    if (path === '/admin/maintenance') {
      req.resume();
      if (req.method === 'POST') maintenance = url.searchParams.get('on') === '1' || url.searchParams.get('on') === 'true';
      return send(res, 200, { server: route, maintenance });
    }
    const probe = req.headers['user-agent'] === PROBE_AGENT;
    if (probe) counters.healthChecks++;
    else counters.requests++;
    if (!healthy) {
      req.resume();
      return send(res, 500, `<!doctype html><html><body><h1>HTTP Status 500 - Internal Server Error</h1></body></html>\n`);
    }

    // Session handling, as Tomcat does it before the application sees the request.
    const presented = presentedSessionIds(req);
    let session = findSession(presented);
    let isNew = false;
    if (!session) {
      if (maintenance) {
        if (!probe) counters.maintenanceRefused++;
        req.resume();
        return send(res, 503, maintenancePage(name), { 'retry-after': '30' });
      }
      if (presented.length > 0) {
        // Tomcat makes a fresh session; Servoy shows a fresh client: the user lost their work.
        if (!probe) counters.sessionsLost++;
        const fresh = newSession(probe);
        req.resume();
        return send(res, 200, { error: 'session lost', server: route, name, presented: presented[0], session: fresh.id },
          { 'x-session-lost': '1', 'set-cookie': `JSESSIONID=${fresh.id}; Path=/; HttpOnly` });
      }
      if (path.startsWith('/tus/') || path.startsWith('/resources/upload/')) {
        // A resumable upload piece needs the session that holds the earlier pieces.
        req.resume();
        return send(res, 403, { error: 'no session', server: route });
      }
      session = newSession(probe);
      isNew = true;
      res.setHeader('set-cookie', `JSESSIONID=${session.id}; Path=/; HttpOnly`);
    }
    session.requests++;
    const s = session;

    if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
      return send(res, 200, `<!doctype html><html><head><title>${escapeHtml(name)}</title></head><body><h1>Servoy server ${escapeHtml(name)}</h1><p>route ${escapeHtml(route)}, session request ${s.requests}</p></body></html>\n`);
    }
    if (req.method === 'GET' && (path === '/servoy-admin' || path.startsWith('/servoy-admin/'))) {
      // Servoy's admin pages, reduced to saying which server answered (the dashboard links them per server).
      return send(res, 200, `<!doctype html><html><head><title>Servoy Admin - ${escapeHtml(name)}</title></head><body><h1>Servoy Admin</h1><p>server ${escapeHtml(name)}, route ${escapeHtml(route)}</p></body></html>\n`);
    }
    if (path === '/api/whoami') {
      req.resume();
      const h = req.headers;
      return send(res, 200, {
        server: route, name, session: s.id, requests: s.requests, new: isNew, method: req.method, path,
        headers: { 'x-forwarded-for': h['x-forwarded-for'] ?? null, 'x-forwarded-proto': h['x-forwarded-proto'] ?? null, 'x-forwarded-host': h['x-forwarded-host'] ?? null, host: h.host ?? null, origin: h.origin ?? null },
      });
    }
    if (req.method === 'GET' && path === '/download') {
      const total = Math.max(0, Math.floor(Number(url.searchParams.get('bytes') ?? 0)) || 0);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const chunk = PATTERN_CHUNK.subarray(0, Math.min(PATTERN_CHUNK.length, total - sent));
          sent += chunk.length;
          counters.bytesDownloaded += chunk.length;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        res.end();
      };
      res.on('close', () => res.removeListener('drain', pump));
      return pump();
    }
    const resumable = path.startsWith('/tus/') || path.startsWith('/resources/upload/');
    if ((req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') && (path === '/upload' || resumable)) {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (chunk: Buffer) => { hash.update(chunk); bytes += chunk.length; counters.bytesUploaded += chunk.length; });
      req.on('end', () => {
        const body: Record<string, unknown> = { server: route, bytes, sha256: hash.digest('hex') };
        if (resumable) {
          const total = (s.uploads.get(path) ?? 0) + bytes;
          s.uploads.set(path, total);
          body.total = total;
        }
        send(res, 200, body);
      });
      return;
    }
    if (req.method === 'GET' && path === '/slow') {
      req.resume();
      const ms = Math.max(0, Number(url.searchParams.get('ms') ?? 1000) || 0);
      const timer = setTimeout(() => { timers.delete(timer); if (!res.destroyed) send(res, 200, { server: route, slept: ms }); }, ms);
      timers.add(timer);
      res.on('close', () => { clearTimeout(timer); timers.delete(timer); });
      return;
    }
    const status = /^\/status\/([2-5]\d\d)$/.exec(path);
    if (status) {
      req.resume();
      return send(res, Number(status[1]), { server: route, status: Number(status[1]) });
    }
    req.resume();
    return send(res, 404, { error: 'not found', server: route, path });
  });

  server.on('connection', (sock) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)); });

  // WebSockets: /websocket/{clientnr}/{windowname}/{windownr} and anything else under /websocket/.
  const wss = new WebSocketServer({ noServer: true });
  const refuse = (socket: Duplex, status: number, text: string) => {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\nX-Servoy-Server: ${route}\r\n\r\n${text}`);
  };
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').replace(/;jsessionid=[^;?/#]*/i, '').split('?')[0] ?? '/';
    if (!path.startsWith('/websocket/')) return refuse(socket, 404, 'Not Found');
    const origin = req.headers.origin;
    if (origin) {
      let originHost: string | undefined;
      try { originHost = new URL(origin).host; } catch { /* malformed: mismatch */ }
      if (originHost !== req.headers.host) { counters.originRejected++; return refuse(socket, 403, 'Forbidden'); }
    }
    const session = findSession(presentedSessionIds(req));
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      // A client's invalid frame must not crash the process (the demo runs the simulators in the balancer's).
      ws.on('error', () => ws.terminate());
      if (!session) {
        counters.outOfSync++;
        ws.close(1008, 'CLIENT-OUT-OF-SYNC');
        return;
      }
      session.websockets++;
      ws.on('close', () => { session.websockets--; session.lastSeen = Date.now(); });
      ws.send(JSON.stringify({ server: route, hello: true, session: session.id, path }));
      ws.on('message', (data, isBinary) => {
        session.lastSeen = Date.now();
        ws.send(JSON.stringify({ server: route, echo: isBinary ? Buffer.from(data as Buffer).toString('base64') : data.toString() }));
      });
    });
  });

  const listen = (port: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  await listen(opts.port ?? 0);
  const port = (server.address() as { port: number }).port;
  let reachable = true;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    route,
    name,
    setMaintenance(on) { maintenance = on; },
    setHealthy(on) { healthy = on; },
    async setReachable(on) {
      if (on === reachable) return;
      reachable = on;
      if (on) return listen(port);
      for (const ws of wss.clients) ws.terminate();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const sock of sockets) sock.destroy();
      await closed;
    },
    get sessions() { return sweep(); },
    get websockets() { return wss.clients.size; },
    stats: () => ({ route, name, maintenance, healthy, sessions: sweep(), websockets: wss.clients.size, ...counters }),
    dropWebSockets() { for (const ws of wss.clients) ws.terminate(); },
    close() {
      closed ??= new Promise<void>((resolve) => {
        clearInterval(sweeper);
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const ws of wss.clients) ws.terminate();
        server.close(() => resolve());
        server.closeAllConnections();
        for (const sock of sockets) sock.destroy();
        wss.close();
      });
      return closed;
    },
  };
}

/* Standalone: node dist/examples/servoy-sim.js --port 8091 --route servoy-a */
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (flag: string) => {
    const i = process.argv.indexOf(flag);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const route = arg('--route') ?? 'servoy-a';
  startServoySim({ port: Number(arg('--port') ?? 8091), host: arg('--host') ?? '127.0.0.1', route, name: arg('--name') ?? route })
    .then((sim) => {
      process.stdout.write(`servoy-sim ${sim.route} listening on ${sim.url}\n`);
      const stop = () => { void sim.close().then(() => process.exit(0)); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    })
    .catch((err: Error) => {
      process.stderr.write(`servoy-sim: ${err.message}\n`);
      process.exitCode = 1;
    });
}
