/**
 * What the balancer forwards and what it answers itself (SPEC "Proxying"): X-Forwarded-*
 * set (a client's own replaced unless it is a trusted proxy), Host and Origin preserved,
 * hop-by-hop headers dropped both ways; malformed requests 400, oversize headers 431,
 * absolute-form 400, unreachable backends 502, slow backends 504 — small HTML pages that
 * never name a backend — and the balancer keeps serving after each. Also: a refused
 * backend costs new sessions nothing, HEAD / 204 / 304 keep the connection in sync, and a
 * client aborting a download is counted as a client abort.
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, request } from 'undici';
import { BrowserClient } from './helpers/browser.js';
import { adminUrlOf, closedPort, jsonLogs, lbConfig, rawRequest, setCookies, startBalancer, waitFor } from './helpers/lb.js';
import { startSims, type TestLike } from './helpers/processes.js';

/** A backend that answers every request with its method, url and raw headers as JSON. */
async function echoBackend(t: TestLike, extraResponseHeaders: Record<string, string> = {}): Promise<{ url: string; port: number }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extraResponseHeaders });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port };
}

/** Lower-cased header name -> values, from a raw header list. */
function headerMap(raw: string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    map.set(name, [...(map.get(name) ?? []), raw[i + 1]!]);
  }
  return map;
}

/** Asserts an error page: the status, small HTML, and no backend address in it. */
function assertErrorPage(t: Test, res: { status: number; body: string; contentType: string | undefined }, status: number, backendPorts: number[]): void {
  t.equal(res.status, status, `status ${status}`);
  t.match(res.contentType ?? '', /^text\/html/, 'HTML');
  t.match(res.body, new RegExp(`<h1>${status} `), 'the balancer\'s page');
  t.ok(res.body.length < 4096, 'small');
  t.notMatch(res.body, /127\.0\.0\.1|localhost|http:\/\//, 'no backend address');
  for (const port of backendPorts) t.notOk(res.body.includes(String(port)), `no backend port ${port}`);
}

/** Content-Type of a raw response head. */
const rawContentType = (head: string): string | undefined => /\r\ncontent-type: *([^\r]*)/i.exec(head)?.[1];

t.test('X-Forwarded-* are set, a client\'s own replaced; Host and Origin preserved', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!]));
  const b = new BrowserClient(lb.url);
  t.teardown(() => b.close());

  const plain = (await b.get('/api/whoami')).json();
  const lbHost = new URL(lb.url).host;
  t.same(plain.headers, { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': lbHost, host: lbHost, origin: null });

  const spoofed = (await b.get('/api/whoami', {
    headers: {
      host: 'app.example.com:8443',
      origin: 'https://app.example.com:8443',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.example',
    },
  })).json();
  t.same(spoofed.headers, {
    'x-forwarded-for': '127.0.0.1',
    'x-forwarded-proto': 'http',
    'x-forwarded-host': 'app.example.com:8443',
    host: 'app.example.com:8443',
    origin: 'https://app.example.com:8443',
  }, 'an untrusted client\'s X-Forwarded-* are replaced; Host and Origin as sent');
});

t.test('behind a trusted proxy, its X-Forwarded-* are kept and extended', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!], { trustedProxies: ['127.0.0.1'] }));
  const res = await request(`${lb.url}/api/whoami`, { headers: { 'x-forwarded-for': '10.9.8.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.com', host: 'internal:8080' } });
  const who = (await res.body.json()) as { headers: Record<string, string> };
  t.same(who.headers, { 'x-forwarded-for': '10.9.8.7, 127.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.com', host: 'internal:8080', origin: null });
});

t.test('hop-by-hop headers are not forwarded, either way', async (t) => {
  const echo = await echoBackend(t, { 'x-private': 'secret', connection: 'keep-alive, X-Private', 'proxy-authenticate': 'Basic', 'x-resp': 'ok' });
  const lb = await startBalancer(t, await lbConfig([{ id: 'echo', url: echo.url }]));
  const { host } = new URL(lb.url);
  const res = await rawRequest(lb.url,
    `GET /hop?q=1 HTTP/1.1\r\nHost: ${host}\r\nConnection: Foo, close\r\nFoo: bar\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n` +
    `Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nTrailer: X-Checksum\r\nUpgrade: h2c\r\nX-Keep: yes\r\nOrigin: http://${host}\r\n\r\n`);
  t.equal(res.status, 200);
  const seen = headerMap(JSON.parse(res.body).rawHeaders as string[]);
  for (const name of ['foo', 'keep-alive', 'te', 'proxy-connection', 'proxy-authorization', 'trailer', 'upgrade']) {
    t.notOk(seen.has(name), `request header ${name} not forwarded`);
  }
  for (const value of seen.get('connection') ?? []) t.notMatch(value.toLowerCase(), /foo/, 'Connection does not pass the client\'s tokens');
  t.same(seen.get('x-keep'), ['yes'], 'end-to-end headers pass');
  t.same(seen.get('origin'), [`http://${host}`]);
  t.same(seen.get('host'), [host]);

  // Response side: Connection and the headers it names, Proxy-Authenticate, stay at the balancer.
  const client = await request(`${lb.url}/resp`);
  await client.body.text();
  t.equal(client.headers['x-resp'], 'ok');
  t.equal(client.headers['proxy-authenticate'], undefined, 'Proxy-Authenticate not relayed');
  t.equal(client.headers['x-private'], undefined, 'a header the backend named in Connection is not relayed');
});

t.test('malformed, oversize and absolute-form requests get the balancer\'s pages; it keeps serving', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!], { limits: { maxHeaderBytes: 4096 } }));
  const { host } = new URL(lb.url);
  const ports = [sim!.port];
  const stillServes = async (what: string) => {
    const res = await request(`${lb.url}/api/whoami`);
    t.equal(res.statusCode, 200, `still serving after ${what}`);
    await res.body.dump();
  };

  const malformed = await rawRequest(lb.url, `GET / HTTP/1.1\r\nHost: ${host}\r\nBad Header\r\n\r\n`);
  assertErrorPage(t, { ...malformed, contentType: rawContentType(malformed.head) }, 400, ports);
  await stillServes('a malformed request');

  const garbage = await rawRequest(lb.url, 'HELLO THERE\r\n\r\n');
  t.equal(garbage.status, 400, 'not HTTP at all: 400');
  await stillServes('garbage');

  const oversize = await rawRequest(lb.url, `GET / HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`);
  assertErrorPage(t, { ...oversize, contentType: rawContentType(oversize.head) }, 431, ports);
  await stillServes('oversize headers');

  const before = sim!.stats().requests;
  const absolute = await rawRequest(lb.url, `GET ${sim!.url}/api/whoami HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  assertErrorPage(t, { ...absolute, contentType: rawContentType(absolute.head) }, 400, ports);
  t.equal(sim!.stats().requests, before, 'the absolute-form request reached no backend');
  await stillServes('an absolute-form request');

  const asterisk = await rawRequest(lb.url, `OPTIONS * HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  t.equal(asterisk.status, 400, 'OPTIONS * is not forwarded');
  await stillServes('OPTIONS *');
});

t.test('no reachable backend: 502 for a new session (HTTP and WebSocket)', async (t) => {
  const deadPorts = [await closedPort(), await closedPort()];
  const lb = await startBalancer(t, await lbConfig(deadPorts.map((p, i) => ({ id: `dead-${i}`, url: `http://127.0.0.1:${p}` }))));
  const res = await request(`${lb.url}/`);
  const body = await res.body.text();
  assertErrorPage(t, { status: res.statusCode, body, contentType: res.headers['content-type'] as string }, 502, deadPorts);
  t.same(setCookies(res.headers['set-cookie']).filter((c) => c.startsWith('SERVOYLB=')), [], 'no affinity cookie for a backend that never answered');

  const { host } = new URL(lb.url);
  const ws = await rawRequest(lb.url,
    `GET /websocket/1/main/1 HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  assertErrorPage(t, { ...ws, contentType: rawContentType(ws.head) }, 502, deadPorts);

  const again = await request(`${lb.url}/api/whoami`, { method: 'HEAD' });
  t.equal(again.statusCode, 502, 'and again (the balancer is still up)');
  await again.body.dump();
});

t.test('no backend in rotation: 503 with Retry-After, for HTTP and WebSocket', async (t) => {
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const lb = await startBalancer(t, await lbConfig(sims));
  const admin = await adminUrlOf(lb);
  for (const sim of sims) {
    const res = await request(`${admin}/api/backends/${sim.route}/disable`, { method: 'POST' });
    t.equal(res.statusCode, 200, `disabled ${sim.route}`);
    await res.body.dump();
  }
  const res = await request(`${lb.url}/`);
  const body = await res.body.text();
  assertErrorPage(t, { status: res.statusCode, body, contentType: res.headers['content-type'] as string }, 503, sims.map((s) => s.port));
  t.ok(Number(res.headers['retry-after']) > 0, 'Retry-After');
  const { host } = new URL(lb.url);
  const ws = await rawRequest(lb.url,
    `GET /websocket/1/main/1 HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  t.equal(ws.status, 503, 'a WebSocket handshake too');
  t.equal(sims.reduce((n, s) => n + s.stats().requests, 0), 0, 'nothing reached a disabled backend');
});

t.test('a backend that refuses connections costs new sessions nothing', async (t) => {
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const deadPort = await closedPort();
  const backends = [{ id: 'dead', url: `http://127.0.0.1:${deadPort}` }, ...sims.map((s) => ({ id: s.route, url: s.url }))];
  const lb = await startBalancer(t, await lbConfig(backends));
  const CLIENTS = 50;
  const results = await Promise.all(Array.from({ length: CLIENTS }, async () => {
    const b = new BrowserClient(lb.url);
    try {
      const res = await b.get('/api/whoami');
      const cookie = setCookies(res.headers['set-cookie']).find((c) => c.startsWith('SERVOYLB='));
      return { status: res.status, server: res.status === 200 ? (res.json() as { server: string }).server : undefined, cookieBackend: cookie?.split(';')[0]!.split('.')[1] };
    } finally {
      await b.close();
    }
  }));
  t.same(results.filter((r) => r.status !== 200), [], `all ${CLIENTS} new clients got 200`);
  t.same(results.filter((r) => r.cookieBackend !== r.server), [], 'each affinity cookie names the server that answered');

  // A new session's upload is retried too: a refused connection sent none of its bytes.
  const payload = Buffer.alloc(100_000, 'u');
  const digest = createHash('sha256').update(payload).digest('hex');
  const uploads = await Promise.all(Array.from({ length: 20 }, async () => {
    const res = await request(`${lb.url}/upload`, { method: 'POST', body: payload });
    return { status: res.statusCode, ...((await res.body.json()) as { bytes?: number; sha256?: string }) };
  }));
  t.same(uploads.filter((u) => u.status !== 200 || u.bytes !== payload.length || u.sha256 !== digest), [], '20 new-session uploads arrive intact');
  await waitFor(() => lb.logs().some((l) => l.includes('refused')), 10_000, 'a refused connection logged');
  t.ok(lb.logs().some((l) => l.includes('"backend":"dead"') && l.includes('refused')), 'the dead backend was tried, and its refusal absorbed');
  const admin = await request(`${await adminUrlOf(lb)}/api/backends`);
  const { backends: rows } = (await admin.body.json()) as { backends: { id: string; errors: number }[] };
  t.ok(rows.find((r) => r.id === 'dead')!.errors >= 1, 'each refusal counted as a failure of the dead backend');
  t.same(rows.filter((r) => r.id !== 'dead').map((r) => r.errors), [0, 0], 'and of no other');
});

t.test('a backend slower than timeouts.response gets 504', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!], { timeouts: { response: '500ms' } }));
  const started = Date.now();
  const res = await request(`${lb.url}/slow?ms=2000`);
  const body = await res.body.text();
  const took = Date.now() - started;
  assertErrorPage(t, { status: res.statusCode, body, contentType: res.headers['content-type'] as string }, 504, [sim!.port]);
  t.ok(took >= 450, `answered after ${took} ms (a 504, so before the backend's 2000 ms)`);
  const ok = await request(`${lb.url}/slow?ms=100`);
  t.equal(ok.statusCode, 200, 'a fast enough request still passes');
  await ok.body.dump();
});

t.test('HEAD, 204 and 304 responses keep a keep-alive connection in sync', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!]));
  const client = new Client(lb.url, { pipelining: 1 });
  t.teardown(() => client.close());

  const head = await client.request({ path: '/api/whoami', method: 'HEAD' });
  t.equal(head.statusCode, 200);
  t.ok(Number(head.headers['content-length']) > 0, 'HEAD carries the GET\'s content-length');
  t.equal((await head.body.text()).length, 0, 'and no body');

  for (const status of [204, 304]) {
    const res = await client.request({ path: `/status/${status}`, method: 'GET' });
    t.equal(res.statusCode, status);
    t.equal(await res.body.text(), '', `${status}: no body`);
  }
  const after = await client.request({ path: '/api/whoami', method: 'GET' });
  t.equal(after.statusCode, 200, 'the same connection still works');
  t.equal(((await after.body.json()) as { server: string }).server, 'servoy-a');

  // Several statuses pass through untouched.
  for (const status of [201, 404, 500, 503]) {
    const res = await client.request({ path: `/status/${status}`, method: 'GET' });
    t.equal(res.statusCode, status, `${status} relayed`);
    t.equal(((await res.body.json()) as { status: number }).status, status);
  }
});

t.test('a client aborting a download is a client abort, not a backend error', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!]));
  const controller = new AbortController();
  const res = await request(`${lb.url}/download?bytes=${64 * 1024 * 1024}`, { signal: controller.signal });
  t.equal(res.statusCode, 200);
  let got = 0;
  await t.rejects((async () => {
    for await (const chunk of res.body) {
      got += (chunk as Buffer).length;
      if (got > 1024 * 1024) controller.abort();
    }
  })(), 'the download is cut by the client');
  t.ok(got < 64 * 1024 * 1024);

  const next = await request(`${lb.url}/api/whoami`);
  t.equal(next.statusCode, 200, 'the balancer keeps serving');
  await next.body.dump();
  // The backend stops sending: the abort reached it (its count stands still for 300 ms).
  let sent = -1;
  await waitFor(async () => {
    const before = sim!.stats().bytesDownloaded;
    // A window of no progress. Safe on a busy machine: a backend still sending is retried;
    // a stall mistaken for a stop still has to pass "not the whole file" below.
    await new Promise((r) => setTimeout(r, 300));
    sent = sim!.stats().bytesDownloaded;
    return sent === before;
  }, 15_000, 'the backend to stop sending');
  t.ok(sent < 64 * 1024 * 1024, `the backend did not send the whole file (${sent} bytes)`);

  // The admin API counts it as a client abort, not as an error of the backend.
  const admin = await request(`${await adminUrlOf(lb)}/api/backends`);
  const { backends } = (await admin.body.json()) as { backends: { id: string; state: string; errors: number; clientAborts: number }[] };
  t.match(backends, [{ id: 'servoy-a', state: 'up', errors: 0, clientAborts: 1 }], 'clientAborts 1, errors 0, still up');

  t.equal(await lb.stop(), 0, 'clean exit');
  const access = jsonLogs(lb.logs()).filter((l) => l.path === '/download?bytes=67108864');
  t.equal(access.length, 1, 'one access log line');
  t.equal(access[0]?.outcome, 'client-abort', 'counted as a client abort');
  t.notOk(lb.logs().some((l) => /"level":(40|50)/.test(l)), 'no warning or error logged');
});
