/**
 * listen.proxyProtocol on the client listener (SPEC "Config file"), with real sockets: a
 * trusted peer (127.0.0.2, in trustedProxies) that sends a v1 or v2 header is served as the
 * client the header names (X-Forwarded-For, the access log); a trusted peer without a
 * header is refused; a peer not in trustedProxies that sends a header is closed unparsed,
 * and its plain requests are served as before. Loopback 127.0.0.0/8: the test binds its
 * client end to 127.0.0.1 or 127.0.0.2.
 */
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { countingBackend, headerMap } from './fixtures/hostile-net.js';
import { makeCert, skipTls } from './fixtures/tls-cert.js';
import { lbConfig, startBalancer } from './helpers/lb.js';
import { V2_SIGNATURE } from '../src/proxy/proxy-protocol.js';

/** Writes `parts` (one write each, in order) from localAddress; everything received until the server closes. */
function exchange(url: string, localAddress: string, parts: (string | Buffer)[]): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port), localAddress });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined); // a reset after a refusal: what arrived is what counts
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('connect', async () => {
      for (const part of parts) await new Promise<void>((done) => socket.write(part, () => done()));
    });
  });
}

const request = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: pp.example\r\nConnection: close\r\n\r\n`;

/** A v2 PROXY header over TCP/IPv6 from [2001:db8::7]:4242 to [2001:db8::1]:443. */
function v2Inet6(): Buffer {
  const src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
  const dst = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x21, 0, 36, ...src, ...dst, 0x10, 0x92, 0x01, 0xbb])]);
}

t.test('listen.proxyProtocol: the header\'s source is the client, from trusted proxies only', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'a', url: backend.url }], { healthCheck: { path: '/health' }, trustedProxies: ['127.0.0.2'], listen: { host: '127.0.0.1', port: 0, proxyProtocol: true } }));
  const forwardedFor = (path: string): string | undefined => {
    const seen = backend.seen.find((r) => r.url === path);
    return seen === undefined ? undefined : headerMap(seen.rawHeaders).get('x-forwarded-for')?.join(',');
  };

  const v1 = await exchange(lb.url, '127.0.0.2', ['PROXY TCP4 203.0.113.9 127.0.0.1 40000 8080\r\n', request('/v1')]);
  t.match(v1, /^HTTP\/1\.1 200 /, 'v1 from a trusted proxy: served');
  t.equal(forwardedFor('/v1'), '203.0.113.9', 'the backend sees the header\'s source as the client');
  const line = JSON.parse(await lb.waitForLog((l) => l.includes('"log":"access"') && l.includes('"/v1"'))) as { client: string };
  t.equal(line.client, '203.0.113.9', 'and so does the access log');

  const header = v2Inet6();
  const v2 = await exchange(lb.url, '127.0.0.2', [header.subarray(0, 7), header.subarray(7), request('/v2')]);
  t.match(v2, /^HTTP\/1\.1 200 /, 'v2 (sent in pieces) from a trusted proxy: served');
  t.equal(forwardedFor('/v2'), '2001:db8::7');

  const local = await exchange(lb.url, '127.0.0.2', [Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0, 0])]), request('/local')]);
  t.match(local, /^HTTP\/1\.1 200 /, 'v2 LOCAL (the balancer\'s own check): served');
  t.equal(forwardedFor('/local'), '127.0.0.2', 'as the peer itself');

  const bare = await exchange(lb.url, '127.0.0.2', [request('/no-header')]);
  t.equal(bare, '', 'a trusted proxy without a header: closed, nothing answered');
  const broken = await exchange(lb.url, '127.0.0.2', ['PROXY TCP4 203.0.113.9 127.0.0.1 040000 8080\r\n', request('/broken')]);
  t.equal(broken, '', 'a broken header: closed');

  const spoof = await exchange(lb.url, '127.0.0.1', ['PROXY TCP4 198.51.100.1 127.0.0.1 40000 8080\r\n', request('/spoof')]);
  t.equal(spoof, '', 'a header from a peer not in trustedProxies: closed, not parsed as HTTP');
  const plain = await exchange(lb.url, '127.0.0.1', [request('/plain')]);
  t.match(plain, /^HTTP\/1\.1 200 /, 'that peer\'s plain request: served');
  t.equal(forwardedFor('/plain'), '127.0.0.1');
  t.same(backend.seen.map((r) => r.url).filter((u) => ['/no-header', '/broken', '/spoof'].includes(u)), [], 'no refused connection reached the backend');
});

t.test('listen.proxyProtocol off: a header is not taken, the request line it makes is refused', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'a', url: backend.url }], { healthCheck: { path: '/health' }, trustedProxies: ['127.0.0.2'], log: { access: false } }));
  const answer = await exchange(lb.url, '127.0.0.2', ['PROXY TCP4 203.0.113.9 127.0.0.1 40000 8080\r\n', request('/off')]);
  t.match(answer, /^HTTP\/1\.1 400 /, 'parsed as HTTP: a bad request');
  t.same(backend.seen.filter((r) => r.url === '/off'), []);
});

t.test('listen.proxyProtocol with listen.tls: the header comes before the TLS handshake', { skip: skipTls }, async (t) => {
  const dir = t.testdir();
  const cert = await makeCert(dir, 'localhost');
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'a', url: backend.url }], { healthCheck: { path: '/health' }, trustedProxies: ['127.0.0.2'], log: { access: false }, listen: { host: '127.0.0.1', port: 0, proxyProtocol: true, tls: { cert: 'cert.pem', key: 'key.pem' } } }));
  const { port } = new URL(lb.url);
  const answer = await new Promise<string>((resolve) => {
    const raw = net.connect({ host: '127.0.0.1', port: Number(port), localAddress: '127.0.0.2' }, () => {
      raw.write('PROXY TCP4 203.0.113.77 127.0.0.1 40000 443\r\n');
      const secure = tls.connect({ socket: raw, servername: 'localhost', ca: cert.cert }, () => secure.write(request('/tls')));
      const chunks: Buffer[] = [];
      secure.on('data', (c: Buffer) => chunks.push(c));
      secure.on('error', () => undefined);
      secure.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    });
  });
  t.match(answer, /^HTTP\/1\.1 200 /, 'served over TLS after the header');
  const seen = backend.seen.find((r) => r.url === '/tls');
  t.equal(seen === undefined ? undefined : headerMap(seen.rawHeaders).get('x-forwarded-for')?.join(','), '203.0.113.77', 'the header\'s source is the client');
});
