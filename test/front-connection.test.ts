/**
 * The raw-socket client side (src/proxy/front/): a FrontConnection on a real `net` server
 * (and one `tls` server), driven by raw client sockets with scripted bytes. An echo handler
 * answers `METHOD TARGET BODYLENGTH`; a few targets change how it answers (unknown length,
 * before the body, never). Every wait is for a condition, never for a time.
 */
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { waitFor } from './helpers/lb.js';
import { loadErrorPages } from '../src/proxy/error-pages.js';
import { FrontConnection, type FrontHandler, type FrontSettings } from '../src/proxy/front/front-connection.js';
import type { AbortReason, FrontRequest } from '../src/proxy/front/front-request.js';
import { BodyWire, renderResponseHead, responseFraming, utcDate } from '../src/proxy/front/response-head.js';
import type { RequestHead } from '../src/proxy/codec/request-head.js';
import { rawClient } from './fixtures/raw-client.js';
import { makeCert, skipTls } from './fixtures/tls-cert.js';

const H = 'Host: lb.test\r\n';
const pages = loadErrorPages({});

interface Front {
  url: string;
  /** Requests seen, as `METHOD TARGET`. */
  seen: string[];
  /** Requests aborted, with why. */
  aborted: [string, AbortReason][];
  /** Requests held unanswered by /hold, to answer later. */
  held: FrontRequest[];
  connections: FrontConnection[];
}

const BASE: FrontSettings = { maxHeaderBytes: 1024, headersTimeout: 60_000, keepAliveTimeout: 60_000, bodyIdleTimeout: 0, pages, closing: false };

/** The echo handler; see the file comment. */
function echo(front: Pick<Front, 'seen' | 'aborted' | 'held'>, upgrade?: FrontHandler['upgrade']): FrontHandler {
  return {
    upgrade,
    request(req) {
      const { method, target } = req.head;
      front.seen.push(`${method} ${target}`);
      req.listener = { aborted: (why) => front.aborted.push([target, why]) };
      if (target === '/hold') {
        front.held.push(req);
        return;
      }
      if (target === '/early') {
        const text = Buffer.from('too large');
        req.writeHead(413, 'Payload Too Large', ['Content-Length', String(text.length)], text.length);
        req.end(text);
        return;
      }
      let length = 0;
      const answer = (): void => {
        if (target === '/unknown-length') {
          req.writeHead(200, 'OK', ['X-Kind', 'stream'], -1);
          req.write(Buffer.from('part-one;'));
          req.end(Buffer.from('part-two'));
          return;
        }
        const text = Buffer.from(`${method} ${target} ${length}`);
        req.writeHead(200, 'OK', ['Content-Length', String(text.length)], text.length);
        req.end(text);
      };
      if (req.body === undefined) {
        answer();
        return;
      }
      if (target === '/no-read') {
        front.held.push(req);
        return;
      }
      req.body.on('data', (chunk: Buffer) => (length += chunk.length));
      req.body.on('end', answer);
      req.body.on('error', () => undefined);
    },
  };
}

async function startFront(t: Tap.Test, settings: Partial<FrontSettings> = {}, upgrade?: FrontHandler['upgrade']): Promise<Front> {
  const front: Front = { url: '', seen: [], aborted: [], held: [], connections: [] };
  const all = { ...BASE, ...settings };
  const server = net.createServer((socket) => front.connections.push(new FrontConnection(socket, all, echo(front, upgrade))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    for (const c of front.connections) c.socket.destroy();
  }));
  front.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return front;
}

/** Split an answer stream into responses at each status line. */
function answers(raw: string): string[] {
  return raw.split(/(?=HTTP\/1\.1 \d{3} )/).filter((s) => s !== '');
}

/** Waits for a condition (helpers' waitFor, polled every 5 ms, bounded generously for a busy machine). */
function until(cond: () => boolean, what: string): Promise<void> {
  return waitFor(cond, 20_000, what, 5);
}

t.test('response head: framing decisions and rendering', async (t) => {
  const cases: [string, string, number, number, number, boolean, BodyWire, boolean][] = [
    // name, method, minor, status, length, keepAlive asked, wire, keepAlive after
    ['known length', 'GET', 1, 200, 5, true, BodyWire.Length, true],
    ['HEAD has no body', 'HEAD', 1, 200, -1, true, BodyWire.None, true],
    ['204 has no body', 'GET', 1, 204, -1, true, BodyWire.None, true],
    ['304 has no body', 'GET', 1, 304, 10, true, BodyWire.None, true],
    ['1xx has no body', 'GET', 1, 103, -1, true, BodyWire.None, true],
    ['unknown length to 1.1: chunked', 'GET', 1, 200, -1, true, BodyWire.Chunked, true],
    ['unknown length to 1.0: close-delimited', 'GET', 0, 200, -1, true, BodyWire.Close, false],
    ['close asked stays close', 'GET', 1, 200, 5, false, BodyWire.Length, false],
  ];
  for (const [name, method, minor, status, length, keepAlive, wire, after] of cases) {
    t.same(responseFraming(method, minor, status, length, keepAlive), { wire, keepAlive: after }, name);
  }
  const head = renderResponseHead(200, 'OK', ['X-A', '1'], { wire: BodyWire.Chunked, keepAlive: true }, 60).toString('latin1');
  t.match(head, /^HTTP\/1\.1 200 OK\r\nX-A: 1\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\nDate: [^\r]+ GMT\r\nTransfer-Encoding: chunked\r\n\r\n$/);
  const dated = renderResponseHead(404, 'Not Found', ['date', 'then'], { wire: BodyWire.Length, keepAlive: false }, 60).toString('latin1');
  t.equal(dated, 'HTTP/1.1 404 Not Found\r\ndate: then\r\nConnection: close\r\n\r\n', 'the caller\'s Date is kept, no second one');
  t.equal(utcDate(), utcDate(), 'the date is cached');
});

t.test('keep-alive, pipelining in order, heads and bodies split anywhere', async (t) => {
  const front = await startFront(t);
  const c = await rawClient(t, front.url);
  c.write(`GET /a HTTP/1.1\r\n${H}\r\nPOST /b HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\n${H}\r\n`);
  await c.until(/GET \/c 0$/);
  const got = answers(c.received());
  t.equal(got.length, 3, 'three answers');
  t.match(got[0], /^HTTP\/1\.1 200 OK\r\nContent-Length: 8\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\nDate: .*\r\n\r\nGET \/a 0$/);
  t.match(got[1], /\r\n\r\nPOST \/b 5$/);
  t.match(got[2], /\r\n\r\nGET \/c 0$/);
  t.notOk(c.isClosed(), 'kept open');

  // Byte by byte: a head and a chunked body split at every position.
  const d = await rawClient(t, front.url);
  const bytes = `POST /chunked HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-T: 1\r\n\r\nGET /after HTTP/1.1\r\n${H}Connection: close\r\n\r\n`;
  for (const ch of bytes) d.write(ch);
  await d.closed();
  const split = answers(d.received());
  t.match(split[0], /\r\n\r\nPOST \/chunked 7$/, 'the chunked body de-framed: 7 bytes');
  t.match(split[1], /Connection: close\r\n[^]*GET \/after 0$/, 'Connection: close honoured');
  t.same(front.seen, ['GET /a', 'POST /b', 'GET /c', 'POST /chunked', 'GET /after']);
});

t.test('HTTP/1.0: keep-alive only when asked; unknown lengths close-delimited; 1.1 gets chunks', async (t) => {
  const front = await startFront(t);
  const c = await rawClient(t, front.url);
  c.write('GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /c HTTP/1.0\r\n\r\nGET /d HTTP/1.0\r\n\r\n');
  await c.closed();
  const got = answers(c.received());
  t.equal(got.length, 2, 'the connection ends after the request without keep-alive');
  t.match(got[0], /Connection: keep-alive\r\n[^]*GET \/a 0$/);
  t.match(got[1], /Connection: close\r\n[^]*GET \/c 0$/);
  t.same(front.seen, ['GET /a', 'GET /c'], '/d is never read as a request');

  const old = await rawClient(t, front.url);
  old.write('GET /unknown-length HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  await old.closed();
  t.notMatch(old.received(), /transfer-encoding/i, 'not chunked to HTTP/1.0');
  t.match(old.received(), /Connection: close\r\nDate: [^\r]*\r\n\r\npart-one;part-two$/, 'close-delimited');

  const now = await rawClient(t, front.url);
  now.write(`GET /unknown-length HTTP/1.1\r\n${H}\r\nHEAD /unknown-length HTTP/1.1\r\n${H}\r\n`);
  await now.until(/0\r\n\r\nHTTP\/1\.1 200 OK[^]*\r\n\r\n$/);
  t.match(now.received(), /Transfer-Encoding: chunked\r\n\r\n9\r\npart-one;\r\n8\r\npart-two\r\n0\r\n\r\n/, 'chunked to HTTP/1.1');
  t.notOk(now.isClosed(), 'kept open');
});

t.test('refusals: a page with Connection: close, then the connection closes', async (t) => {
  const front = await startFront(t);
  const cases: [string, string, RegExp][] = [
    ['bare LF', 'GET /a HTTP/1.1\nHost: x\r\n\r\n', /^HTTP\/1\.1 400 Bad Request\r\n/],
    ['unknown method', `BREW /a HTTP/1.1\r\n${H}\r\n`, /^HTTP\/1\.1 400 /],
    ['missing Host', 'GET /a HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['head over maxHeaderBytes', `GET /a HTTP/1.1\r\n${H}X-Big: ${'x'.repeat(2000)}\r\n\r\n`, /^HTTP\/1\.1 431 /],
    ['Expect other than 100-continue', `POST /a HTTP/1.1\r\n${H}Expect: tea\r\nContent-Length: 1\r\n\r\nx`, /^HTTP\/1\.1 417 /],
    ['malformed chunk size', `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n`, /^HTTP\/1\.1 400 /],
    ['an upgrade without an upgrade handler', `GET /ws HTTP/1.1\r\n${H}Connection: upgrade\r\nUpgrade: websocket\r\n\r\n`, /^HTTP\/1\.1 400 /],
  ];
  for (const [name, bytes, status] of cases) {
    const c = await rawClient(t, front.url);
    c.write(bytes);
    await c.closed();
    t.match(c.received(), status, name);
    t.match(c.received(), /\r\nconnection: close\r\n/i, `${name}: Connection: close`);
  }
  t.same(front.aborted, [], 'a malformed chunk in the head\'s own read is refused before the request is handed on');
  t.same(front.seen, [], 'no request reached the handler');

  // A malformed chunk in a later read: the request in progress is aborted, the client gets 400.
  const late = await rawClient(t, front.url);
  late.write(`POST /late HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n`);
  await until(() => front.seen.length === 1, 'the request at the handler');
  late.write('zz\r\n');
  await late.closed();
  t.match(late.received(), /^HTTP\/1\.1 400 /);
  t.same(front.aborted, [['/late', 'client-abort']], 'the request was aborted');
  front.seen.length = 0;

  // A malformed request behind a valid one: its 400 after the valid one's answer.
  const c = await rawClient(t, front.url);
  c.write(`GET /first HTTP/1.1\r\n${H}\r\nGET /a b HTTP/1.1\r\n${H}\r\n`);
  await c.closed();
  const got = answers(c.received());
  t.match(got[0], /^HTTP\/1\.1 200 [^]*GET \/first 0$/, 'the valid answer first');
  t.match(got[1], /^HTTP\/1\.1 400 /, 'then the 400');
});

t.test('Expect: 100-continue is answered before the body is read', async (t) => {
  const front = await startFront(t);
  const c = await rawClient(t, front.url);
  c.write(`POST /up HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 3\r\n\r\n`);
  await c.until(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  c.write('abc');
  await c.until(/POST \/up 3$/);
  t.pass('100, then the answer');
});

t.test('an answer before the whole body closes the connection after it', async (t) => {
  const front = await startFront(t);
  const c = await rawClient(t, front.url);
  c.write(`POST /early HTTP/1.1\r\n${H}Content-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
  await c.until(/too large$/);
  t.match(c.received(), /^HTTP\/1\.1 413 [^]*Connection: close\r\n/);
  c.write(`${'x'.repeat(5000)}GET /smuggled HTTP/1.1\r\n${H}\r\n`);
  await c.closed();
  t.equal(answers(c.received()).length, 1, 'one answer');
  t.same(front.seen, ['POST /early']);
});

t.test('timeouts: 408 for a slow head, silent close when idle, 408 for a stalled body', async (t) => {
  const front = await startFront(t, { headersTimeout: 300, keepAliveTimeout: 300, bodyIdleTimeout: 300 });
  const slow = await rawClient(t, front.url);
  slow.write('GET /a HTTP/1.1\r\n');
  await slow.closed();
  t.match(slow.received(), /^HTTP\/1\.1 408 /, 'head timeout: 408');

  const idle = await rawClient(t, front.url);
  idle.write(`GET /a HTTP/1.1\r\n${H}\r\n`);
  await idle.closed();
  t.equal(answers(idle.received()).length, 1, 'keep-alive idle: closed after the one answer, no page');

  const stalled = await rawClient(t, front.url);
  stalled.write(`POST /b HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\nabc`);
  await stalled.closed();
  t.match(stalled.received(), /^HTTP\/1\.1 408 /, 'stalled body: 408');
  t.same(front.aborted, [['/b', 'client-timeout']], 'the request was aborted as a client timeout');

  const answering = await rawClient(t, front.url);
  answering.write(`POST /hold HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\nabc`);
  await until(() => front.held.length === 1, 'the held request');
  front.held[0]!.writeHead(200, 'OK', ['Content-Length', '100'], 100);
  await answering.closed();
  t.match(answering.received(), /^HTTP\/1\.1 200 /, 'a stalled body after the answer started: the connection is cut');
  t.same(front.aborted[1], ['/hold', 'client-timeout']);
});

t.test('body backpressure: the client socket is paused while the consumer is behind', async (t) => {
  const front = await startFront(t);
  const client = net.connect(Number(new URL(front.url).port), '127.0.0.1');
  t.teardown(() => client.destroy());
  const size = 8 * 1024 * 1024;
  client.write(`POST /no-read HTTP/1.1\r\n${H}Content-Length: ${size}\r\n\r\n`);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let written = 0;
  const pump = (): void => {
    while (written < size) {
      written += chunk.length;
      if (!client.write(chunk)) {
        client.once('drain', pump);
        return;
      }
    }
  };
  pump();
  await until(() => front.held.length === 1, 'the request');
  const req = front.held[0]!;
  const socket = front.connections[0]!.socket;
  await until(() => socket.isPaused(), 'the client socket paused');
  t.ok(req.body!.readableLength < size, 'the body is not buffered whole');
  t.ok(written < size || socket.bytesRead < size, 'the client is held back');
  let got = 0;
  req.body!.on('data', (b: Buffer) => (got += b.length));
  await until(() => got >= size, 'the whole body read');
  t.equal(got, size, 'every byte arrived');
});

t.test('response backpressure: write() says when to wait, onDrain says when to go on', async (t) => {
  const front = await startFront(t);
  const client = net.connect(Number(new URL(front.url).port), '127.0.0.1');
  t.teardown(() => client.destroy());
  client.pause();
  client.write(`GET /hold HTTP/1.1\r\n${H}\r\n`);
  await until(() => front.held.length === 1, 'the request');
  const req = front.held[0]!;
  const size = 16 * 1024 * 1024;
  req.writeHead(200, 'OK', ['Content-Length', String(size)], size);
  const chunk = Buffer.alloc(256 * 1024, 0x62);
  let sent = 0;
  let refusals = 0;
  await new Promise<void>((resolve) => {
    const go = (): void => {
      while (sent < size) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          refusals++;
          req.onDrain(go);
          return;
        }
      }
      req.end();
      resolve();
    };
    go();
    let received = 0;
    client.on('data', (b: Buffer) => (received += b.length));
    client.resume();
  });
  t.ok(refusals > 0, 'write() returned false at least once');
  t.equal(req.bytesOut, size);
});

t.test('client aborts: the listener hears it once; a late answer is dropped', async (t) => {
  const front = await startFront(t);
  const c = await rawClient(t, front.url);
  c.write(`GET /hold HTTP/1.1\r\n${H}\r\n`);
  await until(() => front.held.length === 1, 'the request');
  const conn = front.connections[0]!;
  const client = net.connect(Number(new URL(front.url).port), '127.0.0.1');
  client.end(`GET /hold HTTP/1.1\r\n${H}\r\n`);
  await until(() => front.held.length === 2, 'the half-closed request');
  await until(() => front.aborted.length === 1, 'the abort of the half-closed client');
  t.same(front.aborted, [['/hold', 'client-abort']], 'a client that ends its side aborts the request');
  const late = front.held[1]!;
  late.writeHead(200, 'OK', ['Content-Length', '1'], 1);
  late.end(Buffer.from('x'));
  late.destroy();
  t.ok(late.finished);
  t.notOk(conn.socket.destroyed, 'the other connection is untouched');
  front.held[0]!.sendPage(pages[503]);
  await c.until(/retry-after: 10\r\n[^]*<\/html>\n$/);
  t.match(c.received(), /^HTTP\/1\.1 503 Service Unavailable\r\n/, 'a page through the writer');
  t.match(c.received(), /Connection: keep-alive\r\n/, '503 keeps the connection');
});

t.test('a head is held for a body that follows at once, else sent at once', async (t) => {
  const front = await startFront(t);
  const c = await rawClient(t, front.url);
  c.write(`GET /hold HTTP/1.1\r\n${H}\r\n`);
  await until(() => front.held.length === 1, 'the first request');
  const first = front.held[0]!;
  first.writeHead(200, 'OK', ['Content-Length', '3'], 3, true);
  t.equal(first.socket.writableCorked, 1, 'held back for the body');
  first.end(Buffer.from('abc'));
  t.equal(first.socket.writableCorked, 0, 'sent with the body');
  await until(() => /\r\n\r\nabc$/.test(c.received()), 'the first response');
  c.write(`GET /hold HTTP/1.1\r\n${H}\r\n`);
  await until(() => front.held.length === 2, 'the second request');
  const second = front.held[1]!;
  second.writeHead(200, 'OK', ['Content-Length', '3'], 3);
  t.equal(second.socket.writableCorked, 0, 'no body announced: not held');
  await until(() => answers(c.received()).length === 2, 'the second head, before any of its body');
  second.end(Buffer.from('def'));
  await until(() => /\r\n\r\ndef$/.test(c.received()), 'the second body');
});

t.test('a page after the response started cuts the connection', async (t) => {
  const front = await startFront(t);
  const c = await rawClient(t, front.url);
  c.write(`GET /hold HTTP/1.1\r\n${H}\r\n`);
  await until(() => front.held.length === 1, 'the request');
  const req = front.held[0]!;
  req.writeHead(200, 'OK', ['Content-Length', '10'], 10);
  req.write(Buffer.from('abc'));
  req.sendPage(pages[502]);
  await c.closed();
  t.match(c.received(), /\r\n\r\nabc$/, 'cut after what was sent');
});

t.test('an upgrade is handed over with the bytes after its head', async (t) => {
  let handed: { head: RequestHead; rest: string } | undefined;
  const front = await startFront(t, {}, (head, socket, rest) => {
    handed = { head, rest: rest.toString('latin1') };
    socket.on('error', () => undefined);
    socket.end('HTTP/1.1 101 Switching Protocols\r\n\r\n');
  });
  const c = await rawClient(t, front.url);
  c.write(`GET /ws HTTP/1.1\r\n${H}Connection: upgrade\r\nUpgrade: websocket\r\n\r\nframe`);
  await c.closed();
  t.equal(handed?.head.upgrade, 'websocket');
  t.equal(handed?.rest, 'frame');
  t.match(c.received(), /^HTTP\/1\.1 101 /);
});

t.test('closing: answers say Connection: close', async (t) => {
  const front = await startFront(t, { closing: true });
  const c = await rawClient(t, front.url);
  c.write(`GET /a HTTP/1.1\r\n${H}\r\n`);
  await c.closed();
  t.match(c.received(), /Connection: close\r\n[^]*GET \/a 0$/);
});

t.test('TLS: the same connection on a TLSSocket', { skip: skipTls }, async (t) => {
  const dir = t.testdir({});
  const cert = await makeCert(dir);
  const front: Pick<Front, 'seen' | 'aborted' | 'held'> = { seen: [], aborted: [], held: [] };
  const sockets: tls.TLSSocket[] = [];
  const server = tls.createServer({ cert: cert.cert, key: cert.key }, (socket) => {
    sockets.push(socket);
    new FrontConnection(socket, BASE, echo(front));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  }));
  const port = (server.address() as net.AddressInfo).port;
  const client = tls.connect({ host: '127.0.0.1', port, ca: cert.cert, servername: 'localhost' });
  t.teardown(() => client.destroy());
  let received = '';
  client.on('data', (b: Buffer) => (received += b.toString('latin1')));
  client.write(`POST /t HTTP/1.1\r\n${H}Content-Length: 2\r\nConnection: close\r\n\r\nok`);
  await new Promise<void>((resolve) => client.on('close', () => resolve()));
  t.match(received, /^HTTP\/1\.1 200 OK\r\n[^]*POST \/t 2$/);
});
