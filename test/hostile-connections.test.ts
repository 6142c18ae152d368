/**
 * Connection floods (SPEC "Proxying", config `limits.maxConnections`): 10,000 concurrent
 * client connections are all served; a connection over the limit gets the balancer's 503
 * page (Retry-After, Connection: close) instead of a silent close, reaches no backend, and
 * is logged at most once per interval; WebSocket tunnels count as connections; freed slots
 * serve again. When the process runs out of file descriptors it neither crashes nor spins,
 * and serves again once descriptors free up.
 */
import { fork, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import pino from 'pino';
import { ConnectionLimit, descriptorsNeeded, openFileLimit } from '../src/proxy/connection-limit.js';
import { RedirectServer } from '../src/proxy/redirect-server.js';
import { isHealthProbe, jsonLogs, lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { repoRoot, type TestLike } from './helpers/processes.js';
import { probe, sleep } from './fixtures/hostile-net.js';

const GET = 'GET /ping HTTP/1.1\r\nHost: lb.test\r\n\r\n';
const WS_UPGRADE = 'GET /websocket/1/main/1 HTTP/1.1\r\nHost: lb.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
const REFUSAL_LOG = /over limits\.maxConnections refused/;

/**
 * A backend that answers every request "ok" (counting them) and every WebSocket
 * handshake with 101, then echoes what the tunnel sends.
 */
async function echoBackend(t: TestLike): Promise<{ url: string; requests: () => number; tunnels: () => number }> {
  let requests = 0;
  let tunnels = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    if (!isHealthProbe(req)) requests++;
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
    res.end('ok');
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: net.Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => {
    tunnels++;
    socket.on('error', () => undefined);
    socket.on('close', () => tunnels--);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, requests: () => requests, tunnels: () => tunnels };
}

/** A raw client connection that collects what it receives. */
interface Conn { socket: net.Socket; raw: string; closed: boolean }

function connect(url: string): Promise<Conn> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    const c: Conn = { socket, raw: '', closed: false };
    socket.on('data', (chunk: Buffer) => { c.raw += chunk.toString('latin1'); });
    socket.on('close', () => { c.closed = true; });
    socket.once('error', reject);
    socket.once('connect', () => { socket.on('error', () => undefined); resolve(c); });
  });
}

/** Writes `bytes` on c and waits (bounded) until `done(raw)` holds for what arrives after. */
async function send(c: Conn, bytes: string, done: (raw: string) => boolean, ms = 15_000): Promise<string> {
  const from = c.raw.length;
  c.socket.write(bytes);
  await waitFor(() => done(c.raw.slice(from)) || c.closed, ms, 'an answer');
  return c.raw.slice(from);
}

const complete = (raw: string): boolean => {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return false;
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(raw.slice(0, end))?.[1] ?? 0);
  return raw.length - end - 4 >= length;
};

function refusalLines(lines: string[]): Record<string, unknown>[] {
  return jsonLogs(lines).filter((l) => typeof l.msg === 'string' && REFUSAL_LOG.test(l.msg));
}

t.test('over limits.maxConnections: a clean 503, nothing forwarded, one log line; tunnels count; freed slots serve', async (t) => {
  const backend = await echoBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'echo', url: backend.url }], { limits: { maxConnections: 20 } }));
  const held: Conn[] = [];
  t.teardown(() => { for (const c of held) c.socket.destroy(); });

  // 20 slots: 10 WebSocket tunnels and 10 keep-alive connections, each used once.
  for (let i = 0; i < 10; i++) {
    const ws = await connect(lb.url);
    held.push(ws);
    const answer = await send(ws, WS_UPGRADE, (raw) => raw.includes('\r\n\r\n'));
    t.match(answer, /^HTTP\/1\.1 101 /, `tunnel ${i} opened`);
  }
  const keepAlive: Conn[] = [];
  for (let i = 0; i < 10; i++) {
    const c = await connect(lb.url);
    held.push(c);
    keepAlive.push(c);
    t.match(await send(c, GET, complete), /^HTTP\/1\.1 200 /, `keep-alive connection ${i} served`);
  }
  await waitFor(() => backend.tunnels() === 10, 15_000, '10 tunnels at the backend');
  const forwarded = backend.requests();

  // A connection over the limit that sends nothing is closed after a few seconds.
  const silent = await connect(lb.url);
  held.push(silent);
  const silentAt = Date.now();
  // Connections over the limit: each request gets the 503 page and the connection is closed.
  for (let i = 0; i < 15; i++) {
    const c = await connect(lb.url);
    held.push(c);
    const answer = await send(c, i % 2 === 0 ? GET : `POST /upload HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 5\r\n\r\nhello`, complete);
    await waitFor(() => c.closed, 15_000, 'the refused connection to close');
    const head = answer.slice(0, answer.indexOf('\r\n\r\n'));
    t.match(head, /^HTTP\/1\.1 503 Service Unavailable\r\n/, `extra connection ${i}: 503`);
    t.match(head, /\r\nretry-after: 10\r\n/i, `extra connection ${i}: Retry-After`);
    t.match(head, /\r\nconnection: close\r\n/i, `extra connection ${i}: Connection: close`);
    t.match(answer, /<h1>503 Service Unavailable<\/h1>/, `extra connection ${i}: the balancer's 503 page`);
  }
  const wsExtra = await connect(lb.url);
  held.push(wsExtra);
  const wsAnswer = await send(wsExtra, WS_UPGRADE, complete);
  t.match(wsAnswer, /^HTTP\/1\.1 503 [^]*\r\nretry-after: 10\r\n[^]*<h1>503 /i, 'a WebSocket handshake over the limit: the 503 page, Retry-After');
  await waitFor(() => wsExtra.closed, 15_000, 'the refused handshake connection to close');
  t.equal(backend.requests(), forwarded, 'no refused request reached the backend');
  t.equal(backend.tunnels(), 10, 'no refused handshake reached the backend');

  // The connections within the limit keep working, tunnels included.
  for (const [i, c] of keepAlive.entries()) t.match(await send(c, GET, complete), /^HTTP\/1\.1 200 /, `held connection ${i} still served`);
  const echo = await send(held[0]!, 'ping-through-tunnel', (raw) => raw.includes('ping-through-tunnel'));
  t.equal(echo, 'ping-through-tunnel', 'a held tunnel still carries data');
  const health = await request(`${lb.adminUrl!}/healthz`, { reset: true });
  t.equal(health.statusCode, 200, 'the admin API answers while the proxy is full');
  await health.body.dump();

  // Held for at most 5 s for its 503; 20 s is room for a busy machine (it would otherwise stay open).
  await waitFor(() => silent.closed, 20_000, 'the silent refused connection to close');
  t.ok(silent.raw === '', `the silent connection over the limit was closed without a byte (${Date.now() - silentAt} ms)`);

  // WebSocket tunnels are connections: closing five of them frees five slots.
  for (const c of held.slice(0, 5)) c.socket.destroy();
  await waitFor(() => backend.tunnels() === 5, 15_000, 'five tunnels closed at the backend');
  const fresh: Conn[] = [];
  await waitFor(async () => {
    const c = await connect(lb.url);
    held.push(c);
    const answer = await send(c, GET, complete);
    if (/^HTTP\/1\.1 200 /.test(answer)) fresh.push(c);
    return fresh.length > 0;
  }, 15_000, 'a new connection to be served after tunnels closed');
  for (let i = 0; i < 4; i++) {
    const c = await connect(lb.url);
    held.push(c);
    t.match(await send(c, GET, complete), /^HTTP\/1\.1 200 /, `new connection ${i} served in a freed slot`);
  }
  const over = await probe(lb.url, 'GET /ping HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n');
  t.equal(over.status, 503, 'and the slots are full again: the next one is refused');

  const lines = refusalLines(lb.logs());
  t.equal(lines.length, 1, `one log line for ${15 + 3} refusals within the interval (rate-limited)`);
  t.match(lines[0], { level: 40, maxConnections: 20, refused: 1 }, 'a warning naming the limit');
  t.equal(lb.proc.exitCode, null, 'the balancer is running');
});

t.test('refused connections are bounded: beyond the refusal headroom new ones are dropped at accept; the log reports both', async (t) => {
  const backend = await echoBackend(t);
  // maxConnections 1: up to 64 more connections are held for their 503 (for up to 5 s), the rest dropped.
  const lb = await startBalancer(t, await lbConfig([{ id: 'echo', url: backend.url }], { limits: { maxConnections: 1 } }));
  const held: Conn[] = [];
  t.teardown(() => { for (const c of held) c.socket.destroy(); });
  const first = await connect(lb.url);
  held.push(first);
  t.match(await send(first, GET, complete), /^HTTP\/1\.1 200 /, 'the one slot is served');
  held.push(...(await Promise.all(Array.from({ length: 80 }, () => connect(lb.url).catch(() => undefined)))).filter((c): c is Conn => c !== undefined));
  // At most the slot plus the 64 of the headroom stay open: wait for the rest to be dropped.
  await waitFor(() => held.filter((c) => !c.closed).length <= 65, 15_000, 'connections beyond the headroom to be dropped');
  const dropped = held.filter((c) => c.closed);
  const open = held.length - dropped.length;
  t.ok(dropped.length >= 80 - 64 - 1, `connections beyond the headroom were dropped (${dropped.length})`);
  // "At once": before the held ones' 5 s for their 503 ran out (the order of events, not a clock).
  t.ok(open >= 60, `while those within the headroom were still held (${open} open)`);
  t.same(dropped.map((c) => c.raw), dropped.map(() => ''), 'without a byte');
  // The next log line comes when the rate-limit interval (10 s) ends, with everything since.
  const line = await lb.waitForLog((l) => REFUSAL_LOG.test(l) && /"dropped":[1-9]/.test(l), 15_000);
  const rec = JSON.parse(line) as { refused: number; dropped: number };
  t.ok(rec.refused >= 60 && rec.dropped >= 80 - 64 - 1, `one line with the counts since the last (${rec.refused} refused, ${rec.dropped} dropped)`);
  t.equal(refusalLines(lb.logs()).length, 2, 'two lines in all: the first refusal at once, the rest at the end of the interval');
  t.match(await send(first, GET, complete), /^HTTP\/1\.1 200 /, 'the slot within the limit is still served');
});

/** The soft open-file limit of this process (children inherit it), or undefined. */
const fdLimit = openFileLimit();
const TEN_K = 10_000;
const skip10k = fdLimit === undefined
  ? 'cannot read the open-file limit (/proc/self/limits): not Linux'
  : fdLimit < TEN_K + 1500
    ? `the open-file limit is ${fdLimit}; 10,000 connections need at least ${TEN_K + 1500} descriptors per process (ulimit -n)`
    : false;

t.test('10,000 concurrent client connections are all served; the next one is refused with 503', { skip: skip10k }, async (t) => {
  const backend = await echoBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'echo', url: backend.url }], { limits: { maxConnections: TEN_K }, log: { access: false } }));
  const child = fork(join(repoRoot, 'test', 'fixtures', 'hold-connections.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const ask = <T>(msg: object): Promise<T> => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to ${JSON.stringify(msg)} within 60 s`)), 60_000);
    child.once('message', (reply) => { clearTimeout(timer); resolve(reply as T); });
    child.send(msg);
  });

  // Connecting is what costs descriptors; a request on each would only measure proxy speed.
  const opened = await ask<{ opened: number; statuses: Record<string, number> }>({ cmd: 'open', url: lb.url, count: TEN_K, window: 200, request: false });
  t.same(opened.statuses, { connected: TEN_K }, '10,000 connections made');
  const sample = await ask<{ statuses: Record<string, number> }>({ cmd: 'sample', count: 1000 });
  t.same(sample.statuses, { 200: 1000 }, 'every 10th of them, first to last, is served: all 10,000 were accepted and are open at once');
  // The kernel hands connections over in order: these come after the 10,000.
  const extra = await ask<{ opened: number; statuses: Record<string, number> }>({ cmd: 'open', url: lb.url, count: 20, window: 20 });
  t.same(extra.statuses, { 503: 20 }, 'connections 10,001 to 10,020 get the 503 answer');
  const again1 = await ask<{ statuses: Record<string, number> }>({ cmd: 'sample', count: 1000 });
  t.same(again1.statuses, { 200: 1000 }, 'and the connections within the limit are still served');

  await ask({ cmd: 'close', count: 100 });
  // The slots come back as the balancer sees the closes: open what is still missing until
  // 100 new connections are held and served (a refused one is closed, it holds no slot).
  let served = 0;
  await waitFor(async () => {
    const more = await ask<{ opened: number; statuses: Record<string, number> }>({ cmd: 'open', url: lb.url, count: 100 - served, window: 100 - served });
    served += more.statuses['200'] ?? 0;
    return served >= 100;
  }, 30_000, '100 new connections served after 100 closed', 100);
  t.equal(served, 100, '100 new connections served in the 100 freed slots');
  const full = await probe(lb.url, 'GET /ping HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n');
  t.equal(full.status, 503, 'and the next one is refused again');

  child.send({ cmd: 'exit' });
  await new Promise((resolve) => child.once('exit', resolve));
  // The balancer has 10,000 closes to see first: on a busy machine that takes a while.
  let status: number | undefined;
  await waitFor(async () => (status = (await probe(lb.url, 'GET /ping HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n')).status) === 200, 60_000, 'a request to be served after all of them went', 200).catch(() => undefined);
  t.equal(status, 200, 'served after all of them went');
  t.ok(refusalLines(lb.logs()).length >= 1, 'the refusals were logged');
  t.equal(lb.proc.exitCode, null, 'the balancer is running');
});

/** The CPU seconds (user + system) a process has used, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const prlimit = spawnSync('prlimit', ['--version']).status === 0;

t.test('out of file descriptors: no crash, no busy loop, 503 without blaming the backend; served again once descriptors free up', { skip: prlimit ? false : 'prlimit (util-linux) not found' }, async (t) => {
  const backend = await echoBackend(t);
  // No periodic health check may open (or free) a descriptor in the middle of the test.
  const lb = await startBalancer(t, await lbConfig([{ id: 'echo', url: backend.url }], { healthCheck: { path: '/health', interval: '10m' }, outlier: { consecutiveFailures: 2 } }));
  const pid = lb.proc.pid!;
  const soft = openFileLimit(`/proc/${pid}/limits`)!;
  const hard = /Max open files\s+\S+\s+(\S+)/.exec(readFileSync(`/proc/${pid}/limits`, 'latin1'))![1]!;
  // Room for what the balancer has open now, plus a few client connections.
  const inUse = readdirSync(`/proc/${pid}/fd`).length;
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${inUse + 20}:${hard}`]);

  const held: Conn[] = [];
  t.teardown(() => { for (const c of held) c.socket.destroy(); });
  const cpuBefore = cpuSeconds(pid);
  const started = Date.now();
  held.push(...(await Promise.all(Array.from({ length: 60 }, () => connect(lb.url)))));
  await waitFor(() => held.filter((c) => c.closed).length >= 30, 15_000, 'connections beyond the descriptor limit to be closed');
  // A window to measure CPU in. Safe on a busy machine: other load only takes CPU away from
  // the balancer (a busy loop would show less, never a correct one more).
  await sleep(1000);
  const cpu = cpuSeconds(pid) - cpuBefore;
  const elapsed = (Date.now() - started) / 1000;
  t.ok(cpu < elapsed / 2, `no busy loop at the descriptor limit (${cpu.toFixed(2)} s CPU in ${elapsed.toFixed(1)} s)`);
  const open = held.filter((c) => !c.closed);
  t.ok(open.length > 0 && open.length <= 25, `some connections were accepted, the rest closed at once (${open.length} open)`);

  // An accepted client whose request needs a backend connection that cannot be opened.
  // The HTTP 503 keeps its connection open; the WebSocket 503 closes its one, which frees
  // a descriptor (a request after it may rightly be served), so it comes last.
  const page = await send(open[0]!, GET, complete);
  t.match(page, /^HTTP\/1\.1 503 [^]*\r\nretry-after: 10\r\n[^]*<h1>503 /i, 'HTTP: the 503 page with Retry-After, not a 502');
  const again = await send(open[1]!, GET, complete);
  t.match(again, /^HTTP\/1\.1 503 /, 'and again');
  const ws = await send(open[2]!, WS_UPGRADE, complete);
  t.match(ws, /^HTTP\/1\.1 503 [^]*<h1>503 /, 'WebSocket: the 503 page');
  t.equal(lb.proc.exitCode, null, 'the balancer is running');

  for (const c of held) c.socket.destroy();
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
  await waitFor(async () => (await probe(lb.url, 'GET /ping HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n')).status === 200, 10_000, 'a request to be served again');
  t.pass('served again once descriptors freed up');
  const res = await request(`${lb.adminUrl!}/api/backends`, { reset: true });
  const row = ((await res.body.json()) as { backends: { state: string; errors: number }[] }).backends[0]!;
  t.match(row, { state: 'up', errors: 0 }, 'the backend was not blamed: no error counted, not ejected');
  // Log lines are written in batches (flushed every 250 ms): wait for it rather than race the flush.
  await lb.waitForLog((line) => line.includes('"msg":"out of file descriptors'), 15_000).catch(() => undefined);
  const lines = jsonLogs(lb.logs()).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('out of file descriptors'));
  t.equal(lines.length, 1, 'one error line for the failures in the interval');
  t.match(lines[0], { level: 50, code: 'EMFILE' });
});

t.test('accept errors Node reports are logged (rate-limited) and do not crash; listen errors are left to listen()', async (t) => {
  const out: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void out.push(JSON.parse(line) as Record<string, unknown>) });
  const server = net.createServer();
  const limit = new ConnectionLimit(server, 10, logger);
  t.teardown(() => { limit.stop(); server.close(); });
  server.emit('error', Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }));
  t.same(out, [], 'an error before listening is not an accept error');
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  for (let i = 0; i < 3; i++) server.emit('error', Object.assign(new Error('accept ENFILE'), { code: 'ENFILE', syscall: 'accept' }));
  t.equal(out.length, 1, 'three failures, one line');
  t.match(out[0], { level: 50, code: 'ENFILE', failures: 1, msg: /^out of file descriptors/ });
  t.equal(limit.counts.resourceFailures, 3, 'all three counted');
  t.ok(server.listening, 'the server keeps listening');

  const redirect = new RedirectServer({ httpsPort: 443, maxHeaderBytes: 8192, maxConnections: 10 });
  await redirect.listen('127.0.0.1', 0);
  t.teardown(() => redirect.close(0));
  redirect.server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' }));
  t.ok(redirect.server.listening, 'the HTTP-to-HTTPS redirect listener survives an accept error too');
});

t.test('openFileLimit reads the soft limit; descriptorsNeeded covers clients, upstreams and headroom', async (t) => {
  const dir = t.testdir({
    limited: 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n',
    unlimited: 'Max open files            unlimited            unlimited            files\n',
  });
  t.equal(openFileLimit(join(dir, 'limited')), 1024);
  t.equal(openFileLimit(join(dir, 'unlimited')), undefined);
  t.equal(openFileLimit(join(dir, 'missing')), undefined);
  t.ok(descriptorsNeeded(10_000) > 20_000, 'two per connection plus headroom');
  t.ok(descriptorsNeeded(1) >= 256, 'a margin for everything else');
});

t.test('start-up says when the open-file limit is too low for limits.maxConnections', { skip: prlimit ? false : 'prlimit (util-linux) not found' }, async (t) => {
  const backend = await echoBackend(t);
  const dir = t.testdir();
  const file = join(dir, 'lb.config.json');
  writeFileSync(file, JSON.stringify(await lbConfig([{ id: 'echo', url: backend.url }], { limits: { maxConnections: 5000 } })));
  // Run the real CLI with at most 1024 descriptors (a common default). Node raises its soft
  // limit to the hard one at start-up, so the hard limit is what counts.
  const proc = spawn('prlimit', ['--nofile=1024:1024', process.execPath, join(repoRoot, 'bin', 'servoy-lb'), 'start', '-c', file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  proc.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  await waitFor(() => /"msg":"the open-file limit is too low/.test(out) || proc.exitCode !== null, 30_000, 'the start-up warning');
  const line = jsonLogs(out.split('\n')).find((l) => typeof l.msg === 'string' && l.msg.startsWith('the open-file limit is too low'));
  t.match(line, { level: 40, openFileLimit: 1024, maxConnections: 5000 }, 'a warning with the limit and what is needed');
  t.ok((line?.needed as number) > 10_000, `needed: two descriptors per connection and headroom (${String(line?.needed)})`);
  proc.kill('SIGTERM');
  await new Promise((resolve) => proc.once('exit', resolve));
});

t.test('TLS: a connection over the limit gets the 503 page over TLS', { skip: spawnSync('openssl', ['version']).status === 0 ? false : 'openssl not found' }, async (t) => {
  const dir = t.testdir();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const backend = await echoBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'echo', url: backend.url }], {
    listen: { host: '127.0.0.1', port: 0, tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } },
    limits: { maxConnections: 1 },
  }));
  const get = (agent: https.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> => new Promise((resolve, reject) => {
    const req = https.get(`${lb.url}/ping`, { agent, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
  const keep = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const other = new https.Agent({ keepAlive: false });
  t.teardown(() => { keep.destroy(); other.destroy(); });
  t.equal((await get(keep)).status, 200, 'the first connection is served and kept');
  const refused = await get(other);
  t.equal(refused.status, 503, 'a second connection gets 503');
  t.equal(refused.headers['retry-after'], '10', 'with Retry-After');
  t.match(refused.body, /<h1>503 /, 'and the 503 page');
  t.equal((await get(keep)).status, 200, 'the first connection is still served');
});
