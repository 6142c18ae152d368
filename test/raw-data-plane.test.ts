/**
 * The raw-socket data plane end to end (the default; SERVOY_LB_DATA_PLANE=raw is set for
 * the balancers this file starts all the same, so it pins this plane even in a run of the
 * suite on node:http with SERVOY_LB_DATA_PLANE=node): the real CLI in front of Servoy
 * simulators, a browser's sticky session and its WebSocket, request bodies, the health
 * path, refusals, HTTP/1.0, and a TLS listener.
 */
import t from 'tap';
import { request } from 'undici';
import { BrowserClient } from './helpers/browser.js';
import { lbConfig, rawRequest } from './helpers/lb.js';
import { spawnBalancer, startSims, type TestLike } from './helpers/processes.js';
import { makeCert, skipTls } from './fixtures/tls-cert.js';

const RAW = { SERVOY_LB_DATA_PLANE: 'raw' };

function browser(t: TestLike, url: string): BrowserClient {
  const b = new BrowserClient(url);
  t.teardown(() => b.close());
  return b;
}

t.test('a session, its requests and its WebSocket on the raw data plane', async (t) => {
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const lb = await spawnBalancer(t, await lbConfig(sims, { listen: { host: '127.0.0.1', port: 0, healthPath: '/lb-health' } }), { env: RAW, timeoutMs: 60_000 });
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
  const lb = await spawnBalancer(t, await lbConfig([{ id: 'gone', url: 'http://127.0.0.1:9' }], { healthCheck: { path: '/', interval: '1h' } }), { env: RAW, timeoutMs: 60_000 });
  const res = await request(`${lb.url}/x`);
  t.ok(res.statusCode === 502 || res.statusCode === 503, `the balancer's page (${res.statusCode})`);
  t.match(await res.body.text(), /<html/);
});

t.test('TLS listener on the raw data plane', { skip: skipTls }, async (t) => {
  const dir = t.testdir({});
  const cert = await makeCert(dir);
  const sims = await startSims(t, ['servoy-a']);
  const config = await lbConfig(sims, { listen: { host: '127.0.0.1', port: 0, tls: { cert: cert.certFile, key: cert.keyFile } } });
  const lb = await spawnBalancer(t, config, { env: RAW, timeoutMs: 60_000 });
  t.match(lb.url, /^https:/);
  const { Agent } = await import('undici');
  const res = await request(`${lb.url}/`, { dispatcher: new Agent({ connect: { ca: cert.cert } }) });
  t.equal(res.statusCode, 200, 'served over TLS');
  await res.body.text();
});
