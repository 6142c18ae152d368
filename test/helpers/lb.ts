/**
 * Small shared pieces of the proxy integration tests: a config for the real CLI in front
 * of simulators (loopback only, admin on its own free port so parallel test files never
 * collide), raw-socket HTTP exchanges for what undici refuses to send, and a bounded
 * poll.
 */
import net from 'node:net';
import type { ServoySim } from '../../examples/servoy-sim.js';
import type { BalancerProcess, TestLike } from './processes.js';
import { backendsFor, spawnBalancer } from './processes.js';

/**
 * startBalancer is spawnBalancer with room for a loaded machine (the suite runs files in
 * parallel, often next to other builds): up to 60 s for the "listening" line.
 */
export function startBalancer(t: TestLike, config: object): Promise<BalancerProcess> {
  return spawnBalancer(t, config, { timeoutMs: 60_000 });
}

/**
 * A config for `start`: client and admin listeners on ephemeral loopback ports (port 0:
 * a port picked by freePort() in advance can be taken by a parallel test's listen(0)
 * before the balancer binds it), health checks on `/`.
 */
export async function lbConfig(sims: ServoySim[] | { id: string; url: string; route?: string }[], extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const backends = sims.length > 0 && 'port' in sims[0]! ? backendsFor(sims as ServoySim[]) : sims;
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    backends,
    // Health checks on `/`, as on a real Servoy server (the simulators count probes apart).
    healthCheck: { path: '/' },
    ...extra,
  };
}

/** What a raw HTTP exchange answered: status line parsed, head and body as text. */
export interface RawResponse {
  status: number;
  head: string;
  body: string;
  /** Everything received, for "the socket saw exactly one response" checks. */
  raw: string;
}

/**
 * rawRequest writes `bytes` on a fresh TCP connection to url's host:port and collects
 * everything until the server closes (or timeoutMs passes, then the socket is destroyed).
 */
export function rawRequest(url: string, bytes: string | Buffer, timeoutMs = 5000): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined); // a reset after the answer: what we got is what counts
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      const end = raw.indexOf('\r\n\r\n');
      const head = end === -1 ? raw : raw.slice(0, end);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (m === null) return reject(new Error(`no HTTP response; got ${JSON.stringify(raw.slice(0, 200))}`));
      resolve({ status: Number(m[1]), head, body: end === -1 ? '' : raw.slice(end + 4), raw });
    });
    socket.write(bytes);
  });
}

/** waitFor polls `check` every intervalMs until it returns true; rejects after timeoutMs. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition', intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Parsed JSON log lines of a balancer process (non-JSON lines skipped). */
export function jsonLogs(lines: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* not JSON */
    }
  }
  return out;
}

/** The Set-Cookie lines of a response as an array. */
export function setCookies(header: string | string[] | undefined): string[] {
  return header === undefined ? [] : Array.isArray(header) ? header : [header];
}

/** within resolves with p's value, or undefined if p has not settled after ms (the timer is cleared either way). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The admin API URL of a balancer whose config has admin.port 0, from its "admin API listening" log line. */
export async function adminUrlOf(lb: BalancerProcess): Promise<string> {
  const line = await lb.waitForLog(/admin API listening/);
  const url = (JSON.parse(line) as { adminUrl?: string }).adminUrl;
  if (url === undefined) throw new Error(`no adminUrl in ${line}`);
  return url;
}

/**
 * closedPort is a loopback port that refuses connections and that no parallel test will
 * start listening on: below the kernel's ephemeral range (where listen(0) never picks),
 * checked to refuse a connection now.
 */
export async function closedPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const refused = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.once('connect', () => { sock.destroy(); resolve(false); });
      sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (refused) return port;
  }
  throw new Error('no closed port found below the ephemeral range');
}

/** The User-Agent of servoy-lb's health probes. */
export const PROBE_AGENT = 'servoy-lb-health-check';

/**
 * isHealthProbe tells a test backend that a request is the balancer's health probe (by its
 * User-Agent, whatever healthCheck.path is, or an explicit `/health` path), so backends that
 * record what reached them can leave probes out of what they assert on.
 */
export function isHealthProbe(req: { url?: string | undefined; headers: Record<string, string | string[] | undefined> }): boolean {
  return req.url === '/health' || req.headers['user-agent'] === PROBE_AGENT;
}

/** isHealthProbeHead is isHealthProbe for a raw request head (backends that read bytes themselves). */
export function isHealthProbeHead(head: string): boolean {
  return /^GET \/health /.test(head) || /\r\nuser-agent: servoy-lb-health-check\r?(\n|$)/i.test(head);
}
