/**
 * Backpressure both ways through one upstream exchange (src/proxy/upstream/exchange.ts),
 * with real sockets on 127.0.0.1 and 32 MiB bodies (more than loopback's socket buffers
 * hold, so a stalled reader really stalls the writer):
 *  - a slow sink: once it says `false` the backend socket is paused, the backend's own
 *    writes block, and what the sink holds stays bounded; resume() lets the rest through;
 *  - a slow backend: the request body source is paused while the backend socket's buffer
 *    is full, and resumed when it drains.
 * Waits are for conditions (the writer blocked, the source paused), never for time.
 */
import { createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import t from 'tap';
import type { ResponseHead } from '../src/proxy/codec/response-head.js';
import type { UpstreamError } from '../src/proxy/upstream/errors.js';
import { exchange, type ResponseSink } from '../src/proxy/upstream/exchange.js';
import { UpstreamPool } from '../src/proxy/upstream/pool.js';

const TOTAL = 32 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const SINK_LIMIT = 128 * 1024;

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((resolve) => setImmediate(resolve));
}

async function listen(onConnection: (s: Socket) => void) {
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

t.test('a slow sink pauses the backend socket; what it holds stays bounded', async (t) => {
  let backendBlocked = false;
  let backendWritten = 0;
  const { server, port } = await listen((s) => {
    s.once('data', () => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${TOTAL}\r\n\r\n`);
      const pump = () => {
        while (backendWritten < TOTAL) {
          backendWritten += CHUNK.length;
          if (!s.write(CHUNK)) {
            backendBlocked = true;
            s.once('drain', () => {
              backendBlocked = false;
              pump();
            });
            return;
          }
        }
      };
      pump();
    });
  });
  const pool = new UpstreamPool({ host: '127.0.0.1', port, connectTimeout: 5000, responseTimeout: 60_000 });
  t.teardown(async () => {
    await pool.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  let held = 0;
  let received = 0;
  let maxHeld = 0;
  let saidNo = false;
  let ended = false;
  let failure: UpstreamError | undefined;
  const sink: ResponseSink = {
    head: (_h: ResponseHead) => undefined,
    data(chunk) {
      held += chunk.length;
      received += chunk.length;
      maxHeld = Math.max(maxHeld, held);
      if (held < SINK_LIMIT) return true;
      saidNo = true;
      return false;
    },
    end() {
      ended = true;
    },
    upgrade: () => undefined,
    error(err) {
      failure = err;
    },
  };
  const ex = exchange(pool, { method: 'GET', target: '/big', headers: ['Host', 'lb.test'], body: { kind: 'none' } }, sink);
  await until(() => saidNo && backendBlocked);
  t.ok(received < TOTAL, `the backend is held back: ${received} of ${TOTAL} bytes delivered`);
  t.ok(maxHeld <= SINK_LIMIT + 64 * 1024, `the sink holds at most one read past its limit (${maxHeld})`);
  const atStall = received;
  // The positive signal came first (the backend blocked); nothing more arrives while paused.
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(received, atStall, 'no delivery while paused');
  // A slow reader: take everything held, then let the backend go on, until the end.
  while (!ended && failure === undefined) {
    held = 0;
    ex.resume();
    await until(() => ended || failure !== undefined || held >= SINK_LIMIT);
  }
  t.equal(failure, undefined);
  t.equal(received, TOTAL, 'every byte arrived');
  t.ok(maxHeld <= SINK_LIMIT + 64 * 1024, `bounded all along (${maxHeld})`);
  await until(() => pool.idle === 1);
});

t.test('a slow backend pauses the request body source; it resumes on drain', async (t) => {
  let backendSocket: Socket | undefined;
  let backendRead = 0;
  const { server, port } = await listen((s) => {
    backendSocket = s;
    s.pause();
    let headSeen = false;
    s.on('data', (d) => {
      if (!headSeen) {
        const i = d.indexOf('\r\n\r\n');
        if (i < 0) return;
        headSeen = true;
        d = d.subarray(i + 4);
      }
      backendRead += d.length;
      if (backendRead === TOTAL) s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone');
    });
  });
  const pool = new UpstreamPool({ host: '127.0.0.1', port, connectTimeout: 5000, responseTimeout: 60_000 });
  t.teardown(async () => {
    await pool.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  let generated = 0;
  const source = new Readable({
    read() {
      if (generated >= TOTAL) this.push(null);
      else {
        generated += CHUNK.length;
        this.push(CHUNK);
      }
    },
  });
  const chunks: Buffer[] = [];
  let settled = false;
  let failure: UpstreamError | undefined;
  exchange(
    pool,
    { method: 'POST', target: '/upload', headers: ['Host', 'lb.test', 'Content-Length', String(TOTAL)], body: { kind: 'length', length: TOTAL }, source },
    {
      head: () => undefined,
      data: (c) => chunks.push(Buffer.from(c)) > 0,
      end: () => {
        settled = true;
      },
      upgrade: () => undefined,
      error: (err) => {
        failure = err;
        settled = true;
      },
    },
  );
  await until(() => backendSocket !== undefined && source.isPaused());
  t.ok(generated < TOTAL, `the source is held back: ${generated} of ${TOTAL} bytes produced`);
  backendSocket!.resume();
  await until(() => settled);
  t.equal(failure, undefined);
  t.equal(backendRead, TOTAL, 'the whole body arrived');
  t.equal(Buffer.concat(chunks).toString(), 'done');
});
