/**
 * A backend that answers before it has the whole request body (an early 413, a 401 or 417
 * to a request that sent Expect: 100-continue) and HTTP/1.0 keep-alive, over raw sockets
 * (SPEC "Proxying": no byte from a client reaches a backend without having been parsed).
 *
 * The balancer answers Expect: 100-continue itself and streams the body on, so for the
 * backend an Expect is an ordinary upload. When the answer comes before the body is
 * complete, the rest of the body is never read as a request by anyone: the answer is
 * relayed with Connection: close and the client connection ends (before, it stayed open
 * with the unread body, and a keep-alive client's next request hung). HTTP/1.0 requests
 * get HTTP/1.0 connection semantics: kept open only when asked, with each answer framed.
 */
import http from 'node:http';
import type net from 'node:net';
import t, { type Test } from 'tap';
import type { TestLike } from './helpers/processes.js';
import { isHealthProbe, lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { probe } from './fixtures/hostile-net.js';
import { rawClient } from './fixtures/raw-client.js';

const H = 'Host: lb.test\r\n';

/** One request as the backend saw it. */
interface Seen { method: string; url: string; bodyBytes: number; complete: boolean }

/**
 * A node:http backend. `/early/NNN` answers NNN at once, without reading the body (Node's
 * server then reads the body to its end, by its framing); `/chunked` answers with a chunked
 * body; anything else is read to its end and answered 200 "METHOD URL BYTES".
 */
async function earlyBackend(t: TestLike): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    if (isHealthProbe(req)) {
      req.resume();
      res.end('ok');
      return;
    }
    const rec: Seen = { method: req.method ?? '', url: req.url ?? '', bodyBytes: 0, complete: false };
    seen.push(rec);
    req.on('data', (c: Buffer) => { rec.bodyBytes += c.length; });
    req.on('end', () => { rec.complete = true; });
    req.on('error', () => undefined);
    const early = /^\/early\/(\d{3})$/.exec(req.url ?? '');
    if (early) {
      res.writeHead(Number(early[1]), { 'content-type': 'text/plain', 'content-length': 5, 'www-authenticate': 'Basic realm="x"' });
      res.end('early');
      return;
    }
    req.on('end', () => {
      if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('chunk-one;');
        res.end('chunk-two');
        return;
      }
      res.end(`${req.method} ${req.url} ${rec.bodyBytes}`);
    });
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, seen };
}

/** A body of `size` bytes that is full of request lines, so a desync would show up as requests. */
function smugglingBody(size: number): string {
  const line = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
  return line.repeat(Math.ceil(size / line.length)).slice(0, size);
}

/** Asserts, after a request that did reach the backend, that none of the given paths ever did. */
async function onlyReached(t: Test, lbUrl: string, seen: Seen[], expected: string[]): Promise<void> {
  const marker = await probe(lbUrl, `GET /marker HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  t.equal(marker.status, 200, 'a later request is served');
  await waitFor(() => seen.some((r) => r.url === '/marker'), 5000, 'the marker request at the backend');
  t.same(seen.map((r) => `${r.method} ${r.url}`), [...expected, 'GET /marker'], 'the backend saw exactly these requests');
  seen.length = 0;
}

t.test('Expect: 100-continue answered early with 401 / 417: relayed with Connection: close, the body never becomes a request', async (t) => {
  const backend = await earlyBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'early', url: backend.url }], { log: { access: false }, outlier: { consecutiveFailures: 1000 } }));
  for (const status of [401, 417]) {
    const size = 200_000;
    const client = await rawClient(t, lb.url);
    const body = smugglingBody(size);
    client.write(`POST /early/${status} HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: ${size}\r\n\r\n`);
    // The balancer says 100 itself (the backend never sees the Expect); the body starts, and
    // the backend's final answer comes after its first bytes.
    await client.until(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    client.write(body.slice(0, 1000));
    await client.until(new RegExp(`^HTTP/1\\.1 100 Continue\\r\\n\\r\\nHTTP/1\\.1 ${status} [^]*\\r\\n\\r\\nearly$`));
    const head = client.received().split('\r\n\r\n')[1]!;
    t.match(head, /\r\nConnection: close(\r\n|$)/i, `${status}: the answer says Connection: close`);
    t.match(head, /\r\nwww-authenticate: Basic/i, `${status}: the backend's headers are relayed`);
    // The rest of the body (full of request lines), then a pipelined request.
    client.write(`${body.slice(1000)}GET /after HTTP/1.1\r\n${H}\r\n`);
    await client.closed();
    t.equal(client.received().match(/HTTP\/1\.1 \d{3} /g)?.length, 2, `${status}: the 100 and the answer, nothing else`);
    await onlyReached(t, lb.url, backend.seen, [`POST /early/${status}`]);
  }
});

t.test('Expect: 100-continue with the body sent at once: the answer comes after it, the connection stays in sync', async (t) => {
  const backend = await earlyBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'early', url: backend.url }], { log: { access: false }, outlier: { consecutiveFailures: 1000 } }));
  const body = smugglingBody(300);
  const res = await probe(lb.url, `POST /upload HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n${body}GET /after HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { timeoutMs: 10_000 });
  t.same(res.raw.match(/HTTP\/1\.1 \d{3} /g), ['HTTP/1.1 100 ', 'HTTP/1.1 200 ', 'HTTP/1.1 200 '], 'the 100, the upload\'s answer, the pipelined request\'s answer');
  t.match(res.raw, new RegExp(`POST /upload ${body.length}`), 'the whole body reached the backend as the upload\'s body');
  t.ok(res.closed);
  await onlyReached(t, lb.url, backend.seen, ['POST /upload', 'GET /after']);
});

t.test('an early 413 while the body is still arriving: Connection: close, the rest of the body never becomes a request', async (t) => {
  const backend = await earlyBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'early', url: backend.url }], { log: { access: false }, outlier: { consecutiveFailures: 1000 } }));
  for (const size of [10_000, 3_000_000]) {
    const body = smugglingBody(size);
    const client = await rawClient(t, lb.url);
    client.write(`POST /early/413 HTTP/1.1\r\n${H}Content-Length: ${size}\r\n\r\n${body.slice(0, 1000)}`);
    await client.until(/^HTTP\/1\.1 413 [^]*\r\n\r\nearly$/);
    t.match(client.received(), /\r\nConnection: close\r\n/i, `${size} bytes: the 413 says Connection: close`);
    client.write(`${body.slice(1000)}GET /after HTTP/1.1\r\n${H}\r\n`);
    await client.closed();
    t.equal(client.received().match(/HTTP\/1\.1 \d{3} /g)?.length, 1, `${size} bytes: one answer, the connection closed after it`);
    await onlyReached(t, lb.url, backend.seen, ['POST /early/413']);
  }
});

t.test('HTTP/1.0: keep-alive only when asked, every answer framed, pipelined requests in order', async (t) => {
  const backend = await earlyBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'early', url: backend.url }], { log: { access: false } }));

  const kept = await probe(lb.url,
    'GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' +
    'POST /b HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n' +
    'GET /c HTTP/1.0\r\n\r\n' +
    'GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', { timeoutMs: 10_000 });
  const answers = kept.raw.split(/(?=HTTP\/1\.1 \d{3} )/);
  t.equal(answers.length, 3, 'three answers: the connection ends after the request without keep-alive');
  t.match(answers[0], /^HTTP\/1\.1 200 [^]*\r\nConnection: keep-alive\r\n[^]*\r\n\r\nGET \/a 0$/, '/a: kept alive, framed');
  t.match(answers[0], /\r\nContent-Length: \d+\r\n/i, '/a: with a Content-Length');
  t.match(answers[1], /^HTTP\/1\.1 200 [^]*\r\nConnection: keep-alive\r\n[^]*\r\n\r\nPOST \/b 35$/, '/b: its body is a body, 35 bytes');
  t.match(answers[2], /^HTTP\/1\.1 200 [^]*\r\n\r\nGET \/c 0$/, '/c: framed');
  t.match(answers[2], /\r\nConnection: close\r\n/, '/c: no keep-alive asked, Connection: close');
  t.ok(kept.closed, 'closed after /c');
  // The bytes after /c (a request that closes the connection) are not a request: /d is never forwarded.
  await onlyReached(t, lb.url, backend.seen, ['GET /a', 'POST /b', 'GET /c']);

  // An answer without a length (chunked from the backend) cannot be framed for HTTP/1.0:
  // it is sent until the connection closes, and the connection does close.
  const unframed = await probe(lb.url, 'GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', { timeoutMs: 10_000 });
  t.match(unframed.raw, /^HTTP\/1\.1 200 /, '200');
  t.notMatch(unframed.raw, /transfer-encoding/i, 'not chunked to an HTTP/1.0 client');
  t.match(unframed.raw, /\r\n\r\nchunk-one;chunk-two$/, 'the body as is');
  t.match(unframed.raw, /\r\nConnection: close\r\n/i, 'Connection: close');
  t.ok(unframed.closed, 'and closed: the end of the body is the end of the connection');
});

t.test('a malformed request pipelined behind a valid one: its 400 never overtakes the valid one\'s answer', async (t) => {
  const backend = await earlyBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'early', url: backend.url }], { log: { access: false } }));
  for (const [name, bad] of Object.entries({
    'a bare LF inside the head': 'GET /bad HTTP/1.1\nHost: lb.test\r\n\r\n',
    'a space in the target': 'GET /a b HTTP/1.1\r\nHost: lb.test\r\n\r\n',
    'Content-Length with Transfer-Encoding': 'POST /bad HTTP/1.1\r\nHost: lb.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  })) {
    const res = await probe(lb.url, `GET /first HTTP/1.1\r\n${H}\r\n${bad}`, { timeoutMs: 10_000 });
    t.ok(res.closed, `${name}: the connection is closed`);
    const statuses = res.raw.match(/HTTP\/1\.1 \d{3} /g) ?? [];
    // Either the valid request's answer first (and then, at most, the 400), or nothing at all:
    // never a 400 the client would take for the answer to GET /first.
    t.ok(statuses.length === 0 || statuses[0] === 'HTTP/1.1 200 ', `${name}: no 400 ahead of the first answer (got ${JSON.stringify(statuses)})`);
    if (statuses.length > 0) t.match(res.raw, /\r\n\r\nGET \/first 0/, `${name}: the first answer is the first request's`);
    const marker = await probe(lb.url, `GET /marker HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    t.equal(marker.status, 200, `${name}: a later request is served`);
    await waitFor(() => backend.seen.some((r) => r.url === '/marker'), 5000, 'the marker request at the backend');
    t.same(backend.seen.filter((r) => r.url !== '/first' && r.url !== '/marker'), [], `${name}: the malformed request never reached the backend`);
    backend.seen.length = 0;
  }
});
