/**
 * HTTPS on the client side (SPEC "Config file": listen.tls; cookies Secure under TLS;
 * "Proxying": X-Forwarded-Proto), through the real CLI in front of simulated Servoy
 * servers, with a self-signed certificate made by openssl in the test's own directory:
 * - HTTPS requests reach the sims and stay sticky; the affinity cookie is Secure; the
 *   backend sees X-Forwarded-Proto: https;
 * - TLS 1.1 is refused, TLS 1.2 accepted;
 * - a WebSocket over wss reaches the server of its session;
 * - reload re-reads the certificate files: a new connection sees the new certificate,
 *   while an open keep-alive connection and an open WebSocket keep working;
 * - a missing certificate file at start: exit 1 with one line naming listen.tls.cert.
 */
import t from 'tap';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { Agent, Client, buildConnector, request } from 'undici';
import WebSocket from 'ws';
import { adminUrlOf, lbConfig, startBalancer } from './helpers/lb.js';
import { makeCert, skipTls } from './fixtures/tls-cert.js';
import { runCli, startSims, type TestLike } from './helpers/processes.js';

const WS_PATH = '/websocket/1/main/1';

const skip = skipTls;

// ---- small helpers ---------------------------------------------------------------------------

function agent(t: TestLike, ca: Buffer): Agent {
  const a = new Agent({ connect: { ca }, keepAliveTimeout: 10_000 });
  t.teardown(() => a.close());
  return a;
}

/** name=value of every Set-Cookie line, ready for a Cookie header. */
function cookieHeader(setCookie: string | string[] | undefined): string {
  const lines = setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie];
  return lines.map((l) => l.split(';')[0]).join('; ');
}

/** tlsProbe opens a TLS connection and reports the protocol and the server's certificate, or the error. */
function tlsProbe(port: number, options: tls.ConnectionOptions): Promise<{ ok: true; protocol: string | null; fingerprint: string } | { ok: false; code: string | undefined; message: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, code: 'TIMEOUT', message: 'no handshake within 10 s' });
    }, 10_000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const result = { ok: true as const, protocol: socket.getProtocol(), fingerprint: socket.getPeerCertificate().fingerprint256 };
      socket.destroy();
      resolve(result);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: false, code: err.code, message: err.message });
    });
  });
}

/** openWs opens a WebSocket (trusting ca) and returns it with its first message. */
async function openWs(t: TestLike, url: string, ca: Buffer, cookie: string): Promise<{ ws: WebSocket; next: () => Promise<any> }> {
  const ws = new WebSocket(url, { ca, headers: { cookie }, handshakeTimeout: 10_000 });
  t.teardown(() => ws.terminate());
  const queue: any[] = [];
  const waiters: ((m: any) => void)[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
  });
  const next = () =>
    new Promise<any>((resolve, reject) => {
      const queued = queue.shift();
      if (queued !== undefined) return resolve(queued);
      const timer = setTimeout(() => reject(new Error('no WebSocket message within 15 s')), 15_000); // room for a busy machine
      waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  return { ws, next };
}

// ---- tests -----------------------------------------------------------------------------------

t.test('HTTPS through the balancer: sticky, Secure cookie, X-Forwarded-Proto https, wss to the session\'s server', { skip }, async (t) => {
  const dir = t.testdir();
  const c = await makeCert(dir, 'localhost');
  const sims = await startSims(t, ['servoy-a', 'servoy-b', 'servoy-c']);
  const lb = await startBalancer(t, await lbConfig(sims, { listen: { host: '127.0.0.1', port: 0, tls: { cert: 'cert.pem', key: 'key.pem' } }, log: { access: false } }));
  t.match(lb.url, /^https:\/\/127\.0\.0\.1:\d+$/, 'the balancer announces an https URL');

  const dispatcher = agent(t, c.cert);
  const first = await request(`${lb.url}/api/whoami`, { dispatcher });
  const body = (await first.body.json()) as { server: string; session: string; new: boolean; headers: Record<string, string | null> };
  t.equal(first.statusCode, 200);
  t.equal(body.new, true, 'a new session on a simulator');
  t.equal(body.headers['x-forwarded-proto'], 'https', 'the backend sees X-Forwarded-Proto: https');
  const setCookie = first.headers['set-cookie'];
  const affinity = (Array.isArray(setCookie) ? setCookie : [setCookie ?? '']).find((l) => l.startsWith('SERVOYLB='));
  t.ok(affinity, 'the balancer set its affinity cookie');
  t.match(affinity!, /;\s*Secure(;|$)/i, 'the affinity cookie is Secure under TLS');
  t.match(affinity!, /;\s*HttpOnly(;|$)/i, 'and HttpOnly');
  const cookie = cookieHeader(setCookie);

  for (let i = 0; i < 3; i++) {
    const again = await request(`${lb.url}/api/whoami`, { dispatcher, headers: { cookie } });
    const b = (await again.body.json()) as { server: string; session: string; new: boolean; headers: Record<string, string | null> };
    t.same({ server: b.server, session: b.session, new: b.new, proto: b.headers['x-forwarded-proto'] }, { server: body.server, session: body.session, new: false, proto: 'https' }, `request ${i + 2} stays on ${body.server} in its session`);
  }

  // A client claiming X-Forwarded-Proto: http is not trusted (no trustedProxies): replaced.
  const spoof = await request(`${lb.url}/api/whoami`, { dispatcher, headers: { cookie, 'x-forwarded-proto': 'http' } });
  t.equal(((await spoof.body.json()) as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'https', 'an untrusted client\'s X-Forwarded-Proto is replaced');

  const wssUrl = `${lb.url.replace(/^https:/, 'wss:')}${WS_PATH}`;
  const { ws, next } = await openWs(t, wssUrl, c.cert, cookie);
  const hello = await next();
  t.same({ server: hello.server, session: hello.session, hello: hello.hello }, { server: body.server, session: body.session, hello: true }, 'the wss WebSocket reaches the session\'s server, in that session');
  ws.send('ping over wss');
  t.same(await next(), { server: body.server, echo: 'ping over wss' }, 'messages go both ways');
  const sim = sims.find((s) => s.route === body.server)!;
  t.equal(sim.websockets, 1, 'the session\'s simulator holds the WebSocket');
  t.equal(sims.reduce((n, s) => n + s.stats().outOfSync, 0), 0, 'no CLIENT-OUT-OF-SYNC anywhere');
  ws.close();

  // The certificate is verified for real: a client that does not trust it is refused.
  const untrusted = await request(`${lb.url}/api/whoami`).then(() => 'accepted', (err: NodeJS.ErrnoException) => err.code ?? err.message);
  t.not(untrusted, 'accepted', `a client without the CA is refused (${untrusted})`);
});

t.test('TLS 1.1 is refused, TLS 1.2 is accepted', { skip }, async (t) => {
  const dir = t.testdir();
  const c = await makeCert(dir, 'localhost');
  const sims = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig(sims, { listen: { host: '127.0.0.1', port: 0, tls: { cert: 'cert.pem', key: 'key.pem' } }, log: { access: false } }));
  const port = Number(new URL(lb.url).port);

  // OpenSSL 3 only speaks TLS 1.1 at security level 0: lower the client's, so a refusal is the server's.
  const legacyClient = { ca: c.cert, minVersion: 'TLSv1' as const, maxVersion: 'TLSv1.1' as const, ciphers: 'DEFAULT:@SECLEVEL=0' };
  // Control: this client does complete a TLS 1.1 handshake with a server that allows it.
  const permissive = tls.createServer({ cert: c.cert, key: c.key, minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }, (s) => s.end());
  await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => permissive.close(() => resolve())));
  const control = await tlsProbe((permissive.address() as { port: number }).port, legacyClient);
  t.match(control, { ok: true, protocol: 'TLSv1.1' }, 'control: the TLS 1.1 client works against a server that allows TLS 1.1');

  const old = await tlsProbe(port, legacyClient);
  t.equal(old.ok, false, 'a TLS 1.1 handshake with the balancer fails');
  if (!old.ok) t.match(old.code ?? old.message, /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|protocol version/i, `refused by the server for its protocol version (${old.code})`);

  const v12 = await tlsProbe(port, { ca: c.cert, maxVersion: 'TLSv1.2' });
  t.match(v12, { ok: true, protocol: 'TLSv1.2', fingerprint: c.fingerprint }, 'TLS 1.2 is accepted');
  const v13 = await tlsProbe(port, { ca: c.cert });
  t.match(v13, { ok: true, protocol: 'TLSv1.3' }, 'TLS 1.3 is accepted too');
});

t.test('reload re-reads the certificate: new connections get the new one, open ones keep working', { skip }, async (t) => {
  const dir = t.testdir();
  const one = await makeCert(dir, 'localhost');
  const two = await makeCert(dir, 'servoy-lb-reloaded', 'next-');
  t.not(one.fingerprint, two.fingerprint, 'two different certificates');
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const lb = await startBalancer(t, await lbConfig(sims, { listen: { host: '127.0.0.1', port: 0, tls: { cert: 'cert.pem', key: 'key.pem' } }, log: { access: false } }));
  const adminUrl = await adminUrlOf(lb);
  const port = Number(new URL(lb.url).port);
  t.match(await tlsProbe(port, { ca: one.cert }), { ok: true, fingerprint: one.fingerprint }, 'before the reload: the first certificate');

  // One keep-alive connection (a Client is exactly one connection), its sockets recorded.
  const sockets: tls.TLSSocket[] = [];
  const connector = buildConnector({ ca: one.cert });
  const client = new Client(lb.url, {
    keepAliveTimeout: 60_000,
    connect: (opts, cb) => connector(opts, (...args) => {
      if (args[0] === null) sockets.push(args[1] as tls.TLSSocket);
      cb(...args);
    }),
  });
  t.teardown(() => client.close());
  const first = await client.request({ path: '/api/whoami', method: 'GET' });
  const session = (await first.body.json()) as { server: string; session: string };
  const cookie = cookieHeader(first.headers['set-cookie']);
  const { ws, next } = await openWs(t, `${lb.url.replace(/^https:/, 'wss:')}${WS_PATH}`, one.cert, cookie);
  t.equal((await next()).server, session.server, 'a WebSocket is open on the session\'s server');

  // Rewrite the files in place and reload through the admin API.
  await copyFile(two.certFile, one.certFile);
  await copyFile(two.keyFile, one.keyFile);
  const reload = await request(`${adminUrl}/api/reload`, { method: 'POST' });
  const answer = await reload.body.text();
  t.equal(reload.statusCode, 200, `reload accepted: ${answer}`);

  t.match(await tlsProbe(port, { ca: two.cert }), { ok: true, fingerprint: two.fingerprint }, 'a new connection sees the new certificate');
  const trusting2 = agent(t, two.cert);
  const fresh = await request(`${lb.url}/api/whoami`, { dispatcher: trusting2, headers: { cookie } });
  t.equal(((await fresh.body.json()) as { server: string }).server, session.server, 'a client trusting only the new certificate is served, still in its session');

  const again = await client.request({ path: '/api/whoami', method: 'GET', headers: { cookie } });
  const b = (await again.body.json()) as { server: string; session: string };
  t.equal(again.statusCode, 200, 'the open keep-alive connection still works');
  t.same({ server: b.server, session: b.session }, { server: session.server, session: session.session }, 'in the same session');
  t.equal(sockets.length, 1, 'on the same connection (no reconnect)');
  t.equal(sockets[0]!.getPeerCertificate().fingerprint256, one.fingerprint, 'which still holds the first certificate');

  ws.send('after reload');
  t.same(await next(), { server: session.server, echo: 'after reload' }, 'the open WebSocket still works');
  t.equal(ws.readyState, WebSocket.OPEN);
});

t.test('a missing certificate file at start: exit 1 with one line naming listen.tls.cert', { skip }, async (t) => {
  const dir = t.testdir();
  await makeCert(dir, 'localhost');
  const configFile = join(dir, 'lb.config.json');
  await writeFile(configFile, JSON.stringify({
    listen: { host: '127.0.0.1', port: 0, tls: { cert: 'missing-cert.pem', key: 'key.pem' } },
    admin: { host: '127.0.0.1', port: 0 },
    backends: [{ id: 'servoy-a', url: 'http://127.0.0.1:9' }],
  }));
  const result = await runCli(t, ['start', '-c', configFile], { cwd: dir });
  t.equal(result.code, 1, 'exit code 1');
  const lines = result.stderr.split('\n').filter((l) => l !== '');
  t.equal(lines.length, 1, `one line: ${result.stderr}`);
  t.match(lines[0], /listen\.tls\.cert/, 'naming listen.tls.cert');
  t.match(lines[0], join(dir, 'missing-cert.pem'), 'and the file');
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace');
  t.equal(result.stdout.trim(), '', 'nothing on stdout');
});
