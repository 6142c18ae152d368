/**
 * Backend faults through the real CLI (SPEC "Proxying": an unreachable backend 502, a
 * backend timeout 504, "and the balancer keeps serving"; "Backend states": down after
 * `outlier.consecutiveFailures` proxy errors). Small backends written here do what the
 * simulator cannot:
 * - killed mid-response: only its requests in flight fail (502 before the headers, a cut
 *   stream after them, never a hang), the other backend's requests finish, and after
 *   `consecutiveFailures` errors it is down; a session pinned to it is placed anew;
 * - accepts and never answers: 504 after `timeouts.response`; headers then silence: a cut
 *   stream after `timeouts.response`; either way the connection is freed (the backend's
 *   open sockets return to 0, the balancer's socket count to where it was);
 * - reads an upload slowly (pauses for seconds): backpressure reaches the client, the
 *   balancer's memory stays flat over 256 MiB, the upload arrives intact;
 * - resets a WebSocket (destroy, RST): the client's WebSocket closes at once (not after
 *   timeouts.websocketIdle, 2 h) and the balancer keeps serving.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import { lbConfig, rawRequest, startBalancer, waitFor, within } from './helpers/lb.js';
import { backendRow, generatedBody, MiB, openSocketFds, pinTo, procStatus, sleep, startBackend, startWebSocketBackend } from './fixtures/fault-backends.js';

/** A config for custom backends: health checks rare (they must not decide these tests), no access log. */
function faultConfig(backends: { route: string; url: string }[], extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  return lbConfig(backends.map((b) => ({ id: b.route, url: b.url })), {
    healthCheck: { path: '/health', interval: '30s', timeout: '2s' },
    // Sessions of a down backend are placed anew at once here (failover-delay.test.ts covers the hold).
    affinity: { failoverDelay: 0 },
    log: { access: false },
    timeouts: { shutdownGrace: '1s' },
    ...extra,
  });
}

t.test('a backend killed mid-response: only its requests fail (502 / cut stream), then it is down', { timeout: 60_000 }, async (t) => {
  const held: ServerResponse[] = [];
  const victim = await startBackend(t, 'victim', (req, res) => {
    req.resume();
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked
      res.write(Buffer.alloc(64 * 1024, 7));
    }
    held.push(res); // /hold: no headers yet
  });
  const steady = await startBackend(t, 'steady', (req, res) => {
    req.resume();
    const ms = req.url === '/slow' ? 1500 : 0;
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`steady ${req.url}`);
    }, ms);
  });
  const lb = await startBalancer(t, await faultConfig([victim, steady], { outlier: { consecutiveFailures: 3, ejectFor: '60s' } }));
  const agent = new Agent({ connections: 20 });
  t.teardown(() => agent.close());
  const get = (path: string, to: { route: string }) => request(`${lb.url}${path}`, { dispatcher: agent, headers: pinTo(to) });

  // In flight on the victim: one streaming (headers sent), two waiting for headers.
  // In flight on the other backend: three slow requests.
  const streaming = await get('/stream', victim);
  t.equal(streaming.statusCode, 200, 'the streaming response started');
  let streamedBytes = 0;
  const streamed = new Promise<string>((resolve) => {
    streaming.body.on('data', (chunk: Buffer) => (streamedBytes += chunk.length));
    streaming.body.once('end', () => resolve('complete'));
    streaming.body.once('error', (err: NodeJS.ErrnoException) => resolve(`cut: ${err.code ?? ''} ${err.message}`));
  });
  await waitFor(() => streamedBytes > 0, 15_000, 'the first bytes of the streaming response');
  const waiting = [get('/hold', victim), get('/hold', victim)].map((p) => p.then(async (r) => ({ status: r.statusCode, body: await r.body.text() })));
  const others = [1, 2, 3].map(() => get('/slow', steady).then(async (r) => ({ status: r.statusCode, body: await r.body.text() })));
  await waitFor(() => victim.requests === 3 && steady.requests === 3, 15_000, 'all six requests at their backends');

  const killedAt = Date.now();
  await victim.kill();

  // Generous bounds (a busy machine): a cut that does not come would hang until them.
  const cut = await within(streamed, 15_000);
  t.match(cut, /^cut: /, `the client of the started response sees a cut stream (${cut}), not a complete body`);
  t.equal(streamedBytes, 64 * 1024, 'after the bytes the backend had sent');
  const failed = await within(Promise.all(waiting), 15_000);
  t.same(failed?.map((r) => r.status), [502, 502], 'the requests still waiting for headers get 502');
  t.match(failed?.[0]?.body, /<html/i, 'the balancer\'s 502 page');
  t.ok(failed !== undefined, `nothing hung (answered ${Date.now() - killedAt} ms after the kill)`);
  const fine = await within(Promise.all(others), 10_000);
  t.same(fine, [1, 2, 3].map(() => ({ status: 200, body: 'steady /slow' })), 'the other backend\'s requests in flight finish normally');

  await waitFor(async () => (await backendRow(lb, 'victim')).state === 'down', 15_000, 'victim down');
  const down = await backendRow(lb, 'victim');
  t.match(down, { state: 'down', health: 'down', errors: 3, clientAborts: 0 }, 'three proxy errors: down (outlier.consecutiveFailures = 3)');
  t.match(await backendRow(lb, 'steady'), { state: 'up', errors: 0 }, 'the other backend is unaffected');
  // (Logs are batched: wait for the line rather than look once.)
  t.ok(await lb.waitForLog(/ejected after consecutive proxy errors/, 15_000).then(() => true, () => false), 'the ejection is logged');

  // The balancer keeps serving; a session pinned to the dead server is placed anew.
  const moved = await get('/after', victim);
  t.equal(moved.statusCode, 200);
  t.equal(await moved.body.text(), 'steady /after', 'a session of the down backend goes to a live one');
  t.equal(lb.proc.exitCode, null, 'the balancer is still running');
  t.equal(await lb.stop(), 0, 'clean exit');
});

t.test('a backend that accepts and never answers: 504 after timeouts.response, and its connections are freed', { timeout: 60_000 }, async (t) => {
  const silent = await startBackend(t, 'silent', (req, res) => {
    req.resume();
    if (req.url === '/stall') {
      // Headers and a first piece, then silence.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1024 * 1024 });
      res.write(Buffer.alloc(1024, 1));
    }
    // anything else: never answered
  });
  const steady = await startBackend(t, 'steady', (req, res) => {
    req.resume();
    res.end('steady');
  });
  const lb = await startBalancer(t, await faultConfig([silent, steady], { timeouts: { response: '1s', shutdownGrace: '1s' }, outlier: { consecutiveFailures: 100, ejectFor: '60s' } }));
  const pid = lb.proc.pid!;
  let agent = new Agent({ connections: 20 });
  t.teardown(() => agent.close());
  const get = (path: string, to: { route: string }) => request(`${lb.url}${path}`, { dispatcher: agent, headers: pinTo(to) });
  // Warm up (a pooled connection to the steady backend), then take the balancer's socket count
  // without client connections (the test's own keep-alive connections are closed to count).
  await (await get('/warm', steady)).body.text();
  await backendRow(lb, 'silent');
  await agent.close();
  // Let the closed client connections go. Safe on a busy machine: one still open here only
  // raises the baseline, which makes the check below more lenient, never failing.
  await sleep(300);
  const socketsBefore = await openSocketFds(pid);
  agent = new Agent({ connections: 20 });

  const started = Date.now();
  const answers = await within(Promise.all(Array.from({ length: 5 }, () => get('/never', silent).then(async (r) => ({ status: r.statusCode, body: await r.body.text(), ms: Date.now() - started })))), 30_000);
  t.ok(answers !== undefined, 'every request was answered');
  t.same(answers?.map((a) => a.status), [504, 504, 504, 504, 504], '504 for each');
  t.match(answers?.[0]?.body, /<html/i, 'the balancer\'s 504 page');
  const slowest = Math.max(...(answers ?? []).map((a) => a.ms));
  const fastest = Math.min(...(answers ?? []).map((a) => a.ms));
  // A 504 can only come from the timeout (the backend never answers): the lower bound shows
  // it waited timeouts.response; no upper bound, a busy machine may answer late.
  t.ok(fastest >= 900, `after timeouts.response = 1s (${fastest}-${slowest} ms)`);

  // Headers, then nothing: the body times out the same way; the client sees a cut stream.
  const stalled = await get('/stall', silent);
  t.equal(stalled.statusCode, 200, 'headers relayed');
  const stallStart = Date.now();
  const outcome = await within(stalled.body.text().then(() => 'complete', () => 'cut'), 20_000);
  t.equal(outcome, 'cut', `a body that stops is cut after the response timeout (${Date.now() - stallStart} ms), not hung`);

  // The connections are freed: the backend's sockets close (at the timeout, at the latest after
  // the pool's 4 s keep-alive), and the balancer holds no more sockets than before.
  await waitFor(() => silent.trafficSockets().length === 0, 15_000, 'the silent backend\'s sockets to close', 100);
  t.equal(silent.trafficSockets().length, 0, 'no connection to the silent backend is left open');
  t.match(await backendRow(lb, 'silent'), { errors: 6, clientAborts: 0 }, 'six timeouts counted as backend errors');
  await agent.close();
  let socketsAfter = Infinity;
  // (A health probe's connection, if one opened meanwhile, closes after the pool's 4 s keep-alive.)
  await waitFor(async () => (socketsAfter = await openSocketFds(pid)) <= socketsBefore, 15_000, 'the balancer\'s sockets back to their count', 200).catch(() => undefined);
  t.ok(socketsAfter <= socketsBefore, `the balancer holds no more sockets than before (${socketsBefore} before, ${socketsAfter} after)`);

  // And it keeps serving.
  agent = new Agent({ connections: 20 });
  const ok = await get('/after', steady);
  t.equal(ok.statusCode, 200);
  t.equal(await ok.body.text(), 'steady');
  t.equal(await lb.stop(), 0, 'clean exit');
});

t.test('a backend reading a 256 MiB upload slowly: backpressure holds, memory stays flat, the upload is intact', { timeout: 110_000 }, async (t) => {
  const TOTAL = 256 * MiB;
  const events: { at: number; received: number; what: string }[] = [];
  // The backend reads nothing until the test has seen the client stall.
  let resumeFirst: () => void = () => undefined;
  const firstPause = new Promise<void>((resolve) => (resumeFirst = resolve));
  const slow = await startBackend(t, 'slow', (req, res) => {
    if (req.url !== '/upload') {
      req.resume();
      res.end('warm');
      return;
    }
    const hash = createHash('sha256');
    let received = 0;
    let pausedAgain = false;
    req.pause();
    events.push({ at: Date.now(), received, what: 'paused' });
    void firstPause.then(() => {
      events.push({ at: Date.now(), received, what: 'resumed' });
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
        if (!pausedAgain && received >= 64 * MiB) {
          // A second, shorter stall in the middle of the body.
          pausedAgain = true;
          req.pause();
          events.push({ at: Date.now(), received, what: 'paused' });
          setTimeout(() => {
            events.push({ at: Date.now(), received, what: 'resumed' });
            req.resume();
          }, 2000);
        }
      });
      req.resume();
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ bytes: received, sha256: hash.digest('hex') }));
    });
  });
  const lb = await startBalancer(t, await faultConfig([slow]));
  const pid = lb.proc.pid!;
  await (await request(`${lb.url}/warm`, { method: 'POST', body: 'x' })).body.text();
  // A moment for the warm-up to settle before the RSS baseline: safe on a busy machine, the
  // growth bound below (150 MiB) is far above what timing can change.
  await sleep(500);
  const baseline = await procStatus(pid, 'VmRSS');
  let peak = baseline;
  const poll = setInterval(() => {
    procStatus(pid, 'VmRSS').then((rss) => (peak = Math.max(peak, rss)), () => undefined);
  }, 50);
  t.teardown(() => clearInterval(poll));

  const body = generatedBody(TOTAL);
  const started = Date.now();
  const answer = request(`${lb.url}/upload`, {
    method: 'POST',
    body: body.stream,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(TOTAL) },
    headersTimeout: 100_000,
  });
  // While the backend reads nothing, the client cannot push much: the pipe fills and the
  // client stops being asked for more (nothing read for a whole second). Without
  // backpressure the 256 MiB would be gone long before the generous timeout.
  t.teardown(() => resumeFirst());
  await waitFor(() => events.length === 1 && Date.now() - body.lastReadAt() >= 1000, 60_000, 'the client to stall', 50).catch(() => undefined);
  const sentWhilePaused = body.generated();
  t.ok(Date.now() - body.lastReadAt() >= 1000, `the client stalled while the backend read nothing (${(sentWhilePaused / MiB).toFixed(1)} MiB sent)`);
  resumeFirst();
  t.ok(sentWhilePaused < 48 * MiB, `the client could send only ${(sentWhilePaused / MiB).toFixed(1)} MiB while the backend read nothing`);

  const res = await answer;
  const result = (await res.body.json()) as { bytes: number; sha256: string };
  clearInterval(poll);
  t.equal(res.statusCode, 200);
  t.equal(result.bytes, TOTAL, 'every byte arrived');
  t.equal(result.sha256, body.digest(), 'intact');
  t.same(events.map((e) => e.what), ['paused', 'resumed', 'paused', 'resumed'], 'the backend stalled twice');
  const growth = peak - baseline;
  t.comment(`256 MiB through a slow reader in ${Date.now() - started} ms; balancer RSS ${(baseline / MiB).toFixed(1)} MiB at start, peak ${(peak / MiB).toFixed(1)} MiB`);
  t.ok(growth < 150 * MiB, `balancer RSS grew by ${(growth / MiB).toFixed(1)} MiB (< 150 MiB)`);
  t.equal(await lb.stop(), 0, 'clean exit');
});

t.test('a backend resetting WebSockets: the client\'s WebSocket closes at once, the balancer keeps serving', { timeout: 60_000 }, async (t) => {
  const raw = new Set<Socket>();
  const ws = await startWebSocketBackend(t, 'ws', (_req, socket) => {
    raw.add(socket);
    socket.on('close', () => raw.delete(socket));
    return false;
  });
  const lb = await startBalancer(t, await faultConfig([ws]));
  const wsUrl = lb.url.replace(/^http/, 'ws');

  const open = async (): Promise<{ socket: WebSocket; closed: Promise<number> }> => {
    const socket = new WebSocket(`${wsUrl}/websocket/1/w/1`);
    t.teardown(() => socket.terminate());
    socket.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    const hello = await within(new Promise<string>((resolve, reject) => {
      socket.once('message', (data) => resolve(String(data)));
      socket.once('close', () => reject(new Error('closed before hello')));
    }), 15_000);
    t.equal(hello, 'hello', 'tunnel open');
    return { socket, closed };
  };

  for (const how of ['destroy', 'resetAndDestroy'] as const) {
    const { socket, closed } = await open();
    await waitFor(async () => (await backendRow(lb, 'ws')).websockets === 1, 15_000, 'websocket counted');
    t.equal(raw.size, 1);
    const at = Date.now();
    for (const s of raw) s[how]();
    // "At once" against websocketIdle (2 h): 15 s is room for a busy machine.
    const closedAt = await within(closed, 15_000);
    t.ok(closedAt !== undefined, `backend socket ${how}(): the client's WebSocket closed (${closedAt === undefined ? 'not within 15 s' : `${closedAt - at} ms`})`);
    t.equal(socket.readyState, WebSocket.CLOSED);
    await waitFor(async () => (await backendRow(lb, 'ws')).websockets === 0, 15_000, 'websocket uncounted');
    t.pass(`${how}: the balancer no longer counts the WebSocket`);
  }

  // The balancer is fine: a new WebSocket and a plain request work.
  const again = await open();
  again.socket.send('ping');
  const echo = await within(new Promise<string>((resolve) => again.socket.once('message', (d) => resolve(String(d)))), 15_000);
  t.equal(echo, 'echo ping', 'a new WebSocket works both ways');
  again.socket.close();
  await within(again.closed, 15_000);
  const res = await request(`${lb.url}/plain`);
  t.equal(res.statusCode, 200);
  t.equal(await res.body.text(), 'plain');
  t.match(await backendRow(lb, 'ws'), { state: 'up' });
  t.equal(await lb.stop(), 0, 'clean exit');
});

t.test('a backend that drops or never answers a WebSocket handshake: 502 / 504 to the client, counted as backend errors', { timeout: 60_000 }, async (t) => {
  const silentSockets = new Set<Socket>();
  const silentEnded = new Set<Socket>();
  const ws = await startWebSocketBackend(t, 'ws', (req, socket) => {
    if (req.url === '/websocket/drop') return socket.destroy(), true; // closes before answering
    if (req.url === '/websocket/garbage') return socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'), true; // not HTTP
    if (req.url !== '/websocket/silent') return false;
    // Never answers; notes when the balancer closes its side.
    silentSockets.add(socket);
    socket.once('end', () => silentEnded.add(socket));
    socket.once('close', () => silentEnded.add(socket));
    return true;
  });
  const lb = await startBalancer(t, await faultConfig([ws], { timeouts: { response: '1s', shutdownGrace: '1s' }, outlier: { consecutiveFailures: 10, ejectFor: '60s' } }));
  const handshake = (path: string) =>
    rawRequest(lb.url, `GET ${path} HTTP/1.1\r\nHost: lb\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`, 8000).then(
      (r) => r.status,
      () => 0, // connection closed without any HTTP answer
    );

  for (const [path, expected] of [['/websocket/drop', 502], ['/websocket/garbage', 502], ['/websocket/silent', 504]] as const) {
    const started = Date.now();
    const status = await handshake(path);
    const ms = Date.now() - started;
    t.equal(status, expected, `${path}: the client gets ${expected} (${ms} ms), not a dropped connection`);
    // A 504 only comes from the timeout: it waited timeouts.response (1 s); no upper bound.
    if (expected === 504) t.ok(ms >= 900, `after timeouts.response (${ms} ms)`);
  }
  // A browser's WebSocket sees the failure at once too.
  const socket = new WebSocket(`${lb.url.replace(/^http/, 'ws')}/websocket/drop`);
  const failure = await within(new Promise<string>((resolve) => {
    socket.once('unexpected-response', (_req, res) => resolve(`status ${res.statusCode}`));
    socket.once('error', (err) => resolve(`error ${err.message}`));
  }), 15_000);
  t.equal(failure, 'status 502', 'a ws client gets the 502 answer');
  socket.terminate();

  t.match(await backendRow(lb, 'ws'), { errors: 4, websockets: 0 }, 'each failed handshake is a backend error');
  await waitFor(() => silentSockets.size > 0 && silentEnded.size === silentSockets.size, 15_000, 'the silent backend connection to be closed').catch(() => undefined);
  t.ok(silentSockets.size === 1 && silentEnded.size === 1, 'the balancer closed its connection to the silent backend');
  // A working handshake afterwards.
  const good = new WebSocket(`${lb.url.replace(/^http/, 'ws')}/websocket/1/w/1`);
  t.teardown(() => good.terminate());
  const hello = await within(new Promise<string>((resolve, reject) => {
    good.once('message', (d) => resolve(String(d)));
    good.once('error', reject);
  }), 15_000);
  t.equal(hello, 'hello', 'the balancer keeps tunnelling');
  good.close();
  t.equal(await lb.stop(), 0, 'clean exit');
});
