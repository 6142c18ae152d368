/**
 * Clients that tie up connections (SPEC "Proxying", config `timeouts.clientIdle`): a
 * slowloris trickling its headers gets 408 after the header timeout (min(clientIdle,
 * 60 s)) while normal clients are served; a client that stalls its request body gets 408
 * after clientIdle, its upstream request is aborted, and it never counts against the
 * backend (outlier ejection). Connection floods and limits.maxConnections:
 * hostile-connections.test.ts.
 */
import net from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { jsonLogs, lbConfig, startBalancer, waitFor } from './helpers/lb.js';
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

/** Sends `bytes` one byte every intervalMs (the first `atOnce` bytes at once); gives up (and destroys the socket) after maxMs. */
function trickle(url: string, bytes: string, intervalMs: number, maxMs: number, atOnce = 0): Promise<Trickle> {
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
      socket.write(bytes.slice(0, atOnce), 'latin1');
      sent = atOnce;
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
  const MAX_MS = 30_000; // far below the 2 minutes the head needs, far above the 8 s the timeout takes
  const slow = Array.from({ length: SLOW }, () => trickle(lb.url, head, 500, MAX_MS));
  let pending = SLOW;
  for (const p of slow) void p.then(() => pending--);

  // Meanwhile, normal clients on fresh connections.
  const normal: { status: number; ms: number }[] = [];
  const started = Date.now();
  while (pending > 0 && Date.now() - started < MAX_MS) {
    const t0 = Date.now();
    const res = await request(`${lb.url}/api/whoami`, { reset: true, headersTimeout: 20_000, bodyTimeout: 20_000 });
    await res.body.dump();
    normal.push({ status: res.statusCode, ms: Date.now() - t0 });
    await sleep(100); // pacing only
  }
  const results = await Promise.all(slow);
  for (const [i, r] of results.entries()) {
    t.ok(r.closedByServer, `slowloris ${i}: closed by the balancer (after ${r.ms} ms)`);
    // headersTimeout is 3 s; Node checks it every 5 s (connectionsCheckingInterval). Closed
    // by the balancer with a 408 long before the head could complete (2 minutes) is the
    // timeout firing; no upper bound beyond that, a busy machine may close late.
    t.ok(r.ms >= 2500, `slowloris ${i}: not before the header timeout (${r.ms} ms)`);
    t.ok(r.sent < head.length, `slowloris ${i}: its head never completed (${r.sent} of ${head.length} bytes sent)`);
    t.match(r.raw, /^HTTP\/1\.1 408 Request Timeout\r\n[^]*\r\nconnection: close\r\n[^]*<h1>408 Request Timeout<\/h1>/, `slowloris ${i}: answered with the balancer's 408 page`);
  }
  // While the slow clients were open (at least the 3 s header timeout): a few at the very
  // least, however busy the machine.
  t.ok(normal.length >= 3, `normal clients kept coming (${normal.length})`);
  t.same(normal.filter((n) => n.status !== 200), [], 'every normal client got 200');
  t.comment(`normal clients: slowest ${Math.max(...normal.map((n) => n.ms))} ms`);
  t.equal(sim!.stats().requests, normal.length, 'no trickled request reached the backend');
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

t.test('a stalled request body gets 408 after timeouts.clientIdle; the upstream request is aborted; the backend is not blamed', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { timeouts: { clientIdle: '2s' }, outlier: { consecutiveFailures: 2 } }));
  const variants = {
    'a tenth of the body': 'POST /upload HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 100\r\n\r\n0123456789',
    'no body byte': 'POST /upload HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 100\r\n\r\n',
    'a chunked body that stops': 'POST /upload HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
  };
  for (const [name, bytes] of Object.entries(variants)) {
    const before = backend.seen.length;
    const res = await probe(lb.url, bytes, { timeoutMs: 10_000 });
    t.ok(res.closed, `${name}: closed by the balancer (${res.closed ? `after ${res.ms} ms` : 'still open after 10 s'})`);
    // clientIdle 2 s, checked every 500 ms: not before it. The 408 below shows it was the
    // idle timeout; no upper bound but the probe's 10 s, a busy machine may close late.
    t.ok(res.ms >= 1900, `${name}: after clientIdle (${res.ms} ms)`);
    t.match(res.raw, /^HTTP\/1\.1 408 Request Timeout\r\n[^]*\r\nconnection: close\r\n[^]*<h1>408 Request Timeout<\/h1>/, `${name}: the balancer's 408 page`);
    // The head goes upstream at once; with no body byte the client's abort may come first.
    await waitFor(() => backend.seen.slice(before).every((r) => r.aborted || r.completed), 15_000, 'the upstream request to end');
    // A normal request after it, seen by the backend, closes the window (no sleep).
    const marker = `/marker-${before}`;
    t.equal((await probe(lb.url, `GET ${marker} HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n\r\n`)).status, 200, `${name}: the next request is served`);
    const markerAt = backend.seen.findIndex((r) => r.url === marker);
    const upstream = backend.seen.slice(before, markerAt).map((r) => [r.completed, r.aborted]);
    t.same(upstream, name === 'no body byte' && upstream.length === 0 ? [] : [[false, true]], `${name}: the upstream request (if any) was aborted, its body never completed`);
  }

  // A slow upload that keeps making progress is not cut: one byte every 400 ms for 4 s.
  const slow = await trickle(lb.url, `POST /slow HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 10\r\nConnection: close\r\n\r\n${'x'.repeat(10)}`, 400, 10_000, 'POST /slow HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 10\r\nConnection: close\r\n\r\n'.length);
  t.match(slow.raw, /^HTTP\/1\.1 200 /, `an upload that trickles but never idles for clientIdle is served (${slow.ms} ms)`);
  t.equal(backend.seen.at(-1)?.body.toString(), 'x'.repeat(10), 'with its whole body');

  const admin = await request(`${lb.adminUrl!}/api/backends`, { reset: true });
  const row = ((await admin.body.json()) as { backends: { state: string; errors: number; clientAborts: number }[] }).backends[0]!;
  t.match(row, { state: 'up', errors: 0, clientAborts: 3 }, 'counted as client aborts, not backend errors; the backend is still up');
  const access = jsonLogs(lb.logs()).filter((l) => l.log === 'access' && l.status === 408);
  t.same(access.map((l) => l.outcome), ['client-timeout', 'client-timeout', 'client-timeout'], 'the access log says client-timeout');
});
