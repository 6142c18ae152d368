/**
 * The raw-socket upstream pool (src/proxy/upstream/pool.ts) against scripted `net`
 * backends on 127.0.0.1: LIFO reuse, the socket cap and its queue, idle timeout, sockets
 * the backend closes (or speaks on) while idle never handed out, the retryable flag of a
 * reused socket that died as the request went out, connect refusal and timeout, close and
 * destroy. Every wait is for a condition, never a fixed time.
 */
import { connect, createServer, Socket } from 'node:net';
import { Readable } from 'node:stream';
import t from 'tap';
import { connectError, statusFor, UpstreamError, type UpstreamErrorCode } from '../src/proxy/upstream/errors.js';
import { exchange, type UpstreamRequest } from '../src/proxy/upstream/exchange.js';
import { UpstreamPool } from '../src/proxy/upstream/pool.js';
import { CollectingSink, scriptedBackend, type BackendRequest } from './fixtures/scripted-backend.js';

const GET: UpstreamRequest = { method: 'GET', target: '/', headers: ['Host', 'lb.test'], body: { kind: 'none' } };
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

function poolFor(port: number, extra: Partial<ConstructorParameters<typeof UpstreamPool>[0]> = {}): UpstreamPool {
  return new UpstreamPool({ host: '127.0.0.1', port, connectTimeout: 5000, responseTimeout: 30_000, ...extra });
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((resolve) => setImmediate(resolve));
}

async function run(pool: UpstreamPool, req: UpstreamRequest = GET): Promise<CollectingSink> {
  const sink = new CollectingSink();
  exchange(pool, req, sink);
  await sink.settled;
  return sink;
}

t.test('idle sockets are reused last-in first-out', async (t) => {
  const held: BackendRequest[] = [];
  const backend = await scriptedBackend((req) => held.push(req));
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const a = new CollectingSink();
  const b = new CollectingSink();
  exchange(pool, GET, a);
  await until(() => held.length === 1);
  exchange(pool, GET, b);
  await until(() => held.length === 2);
  held[0]!.socket.write(OK);
  await a.settled;
  held[1]!.socket.write(OK);
  await b.settled;
  t.equal(pool.idle, 2);
  const c = new CollectingSink();
  exchange(pool, GET, c);
  await until(() => held.length === 3);
  t.equal(held[2]!.connection, held[1]!.connection, 'the socket released last goes first');
  held[2]!.socket.write(OK);
  await c.settled;
  t.equal(backend.accepted, 2);
});

t.test('the cap: requests beyond it wait, in order, for a released socket', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${req.head.slice(5, 6)}`));
  const pool = poolFor(backend.port, { maxSockets: 1 });
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sinks = [1, 2, 3].map(() => new CollectingSink());
  sinks.forEach((s, i) => exchange(pool, { ...GET, target: `/${i}` }, s));
  t.equal(pool.queued, 2);
  await Promise.all(sinks.map((s) => s.settled));
  t.same(sinks.map((s) => s.body), ['0', '1', '2']);
  t.equal(backend.accepted, 1, 'one socket carried all three');
  t.equal(pool.size, 1);
});

t.test('idle sockets close after the idle timeout', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.write(OK));
  const pool = poolFor(backend.port, { idleTimeout: 100 });
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  await run(pool);
  t.equal(pool.idle, 1);
  await backend.closedCount(1);
  await until(() => pool.size === 0);
  t.equal(pool.idle, 0);
});

t.test('a socket the backend closed while idle is never handed out: the next request gets a fresh one', async (t) => {
  const backend = await scriptedBackend((req) => {
    req.socket.write(OK);
    if (req.connection === 0) req.socket.end();
  });
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const first = await run(pool);
  t.equal(first.body, 'ok');
  await backend.closedCount(1);
  await until(() => pool.size === 0);
  const second = await run(pool);
  t.equal(second.error_, undefined, 'no error');
  t.equal(second.body, 'ok');
  t.equal(backend.accepted, 2);
});

t.test('an idle socket that can no longer write is skipped at acquire', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.write(OK));
  const ours: Socket[] = [];
  const pool = poolFor(backend.port, {
    open: (host, port) => {
      const s = connect({ host, port });
      ours.push(s);
      return s;
    },
  });
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  await run(pool);
  t.equal(pool.idle, 1);
  ours[0]!.end(); // our side half-closed, no event from the backend yet
  const second = await run(pool);
  t.equal(second.error_, undefined);
  t.equal(second.body, 'ok');
  t.equal(ours.length, 2, 'a fresh socket');
});

t.test('bytes from the backend on an idle socket retire it', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.write(OK));
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  await run(pool);
  await until(() => pool.idle === 1);
  backend.requests[0]!.socket.write('HTTP/1.1 200 OK\r\n');
  await backend.closedCount(1);
  await until(() => pool.size === 0);
  t.equal(pool.idle, 0);
});

t.test('a reused socket closed as the request went out: retryable; a fresh one, or one with a body sent: not', async (t) => {
  const backend = await scriptedBackend((req) => {
    if (req.index === 0 && req.connection !== 1) req.socket.write(OK);
    else req.socket.destroy();
  });
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  await run(pool);
  const reused = await run(pool);
  t.equal(reused.error_?.code, 'reset-before-response');
  t.equal(reused.error_?.retryable, true, 'reused, nothing of the body lost');
  const fresh = await run(pool);
  t.equal(fresh.error_?.code, 'reset-before-response');
  t.equal(fresh.error_?.retryable, false, 'a fresh socket: the backend may have seen it');
  await run(pool);
  const withBody = await run(pool, { method: 'POST', target: '/', headers: ['Host', 'x', 'Content-Length', '3'], body: { kind: 'length', length: 3 }, source: Readable.from([Buffer.from('abc')]) });
  t.equal(withBody.error_?.code, 'reset-before-response');
  t.equal(withBody.error_?.retryable, false, 'body bytes are gone with it');
});

t.test('connect refused: retryable connect-refused', async (t) => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  const pool = poolFor(port);
  t.teardown(() => pool.destroy());
  const sink = await run(pool);
  t.equal(sink.error_?.code, 'connect-refused');
  t.equal(sink.error_?.retryable, true);
  t.equal(sink.error_?.errno, 'ECONNREFUSED');
  t.equal(pool.size, 0);
});

t.test('connect timeout: a socket that never connects', async (t) => {
  // A socket with no connect() call never connects: the timer alone decides.
  const pool = new UpstreamPool({ host: '127.0.0.1', port: 1, connectTimeout: 50, responseTimeout: 1000, open: () => new Socket() });
  t.teardown(() => pool.destroy());
  const sink = await run(pool);
  t.equal(sink.error_?.code, 'connect-timeout');
  t.equal(sink.error_?.retryable, true);
  await until(() => pool.size === 0);
});

t.test('a socket that cannot be made: connect-failed', async (t) => {
  const pool = new UpstreamPool({
    host: '127.0.0.1', port: 1, connectTimeout: 50, responseTimeout: 1000,
    open: () => {
      throw Object.assign(new Error('too many open files'), { code: 'EMFILE' });
    },
  });
  t.teardown(() => pool.destroy());
  const sink = await run(pool);
  t.equal(sink.error_?.code, 'no-resources');
});

t.test('abort while connecting: the new socket goes to the idle stack', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.write(OK));
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = new CollectingSink();
  exchange(pool, GET, sink).abort();
  await until(() => pool.idle === 1);
  t.equal(sink.error_, undefined);
  t.notOk(sink.ended);
  const next = await run(pool);
  t.equal(next.body, 'ok');
  t.equal(backend.accepted, 1);
});

t.test('abort while queued beyond the cap', async (t) => {
  const held: BackendRequest[] = [];
  const backend = await scriptedBackend((req) => held.push(req));
  const pool = poolFor(backend.port, { maxSockets: 1 });
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const first = new CollectingSink();
  exchange(pool, GET, first);
  const queued = exchange(pool, GET, new CollectingSink());
  t.equal(pool.queued, 1);
  queued.abort();
  t.equal(pool.queued, 0);
  await until(() => held.length === 1);
  held[0]!.socket.write(OK);
  await first.settled;
  t.equal(pool.idle, 1);
});

t.test('close: new requests fail, busy sockets finish then close', async (t) => {
  const held: BackendRequest[] = [];
  const backend = await scriptedBackend((req) => held.push(req));
  const pool = poolFor(backend.port);
  t.teardown(() => backend.close());
  const busy = new CollectingSink();
  exchange(pool, GET, busy);
  const queuedPool = poolFor(backend.port, { maxSockets: 0 });
  const queued = new CollectingSink();
  exchange(queuedPool, GET, queued);
  await queuedPool.close();
  await queued.settled;
  t.equal(queued.error_?.code, 'connect-failed', 'a queued request fails on close');
  await until(() => held.length === 1);
  let closed = false;
  const closing = pool.close().then(() => {
    closed = true;
  });
  const late = await run(pool);
  t.equal(late.error_?.code, 'connect-failed');
  t.notOk(closed, 'not closed while a request is busy');
  held[0]!.socket.write(OK);
  await busy.settled;
  t.equal(busy.body, 'ok');
  await closing;
  await backend.closedCount(1);
  await pool.close();
});

t.test('destroy: busy exchanges fail', async (t) => {
  const backend = await scriptedBackend(() => undefined);
  const pool = poolFor(backend.port);
  t.teardown(() => backend.close());
  const sink = new CollectingSink();
  exchange(pool, GET, sink);
  await until(() => backend.requests.length === 1);
  await pool.destroy();
  await sink.settled;
  t.equal(sink.error_?.code, 'reset-before-response');
});

t.test('error codes: connect errno mapping and the status page of each', async (t) => {
  const rows: [string, UpstreamErrorCode, boolean][] = [
    ['ECONNREFUSED', 'connect-refused', true],
    ['EHOSTUNREACH', 'connect-refused', true],
    ['EADDRNOTAVAIL', 'connect-refused', true],
    ['EMFILE', 'no-resources', false],
    ['ENOBUFS', 'no-resources', false],
    ['ENOTFOUND', 'connect-failed', false],
    ['', 'connect-failed', false],
  ];
  for (const [errno, code, retryable] of rows) {
    const e = connectError(Object.assign(new Error(errno), errno ? { code: errno } : {}));
    t.equal(e.code, code, errno);
    t.equal(e.retryable, retryable, `${errno} retryable`);
  }
  const statuses: [UpstreamErrorCode, number][] = [
    ['connect-refused', 502], ['connect-timeout', 502], ['connect-failed', 502], ['no-resources', 503],
    ['reset-before-response', 502], ['reset-during-response', 502], ['response-timeout', 504],
    ['bad-response', 502], ['too-large', 502], ['request-body', 400],
  ];
  for (const [code, status] of statuses) t.equal(statusFor(code), status, code);
  t.equal(new UpstreamError('connect-timeout', 'x').retryable, true);
  t.equal(new UpstreamError('bad-response', 'x').retryable, false);
});

t.test('the backend\'s Keep-Alive timeout shortens the idle time, less a second', async (t) => {
  const backend = await scriptedBackend((req) => {
    const seconds = req.head.includes('/short') ? 1 : 2;
    req.socket.write(`HTTP/1.1 200 OK\r\nKeep-Alive: timeout=${seconds}\r\nContent-Length: 2\r\n\r\nok`);
  });
  const pool = poolFor(backend.port, { idleTimeout: 600_000 });
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const short = await run(pool, { ...GET, target: '/short' });
  t.equal(short.body, 'ok');
  await backend.closedCount(1);
  t.equal(pool.idle, 0, 'timeout=1 leaves no time: retired at once');
  const two = await run(pool);
  t.equal(two.body, 'ok');
  t.equal(pool.idle, 1);
  const again = await run(pool);
  t.equal(again.body, 'ok', 'the same socket again (its timer re-armed)');
  await backend.closedCount(2);
  await until(() => pool.size === 0);
  t.equal(backend.accepted, 2);
});
