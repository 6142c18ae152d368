/**
 * `listen.tls.redirectPort` (SPEC "Config file"): a plain-HTTP listener that sends every
 * client to HTTPS. Through the real CLI with a self-signed certificate made by openssl:
 * - GET and HEAD get 301, every other method 308, to https://<Host without port>:<listen.port>
 *   with the path and query kept, a small body and Connection: close;
 * - a missing, repeated or malformed Host gets 400 and is never reflected;
 * - a WebSocket handshake gets a 301 (or 400) and the socket is closed;
 * - following the redirect reaches a simulator over HTTPS;
 * - SIGTERM closes it with the balancer; a port in use stops start with one sentence.
 * The Location rules themselves (port 443 left out, IPv6, encoding) are unit-tested too.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import { redirectHost, redirectLocation, RedirectServer } from '../src/proxy/redirect-server.js';
import { lbConfig, rawRequest, startBalancer } from './helpers/lb.js';
import { makeCert, skipTls } from './fixtures/tls-cert.js';
import { runCli, startSims, type BalancerProcess, type TestLike } from './helpers/processes.js';

const skip = skipTls;

/** The redirect listener's URL, from its log line. */
async function redirectUrlOf(lb: BalancerProcess): Promise<string> {
  const line = await lb.waitForLog(/redirect listening/, 10_000);
  const url = (JSON.parse(line) as { redirectUrl?: string }).redirectUrl;
  if (url === undefined) throw new Error(`no redirectUrl in ${line}`);
  return url;
}

/** One header of a raw response head (first occurrence), lower-cased name. */
function header(head: string, name: string): string | undefined {
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (line.slice(0, colon).trim().toLowerCase() === name) return line.slice(colon + 1).trim();
  }
  return undefined;
}

async function start(t: TestLike): Promise<{ lb: BalancerProcess; httpsPort: number; redirect: string; redirectPort: number }> {
  const dir = t.testdir();
  await makeCert(dir);
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const lb = await startBalancer(t, await lbConfig(sims, { listen: { host: '127.0.0.1', port: 0, tls: { cert: 'cert.pem', key: 'key.pem', redirectPort: 0 } }, log: { access: false } }));
  const redirect = await redirectUrlOf(lb);
  return { lb, httpsPort: Number(new URL(lb.url).port), redirect, redirectPort: Number(new URL(redirect).port) };
}

// ---- unit: the Location rules ------------------------------------------------------------------

t.test('redirectHost: host without port, or undefined when malformed', async (t) => {
  const good: [string, string][] = [
    ['example.com', 'example.com'],
    ['Example.COM:8080', 'example.com'],
    ['example.com.', 'example.com.'],
    ['example.com:', 'example.com'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['[::1]', '[::1]'],
    ['[2001:DB8::1]:443', '[2001:db8::1]'],
    ['servoy_a-1.intra', 'servoy_a-1.intra'],
    ['localhost', 'localhost'],
  ];
  for (const [value, host] of good) t.equal(redirectHost(value), host, JSON.stringify(value));
  const bad = [undefined, '', ':80', 'a b', 'a\r\nSet-Cookie: x=1', 'a\nb', 'a\tb', 'evil.com/path', 'user@evil.com', 'a?b', 'a#b', 'a%0d%0ab', 'a..b', '.a', 'a-.b', '-a',
    'host:99999', 'host:abc', 'host:80:80', 'host:123456', '[::1', '[::1]x', '[::1]:x', '[fe80::1%25eth0]', '[not-ip]', '\u00e9xample.com', 'x'.repeat(254), `${'a'.repeat(64)}.com`];
  for (const value of bad) t.equal(redirectHost(value), undefined, `rejects ${JSON.stringify(value)}`);
});

t.test('redirectLocation: https, listen.port unless 443, path and query kept, odd bytes encoded', async (t) => {
  t.equal(redirectLocation(['Host', 'shop.example:80'], '/a/b?x=1&y=2', 443), 'https://shop.example/a/b?x=1&y=2', 'port 443 is left out');
  t.equal(redirectLocation(['host', 'shop.example'], '/', 8443), 'https://shop.example:8443/', 'another port is kept');
  t.equal(redirectLocation(['HOST', '[::1]:8080'], '/x', 8443), 'https://[::1]:8443/x', 'IPv6 stays in brackets');
  t.equal(redirectLocation(['Host', 'h'], '//evil.example/x', 443), 'https://h//evil.example/x', 'a path starting with // stays a path on the same host');
  t.equal(redirectLocation(['Host', 'h'], '/caf\u00e9 x', 443), 'https://h/caf%E9%20x', 'bytes outside printable ASCII are percent-encoded');
  t.equal(redirectLocation([], '/', 443), undefined, 'no Host');
  t.equal(redirectLocation(['Host', 'a', 'Host', 'b'], '/', 443), undefined, 'two Host headers');
  t.equal(redirectLocation(['Host', 'a'], 'http://evil.example/', 443), undefined, 'absolute-form target');
  t.equal(redirectLocation(['Host', 'a'], '*', 443), undefined, 'asterisk-form target');
  t.equal(redirectLocation(['Host', 'a'], undefined, 443), undefined, 'no target');
});

t.test('RedirectServer in-process: listens, answers, closes gracefully; a second close is a no-op', async (t) => {
  const server = new RedirectServer({ httpsPort: 443, maxHeaderBytes: 16384, maxConnections: 100 });
  const at = await server.listen('127.0.0.1', 0);
  const url = `http://127.0.0.1:${at.port}`;
  const res = await rawRequest(url, 'GET /x?y=1 HTTP/1.1\r\nHost: www.example.org:8080\r\n\r\n');
  t.equal(res.status, 301);
  t.equal(header(res.head, 'location'), 'https://www.example.org/x?y=1');
  const post = await rawRequest(url, 'POST /form HTTP/1.1\r\nHost: www.example.org\r\nContent-Length: 3\r\n\r\na=1');
  t.equal(post.status, 308);
  t.equal(header(post.head, 'location'), 'https://www.example.org/form');
  const noHost = await rawRequest(url, 'GET / HTTP/1.1\r\n\r\n');
  t.equal(noHost.status, 400, 'no Host: 400');
  const headNoHost = await rawRequest(url, 'HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n');
  t.same([headNoHost.status, headNoHost.body], [400, ''], 'HEAD with a malformed Host: 400 without a body');
  const upgrade = await rawRequest(url, 'GET /websocket/1/a/1 HTTP/1.1\r\nHost: www.example.org\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  t.same([upgrade.status, header(upgrade.head, 'location')], [301, 'https://www.example.org/websocket/1/a/1'], 'a WebSocket handshake: 301');
  const badUpgrade = await rawRequest(url, 'GET /websocket/1/a/1 HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  t.equal(badUpgrade.status, 400, 'a WebSocket handshake without Host: 400');
  const big = await rawRequest(url, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`);
  t.equal(big.status, 431, 'oversize headers: 431');
  const junk = await rawRequest(url, 'NOT HTTP AT ALL\r\n\r\n');
  t.equal(junk.status, 400, 'garbage: 400');
  // An idle, half-sent request does not hold up close beyond the grace period.
  const idle = net.connect({ host: '127.0.0.1', port: at.port });
  idle.on('error', () => undefined);
  await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
  idle.write('GET / HTTP/1.1\r\n');
  // Lets the half request arrive. Safe on a busy machine: if it has not, close() has less to
  // wait for, so this can only make the check easier, never fail it.
  await new Promise((r) => setTimeout(r, 50));
  const started = Date.now();
  await server.close(300);
  // Without the grace period the half request would hold close() until the server's
  // headersTimeout (10 s): 8 s tells the two apart with room for a busy machine.
  t.ok(Date.now() - started < 8000, `close finished within the grace period (plus slack): ${Date.now() - started} ms`);
  const closedAgain = await server.close(300).then(() => 'ok');
  t.equal(closedAgain, 'ok');
  idle.destroy();
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: at.port });
    s.once('connect', () => { s.destroy(); resolve('connected'); });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'the port is closed');
});

// ---- through the real CLI -----------------------------------------------------------------------

t.test('the redirect listener: 301 for GET/HEAD, 308 otherwise, to listen.port, path and query kept', { skip }, async (t) => {
  const { httpsPort, redirect, redirectPort } = await start(t);
  t.not(redirectPort, httpsPort, 'a listener of its own');

  const get = await rawRequest(redirect, `GET /servoy-client/app/index.html?a=1&b=two%20words HTTP/1.1\r\nHost: localhost:${redirectPort}\r\n\r\n`);
  t.equal(get.status, 301, 'GET: 301');
  t.equal(header(get.head, 'location'), `https://localhost:${httpsPort}/servoy-client/app/index.html?a=1&b=two%20words`, 'to https, the client\'s port replaced by listen.port, path and query kept');
  t.equal(header(get.head, 'connection'), 'close', 'Connection: close');
  t.ok(get.body.length > 0 && get.body.length < 512, `a small body (${get.body.length} bytes)`);
  t.equal(Number(header(get.head, 'content-length')), get.body.length, 'whose length is declared');
  t.equal(get.raw.split('HTTP/1.1 ').length - 1, 1, 'one response, then the server closed the connection');

  const head = await rawRequest(redirect, 'HEAD /x?y=z HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  t.equal(head.status, 301, 'HEAD: 301');
  t.equal(header(head.head, 'location'), `https://127.0.0.1:${httpsPort}/x?y=z`);
  t.equal(head.body, '', 'no body for HEAD');

  const post = await rawRequest(redirect, 'POST /servoy-service/rest_ws/api/orders?dry=1 HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"order": 42}');
  t.equal(post.status, 308, 'POST: 308 (method and body are repeated)');
  t.equal(header(post.head, 'location'), `https://shop.example:${httpsPort}/servoy-service/rest_ws/api/orders?dry=1`);
  t.equal(header(post.head, 'connection'), 'close');
  for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const res = await rawRequest(redirect, `${method} /r HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 0\r\n\r\n`);
    t.equal(res.status, 308, `${method}: 308`);
  }

  const v6 = await rawRequest(redirect, 'GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n');
  t.equal(header(v6.head, 'location'), `https://[::1]:${httpsPort}/`, 'an IPv6 Host keeps its brackets');
  const upper = await rawRequest(redirect, 'GET /P?Q=R HTTP/1.1\r\nHost: WWW.Example.ORG\r\n\r\n');
  t.equal(header(upper.head, 'location'), `https://www.example.org:${httpsPort}/P?Q=R`, 'the host is lower-cased, path and query are not');
  const http10 = await rawRequest(redirect, 'GET /old HTTP/1.0\r\nHost: example.org\r\n\r\n');
  t.equal(http10.status, 301, 'HTTP/1.0 with a Host: 301 too');
  const latin = await rawRequest(redirect, Buffer.concat([Buffer.from('GET /caf'), Buffer.from([0xc3, 0xa9]), Buffer.from('?q=1 HTTP/1.1\r\nHost: h.example\r\n\r\n')]));
  // Node's strict parser refuses raw non-ASCII in the target (redirectLocation would percent-encode it, see above).
  t.equal(latin.status, 400, 'raw non-ASCII bytes in the path: 400');
  t.equal(header(latin.head, 'location'), undefined, 'and never copied into a Location');

  // Following the redirect reaches a Servoy server over HTTPS.
  const ca = await readFile(join(t.testdirName, 'cert.pem'));
  const dispatcher = new Agent({ connect: { ca } });
  t.teardown(() => dispatcher.close());
  const first = await request(`${redirect}/api/whoami?from=http`);
  t.equal(first.statusCode, 301);
  await first.body.dump();
  const location = String(first.headers.location);
  t.equal(location, `https://127.0.0.1:${httpsPort}/api/whoami?from=http`, 'undici\'s default Host (127.0.0.1:<redirectPort>) is turned into the HTTPS address');
  const followed = await request(location, { dispatcher });
  const body = (await followed.body.json()) as { server: string; headers: Record<string, string> };
  t.equal(followed.statusCode, 200, 'the redirect target is served');
  t.match(body.server, /^servoy-[ab]$/, 'by a simulator');
  t.equal(body.headers['x-forwarded-proto'], 'https');
});

t.test('the redirect listener: a missing, repeated or malformed Host gets 400 and is never reflected', { skip }, async (t) => {
  const { redirect } = await start(t);
  const cases: [string, string | Buffer][] = [
    ['no Host (HTTP/1.1)', 'GET / HTTP/1.1\r\n\r\n'],
    ['no Host (HTTP/1.0)', 'GET / HTTP/1.0\r\n\r\n'],
    ['empty Host', 'GET / HTTP/1.1\r\nHost: \r\n\r\n'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: good.example\r\nHost: evil.example\r\n\r\n'],
    ['Host with a space', 'GET / HTTP/1.1\r\nHost: evil example\r\n\r\n'],
    ['Host with a path', 'GET / HTTP/1.1\r\nHost: evil.example/phish\r\n\r\n'],
    ['Host with userinfo', 'GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n'],
    ['Host with a bad port', 'GET / HTTP/1.1\r\nHost: evil.example:99999\r\n\r\n'],
    ['Host with text as port', 'GET / HTTP/1.1\r\nHost: evil.example:http\r\n\r\n'],
    ['Host with an open bracket', 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n'],
    ['Host with encoded CR/LF', 'GET / HTTP/1.1\r\nHost: evil%0d%0aSet-Cookie:x=1\r\n\r\n'],
    ['Host with a bare LF inside', 'GET / HTTP/1.1\r\nHost: evil\nSet-Cookie: x=1\r\n\r\n'],
    ['Host with non-ASCII bytes', Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: ev'), Buffer.from([0xc3, 0xa9]), Buffer.from('l.example\r\n\r\n')])],
    ['absolute-form target', 'GET http://evil.example/ HTTP/1.1\r\nHost: good.example\r\n\r\n'],
  ];
  for (const [what, bytes] of cases) {
    const res = await rawRequest(redirect, bytes);
    t.equal(res.status, 400, `${what}: 400`);
    t.equal(header(res.head, 'location'), undefined, `${what}: no Location`);
    t.notMatch(res.raw, /evil|set-cookie/i, `${what}: nothing of the Host is reflected`);
  }
});

t.test('the redirect listener: a WebSocket handshake gets 301 (or 400) and the socket is closed', { skip }, async (t) => {
  const { httpsPort, redirect } = await start(t);
  const handshake = (host: string) => `GET /websocket/1/main/1?x=1 HTTP/1.1\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
  const ws = await rawRequest(redirect, handshake('Host: app.example:80\r\n'));
  t.equal(ws.status, 301, 'a WebSocket handshake: 301');
  t.equal(header(ws.head, 'location'), `https://app.example:${httpsPort}/websocket/1/main/1?x=1`, 'to the same path over HTTPS');
  t.equal(header(ws.head, 'connection'), 'close');
  t.equal(header(ws.head, 'upgrade'), undefined, 'no upgrade');
  const bad = await rawRequest(redirect, handshake('Host: bad host\r\n'));
  t.equal(bad.status, 400, 'a WebSocket handshake with a malformed Host: 400');
  const none = await rawRequest(redirect, handshake(''));
  t.equal(none.status, 400, 'and without a Host: 400');

  // A real client sees an unexpected response, never an open socket.
  const client = new WebSocket(`${redirect.replace(/^http:/, 'ws:')}/websocket/1/main/1`, { handshakeTimeout: 5000 });
  t.teardown(() => client.terminate());
  const outcome = await new Promise<string>((resolve) => {
    client.once('open', () => resolve('open'));
    client.once('unexpected-response', (_req, res) => resolve(`status ${res.statusCode}`));
    client.once('error', (err) => resolve(`error ${err.message}`));
  });
  t.equal(outcome, 'status 301', 'the ws client gets the 301');
});

t.test('the redirect listener closes with the balancer (SIGTERM: exit 0, port refused)', { skip }, async (t) => {
  const { lb, redirect, redirectPort } = await start(t);
  t.equal((await rawRequest(redirect, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n')).status, 301, 'answering before the stop');
  const code = await lb.stop('SIGTERM');
  t.equal(code, 0, 'the balancer exits 0');
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: redirectPort });
    s.once('connect', () => { s.destroy(); resolve('connected'); });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'the redirect port is closed');
});

t.test('redirectPort in use: exit 1 with one sentence naming it', { skip }, async (t) => {
  const dir = t.testdir();
  await makeCert(dir);
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const busy = (blocker.address() as net.AddressInfo).port;
  const configFile = join(dir, 'lb.config.json');
  await writeFile(configFile, JSON.stringify({
    listen: { host: '127.0.0.1', port: 0, tls: { cert: 'cert.pem', key: 'key.pem', redirectPort: busy } },
    admin: { host: '127.0.0.1', port: 0 },
    backends: [{ id: 'servoy-a', url: 'http://127.0.0.1:9' }],
  }));
  const result = await runCli(t, ['start', '-c', configFile], { cwd: dir });
  t.equal(result.code, 1, 'exit code 1');
  const lines = result.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, `one line: ${result.stderr}`);
  t.equal(lines[0], `servoy-lb: cannot listen on 127.0.0.1:${busy} (listen.tls.redirectPort): the address is already in use`);
  t.equal(result.stdout.trim(), '', 'nothing on stdout');
});
