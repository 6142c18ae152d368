/**
 * Path rules through the real CLI on loopback sockets (SPEC "Path rules"): a denied path
 * gets 403 and no backend sees it, encoding tricks sent on raw sockets (no client library
 * to normalise them) get 400 or 403, an allowed client (its address from a trusted
 * proxy's X-Forwarded-For) reaches the path and the backend gets the target exactly as
 * sent, WebSocket upgrades follow the same rules, `?servoy-lb-backend=ID` pins an allowed
 * client to ID under the prefix; an `affinity: "none"` path sets no cookie, spreads, counts
 * no session and leaves browsers their share of maxSessions; a refused connection and a
 * 503 on a stateless request are retried elsewhere without putting anyone in maintenance.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t from 'tap';
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Agent, request } from 'undici';
import { closedPort, lbConfig, rawRequest, setCookies, startBalancer } from './helpers/lb.js';
import { api, backendRow, startBackend, type FaultBackend } from './fixtures/fault-backends.js';
import type { TestLike } from './helpers/processes.js';

const REST = '/servoy-service/rest_ws/';
const ALLOWED = '10.1.2.3';
const OUTSIDER = '192.0.2.7';

/** A backend that answers `<id> <raw target>` and records every raw target it got (upgrades too). */
async function recordingBackend(t: TestLike, id: string, answer: (req: IncomingMessage) => number = () => 200): Promise<FaultBackend & { seen: string[] }> {
  const seen: string[] = [];
  const backend = await startBackend(
    t,
    id,
    (req, res) => {
      seen.push(req.url!);
      req.resume();
      const status = answer(req);
      const body = `${id} ${req.url}`;
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    },
    (req: IncomingMessage, socket: Duplex) => {
      seen.push(req.url!);
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n');
      socket.end();
    },
  );
  return Object.assign(backend, { seen });
}

/** rawHead writes bytes on a fresh connection and resolves with the status of the first response head (for 101s that stay open). */
function rawHead(url: string, bytes: string): Promise<{ status: number; head: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    let data = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no response head; got ${JSON.stringify(data)}`)); }, 10_000);
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      if (end === -1) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), head: data.slice(0, end) });
    });
    socket.on('error', () => undefined);
    socket.write(bytes);
  });
}

const get = (target: string, from?: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: lb\r\n${from ? `X-Forwarded-For: ${from}\r\n` : ''}${extra}Connection: close\r\n\r\n`;
const upgrade = (target: string, from?: string) =>
  `GET ${target} HTTP/1.1\r\nHost: lb\r\n${from ? `X-Forwarded-For: ${from}\r\n` : ''}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

t.test('deny and allow rules: 403 / 400 for every trick, allowed clients reach the path as sent, the choice of server', { timeout: 90_000 }, async (t) => {
  const a = await recordingBackend(t, 'a');
  const b = await recordingBackend(t, 'b');
  const lb = await startBalancer(
    t,
    await lbConfig([{ id: 'a', url: a.url }, { id: 'b', url: b.url }], {
      healthCheck: { path: '/health', interval: '30s' },
      trustedProxies: ['127.0.0.1'],
      paths: [
        { prefix: REST, affinity: 'none' },
        { prefix: '/servoy-admin/', allow: ['10.0.0.0/8'] },
        { prefix: '/servoy-developer/', deny: true },
      ],
    }),
  );
  const seenAll = () => [...a.seen, ...b.seen];

  const denied = await rawRequest(lb.url, get('/servoy-developer/'));
  t.equal(denied.status, 403, 'a denied path gets 403');
  t.match(denied.body, /403 Forbidden/, 'the balancer\'s 403 page');

  const tricks: [string, number][] = [
    ['/servoy-developer', 403],
    ['/servoy-developer/index.html?x=1', 403],
    ['/x/%2e%2e/servoy-developer/', 403],
    ['/x/%2E%2E/servoy-developer/', 403],
    ['/%2e/servoy-developer/', 403],
    ['/%73ervoy-developer/', 403],
    ['//servoy-developer/', 403],
    ['/./servoy-developer/', 403],
    ['/x/../servoy-developer/', 403],
    ['/servoy-developer;jsessionid=x/', 403],
    ['/x/..;/servoy-developer/', 403],
    ['/servoy-developer%2f', 400],
    ['/x%2f..%2fservoy-developer/', 400],
    ['/servoy-developer%5c', 400],
    ['/x\\..\\servoy-developer/', 400],
    ['/../servoy-developer/', 400],
    ['/x/%c0%ae%c0%ae/servoy-developer/', 400],
    ['/x%c0%afservoy-developer/', 400],
    ['/x%e0%80%afservoy-developer/', 400],
    ['/servoy-developer%00/', 400],
    ['/servoy-developer%09/', 400],
    ['/x#/../servoy-developer/', 400],
    ['/servoy-admin/', 403], // allow rule, client 127.0.0.1 (no forwarded address)
  ];
  for (const [target, status] of tricks) {
    const res = await rawRequest(lb.url, get(target));
    t.equal(res.status, status, `${target} -> ${status}`);
  }
  t.equal((await rawRequest(lb.url, get('/servoy-admin/x', OUTSIDER))).status, 403, 'an outsider behind the trusted proxy gets 403');
  t.equal((await rawRequest(lb.url, get('/x/../servoy-admin/x', OUTSIDER))).status, 403, '... with a trick too');
  t.equal((await rawRequest(lb.url, `POST /servoy-developer/upload HTTP/1.1\r\nHost: lb\r\nContent-Length: 5\r\n\r\nhello`)).status, 403, 'a denied request with a body');

  // WebSocket upgrades follow the same rules.
  t.equal((await rawHead(lb.url, upgrade('/servoy-developer/ws'))).status, 403, 'upgrade to a denied path: 403');
  t.equal((await rawHead(lb.url, upgrade('/x/%2e%2e/servoy-developer/ws'))).status, 403, 'upgrade with an encoded ..: 403');
  t.equal((await rawHead(lb.url, upgrade('/servoy-developer%2fws'))).status, 400, 'upgrade with %2f: 400');
  t.equal((await rawHead(lb.url, upgrade('/servoy-admin/ws', OUTSIDER))).status, 403, 'upgrade by an outsider: 403');

  // Positive signal: an allowed client reaches the path, target exactly as sent.
  const target = '/servoy-admin/./x;jsessionid=abc?y=%2e&z=1';
  const allowed = await rawRequest(lb.url, get(target, ALLOWED));
  t.equal(allowed.status, 200, 'an allowed client reaches the path');
  t.ok(seenAll().includes(target), 'the backend got the target exactly as the client sent it');
  const ws = await rawHead(lb.url, upgrade('/servoy-admin/ws', ALLOWED));
  t.equal(ws.status, 101, 'an allowed client\'s upgrade is tunnelled');
  // Only now, after those reached a backend: none of the refused requests ever did.
  t.same(seenAll().filter((u) => /developer/.test(u)), [], 'no denied or refused request reached a backend');
  t.same(seenAll().sort(), ['/servoy-admin/ws', target].sort(), 'the backends saw exactly the two allowed requests');

  // Case: Tomcat's paths are case-sensitive, so /SERVOY-DEVELOPER/ is another path there too.
  t.equal((await rawRequest(lb.url, get('/SERVOY-DEVELOPER/'))).status, 200, 'another case is another path (forwarded)');

  // Choosing the server.
  const chooseB = await request(`${lb.url}/servoy-admin/?servoy-lb-backend=b`, { headers: { 'x-forwarded-for': ALLOWED } });
  t.equal(chooseB.statusCode, 200);
  t.equal(await chooseB.body.text(), 'b /servoy-admin/?servoy-lb-backend=b', 'the chosen server, the parameter kept in the target');
  const cookies = setCookies(chooseB.headers['set-cookie']);
  const choice = cookies.find((c) => c.startsWith('SERVOYLB_BACKEND='));
  t.match(choice, /^SERVOYLB_BACKEND=b\.[A-Za-z0-9_-]{22}; Path=\/servoy-admin\/; Max-Age=3600; HttpOnly; SameSite=Strict$/, 'a signed cookie for the prefix, an hour');
  t.notOk(cookies.some((c) => c.startsWith('SERVOYLB=')), 'no affinity cookie for a chosen server');
  const cookie = choice!.split(';')[0]!;
  for (let i = 0; i < 10; i++) {
    const res = await request(`${lb.url}/servoy-admin/page${i}`, { headers: { 'x-forwarded-for': ALLOWED, cookie } });
    t.equal((await res.body.text()).split(' ')[0], 'b', `request ${i} under the prefix goes to the chosen server`);
  }
  const chooseA = await request(`${lb.url}/servoy-admin/?servoy-lb-backend=a`, { headers: { 'x-forwarded-for': ALLOWED, cookie } });
  t.equal((await chooseA.body.text()).split(' ')[0], 'a', 'the parameter overrides the cookie');
  const outsider = await request(`${lb.url}/servoy-admin/x`, { headers: { 'x-forwarded-for': OUTSIDER, cookie } });
  await outsider.body.text();
  t.equal(outsider.statusCode, 403, 'the cookie grants no access by itself');
  const unknown = await request(`${lb.url}/servoy-admin/?servoy-lb-backend=nope`, { headers: { 'x-forwarded-for': ALLOWED } });
  await unknown.body.text();
  t.equal(unknown.statusCode, 503, 'an unknown server: 503, never another one');
  const forged = await request(`${lb.url}/servoy-admin/x`, { headers: { 'x-forwarded-for': ALLOWED, cookie: `SERVOYLB_BACKEND=a.${'A'.repeat(22)}` } });
  await forged.body.text();
  t.equal(forged.statusCode, 200, 'a forged choice is ignored: normal routing');

  // The explanation.
  const explained = await api(lb, 'GET', `/api/route?key=${ALLOWED}&path=${encodeURIComponent('/x/../servoy-admin/')}`);
  t.match(explained.json, { key: ALLOWED, path: { normalised: '/servoy-admin/', rule: { prefix: '/servoy-admin/', kind: 'allow' }, verdict: 'allowed' } }, 'GET /api/route?path= explains the rule');
  const outsiderExplained = await api(lb, 'GET', `/api/route?key=x&client=${OUTSIDER}&path=/servoy-developer/`);
  t.match(outsiderExplained.json.path, { verdict: 'denied', rule: { kind: 'deny' } });
  t.equal(lb.proc.exitCode, null, 'the balancer is still running');
});

t.test('affinity "none": no cookie, spread over the servers, no sessions; browsers keep their share of maxSessions', { timeout: 90_000 }, async (t) => {
  const backends = await Promise.all(['a', 'b', 'c'].map((id) => recordingBackend(t, id)));
  const lb = await startBalancer(
    t,
    await lbConfig(backends.map((b) => ({ id: b.route, url: b.url, maxSessions: 2 })), {
      healthCheck: { path: '/health', interval: '30s' },
      log: { access: false },
      paths: [{ prefix: REST, affinity: 'none' }],
    }),
  );
  const agent = new Agent({ connections: 10 });
  t.teardown(() => agent.close());
  const served: Record<string, number> = { a: 0, b: 0, c: 0 };
  let cookies = 0;
  let failures = 0;
  for (let round = 0; round < 20; round++) {
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const res = await request(`${lb.url}${REST}app/form/${round * 10 + i}`, { dispatcher: agent });
        const text = await res.body.text();
        if (res.statusCode !== 200) failures++;
        served[text.split(' ')[0]!]!++;
        cookies += setCookies(res.headers['set-cookie']).length;
      }),
    );
  }
  t.equal(failures, 0, '200 stateless requests answered');
  t.equal(cookies, 0, 'no affinity cookie (nor any other) set');
  for (const id of ['a', 'b', 'c']) t.ok(served[id]! >= 30, `${id} served ${served[id]} of 200: spread`);
  for (const id of ['a', 'b', 'c']) t.match(await backendRow(lb, id), { sessions: 0, state: 'up' }, `${id}: no session counted`);

  // Browsers: six new sessions fill maxSessions (2 each); the seventh finds the pool full.
  const browsers: number[] = [];
  for (let i = 0; i < 7; i++) {
    const res = await request(`${lb.url}/app/index.html`, { dispatcher: agent });
    await res.body.text();
    browsers.push(res.statusCode);
  }
  t.same(browsers, [200, 200, 200, 200, 200, 200, 503], 'browser sessions get every slot of maxSessions');
  const rest = await request(`${lb.url}${REST}after`, { dispatcher: agent });
  await rest.body.text();
  t.equal(rest.statusCode, 200, 'stateless calls still go through with every server at maxSessions');
  const totals = await Promise.all(['a', 'b', 'c'].map(async (id) => (await backendRow(lb, id)).sessions));
  t.same(totals, [2, 2, 2], 'sessions are the browsers\' only');
});

t.test('stateless: a refused connection goes to another server; a 503 is retried once elsewhere, nobody in maintenance', { timeout: 90_000 }, async (t) => {
  let goodAnswers = 200;
  const flaky = await recordingBackend(t, 'flaky', () => 503);
  const good = await recordingBackend(t, 'good', () => goodAnswers);
  const closed = await closedPort();
  const lb = await startBalancer(
    t,
    await lbConfig(
      [
        { id: 'refusing', url: `http://127.0.0.1:${closed}` },
        { id: 'flaky', url: flaky.url },
        { id: 'good', url: good.url },
      ],
      {
        healthCheck: { path: '/health', interval: '30s' },
        outlier: { consecutiveFailures: 1000, ejectFor: '30s' },
        log: { access: false },
        paths: [{ prefix: REST, affinity: 'none' }],
      },
    ),
  );
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) {
    const res = await request(`${lb.url}${REST}call/${i}`);
    const text = await res.body.text();
    statuses.push(res.statusCode);
    t.equal(text, `good ${REST}call/${i}`, `call ${i} answered by the good server`);
  }
  t.same(statuses, Array(12).fill(200), 'every call answered 200');
  t.ok(flaky.requests > 0, `the 503 server was tried (${flaky.requests} times) and its answer not shown`);
  const refusing = await backendRow(lb, 'refusing');
  t.ok(refusing.errors > 0, `the refusing server was tried (${refusing.errors} refusals) and the call went elsewhere`);
  t.match(await backendRow(lb, 'flaky'), { state: 'up', errors: 0 }, 'a 503 to a stateless request changes no state: not maintenance');

  // Both answer 503: retried once, then the client gets the 503.
  goodAnswers = 503;
  const before = flaky.requests + good.requests;
  const res = await request(`${lb.url}${REST}both`);
  await res.body.text();
  t.equal(res.statusCode, 503, 'two 503s: the second is the answer');
  t.equal(flaky.requests + good.requests - before, 2, 'retried exactly once');
  t.match(await backendRow(lb, 'flaky'), { state: 'up' });
  t.match(await backendRow(lb, 'good'), { state: 'up' }, 'nobody in maintenance');

  // A request with a body is not retried after a 503 (it may have been acted on).
  const post = await request(`${lb.url}${REST}post`, { method: 'POST', body: 'data' });
  await post.body.text();
  t.equal(post.statusCode, 503, 'a POST answered 503 gets the 503');
});
