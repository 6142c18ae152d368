/**
 * The PROXY protocol gate (src/proxy/proxy-protocol-gate.ts) on a bare node:http server
 * with real loopback sockets, for the edges the balancer test does not reach: a peer that
 * closes, resets or stays silent before its header (closed, and why), an untrusted
 * request whose first byte could still begin a header, and a policy switched off.
 */
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { gateProxyProtocol } from '../src/proxy/proxy-protocol-gate.js';
import { waitFor } from './helpers/lb.js';
import type { TestLike } from './helpers/processes.js';

interface Gate {
  port: number;
  enabled: boolean;
  rejected: string[];
}

/** An http server answering the remote address it sees, behind the gate (trusted: everyone or no one). */
async function gated(t: TestLike, trusted: boolean, deadlineMs?: number): Promise<Gate> {
  const server = http.createServer((req, res) => res.end(`peer=${req.socket.remoteAddress}`));
  const gate: Gate = { port: 0, enabled: true, rejected: [] };
  gateProxyProtocol(server, { enabled: () => gate.enabled, trusts: () => trusted, rejected: (_peer, reason) => gate.rejected.push(reason), ...(deadlineMs === undefined ? {} : { deadlineMs }) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  gate.port = (server.address() as net.AddressInfo).port;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return gate;
}

/** Connects, runs `act` on the socket, resolves with what arrived once the server closed it. */
function session(port: number, act: (socket: net.Socket) => void | Promise<void>): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('connect', () => void act(socket));
  });
}

const GET = 'GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n';
const written = (socket: net.Socket, data: string): Promise<void> => new Promise((resolve) => socket.write(data, () => resolve()));

t.test('a trusted peer that ends, resets or stays silent before its header is closed', async (t) => {
  const gate = await gated(t, true);
  const quick = await gated(t, true, 50); // its own server: the deadline can never beat the other cases' events
  t.equal(await session(gate.port, (s) => void s.end('PROXY TCP4 ')), '', 'ended mid-header');
  await new Promise<void>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: gate.port }, async () => {
      await written(s, 'PROXY ');
      s.resetAndDestroy();
      resolve();
    });
    s.on('error', () => undefined);
  });
  t.equal(await session(quick.port, () => undefined), '', 'silent: closed at the deadline');
  t.same(quick.rejected, ['no PROXY header in time']);
  await waitFor(() => gate.rejected.length >= 2, 10_000, 'two refusals');
  t.same([...gate.rejected].sort(), ['closed before its first request', 'socket error before its first request']);
});

t.test('an untrusted request that starts with P is served once its second byte tells', async (t) => {
  const gate = await gated(t, false);
  const answer = await session(gate.port, async (s) => {
    await written(s, 'P');
    await written(s, 'UT /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
  t.match(answer, /^HTTP\/1\.1 200 .*peer=127\.0\.0\.1$/s);
  t.equal(await session(gate.port, (s) => void s.write('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), '', 'a header: closed');
  t.same(gate.rejected, ['a PROXY header from a peer not in trustedProxies']);
});

t.test('a trusted header is stripped; switched off, the gate passes sockets through untouched', async (t) => {
  const gate = await gated(t, true);
  const proxied = await session(gate.port, (s) => void s.write(`PROXY TCP6 2001:db8::9 ::1 1000 80\r\n${GET}`));
  t.match(proxied, /peer=2001:db8::9$/);
  gate.enabled = false;
  const plain = await session(gate.port, (s) => void s.write(GET));
  t.match(plain, /peer=127\.0\.0\.1$/, 'off: no header expected, the peer as it is');
});
