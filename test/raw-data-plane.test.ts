/**
 * The raw-socket data plane end to end: the real CLI in front of Servoy simulators, a
 * browser's sticky session and its WebSocket, request bodies, the health path, refusals,
 * HTTP/1.0, a TLS listener, and WebSocket handshakes taken by the raw listener itself (no
 * node:http server): accepted ones tunnelled, refused ones relayed and closed with nothing
 * hidden behind them reaching the backend.
 */
import t from 'tap';
import { request } from 'undici';
import { BrowserClient } from './helpers/browser.js';
import { jsonLogs, lbConfig, rawRequest, waitFor } from './helpers/lb.js';
import { spawnBalancer, startSims, type TestLike } from './helpers/processes.js';
import { makeCert, skipTls } from './fixtures/tls-cert.js';
import { probe } from './fixtures/hostile-net.js';
import { rawClient } from './fixtures/raw-client.js';
import { SWITCH, upgradeBackend } from './fixtures/upgrade-backend.js';

function browser(t: TestLike, url: string): BrowserClient {
  const b = new BrowserClient(url);
  t.teardown(() => b.close());
  return b;
}

t.test('a session, its requests and its WebSocket on the raw data plane', async (t) => {
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const lb = await spawnBalancer(t, await lbConfig(sims, { listen: { host: '127.0.0.1', port: 0, healthPath: '/lb-health' } }), { timeoutMs: 60_000 });
  const b = browser(t, lb.url);
  const page = await b.get('/');
  t.equal(page.status, 200);
  const server = String(page.headers['x-servoy-server']);
  const session = b.cookie('JSESSIONID');
  t.ok(session, 'the session cookie arrived');
  for (let i = 0; i < 3; i++) {
    const again = await b.get(`/page/${i}`);
    t.equal(String(again.headers['x-servoy-server']), server, `request ${i}: same server`);
  }
  const posted = await b.post('/upload', 'x'.repeat(200_000));
  t.equal(posted.status, 200, 'a 200 kB body forwarded');
  t.match(posted.body, new RegExp(`"server":"${server}","bytes":200000`), 'all of it, to the session\'s server');

  const ws = await b.openWebSocket('/websocket/1/main/1');
  t.same(await ws.next(15_000), { server, hello: true, session, path: '/websocket/1/main/1' }, 'the WebSocket reaches the session\'s server');
  ws.send('ping');
  t.same(await ws.next(15_000), { server, echo: 'ping' });
  await ws.close();

  const health = await request(`${lb.url}/lb-health`);
  t.equal(health.statusCode, 200, 'the health path is answered by the balancer');
  t.match(await health.body.text(), /"ok":true/);

  const bad = await rawRequest(lb.url, 'GET /a HTTP/1.1\nHost: x\r\n\r\n');
  t.equal(bad.status, 400, 'a bare LF: 400');
  t.match(bad.head, /connection: close/i);
  const big = await rawRequest(lb.url, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`);
  t.equal(big.status, 431, 'a head over limits.maxHeaderBytes: 431');
  const old = await rawRequest(lb.url, 'GET / HTTP/1.0\r\n\r\n');
  t.equal(old.status, 200, 'HTTP/1.0');
  t.match(old.head, /Connection: close/);
});

t.test('a backend that cannot be reached: 502; none at all: 503', async (t) => {
  const lb = await spawnBalancer(t, await lbConfig([{ id: 'gone', url: 'http://127.0.0.1:9' }], { healthCheck: { path: '/', interval: '1h' } }), { timeoutMs: 60_000 });
  const res = await request(`${lb.url}/x`);
  t.ok(res.statusCode === 502 || res.statusCode === 503, `the balancer's page (${res.statusCode})`);
  t.match(await res.body.text(), /<html/);
});

t.test('TLS listener on the raw data plane', { skip: skipTls }, async (t) => {
  const dir = t.testdir({});
  const cert = await makeCert(dir);
  const sims = await startSims(t, ['servoy-a']);
  const config = await lbConfig(sims, { listen: { host: '127.0.0.1', port: 0, tls: { cert: cert.certFile, key: cert.keyFile } } });
  const lb = await spawnBalancer(t, config, { timeoutMs: 60_000 });
  t.match(lb.url, /^https:/);
  const { Agent } = await import('undici');
  const res = await request(`${lb.url}/`, { dispatcher: new Agent({ connect: { ca: cert.cert } }) });
  t.equal(res.statusCode, 200, 'served over TLS');
  await res.body.text();
});

t.test('WebSocket handshakes on the raw listener: echo through a tunnel; a refusal relayed and closed, the request hidden behind it never reaching the backend', async (t) => {
  const handshake = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: lb.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const hidden = 'GET /servoy-admin/secret HTTP/1.1\r\nHost: lb.test\r\n\r\n';
  const backend = await upgradeBackend(t, (head) =>
    head.startsWith('GET /ws/echo ') ? { answer: SWITCH, echo: true }
    : head.startsWith('GET /ws/forbidden ') ? { answer: 'HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nno' }
    : { answer: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain' });
  const lb = await spawnBalancer(t, await lbConfig([{ id: 'raw', url: backend.url }], { outlier: { consecutiveFailures: 1000 } }), { timeoutMs: 60_000 });

  const client = await rawClient(t, lb.url);
  client.write(`${handshake('/ws/echo')}EARLY`);
  await client.until(/^HTTP\/1\.1 101 [^]*\r\n\r\necho:EARLY$/);
  client.write('LATER');
  await client.until(/echo:LATER$/);
  const tunnel = backend.connections[0]!;
  t.notMatch(tunnel.beforeAnswer, /EARLY/, 'bytes sent with the handshake waited for the 101');
  t.equal(tunnel.received.slice(tunnel.received.indexOf('\r\n\r\n') + 4), 'EARLYLATER', 'then reached the backend in order');
  t.match(tunnel.received, /\r\nx-forwarded-for: 127\.0\.0\.1\r\n/i, 'the handshake was forwarded with the balancer\'s headers');

  for (const [i, c] of [{ path: '/ws/forbidden', status: 403, body: 'no' }, { path: '/ws/plain', status: 200, body: 'plain' }].entries()) {
    const res = await probe(lb.url, handshake(c.path) + hidden, { timeoutMs: 10_000 });
    t.equal(res.status, c.status, `${c.path}: the backend's ${c.status} relayed`);
    t.ok(res.closed, `${c.path}: and the client connection closed after it`);
    t.match(res.raw, /\r\nconnection: close\r\n/i, `${c.path}: saying Connection: close`);
    t.equal(res.raw.slice(res.raw.indexOf('\r\n\r\n') + 4), c.body, `${c.path}: its body, nothing after it`);
    // Positive signal first: the backend connection that carried the handshake was closed by the balancer.
    await waitFor(() => backend.connections.length === i + 2 && backend.connections[i + 1]!.closed, 10_000, `${c.path}: the backend connection to be closed`);
    const conn = backend.connections[i + 1]!;
    t.match(conn.received, new RegExp(`^GET ${c.path} HTTP/1\\.1\\r\\n`), `${c.path}: the backend got the handshake`);
    t.equal(conn.received.indexOf('\r\n\r\n'), conn.received.length - 4, `${c.path}: and nothing after it`);
  }
  await waitFor(() => jsonLogs(lb.logs()).filter((l) => l.log === 'access' && l.websocket === true).length === 3, 10_000, 'three handshake lines in the access log');
  t.same(jsonLogs(lb.logs()).filter((l) => l.log === 'access' && l.websocket === true).map((l) => `${String(l.path)} ${String(l.status)}`).sort(), ['/ws/echo 101', '/ws/forbidden 403', '/ws/plain 200'], 'one access-log line per handshake, websocket: true');
  t.equal(backend.connections.length, 3, 'no connection carried the hidden request');
  t.notOk(backend.connections.some((conn) => conn.received.includes('secret')), 'the hidden request never reached the backend');
  t.equal(lb.proc.exitCode, null, 'the balancer is running');
});
