/**
 * WebSocket smuggling and other tunnels over raw sockets (SPEC "Proxying": no byte from a
 * client reaches a backend without having been parsed by the balancer, except inside a
 * WebSocket the backend accepted with 101). A raw backend records every byte each of its
 * connections received, so anything the balancer piped through unparsed shows up:
 * - a refused handshake (any answer but 101 + Upgrade: websocket) is relayed with
 *   Connection: close, the client connection ends, the backend connection is closed, and
 *   nothing the client sent after its upgrade request reaches the backend;
 * - a 101 without Upgrade: websocket (or any other 1xx) is a 502;
 * - bytes sent with the handshake wait for the 101, then reach the backend in order;
 * - upgrade requests the balancer refuses itself (a body, not GET, HTTP/1.0, h2c) and
 *   CONNECT get 400 and reach no backend; an Upgrade: h2c header without Connection:
 *   Upgrade is a plain request, forwarded without Upgrade and HTTP2-Settings.
 */
import t from 'tap';
import { lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { countingBackend, headerMap, probe } from './fixtures/hostile-net.js';
import { rawClient } from './fixtures/raw-client.js';
import { SWITCH, upgradeBackend, type UpgradeReply } from './fixtures/upgrade-backend.js';

const H = 'Host: lb.test\r\n';
const WS = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
const handshake = (path: string): string => `GET ${path} HTTP/1.1\r\n${H}${WS}\r\n`;
/** The second request of the issue: what a smuggler hides behind a refused upgrade. */
const SMUGGLED = `GET /servoy-admin/secret HTTP/1.1\r\n${H}X-Forwarded-For: 6.6.6.6\r\n\r\n`;

/** Backend answers to an upgrade request, and what the client must get for each. */
const ANSWERS: { name: string; reply: UpgradeReply; status: number; body?: string }[] = [
  { name: '404 with a Content-Length, backend keeps the connection open', reply: { answer: 'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\nnf\n' }, status: 404, body: 'nf\n' },
  { name: '403 chunked, then the backend closes', reply: { answer: 'HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nForbidden\r\n0\r\n\r\n', end: true }, status: 403, body: '9\r\nForbidden\r\n0\r\n\r\n' },
  { name: '400 delimited by the backend closing', reply: { answer: 'HTTP/1.1 400 Bad Request\r\n\r\nno websocket here', end: true }, status: 400, body: 'no websocket here' },
  { name: '426 with an empty body, backend keeps the connection open', reply: { answer: 'HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n' }, status: 426, body: '' },
  { name: '101 without an Upgrade header', reply: { answer: 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n' }, status: 502 },
  { name: '101 switching to h2c', reply: { answer: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n' }, status: 502 },
  { name: '100 Continue (a 1xx that is not a switch)', reply: { answer: 'HTTP/1.1 100 Continue\r\n\r\n' }, status: 502 },
];

t.test('a refused handshake is relayed with Connection: close; nothing sent after the upgrade request reaches the backend', async (t) => {
  const backend = await upgradeBackend(t, () => ({ answer: '' }));
  const lb = await startBalancer(t, await lbConfig([{ id: 'raw', url: backend.url }], { log: { access: false }, outlier: { consecutiveFailures: 1000 } }));
  for (const [i, c] of ANSWERS.entries()) {
    backend.reply = () => c.reply;
    const path = `/websocket/${i}`;
    // The smuggled request travels in the same write as the handshake: it is in Node's `head`.
    const res = await probe(lb.url, handshake(path) + SMUGGLED, { timeoutMs: 10_000 });
    t.ok(res.closed, `${c.name}: the client connection is closed after the answer`);
    t.equal(res.status, c.status, `${c.name}: ${c.status}`);
    const end = res.raw.indexOf('\r\n\r\n');
    const head = res.raw.slice(0, end);
    t.equal(res.raw.match(/^HTTP\/1\.[01] \d{3}/gm)?.length, 1, `${c.name}: exactly one response`);
    t.match(head, /\r\nconnection: close(\r\n|$)/i, `${c.name}: the relayed head says Connection: close`);
    t.notMatch(head, /keep-alive/i, `${c.name}: and nothing of the backend's keep-alive`);
    if (c.body !== undefined) t.equal(res.raw.slice(end + 4), c.body, `${c.name}: the body relayed intact, nothing after it`);
    else t.match(res.raw, /<h1>502 /, `${c.name}: the balancer's 502 page`);

    await waitFor(() => backend.connections.length === i + 1 && backend.connections[i]!.closed, 10_000, `${c.name}: the backend connection to be closed`);
    const conn = backend.connections[i]!;
    t.match(conn.received, new RegExp(`^GET ${path} HTTP/1\\.1\\r\\n`), `${c.name}: the backend got the handshake`);
    t.equal(conn.received.indexOf('\r\n\r\n'), conn.received.length - 4, `${c.name}: and nothing after it (got ${JSON.stringify(conn.received.slice(conn.received.indexOf('\r\n\r\n') + 4))})`);
    t.notMatch(conn.received, /secret|6\.6\.6\.6/, `${c.name}: the smuggled request never reached the backend`);
  }
  t.equal(backend.connections.length, ANSWERS.length, 'one backend connection per handshake: none reused');
  t.equal(lb.proc.exitCode, null, 'the balancer is running');
});

t.test('bytes sent after a refusal has been relayed are dropped, never forwarded', async (t) => {
  const backend = await upgradeBackend(t, () => ({ answer: 'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnf\n' }));
  const lb = await startBalancer(t, await lbConfig([{ id: 'raw', url: backend.url }], { log: { access: false }, outlier: { consecutiveFailures: 1000 } }));
  const client = await rawClient(t, lb.url);
  client.write(handshake('/websocket/later'));
  await client.until(/^HTTP\/1\.1 404 [^]*\r\n\r\nnf\n$/);
  client.write(SMUGGLED);
  await client.closed();
  t.match(client.received(), /\r\nconnection: close\r\n/i);
  await waitFor(() => backend.connections[0]?.closed === true, 10_000, 'the backend connection to be closed');
  t.notMatch(backend.connections[0]!.received, /secret/, 'the later request never reached the backend');
  t.equal(backend.connections.length, 1);
});

t.test('an accepted WebSocket: bytes sent with the handshake wait for the 101, then everything flows both ways', async (t) => {
  const backend = await upgradeBackend(t, () => ({ answer: SWITCH, echo: true }));
  const lb = await startBalancer(t, await lbConfig([{ id: 'raw', url: backend.url }], { log: { access: false } }));
  const client = await rawClient(t, lb.url);
  client.write(`${handshake('/websocket/ok')}EARLY`);
  await client.until(/^HTTP\/1\.1 101 [^]*\r\n\r\necho:EARLY$/);
  t.match(client.received(), /\r\nupgrade: websocket\r\n/i, 'the 101 is relayed');
  client.write('LATER');
  await client.until(/echo:LATER$/);
  const conn = backend.connections[0]!;
  t.notMatch(conn.beforeAnswer, /EARLY/, 'nothing but the handshake reached the backend before its 101');
  t.equal(conn.received.slice(conn.received.indexOf('\r\n\r\n') + 4), 'EARLYLATER', 'after it, the client\'s bytes in order');
  t.equal(backend.connections.length, 1);
});

t.test('upgrade requests the balancer refuses, CONNECT, and h2c: 400, closed, nothing reaches a backend', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { log: { access: false }, outlier: { consecutiveFailures: 1000 } }));
  const port = new URL(backend.url).port;
  const refused: Record<string, string> = {
    'WebSocket with a Content-Length body': `GET /refused/cl HTTP/1.1\r\n${H}${WS}Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    'WebSocket with a chunked body': `GET /refused/te HTTP/1.1\r\n${H}${WS}Transfer-Encoding: chunked\r\n\r\n${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    'WebSocket with POST': `POST /refused/post HTTP/1.1\r\n${H}${WS}\r\n`,
    'WebSocket over HTTP/1.0': `GET /refused/http10 HTTP/1.0\r\n${H}${WS}\r\n`,
    'WebSocket with two Host headers': `GET /refused/hosts HTTP/1.1\r\n${H}Host: other.test\r\n${WS}\r\n`,
    'h2c upgrade with HTTP2-Settings': `GET /refused/h2c HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n${SMUGGLED}`,
    'h2c upgrade without HTTP2-Settings': `GET /refused/h2c-bare HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
    'CONNECT to the backend, a request behind it': `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\nGET /refused/tunnelled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
    'CONNECT in origin form': `CONNECT /refused/connect HTTP/1.1\r\n${H}\r\n`,
  };
  for (const [name, bytes] of Object.entries(refused)) {
    const res = await probe(lb.url, bytes, { timeoutMs: 10_000 });
    t.ok(res.status === 400 || (res.status === undefined && res.closed), `${name}: 400 (got ${res.status ?? 'nothing'})`);
    if (res.status !== undefined) t.match(res.raw, /<h1>400 /, `${name}: the balancer's 400 page`);
    t.ok(res.closed, `${name}: the connection is closed`);
  }
  // Positive signal first: a later request reaches the backend; only then count.
  const marker = await probe(lb.url, `GET /marker HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  t.equal(marker.status, 200);
  await waitFor(() => backend.seen.some((r) => r.url === '/marker'), 5000, 'the marker request at the backend');
  t.same(backend.seen.map((r) => `${r.method} ${r.url}`), ['GET /marker'], 'none of the refused requests (nor what they carried) reached the backend');

  // Content-Length: 0 is no body: the handshake goes through.
  const empty = await probe(lb.url, `GET /websocket/empty HTTP/1.1\r\n${H}${WS}Content-Length: 0\r\n\r\n`, { timeoutMs: 10_000 });
  t.equal(empty.status, 101, 'a WebSocket with Content-Length: 0 is tunnelled');

  // Upgrade: h2c without Connection: Upgrade is no upgrade request: a plain GET, forwarded
  // without the h2c headers.
  const plain = await probe(lb.url, `GET /h2c-plain HTTP/1.1\r\n${H}Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n`);
  t.equal(plain.status, 200, 'Upgrade: h2c without Connection: Upgrade is served as HTTP/1.1');
  const seen = backend.seen.find((r) => r.url === '/h2c-plain');
  t.ok(seen, 'it reached the backend');
  const headers = headerMap(seen?.rawHeaders ?? []);
  t.notOk(headers.has('upgrade'), 'without Upgrade');
  t.notOk(headers.has('http2-settings'), 'without HTTP2-Settings');
  t.equal(lb.proc.exitCode, null, 'the balancer is running');
});
