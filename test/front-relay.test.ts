/**
 * FrontRelay (src/proxy/front/relay.ts): a client request on a FrontConnection forwarded
 * to scripted raw backends over UpstreamPools, end to end on real sockets: headers relayed
 * without hop-by-hop ones, session ids learned, bodies both ways, every failure mapped to
 * the page today's path answers (502, 504, 400, a cut once started), retry on refusal,
 * maintenance redispatch, client aborts. A small RelayHost plays the proxy server.
 */
import net from 'node:net';
import t from 'tap';
import { waitFor } from './helpers/lb.js';
import type { BackendView } from '../src/pool/snapshot.js';
import type { RouteReason } from '../src/routing/types.js';
import { accessRecord, type AccessRecord } from '../src/proxy/access-log.js';
import { loadErrorPages, type ErrorStatus } from '../src/proxy/error-pages.js';
import { FrontConnection, type FrontSettings } from '../src/proxy/front/front-connection.js';
import { FrontRelay, type RelayHost } from '../src/proxy/front/relay.js';
import { RawRequestView } from '../src/proxy/front/request-view.js';
import type { ExchangeOutcome } from '../src/proxy/exchange-outcome.js';
import { upstreamHeaders } from '../src/proxy/request-headers.js';
import { UpstreamPools } from '../src/proxy/upstream/pools.js';
import { rawClient } from './fixtures/raw-client.js';
import { scriptedBackend, type BackendRequest, type ScriptedBackend } from './fixtures/scripted-backend.js';

const H = 'Host: lb.test\r\n';
const pages = loadErrorPages({});
const SETTINGS: FrontSettings = { maxHeaderBytes: 16384, headersTimeout: 60_000, keepAliveTimeout: 60_000, bodyIdleTimeout: 0, pages, closing: false };

interface Rig {
  url: string;
  outcomes: [number, ExchangeOutcome][];
  learned: string[];
  relays: FrontRelay[];
}

/** A front listener relaying to `backends` in order: the first, then (retry, maintenance) the next. */
async function rig(t: Tap.Test, backends: { id: string; url: string }[], opts: { reason?: RouteReason; responseTimeout?: number } = {}): Promise<Rig> {
  const pools = new UpstreamPools({ connect: 5000, response: opts.responseTimeout ?? 30_000 });
  const r: Rig = { url: '', outcomes: [], learned: [], relays: [] };
  const next = (relay: FrontRelay): BackendView | undefined => backends.find((b) => b.id !== relay.backend.id && !relay.refused?.has(b.id)) as BackendView | undefined;
  const host: RelayHost = {
    sessionCookiePrefix: 'jsessionid=',
    responseHeaders: (relay, headers) => {
      if (relay.setCookie) headers.push('set-cookie', `lb=${relay.backend.id}`);
    },
    learnSetCookie: (_relay, value) => r.learned.push(value),
    retry: (relay) => {
      const other = next(relay);
      if (other === undefined) return false;
      relay.prepareRetry();
      relay.backend = other;
      relay.dispatch(pools.get(other));
      return true;
    },
    retryUnavailable: () => false,
    maintenance: (relay) => next(relay) !== undefined,
    redispatch: (relay) => {
      const other = next(relay)!;
      relay.prepareRetry();
      relay.backend = other;
      relay.dispatch(pools.get(other));
    },
    resourceFailure: () => undefined,
    sendError: (relay, status: ErrorStatus) => relay.req.sendPage(pages[status]),
    finished: (relay, outcome) => r.outcomes.push([relay.status, outcome]),
  };
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    new FrontConnection(socket, SETTINGS, {
      request(req) {
        const view = new RawRequestView(req.socket.remoteAddress, req.head.target, req.head.headers);
        const relay = new FrontRelay(host, req, { clientAddress: '127.0.0.1', affinityCookie: undefined, sessionId: undefined }, upstreamHeaders(req.head.headers, { peerAddress: '127.0.0.1', trusted: false, proto: 'http' }), performance.now(), view);
        relay.backend = backends[0] as BackendView;
        relay.reason = opts.reason ?? 'new-session';
        relay.setCookie = true;
        r.relays.push(relay);
        if (req.head.target === '/no-backend') relay.fail(503, 'ok');
        else if (req.head.target === '/own-page') relay.answerPage(pages[404], 'ok');
        else relay.dispatch(pools.get(relay.backend));
      },
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await pools.destroy();
  });
  r.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return r;
}

async function backend(t: Tap.Test, answer: (req: BackendRequest) => void): Promise<ScriptedBackend & { url: string }> {
  const b = await scriptedBackend(answer);
  t.teardown(() => b.close());
  return Object.assign(b, { url: `http://127.0.0.1:${b.port}` });
}

/** Waits for a condition (helpers' waitFor, polled every 5 ms, bounded generously for a busy machine). */
function until(cond: () => boolean, what: string): Promise<void> {
  return waitFor(cond, 20_000, what, 5);
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

t.test('a response relayed: hop-by-hop headers dropped, session id learned, affinity cookie added', async (t) => {
  const b = await backend(t, (req) => {
    const text = `seen ${req.body.length}`;
    req.socket.write(`HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=30\r\nSet-Cookie: JSESSIONID=abc; Path=/\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
  });
  const r = await rig(t, [{ id: 'a', url: b.url }]);
  const c = await rawClient(t, r.url);
  c.write(`POST /up HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /next HTTP/1.1\r\n${H}\r\n`);
  await c.until(/seen 0$/);
  const [first] = c.received().split(/(?=HTTP\/1\.1 )/);
  t.match(first, /^HTTP\/1\.1 200 OK\r\n/);
  const length = await rawClient(t, r.url);
  length.write(`PUT /len HTTP/1.1\r\n${H}Content-Length: 3\r\nConnection: close\r\n\r\nxyz`);
  await length.closed();
  t.match(length.received(), /\r\n\r\nseen 3$/, 'a Content-Length body');
  t.equal(b.requests[2]!.head.match(/content-length/gi)?.length, 1, 'one Content-Length upstream');
  t.notMatch(first, /X-Drop/i, 'a header named in Connection is dropped');
  t.notMatch(first, /timeout=30/, 'the backend\'s Keep-Alive is dropped');
  t.match(first, /Set-Cookie: JSESSIONID=abc; Path=\/\r\nContent-Length: 7\r\nset-cookie: lb=a\r\n/, 'the backend\'s cookie, then the affinity cookie');
  t.match(first, /\r\n\r\nseen 20$/, 'the answer to the upload');
  t.equal(b.requests[0]!.body, '3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n', 'the backend got the body re-chunked');
  t.match(b.requests[0]!.head, /^POST \/up HTTP\/1\.1\r\n[^]*transfer-encoding: chunked/i);
  t.same(r.learned, ['JSESSIONID=abc; Path=/', 'JSESSIONID=abc; Path=/', 'JSESSIONID=abc; Path=/']);
  t.same(r.outcomes, [[200, 'ok'], [200, 'ok'], [200, 'ok']]);
  t.equal(b.accepted, 1, 'one backend connection for all');
});

t.test('an unknown-length response: chunked to HTTP/1.1, close-delimited to HTTP/1.0', async (t) => {
  const b = await backend(t, (req) => {
    req.socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n');
  });
  const r = await rig(t, [{ id: 'a', url: b.url }]);
  const now = await rawClient(t, r.url);
  now.write(`GET /x HTTP/1.1\r\n${H}\r\n`);
  await now.until(/\r\n\r\n4\r\nabcd\r\n0\r\n\r\n$/);
  t.match(now.received(), /Transfer-Encoding: chunked\r\n/);
  const old = await rawClient(t, r.url);
  old.write('GET /x HTTP/1.0\r\n\r\n');
  await old.closed();
  t.match(old.received(), /Connection: close\r\nDate: [^\r]*\r\n\r\nabcd$/);
});

t.test('failures before the response: retry on refusal, then 502; 504; 502 for a bad answer', async (t) => {
  const good = await backend(t, (req) => req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const retried = await rig(t, [{ id: 'dead', url: dead }, { id: 'good', url: good.url }]);
  const c = await rawClient(t, retried.url);
  c.write(`GET /a HTTP/1.1\r\n${H}\r\n`);
  await c.until(/\r\n\r\nok$/);
  t.same(retried.outcomes, [[200, 'ok']], 'the refused request went to the next backend');
  t.equal(retried.relays[0]!.backend.id, 'good');

  const alone = await rig(t, [{ id: 'dead', url: dead }]);
  const d = await rawClient(t, alone.url);
  d.write(`GET /a HTTP/1.1\r\n${H}\r\n`);
  await d.until(/<\/html>\n$/);
  t.match(d.received(), /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  t.same(alone.outcomes, [[502, 'backend-error']]);

  const silent = await backend(t, () => undefined);
  const slow = await rig(t, [{ id: 's', url: silent.url }], { responseTimeout: 300 });
  const e = await rawClient(t, slow.url);
  e.write(`GET /a HTTP/1.1\r\n${H}\r\n`);
  await e.until(/<\/html>\n$/);
  t.match(e.received(), /^HTTP\/1\.1 504 /);
  t.same(slow.outcomes, [[504, 'timeout']]);

  const liar = await backend(t, (req) => req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok'));
  const bad = await rig(t, [{ id: 'l', url: liar.url }]);
  const f = await rawClient(t, bad.url);
  f.write(`GET /a HTTP/1.1\r\n${H}\r\n`);
  await f.until(/<\/html>\n$/);
  t.match(f.received(), /^HTTP\/1\.1 502 /);
});

t.test('a body the client does not finish: the backend giving up is the client\'s fault (400)', async (t) => {
  const impatient = await backend(t, () => undefined);
  impatient.server.on('connection', (s) => s.once('data', () => s.destroy()));
  const r = await rig(t, [{ id: 'i', url: impatient.url }]);
  const c = await rawClient(t, r.url);
  c.write(`POST /a HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\nabc`);
  await c.closed();
  t.match(c.received(), /^HTTP\/1\.1 400 /);
  t.same(r.outcomes, [[400, 'bad-request']]);
});

t.test('failures after the response started cut the client connection', async (t) => {
  const b = await backend(t, (req) => {
    req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    req.socket.destroy();
  });
  const r = await rig(t, [{ id: 'a', url: b.url }]);
  const c = await rawClient(t, r.url);
  c.write(`GET /a HTTP/1.1\r\n${H}\r\n`);
  await c.closed();
  t.match(c.received(), /\r\n\r\nabc$/);
  t.same(r.outcomes, [[200, 'backend-error']]);
});

t.test('maintenance: a new session\'s 503 is read to the end and the request goes elsewhere', async (t) => {
  const maint = await backend(t, (req) => req.socket.write('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nmaint'));
  const good = await backend(t, (req) => req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  const r = await rig(t, [{ id: 'm', url: maint.url }, { id: 'g', url: good.url }]);
  const c = await rawClient(t, r.url);
  c.write(`GET /a HTTP/1.1\r\n${H}\r\n`);
  await c.until(/\r\n\r\nok$/);
  t.notMatch(c.received(), /maint/, 'the maintenance page is not relayed');
  t.same(r.outcomes, [[200, 'ok']]);
});

t.test('a client that leaves mid-response aborts the backend exchange', async (t) => {
  const b = await backend(t, (req) => req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc'));
  const r = await rig(t, [{ id: 'a', url: b.url }]);
  const c = await rawClient(t, r.url);
  c.write(`GET /a HTTP/1.1\r\n${H}\r\n`);
  await c.until(/\r\n\r\nabc$/);
  const client = net.connect(Number(new URL(r.url).port), '127.0.0.1');
  client.on('error', () => undefined);
  client.write(`GET /b HTTP/1.1\r\n${H}\r\n`);
  await until(() => b.requests.length === 2, 'the second request at the backend');
  client.destroy();
  await until(() => r.outcomes.length === 1, 'the outcome');
  t.same(r.outcomes, [[200, 'client-abort']]);
  await b.closedCount(1);
  t.pass('the backend connection of the aborted exchange is closed');
});

t.test('a large response with a slow client: all of it, in order', async (t) => {
  const size = 4 * 1024 * 1024;
  const b = await backend(t, (req) => {
    req.socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
    const chunk = Buffer.alloc(64 * 1024, 0x7a);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        sent += chunk.length;
        if (!req.socket.write(chunk)) {
          req.socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  const r = await rig(t, [{ id: 'a', url: b.url }]);
  const client = net.connect(Number(new URL(r.url).port), '127.0.0.1');
  t.teardown(() => client.destroy());
  client.write(`GET /big HTTP/1.1\r\n${H}\r\n`);
  let got = 0;
  client.on('data', (d: Buffer) => {
    got += d.length;
    // Read slowly: pause after each chunk, go on a moment later.
    client.pause();
    setImmediate(() => client.resume());
  });
  await until(() => r.outcomes.length === 1, 'the response complete');
  t.same(r.outcomes, [[200, 'ok']]);
  await until(() => got > size, 'the whole body at the client');
  t.equal(r.relays[0]!.bytesOut, size);
});

t.test('answers of the proxy itself, and what the access log reads', async (t) => {
  const b = await backend(t, (req) => req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  const r = await rig(t, [{ id: 'a', url: b.url }]);
  const c = await rawClient(t, r.url);
  c.write(`GET /no-backend HTTP/1.1\r\n${H}User-Agent: ua\r\nReferer: ref\r\n\r\nGET /own-page HTTP/1.1\r\n${H}\r\nGET /x HTTP/1.0\r\n\r\n`);
  await c.closed();
  t.match(c.received(), /^HTTP\/1\.1 503 [^]*HTTP\/1\.1 404 [^]*HTTP\/1\.1 200 /, 'the 503 and the 404 pages, then the forwarded answer');
  t.same(r.outcomes, [[503, 'ok'], [404, 'ok'], [200, 'ok']]);
  const [first, , last] = r.relays;
  const fields = (relay: FrontRelay): AccessRecord => {
    const record = accessRecord();
    relay.fillAccessFields(record);
    return record;
  };
  t.match(fields(first!), { method: 'GET', host: 'lb.test', path: '/no-backend', httpVersion: '1.1', userAgent: 'ua', referer: 'ref' });
  t.ok(fields(first!).bytesIn === 0, 'bytes in: what was read since the last read, so each request counts its own');
  t.match(fields(last!), { httpVersion: '1.0', host: undefined });
  t.notOk(last!.bodyTouched, 'no body');
  t.match(b.requests[0]!.head, new RegExp(`\r\nhost: 127\\.0\\.0\\.1:${b.port}`), 'HTTP/1.0 without Host: the backend gets one');
});
