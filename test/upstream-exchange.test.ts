/**
 * One exchange over the raw-socket upstream pool (src/proxy/upstream/), against backends
 * on raw `net` servers that answer with exact bytes: every response framing (Content-Length,
 * close-delimited, chunked with trailers, HEAD, 204/304, 100-continue, 101), request bodies
 * (Content-Length and chunked re-encoding), malformed answers (bad-response, socket
 * destroyed), and timeouts. Real sockets on 127.0.0.1; every wait is for a condition.
 */
import { Readable } from 'node:stream';
import t from 'tap';
import { exchange, type UpstreamRequest } from '../src/proxy/upstream/exchange.js';
import { UpstreamPool } from '../src/proxy/upstream/pool.js';
import { CollectingSink, scriptedBackend, type BackendRequest } from './fixtures/scripted-backend.js';

const GET: UpstreamRequest = { method: 'GET', target: '/a', headers: ['Host', 'lb.test'], body: { kind: 'none' } };

function poolFor(port: number, extra: Partial<ConstructorParameters<typeof UpstreamPool>[0]> = {}): UpstreamPool {
  return new UpstreamPool({ host: '127.0.0.1', port, connectTimeout: 5000, responseTimeout: 30_000, ...extra });
}

async function run(pool: UpstreamPool, req: UpstreamRequest = GET): Promise<CollectingSink> {
  const sink = new CollectingSink();
  exchange(pool, req, sink);
  await sink.settled;
  return sink;
}

/** [name, request method, response bytes, body, reusable afterwards, status] */
const FRAMINGS: [string, string, string, string, boolean, number][] = [
  ['Content-Length', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'hello', true, 200],
  ['Content-Length 0', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', '', true, 200],
  ['chunked with extensions and trailers', 'GET', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n', 'abcde', true, 200],
  ['HEAD with Content-Length', 'HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n', '', true, 200],
  ['204', 'GET', 'HTTP/1.1 204 No Content\r\n\r\n', '', true, 204],
  ['304 with the representation\'s length', 'GET', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n', '', true, 304],
  ['Connection: close retires the socket', 'GET', 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok', 'ok', false, 200],
  ['HTTP/1.0 retires the socket', 'GET', 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok', 'ok', false, 200],
  ['stray bytes after the body retire the socket', 'GET', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokXX', 'ok', false, 200],
  ['stray bytes after a 204 retire the socket', 'GET', 'HTTP/1.1 204 No Content\r\n\r\nXX', '', false, 204],
  ['stray bytes after a chunked body retire the socket', 'GET', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nXX', 'x', false, 200],
];

t.test('response framings: body delivered, socket reused or retired', async (t) => {
  for (const [name, method, response, body, reusable, status] of FRAMINGS) {
    await t.test(name, async (t) => {
      const backend = await scriptedBackend((req) => req.socket.write(Buffer.from(response, 'latin1')));
      const pool = poolFor(backend.port);
      t.teardown(async () => {
        await pool.destroy();
        await backend.close();
      });
      const first = await run(pool, { ...GET, method });
      t.equal(first.error_, undefined, 'no error');
      t.equal(first.head_?.status, status);
      t.equal(first.body, body);
      t.ok(first.ended);
      if (reusable) {
        t.equal(pool.idle, 1, 'back in the pool');
        const second = await run(pool, { ...GET, method });
        t.equal(second.body, body);
        t.equal(backend.accepted, 1, 'the second request reused the socket');
        t.equal(backend.requests[1]!.index, 1);
      } else {
        await backend.closedCount(1);
        t.equal(pool.idle, 0, 'not back in the pool');
        const second = await run(pool, { ...GET, method });
        t.equal(second.body, body);
        t.equal(backend.accepted, 2, 'a fresh socket for the next request');
      }
    });
  }
});

t.test('close-delimited body ends at the backend\'s end of stream', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, until the end'));
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = await run(pool);
  t.equal(sink.error_, undefined);
  t.equal(sink.body, 'all of it, until the end');
  t.same(sink.head_?.body, { kind: 'close' });
  t.equal(pool.idle, 0);
});

t.test('the request head goes out as given, in one piece', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  await run(pool, { method: 'GET', target: '/x?y=1', headers: ['Host', 'lb.test', 'X-Forwarded-For', '10.0.0.1', 'cookie', 'a=b'], body: { kind: 'none' } });
  t.equal(backend.requests[0]!.raw, 'GET /x?y=1 HTTP/1.1\r\nHost: lb.test\r\nX-Forwarded-For: 10.0.0.1\r\ncookie: a=b\r\n\r\n');
});

t.test('request bodies: Content-Length copied, chunked re-encoded', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${req.body.length}\r\n\r\n${req.body}`));
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const cl = await run(pool, { method: 'POST', target: '/p', headers: ['Host', 'lb.test', 'Content-Length', '11'], body: { kind: 'length', length: 11 }, source: Readable.from([Buffer.from('hello'), Buffer.from(' world')]) });
  t.equal(cl.error_, undefined);
  t.equal(backend.requests[0]!.body, 'hello world');
  const ch = await run(pool, { method: 'POST', target: '/p', headers: ['Host', 'lb.test', 'Transfer-Encoding', 'chunked'], body: { kind: 'chunked' }, source: Readable.from([Buffer.from('abc'), Buffer.alloc(0), Buffer.from('defghijklmnopqr')]) });
  t.equal(ch.error_, undefined);
  t.equal(backend.requests[1]!.body, '3\r\nabc\r\nf\r\ndefghijklmnopqr\r\n0\r\n\r\n');
  t.equal(backend.accepted, 1, 'both on one socket');
});

t.test('a request body shorter or longer than its Content-Length fails as request-body', async (t) => {
  const backend = await scriptedBackend(() => undefined);
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const short = await run(pool, { method: 'POST', target: '/', headers: ['Host', 'x', 'Content-Length', '5'], body: { kind: 'length', length: 5 }, source: Readable.from([Buffer.from('abc')]) });
  t.equal(short.error_?.code, 'request-body');
  const long = await run(pool, { method: 'POST', target: '/', headers: ['Host', 'x', 'Content-Length', '2'], body: { kind: 'length', length: 2 }, source: Readable.from([Buffer.from('abc')]) });
  t.equal(long.error_?.code, 'request-body');
  const broken = new Readable({ read() {} });
  const sink = new CollectingSink();
  exchange(pool, { method: 'POST', target: '/', headers: ['Host', 'x', 'Content-Length', '9'], body: { kind: 'length', length: 9 }, source: broken }, sink);
  while (broken.listenerCount('error') === 0) await new Promise((resolve) => setImmediate(resolve));
  broken.destroy(new Error('client went away'));
  await sink.settled;
  t.equal(sink.error_?.code, 'request-body');
  const ended = Readable.from([]);
  ended.resume();
  await new Promise((resolve) => ended.on('end', resolve));
  const none = await run(pool, { method: 'POST', target: '/', headers: ['Host', 'x', 'Content-Length', '1'], body: { kind: 'length', length: 1 }, source: ended });
  t.equal(none.error_?.code, 'request-body', 'an ended source');
});

t.test('an answer before the request body is complete: delivered, socket retired', async (t) => {
  const backend = await scriptedBackend(() => undefined);
  backend.server.on('connection', (s) => s.once('data', () => s.write('HTTP/1.1 413 Too Large\r\nContent-Length: 3\r\n\r\nbig')));
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const source = new Readable({ read() {} });
  source.push('first part');
  const sink = new CollectingSink();
  const ex = exchange(pool, { method: 'POST', target: '/', headers: ['Host', 'x', 'Content-Length', '100'], body: { kind: 'length', length: 100 }, source }, sink);
  await sink.settled;
  t.equal(sink.head_?.status, 413);
  t.equal(sink.body, 'big');
  t.notOk(ex.requestBodyComplete);
  await backend.closedCount(1);
  t.equal(pool.size, 0);
});

t.test('100 Continue then the final answer', async (t) => {
  const backend = await scriptedBackend((req) => {
    req.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    setImmediate(() => req.socket.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'));
  });
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = await run(pool, { method: 'PUT', target: '/', headers: ['Host', 'x', 'Expect', '100-continue', 'Content-Length', '1'], body: { kind: 'length', length: 1 }, source: Readable.from([Buffer.from('x')]) });
  t.same(sink.interims.map((h) => h.status), [100, 103]);
  t.equal(sink.head_?.status, 201);
  t.equal(sink.body, 'ok');
  t.equal(pool.idle, 1);
});

t.test('101 is returned as an upgrade: the socket leaves the pool with the bytes past the head', async (t) => {
  const backend = await scriptedBackend((req) => {
    req.socket.write(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi', 'latin1'));
    req.socket.on('data', (d) => req.socket.write(d)); // echo what comes after
  });
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = await run(pool, { method: 'GET', target: '/ws', headers: ['Host', 'x', 'Connection', 'Upgrade', 'Upgrade', 'websocket'], body: { kind: 'none' }, upgrade: true });
  t.equal(sink.upgraded?.head.status, 101);
  t.equal(sink.upgraded?.rest.toString('latin1'), '\x81\x02hi');
  t.equal(pool.size, 0, 'out of the pool');
  const socket = sink.upgraded!.socket;
  const echoed = new Promise<string>((resolve) => socket.once('data', (d) => resolve(d.toString())));
  socket.write('ping');
  t.equal(await echoed, 'ping', 'the socket is live and ours');
  socket.destroy();
});

/** [name, response bytes, code] */
const MALFORMED: [string, string, string][] = [
  ['CL with TE', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'bad-response'],
  ['bare LF', 'HTTP/1.1 200 OK\nContent-Length: 0\n\n', 'bad-response'],
  ['bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'bad-response'],
  ['101 without an upgrade request', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n', 'bad-response'],
  ['not HTTP', 'SSH-2.0-OpenSSH_9.6\r\n', 'bad-response'],
  ['a head over maxHeaderBytes', `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(2000)}\r\n\r\n`, 'too-large'],
];

t.test('malformed answers: bad-response or too-large, socket destroyed', async (t) => {
  for (const [name, response, code] of MALFORMED) {
    await t.test(name, async (t) => {
      const backend = await scriptedBackend((req) => req.socket.write(Buffer.from(response, 'latin1')));
      const pool = poolFor(backend.port, { maxHeaderBytes: 1024 });
      t.teardown(async () => {
        await pool.destroy();
        await backend.close();
      });
      const sink = await run(pool);
      t.equal(sink.error_?.code, code);
      t.equal(sink.error_?.retryable, false);
      await backend.closedCount(1);
      t.equal(pool.size, 0, 'the socket is gone');
    });
  }
});

t.test('a response head split across reads', async (t) => {
  const response = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Long: abcdefghij\r\n\r\nbody';
  const backend = await scriptedBackend((req: BackendRequest) => {
    let i = 0;
    const next = () => {
      if (i >= response.length) return;
      req.socket.write(response.slice(i, i + 7), () => setImmediate(next));
      i += 7;
    };
    next();
  });
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = await run(pool);
  t.equal(sink.body, 'body');
  t.same(sink.head_?.headers, ['Content-Length', '4', 'X-Long', 'abcdefghij']);
});

t.test('the backend closes mid-body: reset-during-response after the head', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial'));
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = await run(pool);
  t.equal(sink.error_?.code, 'reset-during-response');
  t.equal(sink.errorAfterHead, true);
});

t.test('no answer in time: response-timeout', async (t) => {
  const backend = await scriptedBackend(() => undefined);
  const pool = poolFor(backend.port, { responseTimeout: 150 });
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = await run(pool);
  t.equal(sink.error_?.code, 'response-timeout');
  t.equal(sink.errorAfterHead, false);
  await backend.closedCount(1);
});

t.test('abort: the backend socket is destroyed and the sink hears nothing', async (t) => {
  const backend = await scriptedBackend(() => undefined);
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = new CollectingSink();
  const ex = exchange(pool, GET, sink);
  while (backend.requests.length === 0) await new Promise((resolve) => setImmediate(resolve));
  ex.abort();
  ex.abort();
  t.ok(ex.done);
  await backend.closedCount(1);
  t.equal(sink.error_, undefined);
  t.notOk(sink.ended);
});

t.test('a close-delimited body in reads of its own', async (t) => {
  const backend = await scriptedBackend((req) => {
    req.socket.write('HTTP/1.1 200 OK\r\n\r\n', () => setImmediate(() => req.socket.end('later bytes')));
  });
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = await run(pool);
  t.equal(sink.body, 'later bytes');
});

/** The sink aborts the exchange from inside each of its callbacks: nothing more reaches it. */
const ABORT_IN: [string, keyof CollectingSink, string][] = [
  ['interim', 'interim', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  ['head', 'head', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  ['data (length)', 'data', 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok'],
  ['data (chunked)', 'data', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n2\r\nok\r\n0\r\n\r\n'],
  ['data (close-delimited)', 'data', 'HTTP/1.1 200 OK\r\n\r\nok'],
];

t.test('abort from inside the sink', async (t) => {
  for (const [name, where, response] of ABORT_IN) {
    await t.test(name, async (t) => {
      const backend = await scriptedBackend((req) => req.socket.write(response));
      const pool = poolFor(backend.port);
      t.teardown(async () => {
        await pool.destroy();
        await backend.close();
      });
      const sink = new CollectingSink();
      let calls = 0;
      const original = (sink[where] as (...a: unknown[]) => unknown).bind(sink);
      let ex: ReturnType<typeof exchange> | undefined;
      (sink as unknown as Record<string, unknown>)[where] = (...a: unknown[]) => {
        calls++;
        const r = original(...a);
        ex!.abort();
        return r;
      };
      ex = exchange(pool, GET, sink);
      await backend.closedCount(1);
      t.equal(calls, 1, `${where} called once`);
      t.notOk(sink.ended);
      t.equal(sink.error_, undefined);
      t.ok(ex.done);
    });
  }
});

t.test('reused reports a socket from the pool', async (t) => {
  const backend = await scriptedBackend((req) => req.socket.write('HTTP/1.1 204 No Content\r\n\r\n'));
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const a = new CollectingSink();
  const first = exchange(pool, GET, a);
  await a.settled;
  t.notOk(first.reused);
  const b = new CollectingSink();
  const second = exchange(pool, GET, b);
  t.ok(second.reused, 'handed out at once from the idle stack');
  await b.settled;
  t.ok(second.requestBodyComplete);
});

t.test('a chunked body across reads, to a sink that says no now and then', async (t) => {
  const parts = ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab', 'cd\r\n3\r', '\nefg\r\n0\r\n', '\r\n'];
  const backend = await scriptedBackend((req) => {
    let i = 0;
    const next = () => {
      if (i < parts.length) req.socket.write(parts[i++]!, () => setImmediate(next));
    };
    next();
  });
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const sink = new CollectingSink();
  let ex: ReturnType<typeof exchange> | undefined;
  let refusals = 0;
  sink.data = (chunk: Buffer) => {
    sink.chunks.push(Buffer.from(chunk));
    refusals++;
    setImmediate(ex!.resume);
    return false;
  };
  ex = exchange(pool, GET, sink);
  ex.resume(); // not paused: nothing happens
  await sink.settled;
  t.equal(sink.body, 'abcdefg');
  t.ok(refusals > 1);
  t.equal(pool.idle, 1);
});

t.test('a reset (RST) from the backend: before and during the response, with its errno', async (t) => {
  const backend = await scriptedBackend((req) => {
    if (req.connection === 0) req.socket.resetAndDestroy();
    else req.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab');
  });
  const pool = poolFor(backend.port);
  t.teardown(async () => {
    await pool.destroy();
    await backend.close();
  });
  const before = await run(pool);
  t.equal(before.error_?.code, 'reset-before-response');
  t.equal(before.error_?.errno, 'ECONNRESET');
  const during = new CollectingSink();
  exchange(pool, GET, during);
  while (during.head_ === undefined) await new Promise((resolve) => setImmediate(resolve));
  backend.requests[1]!.socket.resetAndDestroy();
  await during.settled;
  t.equal(during.error_?.code, 'reset-during-response');
  t.equal(during.errorAfterHead, true);
});
