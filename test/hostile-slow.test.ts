/**
 * Clients that tie up connections (SPEC "Proxying", config `timeouts.clientIdle` and
 * `limits.maxConnections`): a slowloris trickling its headers is cut by the header
 * timeout (min(clientIdle, 60 s)) while normal clients are served; connections over
 * maxConnections are dropped at once, and served again once slots free up; clients that
 * stall their request body cannot make a healthy backend look faulty (outlier ejection).
 * Last, a known gap kept runnable with todo assertions: no idle timeout on request bodies.
 */
import net from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { startSims } from './helpers/processes.js';
import { countingBackend, probe, sleep } from './fixtures/hostile-net.js';

/** What happened to a trickling client. */
interface Trickle {
  /** The server closed the connection (rather than the test giving up). */
  closedByServer: boolean;
  /** Milliseconds from connect to close. */
  ms: number;
  /** Bytes of the head sent before the close. */
  sent: number;
  raw: string;
}

/** Sends `bytes` one byte every intervalMs; gives up (and destroys the socket) after maxMs. */
function trickle(url: string, bytes: string, intervalMs: number, maxMs: number): Promise<Trickle> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    let sent = 0;
    let started = 0;
    let gaveUp = false;
    let raw = '';
    let ticker: NodeJS.Timeout | undefined;
    const limit = setTimeout(() => { gaveUp = true; socket.destroy(); }, maxMs);
    socket.on('connect', () => {
      started = Date.now();
      ticker = setInterval(() => {
        if (sent < bytes.length && socket.writable) socket.write(bytes[sent++]!, 'latin1');
      }, intervalMs);
    });
    socket.on('data', (chunk: Buffer) => { raw += chunk.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(limit);
      clearInterval(ticker);
      resolve({ closedByServer: !gaveUp && started > 0, ms: Date.now() - started, sent, raw });
    });
  });
}

t.test('slowloris: headers trickled one byte every 500 ms are cut by the header timeout; others are served', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!], { timeouts: { clientIdle: '3s' } }));
  // 250 bytes at 2 bytes a second would take two minutes to complete.
  const head = `GET /api/whoami HTTP/1.1\r\nHost: lb.test\r\nUser-Agent: ${'s'.repeat(200)}\r\n\r\n`;
  const SLOW = 10;
  const MAX_MS = 15_000;
  const slow = Array.from({ length: SLOW }, () => trickle(lb.url, head, 500, MAX_MS));
  let pending = SLOW;
  for (const p of slow) void p.then(() => pending--);

  // Meanwhile, normal clients on fresh connections.
  const normal: { status: number; ms: number }[] = [];
  const started = Date.now();
  while (pending > 0 && Date.now() - started < MAX_MS) {
    const t0 = Date.now();
    const res = await request(`${lb.url}/api/whoami`, { reset: true, headersTimeout: 5000, bodyTimeout: 5000 });
    await res.body.dump();
    normal.push({ status: res.statusCode, ms: Date.now() - t0 });
    await sleep(250);
  }
  const results = await Promise.all(slow);
  for (const [i, r] of results.entries()) {
    t.ok(r.closedByServer, `slowloris ${i}: closed by the balancer (after ${r.ms} ms)`);
    // headersTimeout is 3 s; Node checks it every 5 s (connectionsCheckingInterval).
    t.ok(r.ms >= 2500 && r.ms <= 9500, `slowloris ${i}: within the header timeout plus one check interval (${r.ms} ms)`);
    t.ok(r.sent < head.length, `slowloris ${i}: its head never completed (${r.sent} of ${head.length} bytes sent)`);
    t.ok(r.raw === '' || /^HTTP\/1\.1 (400|408) /.test(r.raw), `slowloris ${i}: answered 400/408 or just closed (${JSON.stringify(r.raw.slice(0, 30))})`);
  }
  t.ok(normal.length >= 8, `normal clients kept coming (${normal.length})`);
  t.same(normal.filter((n) => n.status !== 200), [], 'every normal client got 200');
  t.ok(Math.max(...normal.map((n) => n.ms)) < 2000, `promptly (slowest ${Math.max(...normal.map((n) => n.ms))} ms)`);
  t.equal(sim!.stats().requests, normal.length, 'no trickled request reached the backend');
});

t.test('limits.maxConnections: connections over the limit are dropped; freed slots serve again', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!], { limits: { maxConnections: 20 }, timeouts: { clientIdle: '2m' } }));
  const { hostname, port } = new URL(lb.url);
  interface Held { socket: net.Socket; closed: boolean; bytes: number }
  const held: Held[] = [];
  t.teardown(() => { for (const h of held) h.socket.destroy(); });
  for (let i = 0; i < 40; i++) {
    const socket = net.connect({ host: hostname, port: Number(port) });
    const h: Held = { socket, closed: false, bytes: 0 };
    socket.on('data', (chunk: Buffer) => { h.bytes += chunk.length; });
    socket.on('error', () => undefined);
    socket.on('close', () => { h.closed = true; });
    await new Promise<void>((resolve) => { socket.once('connect', () => resolve()); socket.once('close', () => resolve()); });
    held.push(h);
  }
  await waitFor(() => held.filter((h) => h.closed).length >= 20, 5000, '20 connections dropped');
  await sleep(300);
  t.same(held.map((h, i) => (h.closed ? i : -1)).filter((i) => i >= 0), Array.from({ length: 20 }, (_, i) => 20 + i), 'the 20 connections over the limit were dropped, the first 20 kept');
  t.same(held.filter((h) => h.closed).map((h) => h.bytes), Array(20).fill(0), 'dropped without a byte (Node closes them at accept; no 503)');

  const full = await probe(lb.url, 'GET /api/whoami HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n', { timeoutMs: 3000 });
  t.ok(full.closed && full.status === undefined, 'a new client while full is dropped too');
  const health = await request(`${lb.adminUrl!}/healthz`, { reset: true });
  t.equal(health.statusCode, 200, 'the admin API answers while the proxy is full');
  await health.body.dump();

  // A held connection is a real client connection: it is served.
  const first = held[0]!;
  const answered = new Promise<void>((resolve) => first.socket.once('data', () => resolve()));
  first.socket.write('GET /api/whoami HTTP/1.1\r\nHost: lb.test\r\n\r\n');
  await answered;
  t.ok(first.bytes > 0 && !first.closed, 'a connection within the limit is served');

  for (const h of held.slice(0, 10)) h.socket.destroy();
  let res = await probe(lb.url, 'GET /api/whoami HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n');
  await waitFor(async () => {
    if (res.status === 200) return true;
    res = await probe(lb.url, 'GET /api/whoami HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n');
    return res.status === 200;
  }, 5000, 'a new connection to be served after slots freed up');
  const more = await Promise.all(Array.from({ length: 8 }, () => probe(lb.url, 'GET /api/whoami HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n')));
  t.same(more.map((r) => r.status), Array(8).fill(200), '8 new clients served at once in the 10 freed slots');
  t.equal(lb.proc.exitCode, null, 'the balancer is running');
});

t.test('clients that stall their request body cannot get a healthy backend ejected', async (t) => {
  // The backend closes connections on which nothing arrives for 1.5 s (Tomcat: connectionTimeout).
  const backend = await countingBackend(t, { idleCloseMs: 1500 });
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { outlier: { consecutiveFailures: 5, ejectFor: '30s' } }));
  const admin = async (): Promise<{ state: string; errors: number }> => {
    const res = await request(`${lb.adminUrl!}/api/backends`, { reset: true });
    return ((await res.body.json()) as { backends: { state: string; errors: number }[] }).backends[0]!;
  };
  const variants = {
    // Announces a body and sends none: the request waits on a pooled upstream connection
    // that the backend, having received nothing on it, closes as idle.
    'no body byte': 'POST /stall HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 100\r\n\r\n',
    // Sends a tenth of its body: the backend's read timeout closes the connection.
    'a tenth of the body': 'POST /stall HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 100\r\n\r\n0123456789',
  };
  for (const [name, bytes] of Object.entries(variants)) {
    // Warm the upstream pool so idle keep-alive connections are there to be picked.
    await Promise.all(Array.from({ length: 8 }, async () => (await request(`${lb.url}/warm`, { reset: true })).body.dump()));
    const stalled = await Promise.all(Array.from({ length: 8 }, () => probe(lb.url, bytes, { timeoutMs: 6000 })));
    const after = await admin();
    t.equal(after.state, 'up', `${name}: 8 stalling clients did not get the backend ejected`);
    t.equal(after.errors, 0, `${name}: and counted no error against it`);
    t.same(stalled.map((r) => r.status ?? 'none').filter((s) => s !== 400 && s !== 'none'), [], `${name}: the stalled clients got 400 or nothing (${JSON.stringify(stalled.map((r) => r.status ?? 'none'))})`);
    const ok = await request(`${lb.url}/api/whoami`, { reset: true });
    t.equal(ok.statusCode, 200, `${name}: others are still served`);
    await ok.body.dump();
  }
});

// A gap, kept runnable: assertions marked todo report what happens without failing the suite.
const IDLE_BODY_TODO = 'no idle timeout while a request body is received (server.timeout 0, requestTimeout 0): a client that stops mid-body holds its connection, and an upstream request, until the backend gives up';

t.test('an idle request body is cut after timeouts.clientIdle', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { timeouts: { clientIdle: '2s' } }));
  const res = await probe(lb.url, 'POST /upload HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 100\r\n\r\n0123456789', { timeoutMs: 10_000 });
  t.ok(res.closed && res.ms < 9000, `closed by the balancer within clientIdle plus one check interval (${res.closed ? `after ${res.ms} ms` : 'still open after 10 s'})`, { todo: IDLE_BODY_TODO });
  // Once the client is gone (the probe gave up), the upstream request is aborted.
  await waitFor(() => backend.seen.length > 0 && backend.seen.every((r) => r.aborted || r.completed), 5000, 'the upstream request to end');
  t.same(backend.seen.map((r) => r.completed), [false], 'the backend never saw the incomplete body complete');
});
