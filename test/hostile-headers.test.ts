/**
 * Hostile headers, both ways (SPEC "Proxying"): oversize request headers get 431 and a
 * backend's oversize response head 502; spoofed X-Forwarded-* / Forwarded from an
 * untrusted client are replaced (kept and extended only behind a trusted proxy); no CR/LF
 * ever travels through a header the balancer writes — not from a backend's response (HTTP
 * or WebSocket handshake), not from a client's path or cookies — and the balancer's
 * error pages never echo input.
 */
import t, { type Test } from 'tap';
import { request } from 'undici';
import { adminUrlOf, closedPort, lbConfig, startBalancer } from './helpers/lb.js';
import { startSims } from './helpers/processes.js';
import { countingBackend, headerMap, probe, rawBackend } from './fixtures/hostile-net.js';

const H = 'Host: lb.test\r\n';
const WS_HEADERS = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
/** A header line as the balancer may write it: token, colon, value without CR/LF/NUL. */
const HEADER_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+: ?[^\r\n\0]*$/;

/** Asserts every line of a raw head is a well-formed status/request line or header line. */
function assertCleanHead(t: Test, head: string, what: string): void {
  const lines = head.split('\r\n');
  t.notMatch(lines[0]!, /[\r\n\0]/, `${what}: first line has no CR, LF or NUL`);
  const bad = lines.slice(1).filter((l) => !HEADER_LINE.test(l));
  t.same(bad, [], `${what}: every header line is one well-formed header`);
  t.notOk(lines.some((l) => /^\s*(x-injected|set-cookie:\s*evil)/i.test(l)), `${what}: no injected header line`);
}

async function serves(t: Test, url: string, what: string): Promise<void> {
  const res = await probe(url, `GET /still-serving HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  t.equal(res.status, 200, `still serving after ${what}`);
}

t.test('oversize request headers get 431 and reach no backend; a backend\'s oversize head gets 502', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { limits: { maxHeaderBytes: 8192 }, outlier: { consecutiveFailures: 1000 } }));

  const under = await probe(lb.url, `GET /under HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(6000)}\r\nConnection: close\r\n\r\n`);
  t.equal(under.status, 200, 'a 6 KB header is under the 8 KB limit and passes');
  t.equal(backend.seen.at(-1)?.url, '/under');

  const cases: Record<string, string> = {
    'one huge header': `GET /huge HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(10_000)}\r\n\r\n`,
    'many headers, each small': `GET /many HTTP/1.1\r\n${H}${Array.from({ length: 150 }, (_, i) => `X-Many-${i}: ${'m'.repeat(60)}\r\n`).join('')}\r\n`,
    'one huge cookie': `GET /cookie HTTP/1.1\r\n${H}Cookie: JSESSIONID=${'c'.repeat(9000)}\r\n\r\n`,
    'a huge request target': `GET /${'p'.repeat(10_000)} HTTP/1.1\r\n${H}\r\n`,
    'headers that never end': `GET /endless HTTP/1.1\r\n${H}${'X-Endless: e\r\n'.repeat(1000)}`,
  };
  // What the backend saw from here on must be exactly the /still-serving requests: checked
  // after each one is served (a positive signal), so a refused request that slipped through
  // late shows up at the latest in the next case's check, with no sleep to tune.
  const from = backend.seen.length;
  const expected: string[] = [];
  for (const [name, bytes] of Object.entries(cases)) {
    const res = await probe(lb.url, bytes);
    t.equal(res.status, 431, `${name}: 431`);
    t.match(res.raw, /<h1>431 /, `${name}: the balancer's 431 page`);
    t.ok(res.closed, `${name}: connection closed`);
    await serves(t, lb.url, name);
    expected.push('/still-serving');
    t.same(backend.seen.slice(from).map((r) => r.url), expected, `${name}: nothing reached the backend but the next request`);
  }

  // The backend side: the response codec reads a backend's head within 16 KB (backendHeadLimit).
  for (const path of ['/bighead', '/manyheads']) {
    const res = await probe(lb.url, `GET ${path} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    t.equal(res.status, 502, `${path}: a backend's oversize response head is a 502`);
    t.match(res.raw, /<h1>502 /, `${path}: the balancer's page`);
    t.notMatch(res.raw, /x-big|x-h0/i, `${path}: none of the oversize head relayed`);
    await serves(t, lb.url, `${path}`);
  }
  t.equal(lb.proc.exitCode, null, 'the balancer is running');

  // Above 16 KB, the limit on a backend's head follows limits.maxHeaderBytes.
  const big = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { limits: { maxHeaderBytes: 32768 }, outlier: { consecutiveFailures: 1000 } }));
  const relayed = await probe(big.url, `GET /bighead HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  t.equal(relayed.status, 200, 'maxHeaderBytes 32 KB: a backend\'s 20 KB head is relayed');
  t.match(relayed.raw, /\r\nx-big: b{20000}\r\n/, 'with its big header');
  const huge = await probe(big.url, `GET /hugehead HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  t.equal(huge.status, 502, 'maxHeaderBytes 32 KB: a backend\'s 40 KB head is a 502');
  t.notMatch(huge.raw, /x-huge/i, 'none of it relayed');
  await serves(t, big.url, '/hugehead');
  t.equal(big.proc.exitCode, null, 'the balancer is running');
});

const SPOOF =
  'X-Forwarded-For: 6.6.6.6\r\n' +
  'x-forwarded-for: 7.7.7.7, 8.8.8.8\r\n' +
  'X-FORWARDED-PROTO: https\r\n' +
  'X-Forwarded-Host: evil.example\r\n' +
  'X-Forwarded-Port: 443\r\n' +
  'X-Forwarded-Server: evil.example\r\n' +
  'Forwarded: for=6.6.6.6;proto=https;host=evil.example\r\n' +
  'forwarded: for=9.9.9.9\r\n' +
  'X-Real-IP: 6.6.6.6\r\n' +
  'True-Client-IP: 7.7.7.7\r\n' +
  'X-Client-IP: 8.8.8.8\r\n' +
  'X-Cluster-Client-IP: 9.9.9.9\r\n' +
  'Client-IP: 6.6.6.6\r\n' +
  'CF-Connecting-IP: 7.7.7.7\r\n' +
  'Fastly-Client-IP: 8.8.8.8\r\n' +
  'X-Originating-IP: 9.9.9.9\r\n' +
  'X-Remote-IP: 6.6.6.6\r\n' +
  'X-Remote-Addr: 7.7.7.7\r\n';
/** The client-address headers besides X-Forwarded-* in SPOOF (lower-case). */
const CLIENT_IP_HEADERS = ['forwarded', 'true-client-ip', 'x-client-ip', 'x-cluster-client-ip', 'client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'x-originating-ip', 'x-remote-ip', 'x-remote-addr'];

t.test('spoofed X-Forwarded-*, Forwarded, X-Real-IP and other client-address headers from an untrusted client are replaced or dropped', async (t) => {
  const backend = await countingBackend(t);
  const [sim] = await startSims(t, ['servoy-a']);
  for (const trustedProxies of [[], ['10.0.0.0/8', '::1', '192.168.1.1']]) {
    const label = `trustedProxies ${JSON.stringify(trustedProxies)}`;
    const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { trustedProxies }));
    const res = await probe(lb.url, `GET /spoof HTTP/1.1\r\nHost: app.example.com\r\n${SPOOF}Connection: close\r\n\r\n`);
    t.equal(res.status, 200, label);
    const seen = headerMap(backend.seen.at(-1)!.rawHeaders);
    t.same(seen.get('x-forwarded-for'), ['127.0.0.1'], `${label}: X-Forwarded-For is the real peer only`);
    t.same(seen.get('x-forwarded-proto'), ['http'], `${label}: X-Forwarded-Proto is how the client came`);
    t.same(seen.get('x-forwarded-host'), ['app.example.com'], `${label}: X-Forwarded-Host is the Host sent`);
    t.same(seen.get('x-real-ip'), ['127.0.0.1'], `${label}: X-Real-IP is the real peer`);
    for (const name of ['x-forwarded-port', 'x-forwarded-server', ...CLIENT_IP_HEADERS]) t.notOk(seen.has(name), `${label}: ${name} dropped`);
    const values = backend.seen.at(-1)!.rawHeaders.filter((_, i) => i % 2 === 1).join('\n');
    t.notMatch(values, /6\.6\.6\.6|7\.7\.7\.7|8\.8\.8\.8|9\.9\.9\.9|evil\.example/, `${label}: no spoofed value reaches the backend`);

    const simLb = await startBalancer(t, await lbConfig([sim!], { trustedProxies }));
    const who = await probe(simLb.url, `GET /api/whoami HTTP/1.1\r\nHost: app.example.com\r\n${SPOOF}Connection: close\r\n\r\n`);
    t.equal(who.status, 200);
    t.same((JSON.parse(who.raw.slice(who.raw.indexOf('\r\n\r\n') + 4)) as { headers: unknown }).headers,
      { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'app.example.com', host: 'app.example.com', origin: null },
      `${label}: the simulator sees only the real peer`);
    await Promise.all([lb.stop(), simLb.stop()]);
  }
});

t.test('behind a trusted proxy the forwarded headers are kept, and X-Forwarded-For extended', async (t) => {
  const backend = await countingBackend(t);
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { trustedProxies: ['127.0.0.1'] }));
  const res = await probe(lb.url, `GET /trusted HTTP/1.1\r\nHost: internal:8080\r\n${SPOOF}Connection: close\r\n\r\n`);
  t.equal(res.status, 200);
  const seen = headerMap(backend.seen.at(-1)!.rawHeaders);
  t.same(seen.get('x-forwarded-for'), ['6.6.6.6, 7.7.7.7, 8.8.8.8, 127.0.0.1'], 'the chain, extended with the proxy\'s address');
  t.same(seen.get('x-forwarded-proto'), ['https'], 'the proxy\'s X-Forwarded-Proto (the first one)');
  t.same(seen.get('x-forwarded-host'), ['evil.example'], 'the proxy\'s X-Forwarded-Host');
  t.same(seen.get('x-forwarded-port'), ['443'], 'other X-Forwarded-* kept');
  t.same(seen.get('forwarded'), ['for=6.6.6.6;proto=https;host=evil.example', 'for=9.9.9.9'], 'Forwarded kept as sent');
  t.same(seen.get('x-real-ip'), ['6.6.6.6'], 'the proxy\'s X-Real-IP kept');
  for (const name of CLIENT_IP_HEADERS.slice(1)) t.ok(seen.has(name), `${name} kept`);
  const plain = await probe(lb.url, `GET /trusted HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-For: 6.6.6.6, 127.0.0.1\r\nConnection: close\r\n\r\n`);
  t.equal(plain.status, 200);
  t.same(headerMap(backend.seen.at(-1)!.rawHeaders).get('x-real-ip'), ['6.6.6.6'], 'without one, X-Real-IP is the client the trusted chain names (the right-most untrusted hop)');

  const simLb = await startBalancer(t, await lbConfig([sim!], { trustedProxies: ['127.0.0.1'] }));
  const who = await probe(simLb.url, `GET /api/whoami HTTP/1.1\r\nHost: internal:8080\r\n${SPOOF}Connection: close\r\n\r\n`);
  t.same((JSON.parse(who.raw.slice(who.raw.indexOf('\r\n\r\n') + 4)) as { headers: unknown }).headers,
    { 'x-forwarded-for': '6.6.6.6, 7.7.7.7, 8.8.8.8, 127.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', host: 'internal:8080', origin: null },
    'the simulator sees the chain through the trusted proxy');
});

t.test('requests Node would answer with bare text get the balancer\'s pages: missing Host 400, unknown Expect 417', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }]));
  const noHost = await probe(lb.url, 'GET /no-host HTTP/1.1\r\nConnection: close\r\n\r\n');
  t.equal(noHost.status, 400, 'HTTP/1.1 without Host: 400');
  t.match(noHost.raw, /\r\nconnection: close\r\n[^]*<h1>400 Bad Request<\/h1>/i, 'the balancer\'s 400 page, connection closed');
  const wsNoHost = await probe(lb.url, `GET /websocket/1/main/1 HTTP/1.1\r\n${WS_HEADERS}\r\n`);
  t.equal(wsNoHost.status, 400, 'a WebSocket handshake without Host: 400');
  t.match(wsNoHost.raw, /<h1>400 Bad Request<\/h1>/, 'the 400 page');
  const old = await probe(lb.url, 'GET /http10 HTTP/1.0\r\n\r\n');
  t.equal(old.status, 200, 'HTTP/1.0 needs no Host');
  const expect = await probe(lb.url, `POST /expect HTTP/1.1\r\n${H}Expect: something-else\r\nContent-Length: 2\r\n\r\nhi`);
  t.equal(expect.status, 417, 'an Expect other than 100-continue: 417');
  t.match(expect.raw, /\r\nconnection: close\r\n[^]*<h1>417 Expectation Failed<\/h1>/i, 'the balancer\'s 417 page, connection closed');
  const cont = await probe(lb.url, `POST /continue HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`);
  t.match(cont.raw, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, 'Expect: 100-continue still works');
  t.same(backend.seen.map((r) => r.url), ['/http10', '/continue'], 'only the good requests reached the backend');
});

t.test('a backend response with CR/LF in a header is never relayed as a split header', async (t) => {
  let mode = '';
  const backend = await rawBackend(t, (head) =>
    head.startsWith('GET /websocket/')
      ? `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${mode}\r\n\r\n`
      : `HTTP/1.1 200 OK\r\ncontent-length: 2\r\n${mode}\r\n\r\nok`);
  const lb = await startBalancer(t, await lbConfig([{ id: 'raw', url: backend.url }], { outlier: { consecutiveFailures: 1000 } }));
  const variants: Record<string, string> = {
    'bare CR': 'Set-Cookie: a=1\rX-Injected: yes',
    'bare LF': 'Set-Cookie: a=1\nX-Injected: yes',
    'obs-fold (space)': 'Set-Cookie: a=1\r\n X-Injected: yes',
    'obs-fold (tab)': 'Set-Cookie: a=1\r\n\tX-Injected: yes',
    'NUL': 'Set-Cookie: a=1\0X-Injected: yes',
    'CR LF CR': 'Location: /x\r\n\rX-Injected: yes',
  };
  for (const [name, injected] of Object.entries(variants)) {
    mode = injected;
    const res = await probe(lb.url, `GET /page HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    t.equal(res.status, 502, `${name}: HTTP: the client gets 502`);
    t.match(res.raw, /<h1>502 /, `${name}: the balancer's page`);
    t.notMatch(res.raw, /x-injected/i, `${name}: HTTP: the injected header never reaches the client`);
    assertCleanHead(t, res.raw.slice(0, res.raw.indexOf('\r\n\r\n')), `${name}: HTTP response`);

    const ws = await probe(lb.url, `GET /websocket/1/main/1 HTTP/1.1\r\n${H}${WS_HEADERS}\r\n`, { timeoutMs: 2000 });
    t.notMatch(ws.raw, /x-injected/i, `${name}: WebSocket: the injected header never reaches the client`);
    t.ok(ws.status === undefined || ws.status === 502, `${name}: WebSocket: 502 or closed (got ${ws.status ?? 'nothing'})`);
    t.ok(ws.closed, `${name}: WebSocket: the connection is closed`);

    mode = 'X-Clean: yes';
    await serves(t, lb.url, name);
  }
  // A well-formed handshake answer still opens the tunnel, with the affinity cookie.
  const ws = await probe(lb.url, `GET /websocket/1/main/1 HTTP/1.1\r\n${H}${WS_HEADERS}\r\n`, { timeoutMs: 1000 });
  t.equal(ws.status, 101, 'a clean handshake is relayed');
  t.match(ws.raw, /\r\nX-Clean: yes\r\n/, 'with its headers');
  t.equal(lb.proc.exitCode, null, 'the balancer survives');
});

t.test('%0d%0a from the client stays percent-encoded: no raw CR/LF upstream or in the affinity cookie', async (t) => {
  const backend = await rawBackend(t, (head) =>
    head.startsWith('GET /websocket/')
      ? 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'
      : 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  const lb = await startBalancer(t, await lbConfig([{ id: 'raw', url: backend.url }]));
  const path = '/a%0d%0aX-Injected:%20yes/;jsessionid=zz%0D%0ASet-Cookie:%20evil=1.raw?q=%0d%0aSet-Cookie:%20evil=2';
  const cookie = 'Cookie: SERVOYLB=abc%0d%0aSet-Cookie:%20evil=3; JSESSIONID=zz%0d%0aX-Injected:%20yes.raw; other=%0D%0A%0D%0A\r\n';
  const note = 'X-Note: %0d%0aX-Injected: yes %0A\r\n';

  const res = await probe(lb.url, `GET ${path} HTTP/1.1\r\n${H}${cookie}${note}Connection: close\r\n\r\n`);
  t.equal(res.status, 200);
  const head = backend.heads.at(-1)!;
  t.equal(head.split('\r\n')[0], `GET ${path} HTTP/1.1`, 'the path goes upstream byte for byte, still percent-encoded');
  assertCleanHead(t, head, 'upstream request');
  t.ok(head.includes(`\r\n${cookie.trimEnd()}`), 'the cookie header goes upstream as sent');
  const responseHead = res.raw.slice(0, res.raw.indexOf('\r\n\r\n'));
  assertCleanHead(t, responseHead, 'response');
  const setCookie = responseHead.split('\r\n').filter((l) => /^set-cookie:/i.test(l));
  t.equal(setCookie.length, 1, 'one Set-Cookie: the affinity cookie');
  t.match(setCookie[0], /^set-cookie: SERVOYLB=[A-Za-z0-9_-]{16}\.raw\.[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax$/i, 'made only of the balancer\'s own values');
  t.notMatch(responseHead, /evil|%0d|%0a/i, 'nothing of the client\'s cookie or path echoed');

  // The WebSocket handshake is written upstream by hand: the same holds there.
  const ws = await probe(lb.url, `GET /websocket/%0d%0aX-Injected:%20yes/1 HTTP/1.1\r\n${H}${cookie}${note}${WS_HEADERS}\r\n`, { timeoutMs: 1000 });
  t.equal(ws.status, 101);
  const wsHead = backend.heads.at(-1)!;
  t.equal(wsHead.split('\r\n')[0], 'GET /websocket/%0d%0aX-Injected:%20yes/1 HTTP/1.1', 'the handshake path goes upstream as sent');
  assertCleanHead(t, wsHead, 'upstream handshake');
  assertCleanHead(t, ws.raw.slice(0, ws.raw.indexOf('\r\n\r\n')), 'handshake response');
});

t.test('error pages never echo the request', async (t) => {
  const SCRIPT = '<script>alert(1)</script>';
  const echoes = (raw: string): boolean => /<script|alert\(|%3Cscript/i.test(raw);
  const check = (res: { status: number | undefined; raw: string }, expected: number[], what: string): void => {
    t.ok(res.status !== undefined && expected.includes(res.status), `${what}: ${expected.join(' or ')} (got ${res.status})`);
    t.match(res.raw, /<h1>\d{3} /, `${what}: the balancer's own page`);
    t.notOk(echoes(res.raw), `${what}: the page does not echo the input`);
  };

  const dead = await closedPort();
  const lbDead = await startBalancer(t, await lbConfig([{ id: 'dead', url: `http://127.0.0.1:${dead}` }], { limits: { maxHeaderBytes: 4096 } }));
  // 502 (503 once health checks have marked the dead backend down).
  check(await probe(lbDead.url, `GET /${SCRIPT}?q=${SCRIPT} HTTP/1.1\r\n${H}Referer: ${SCRIPT}\r\nConnection: close\r\n\r\n`), [502, 503], 'raw <script> in the path, dead backend');
  check(await probe(lbDead.url, `GET /%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1\r\n${H}Connection: close\r\n\r\n`), [502, 503], 'encoded <script> in the path, dead backend');
  check(await probe(lbDead.url, `GET /websocket/${SCRIPT} HTTP/1.1\r\n${H}${WS_HEADERS}\r\n`), [502, 503], 'WebSocket to a dead backend');
  check(await probe(lbDead.url, `GET http://lb.test/${SCRIPT} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`), [400], 'absolute-form with <script>');
  check(await probe(lbDead.url, `GET /${SCRIPT} HTTP/1.1\r\n${H}X-${SCRIPT}: 1\r\n\r\n`), [400], 'malformed header with <script>');
  check(await probe(lbDead.url, `GET /${SCRIPT} HTTP/1.1\r\n${H}X-Big: ${SCRIPT.repeat(300)}\r\n\r\n`), [431], 'oversize header of <script>s');
  check(await probe(lbDead.url, `GET /${SCRIPT} HTTP/1.1\r\n${H}Upgrade: ${SCRIPT}\r\nConnection: Upgrade\r\n\r\n`), [400], 'upgrade to a <script> protocol');

  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], {
    affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant', required: true } },
    timeouts: { response: '500ms' },
    outlier: { consecutiveFailures: 1000 },
  }));
  check(await probe(lb.url, `GET /${SCRIPT} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`), [400], 'no partition key');
  check(await probe(lb.url, `GET /hang?${SCRIPT} HTTP/1.1\r\n${H}X-Tenant: acme\r\nConnection: close\r\n\r\n`), [504], 'a backend that never answers');
  const admin = await adminUrlOf(lb);
  const disabled = await request(`${admin}/api/backends/count/disable`, { method: 'POST' });
  t.equal(disabled.statusCode, 200);
  await disabled.body.dump();
  check(await probe(lb.url, `GET /${SCRIPT} HTTP/1.1\r\n${H}X-Tenant: ${SCRIPT}\r\nConnection: close\r\n\r\n`), [503], 'the partition\'s backend disabled');
});
