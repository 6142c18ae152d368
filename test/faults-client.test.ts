/**
 * Client faults through the real CLI (SPEC "Proxying": bodies streamed both ways; a
 * client that goes away is not the backend's fault):
 * - a client aborting mid-upload (Content-Length and chunked): the upstream request is
 *   aborted (the backend sees its request end early: 'aborted' / 'close' before 'end'), it is
 *   counted as a client abort, not a backend error (GET /api/backends clientAborts/errors), the
 *   backend stays up, and no connection is left behind on either side;
 * - a client that stops reading a download: the backend's writes stall (backpressure); when it
 *   then aborts, the backend's response is closed and it stops writing, counted as a client abort,
 *   and no upstream connection is left open.
 * Raw sockets on the client side, so the test decides exactly when bytes go and stop.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t from 'tap';
import net from 'node:net';
import { lbConfig, startBalancer, waitFor, within } from './helpers/lb.js';
import { backendRow, MiB, openSocketFds, sleep, startBackend } from './fixtures/fault-backends.js';

function clientConfig(backends: { route: string; url: string }[]): Promise<Record<string, unknown>> {
  return lbConfig(backends.map((b) => ({ id: b.route, url: b.url })), {
    healthCheck: { path: '/health', interval: '30s', timeout: '2s' },
    outlier: { consecutiveFailures: 2, ejectFor: '60s' },
    log: { access: false },
    timeouts: { shutdownGrace: '1s' },
  });
}

/** A raw client connection to the balancer. */
function connect(url: string): Promise<net.Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A raw HTTP request on a fresh connection: answers status and body (Connection: close). */
async function rawExchange(url: string, head: string, body: Buffer = Buffer.alloc(0)): Promise<{ status: number; body: string }> {
  const socket = await connect(url);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.write(head);
  socket.write(body);
  await within(closed, 10_000);
  socket.destroy();
  const raw = Buffer.concat(chunks).toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
  return { status: m ? Number(m[1]) : 0, body: raw.slice(raw.indexOf('\r\n\r\n') + 4) };
}

interface UploadSeen {
  received: number;
  events: string[];
  complete: boolean | undefined;
}

t.test('a client aborting mid-upload: the upstream request is aborted, counted as a client abort, nothing leaks', { timeout: 60_000 }, async (t) => {
  const uploads: UploadSeen[] = [];
  const backend = await startBackend(t, 'up', (req, res) => {
    const seen: UploadSeen = { received: 0, events: [], complete: undefined };
    uploads.push(seen);
    req.on('data', (c: Buffer) => (seen.received += c.length));
    req.once('aborted', () => seen.events.push('aborted'));
    req.once('end', () => {
      seen.events.push('end');
      res.end(JSON.stringify({ bytes: seen.received }));
    });
    req.once('close', () => {
      seen.complete = req.complete;
      seen.events.push('close');
    });
  });
  const lb = await startBalancer(t, await clientConfig([backend]));
  const pid = lb.proc.pid!;
  await backendRow(lb, 'up');
  // Let the admin call's connection close. Safe on a busy machine: a socket still open
  // here only raises the baseline, which makes the "no more sockets than before" check
  // below more lenient, never failing.
  await sleep(300);
  const socketsBefore = await openSocketFds(pid);

  const variants = [
    { name: 'Content-Length', head: `POST /upload HTTP/1.1\r\nHost: lb\r\nContent-Type: application/octet-stream\r\nContent-Length: ${100 * MiB}\r\n\r\n`, piece: (b: Buffer) => b },
    { name: 'chunked', head: 'POST /upload HTTP/1.1\r\nHost: lb\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n', piece: (b: Buffer) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]) },
  ];
  for (const [i, variant] of variants.entries()) {
    const client = await connect(lb.url);
    client.on('error', () => undefined);
    client.write(variant.head);
    for (let n = 0; n < 4; n++) client.write(variant.piece(Buffer.alloc(MiB, n)));
    await waitFor(() => (uploads[i]?.received ?? 0) >= MiB, 10_000, `${variant.name}: the backend receiving the upload`);
    const abortedAt = Date.now();
    client.destroy();

    const seen = uploads[i]!;
    await waitFor(() => seen.events.includes('close'), 15_000, `${variant.name}: the backend's request to end`).catch(() => undefined);
    t.ok(seen.events.includes('close'), `${variant.name}: the backend's request ended ${Date.now() - abortedAt} ms after the client went (${seen.events.join(', ')})`);
    t.notOk(seen.events.includes('end'), `${variant.name}: before its body was complete: the upstream request was aborted, not finished`);
    t.equal(seen.complete, false, `${variant.name}: req.complete is false at close`);
    t.ok(seen.received < 100 * MiB, `${variant.name}: ${(seen.received / MiB).toFixed(1)} MiB of the body arrived`);
  }

  await waitFor(async () => (await backendRow(lb, 'up')).clientAborts === 2, 15_000, 'two client aborts counted').catch(() => undefined);
  t.match(await backendRow(lb, 'up'), { clientAborts: 2, errors: 0, state: 'up' }, 'counted as client aborts, not backend errors: the backend stays up');
  t.ok(lb.logs().every((l) => !/ejected/.test(l)), 'no ejection');

  // Nothing leaks: the aborted upstream connections are gone, the balancer's sockets back to their count.
  await waitFor(() => backend.trafficSockets().length === 0, 15_000, 'the backend\'s sockets to close', 100).catch(() => undefined);
  t.equal(backend.trafficSockets().length, 0, 'no upstream connection left open');
  // (A health probe's connection, if one opened meanwhile, closes after the pool's 4 s keep-alive.)
  let socketsAfter = Infinity;
  await waitFor(async () => (socketsAfter = await openSocketFds(pid)) <= socketsBefore, 15_000, 'the balancer\'s sockets', 200).catch(() => undefined);
  t.ok(socketsAfter <= socketsBefore, `the balancer holds no more sockets than before (${socketsBefore} before, ${socketsAfter} after)`);

  // And a whole upload still works.
  const body = Buffer.alloc(2 * MiB, 9);
  const ok = await rawExchange(lb.url, `POST /upload HTTP/1.1\r\nHost: lb\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`, body);
  t.equal(ok.status, 200);
  t.same(JSON.parse(ok.body), { bytes: 2 * MiB }, 'a complete upload after the aborted ones');
  t.equal(await lb.stop(), 0, 'clean exit');
});

t.test('a client aborting mid-download: the backend stops being read, then its response is closed', { timeout: 60_000 }, async (t) => {
  const TOTAL = 1024 * MiB;
  interface Download {
    socket: net.Socket;
    written: number;
    closedAt: number | undefined;
    finished: boolean;
    /** When the backend's last write was refused (res.write false) with no 'drain' since. */
    waitingSince: number | undefined;
  }
  const downloads: Download[] = [];
  const backend = await startBackend(t, 'down', (req, res) => {
    req.resume();
    if (req.url !== '/download') {
      res.end('hello');
      return;
    }
    const d: Download = { socket: req.socket, written: 0, closedAt: undefined, finished: false, waitingSince: undefined };
    downloads.push(d);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
    const chunk = Buffer.alloc(256 * 1024, 3);
    const pump = (): void => {
      d.waitingSince = undefined;
      while (d.written < TOTAL && !res.destroyed) {
        d.written += chunk.length;
        if (!res.write(chunk)) {
          d.waitingSince = Date.now();
          res.once('drain', pump);
          return;
        }
      }
      if (d.written >= TOTAL) {
        d.finished = true;
        res.end();
      }
    };
    res.once('close', () => {
      d.closedAt = Date.now();
      res.off('drain', pump);
    });
    pump();
  });
  const lb = await startBalancer(t, await clientConfig([backend]));

  /** Starts a download on a raw connection and stops reading after `stopAt` bytes. */
  const download = async (stopAt: number): Promise<net.Socket> => {
    const client = await connect(lb.url);
    client.on('error', () => undefined);
    let read = 0;
    client.on('data', (c: Buffer) => {
      read += c.length;
      if (read >= stopAt) client.pause();
    });
    client.write('GET /download HTTP/1.1\r\nHost: lb\r\n\r\n');
    await waitFor(() => read >= stopAt, 10_000, `the first ${stopAt / MiB} MiB at the client`);
    return client;
  };

  const client = await download(8 * MiB);
  const d = downloads[0]!;
  // The client reads nothing more: once the buffers on the way are full, the backend's writes
  // stall: it waits for a 'drain' that does not come. "Stalled" is a write refused a whole
  // second ago with no drain since; a busy machine only makes the buffers fill later, and
  // without backpressure the 1 GiB would be written long before the generous timeout.
  await waitFor(() => d.waitingSince !== undefined && Date.now() - d.waitingSince >= 1000, 60_000, 'the backend\'s writes to stall', 50).catch(() => undefined);
  const w2 = d.written;
  t.ok(d.waitingSince !== undefined, `the backend's writes stall while the client does not read (${(w2 / MiB).toFixed(1)} MiB written, the client read 8 MiB)`);
  t.ok(w2 < 64 * MiB, `only what fits the buffers on the way was written (${(w2 / MiB).toFixed(1)} MiB of ${TOTAL / MiB})`);
  t.equal(d.closedAt, undefined, 'the response is still open (a slow reader is not an abort)');

  // Now the client goes away.
  const abortedAt = Date.now();
  client.destroy();
  await waitFor(() => d.closedAt !== undefined, 15_000, 'the backend response to close').catch(() => undefined);
  t.ok(d.closedAt !== undefined, `the backend's response was closed ${d.closedAt === undefined ? '(never)' : `${d.closedAt - abortedAt} ms`} after the client aborted`);
  t.ok(d.socket.destroyed, 'with the connection that carried it');
  const afterClose = d.written;
  t.notOk(d.finished, 'the download was not sent to the end');

  // Two more aborted downloads (these abort while the body still flows).
  for (let i = 1; i <= 2; i++) {
    const c = await download(2 * MiB);
    c.destroy();
    await waitFor(() => downloads[i]?.closedAt !== undefined, 15_000, `download ${i + 1} closed at the backend`);
  }
  // Checked after two later downloads came and went, not after a sleep.
  t.equal(d.written, afterClose, 'the first aborted download wrote no more after its close');
  await waitFor(async () => (await backendRow(lb, 'down')).clientAborts === 3, 15_000, 'the client aborts counted').catch(() => undefined);
  t.match(await backendRow(lb, 'down'), { clientAborts: 3, errors: 0, state: 'up' }, 'counted as client aborts, not backend errors');

  // What is left towards the backend: nothing. An aborted exchange retires its connection and
  // opens no other (the last release's undici re-queued it and left a never-used one behind,
  // nodejs/undici#5845). Health-probe connections do not count.
  const settled = () => downloads.every((x) => x.socket.destroyed) && backend.trafficSockets().length === 0;
  await waitFor(settled, 15_000, 'the upstream connections to close', 100).catch(() => undefined);
  t.ok(downloads.every((x) => x.socket.destroyed), 'every connection that carried an aborted download is closed');
  t.equal(backend.trafficSockets().length, 0, 'no connection is left open');

  const ok = await rawExchange(lb.url, 'GET /hello HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n');
  t.same(ok, { status: 200, body: 'hello' }, 'the balancer keeps serving');
  t.equal(await lb.stop(), 0, 'clean exit');
});
