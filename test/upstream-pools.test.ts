/**
 * UpstreamPools (src/proxy/upstream/pools.ts), the per-backend registry of raw-socket
 * pools: URL to pool options as a table; one pool per backend, replaced when its URL or
 * head limit changes; http: and https: backends on 127.0.0.1 (https verified: a
 * self-signed backend fails as connect-failed unless its CA is given); drop, setTimeouts,
 * close and destroy.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import t from 'tap';
import { exchange, type UpstreamRequest } from '../src/proxy/upstream/exchange.js';
import { poolOptionsFor, UpstreamPools } from '../src/proxy/upstream/pools.js';
import { CollectingSink, scriptedBackend } from './fixtures/scripted-backend.js';
import { makeCert, skipTls } from './fixtures/tls-cert.js';

const GET: UpstreamRequest = { method: 'GET', target: '/', headers: ['Host', 'lb.test'], body: { kind: 'none' } };
const TIMEOUTS = { connect: 5000, response: 30_000 };

t.test('backend URL to pool options', async (t) => {
  const rows: [string, string, number][] = [
    ['http://10.0.0.11:8080', '10.0.0.11', 8080],
    ['http://app.example.test', 'app.example.test', 80],
    ['https://app.example.test', 'app.example.test', 443],
    ['https://[::1]:8443', '::1', 8443],
  ];
  for (const [url, host, port] of rows) {
    const o = poolOptionsFor(url, TIMEOUTS, 1000, 2000);
    t.match(o, { host, port, connectTimeout: 5000, responseTimeout: 30_000, maxHeaderBytes: 1000, idleTimeout: 2000 }, url);
  }
});

t.test('one pool per backend, replaced when its URL or head limit changes', async (t) => {
  const pools = new UpstreamPools(TIMEOUTS);
  t.teardown(() => pools.destroy());
  const a = pools.get({ id: 'a', url: 'http://127.0.0.1:1' });
  t.equal(pools.get({ id: 'a', url: 'http://127.0.0.1:1' }), a, 'the same pool');
  const moved = pools.get({ id: 'a', url: 'http://127.0.0.1:2' });
  t.not(moved, a, 'a new URL, a new pool');
  t.not(pools.get({ id: 'a', url: 'http://127.0.0.1:2' }, 100), moved, 'a new head limit, a new pool');
  const closed = await run(a);
  t.equal(closed.error_?.code, 'connect-failed', 'the replaced pool is closed');
  pools.setTimeouts({ connect: 1000, response: 1000 });
  t.not(pools.get({ id: 'a', url: 'http://127.0.0.1:2' }, 100), moved, 'new timeouts, new pools');
  await pools.drop('a');
  await pools.drop('nobody');
});

async function run(pool: ReturnType<UpstreamPools['get']>): Promise<CollectingSink> {
  const sink = new CollectingSink();
  exchange(pool, GET, sink);
  await sink.settled;
  return sink;
}

t.test('an http: backend through the registry; close waits for nothing busy', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  t.teardown(() => backend.close());
  const pools = new UpstreamPools(TIMEOUTS);
  const sink = await run(pools.get({ id: 'b1', url: `http://127.0.0.1:${backend.port}` }));
  t.equal(sink.body, 'ok');
  await pools.close();
  await backend.closedCount(1);
});

t.test('https: backends are verified; with their CA they work', { skip: skipTls }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'upstream-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cert = await makeCert(dir);
  const server = createTlsServer({ cert: cert.cert, key: cert.key }, (s) => {
    s.on('error', () => undefined);
    s.on('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure'));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;

  const strict = new UpstreamPools(TIMEOUTS);
  const refused = await run(strict.get({ id: 's', url }));
  t.equal(refused.error_?.code, 'connect-failed', 'a self-signed certificate is not trusted');
  t.equal(refused.error_?.retryable, false);
  await strict.destroy();

  const trusting = new UpstreamPools(TIMEOUTS, 4000, { ca: cert.cert });
  const pool = trusting.get({ id: 's', url });
  const ok = await run(pool);
  t.equal(ok.body, 'secure');
  const again = await run(pool);
  t.equal(again.body, 'secure');
  t.equal(pool.size, 1, 'the TLS socket was reused');
  await trusting.destroy();
});
