/**
 * A browser-like client for integration tests: one instance is one browser (one cookie
 * jar, its own keep-alive connections), so stickiness can be checked the way a real user
 * experiences it — cookies set by the balancer and by Servoy come back on every request
 * and on WebSocket handshakes, which send `Origin` like a browser does.
 */
import { Agent, request, type Dispatcher } from 'undici';
import type { Readable } from 'node:stream';
import WebSocket from 'ws';

/** What a request answered. `body` is the text; `buffer` the raw bytes. */
export interface BrowserResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  buffer: Buffer;
  json<T = any>(): T;
}

/** Options for {@link BrowserClient}. */
export interface BrowserClientOptions {
  /** Share a dispatcher between clients; by default each client has its own Agent (closed by close()). */
  dispatcher?: Dispatcher;
  /** Headers sent on every request and handshake (e.g. a partition key such as `X-Tenant`). */
  headers?: Record<string, string>;
}

interface StoredCookie { name: string; value: string; path: string }

/** A received WebSocket message: parsed JSON when it is JSON, else the text. */
export type SocketMessage = any;

/** Small wrapper over `ws` with an awaitable message queue. */
export interface BrowserSocket {
  ws: WebSocket;
  /** The next message (queued ones first); rejects if the socket closes first or after timeoutMs. */
  next(timeoutMs?: number): Promise<SocketMessage>;
  send(data: string | object): void;
  /** Resolves with the close code and reason whenever the socket closes. */
  closed: Promise<{ code: number; reason: string }>;
  /** Closes (normal closure) and waits for the close to complete. */
  close(code?: number, reason?: string): Promise<{ code: number; reason: string }>;
}

/** Error of a refused WebSocket handshake; `status` is the HTTP status the server answered. */
export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`websocket upgrade refused with ${status}`);
  }
}

/** One simulated browser against one base URL (the balancer, or a simulator directly). */
export class BrowserClient {
  readonly baseUrl: string;
  private readonly jar = new Map<string, StoredCookie>();
  private readonly dispatcher: Dispatcher;
  private readonly ownAgent: Agent | undefined;
  private readonly defaultHeaders: Record<string, string>;
  private readonly sockets = new Set<WebSocket>();

  constructor(baseUrl: string, opts: BrowserClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.ownAgent = opts.dispatcher ? undefined : new Agent({ keepAliveTimeout: 2000 });
    this.dispatcher = opts.dispatcher ?? this.ownAgent!;
    this.defaultHeaders = opts.headers ?? {};
  }

  /** Value of a cookie in the jar (any path), or undefined. */
  cookie(name: string): string | undefined {
    for (const c of this.jar.values()) if (c.name === name) return c.value;
    return undefined;
  }

  /** Puts a cookie in the jar by hand (e.g. a forged affinity cookie). */
  setCookie(name: string, value: string, path = '/'): void {
    this.jar.set(`${name};${path}`, { name, value, path });
  }

  /** Forgets every cookie: a new browser session. */
  clearCookies(): void {
    this.jar.clear();
  }

  /** The Cookie header the browser would send for `path`, or undefined when none apply. */
  cookieHeader(path: string): string | undefined {
    const p = path.split('?')[0] ?? '/';
    const list = [...this.jar.values()]
      .filter((c) => p === c.path || p.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`);
    return list.length ? list.join('; ') : undefined;
  }

  get(path: string, opts: { headers?: Record<string, string> } = {}): Promise<BrowserResponse> {
    return this.request('GET', path, opts);
  }

  post(path: string, body: string | Buffer | Readable, opts: { headers?: Record<string, string> } = {}): Promise<BrowserResponse> {
    return this.request('POST', path, { ...opts, body });
  }

  /** Any method; the jar is applied and updated. */
  async request(method: string, path: string, opts: { headers?: Record<string, string>; body?: string | Buffer | Readable } = {}): Promise<BrowserResponse> {
    const headers: Record<string, string> = { ...this.defaultHeaders, ...opts.headers };
    const cookie = this.cookieHeader(path);
    if (cookie && !Object.keys(headers).some((h) => h.toLowerCase() === 'cookie')) headers.cookie = cookie;
    const res = await request(this.baseUrl + path, { method: method as Dispatcher.HttpMethod, headers, body: opts.body, dispatcher: this.dispatcher });
    this.store(res.headers['set-cookie'], path);
    const buffer = Buffer.from(await res.body.arrayBuffer());
    const body = buffer.toString('utf8');
    return { status: res.statusCode, headers: res.headers, body, buffer, json: () => JSON.parse(body) };
  }

  private store(setCookie: string | string[] | undefined, requestPath: string): void {
    if (!setCookie) return;
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      // Default path per RFC 6265: the request path up to its last '/'.
      const reqPath = requestPath.split('?')[0] ?? '/';
      let path = reqPath.lastIndexOf('/') > 0 ? reqPath.slice(0, reqPath.lastIndexOf('/')) : '/';
      let remove = false;
      for (const attr of attrs) {
        const [k = '', v = ''] = attr.split('=').map((x) => x.trim());
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) path = v;
        else if (key === 'max-age' && Number(v) <= 0) remove = true;
        else if (key === 'expires' && Date.parse(v) <= Date.now()) remove = true;
      }
      if (remove) this.jar.delete(`${name};${path}`);
      else this.jar.set(`${name};${path}`, { name, value, path });
    }
  }

  /**
   * Opens a WebSocket like the NGClient does: jar cookies, `Origin` = base URL.
   * Resolves once open (a server that accepts and then closes, like CLIENT-OUT-OF-SYNC,
   * still resolves: look at `closed`). Rejects with {@link UpgradeRefused} on a non-101 answer.
   */
  openWebSocket(path: string, opts: { headers?: Record<string, string> } = {}): Promise<BrowserSocket> {
    const headers: Record<string, string> = { origin: new URL(this.baseUrl).origin, ...this.defaultHeaders, ...opts.headers };
    const cookie = this.cookieHeader(path);
    if (cookie) headers.cookie = cookie;
    const ws = new WebSocket(this.baseUrl.replace(/^http/, 'ws') + path, { headers });
    this.sockets.add(ws);
    const queue: SocketMessage[] = [];
    const waiters: { resolve: (m: SocketMessage) => void; reject: (e: Error) => void }[] = [];
    let closeInfo: { code: number; reason: string } | undefined;
    const closed = new Promise<{ code: number; reason: string }>((resolve) => {
      ws.on('close', (code, reason) => {
        this.sockets.delete(ws);
        closeInfo = { code, reason: reason.toString() };
        for (const w of waiters.splice(0)) w.reject(Object.assign(new Error(`websocket closed ${code} ${closeInfo.reason}`), closeInfo));
        resolve(closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? undefined : data.toString();
      let msg: SocketMessage = text ?? data;
      if (text !== undefined) try { msg = JSON.parse(text); } catch { /* plain text */ }
      const w = waiters.shift();
      if (w) w.resolve(msg);
      else queue.push(msg);
    });
    const socket: BrowserSocket = {
      ws,
      closed,
      next(timeoutMs = 15_000) { // room for a busy machine; only a failing test waits it out
        if (queue.length) return Promise.resolve(queue.shift());
        if (closeInfo) return Promise.reject(Object.assign(new Error(`websocket closed ${closeInfo.code} ${closeInfo.reason}`), closeInfo));
        return new Promise((resolve, reject) => {
          const waiter = {
            resolve: (m: SocketMessage) => { clearTimeout(timer); resolve(m); },
            reject: (e: Error) => { clearTimeout(timer); reject(e); },
          };
          const timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(new Error(`no websocket message within ${timeoutMs} ms`));
          }, timeoutMs);
          waiters.push(waiter);
        });
      },
      send(data) {
        ws.send(typeof data === 'string' ? data : JSON.stringify(data));
      },
      close(code = 1000, reason = '') {
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
          ws.close(code, reason);
          // A peer that never answers the close frame must not hang a test.
          const kill = setTimeout(() => ws.terminate(), 2000);
          void closed.then(() => clearTimeout(kill));
        }
        return closed;
      },
    };
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(socket));
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        reject(new UpgradeRefused(res.statusCode ?? 0));
        ws.terminate();
      });
      ws.on('error', (err) => reject(err)); // after open/refusal this is a no-op; 'close' follows
    });
  }

  /** Terminates open WebSockets and closes this client's own connections. */
  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.sockets.clear();
    if (this.ownAgent) await this.ownAgent.close();
  }
}
