/**
 * WebSocket tunnelling through the real balancer (SPEC "Proxying", "What Servoy needs from
 * stickiness"): the NGClient's WebSocket must reach the server that holds its HTTP session,
 * or the simulator closes it with CLIENT-OUT-OF-SYNC; Origin and Host reach the server as
 * the browser sent them; either side closing closes the other; idle tunnels time out.
 */
import t from 'tap';
import { request } from 'undici';
import type { ServoySim } from '../examples/servoy-sim.js';
import { BrowserClient, UpgradeRefused } from './helpers/browser.js';
import { adminUrlOf, lbConfig, rawRequest, startBalancer, waitFor, within } from './helpers/lb.js';
import { startSims, type TestLike } from './helpers/processes.js';

const WS_PATH = '/websocket/1/main/1';

function browser(t: TestLike, url: string): BrowserClient {
  const b = new BrowserClient(url);
  t.teardown(() => b.close());
  return b;
}

async function setup(t: TestLike, timeouts: Record<string, unknown> = {}): Promise<{ sims: ServoySim[]; url: string; simOf: (route: string) => ServoySim; lbWebSockets: (id: string) => Promise<number> }> {
  const sims = await startSims(t, ['servoy-a', 'servoy-b', 'servoy-c']);
  const lb = await startBalancer(t, await lbConfig(sims, { timeouts, log: { access: false } }));
  /** Open WebSockets of a backend as the balancer's admin API counts them. */
  const adminUrl = await adminUrlOf(lb);
  const lbWebSockets = async (id: string): Promise<number> => {
    const res = await request(`${adminUrl}/api/backends`);
    const { backends } = (await res.body.json()) as { backends: { id: string; websockets: number }[] };
    return backends.find((b) => b.id === id)!.websockets;
  };
  return { sims, url: lb.url, simOf: (route) => sims.find((s) => s.route === route)!, lbWebSockets };
}

const totalWebSockets = (sims: ServoySim[]) => sims.reduce((n, s) => n + s.websockets, 0);

t.test('the WebSocket of a session reaches the server of its index.html, and a reconnect too', async (t) => {
  const { sims, url, simOf, lbWebSockets } = await setup(t);
  // Seven browsers from one address: bounded load spreads their sessions over all three servers.
  const clients: { b: BrowserClient; server: string; session: string }[] = [];
  for (let i = 0; i < 7; i++) {
    const b = browser(t, url);
    const page = await b.get('/');
    t.equal(page.status, 200);
    clients.push({ b, server: String(page.headers['x-servoy-server']), session: b.cookie('JSESSIONID')! });
  }
  t.same([...new Set(clients.map((c) => c.server))].sort(), ['servoy-a', 'servoy-b', 'servoy-c'], 'sessions on all three servers');

  for (const { b, server, session } of clients) {
    const ws = await b.openWebSocket(WS_PATH);
    const hello = await ws.next(15_000);
    t.same(hello, { server, hello: true, session, path: WS_PATH }, `hello from ${server}, same session`);
    ws.send('ping');
    t.same(await ws.next(15_000), { server, echo: 'ping' }, 'echo through the tunnel');
    ws.send({ big: 'x'.repeat(200_000) });
    const big = await ws.next(15_000);
    t.equal(big.echo.length, JSON.stringify({ big: 'x'.repeat(200_000) }).length, 'a 200 kB message both ways');
    t.equal(simOf(server).websockets, 1, 'one websocket open on the server');
    t.equal(await lbWebSockets(server), 1, 'and counted by the balancer');

    // Closing the browser side closes the server side.
    const closed = await ws.close();
    t.equal(closed.code, 1000);
    await waitFor(() => simOf(server).websockets === 0, 10_000, `${server} websockets back to 0`);
    await waitFor(async () => (await lbWebSockets(server)) === 0, 10_000, `balancer count of ${server} back to 0`);

    // A reconnect with the same cookies lands on the same server and session.
    const again = await b.openWebSocket(WS_PATH);
    t.same(await again.next(15_000), { server, hello: true, session, path: WS_PATH }, 'reconnect: same server');
    await again.close();
    await waitFor(async () => simOf(server).websockets === 0 && (await lbWebSockets(server)) === 0, 10_000, `${server} websockets closed on both sides`);
  }
  await waitFor(() => totalWebSockets(sims) === 0, 10_000, 'all websockets closed');
  const stats = sims.map((s) => s.stats());
  t.equal(stats.reduce((n, s) => n + s.outOfSync, 0), 0, 'no CLIENT-OUT-OF-SYNC');
  t.equal(stats.reduce((n, s) => n + s.sessionsLost, 0), 0, 'no session lost');
  t.equal(stats.reduce((n, s) => n + s.originRejected, 0), 0, 'Origin and Host arrived as the browser sent them');
});

t.test('an open WebSocket is not closed as CLIENT-OUT-OF-SYNC and an abrupt client drop frees the server side', async (t) => {
  const { sims, url, simOf } = await setup(t);
  const b = browser(t, url);
  await b.get('/');
  const server = b.cookie('JSESSIONID')!.split('.')[1]!;
  const ws = await b.openWebSocket(WS_PATH);
  t.equal((await ws.next(15_000)).server, server);
  // A round trip after the open: the server has had the connection and would have closed it.
  ws.send('still there?');
  t.equal((await ws.next(15_000)).echo, 'still there?', 'the tunnel carries a message both ways');
  t.equal(ws.ws.readyState, ws.ws.OPEN, 'still open');
  const dropped = Date.now();
  ws.ws.terminate(); // no close frame: the TCP connection just goes
  await waitFor(() => simOf(server).websockets === 0, 10_000, 'server-side websocket closed');
  t.comment(`server side closed ${Date.now() - dropped} ms after the client dropped`);
  t.equal(sims.reduce((n, s) => n + s.stats().outOfSync, 0), 0);
});

t.test('a WebSocket with a mismatched Origin gets the server\'s 403', async (t) => {
  const { sims, url } = await setup(t);
  const b = browser(t, url);
  await b.get('/');
  const refused = await b.openWebSocket(WS_PATH, { headers: { origin: 'http://evil.example' } }).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.type(refused, UpgradeRefused);
  t.equal((refused as UpgradeRefused).status, 403, 'the 403 is relayed');
  t.equal(sims.reduce((n, s) => n + s.stats().originRejected, 0), 1, 'refused by the server, not the balancer');

  // The same over a raw socket: the whole non-101 answer (head and body) reaches the client.
  const { host } = new URL(url);
  const cookie = b.cookieHeader(WS_PATH)!;
  const res = await rawRequest(url,
    `GET ${WS_PATH} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
    `Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\nCookie: ${cookie}\r\n\r\n`);
  t.equal(res.status, 403);
  t.equal(res.body, 'Forbidden', 'body relayed intact');

  // The balancer keeps serving WebSockets with the right Origin.
  const ws = await b.openWebSocket(WS_PATH);
  t.equal((await ws.next(15_000)).hello, true);
  await ws.close();
});

t.test('the backend dropping its WebSockets closes the client side', async (t) => {
  const { sims, url, simOf } = await setup(t);
  const b = browser(t, url);
  await b.get('/');
  const server = b.cookie('JSESSIONID')!.split('.')[1]!;
  const ws = await b.openWebSocket(WS_PATH);
  await ws.next(15_000);
  const started = Date.now();
  simOf(server).dropWebSockets();
  // Promptly: not after websocketIdle (2 h); 15 s is room for a busy machine.
  const closed = await within(ws.closed, 15_000);
  t.ok(closed !== undefined, `the client saw the close (${Date.now() - started} ms)`);
  t.equal(closed?.code, 1006, 'abnormal closure, as after a network drop');
  // A browser reconnects: same server, session still there.
  const again = await b.openWebSocket(WS_PATH);
  const hello = await again.next(15_000);
  t.equal(hello.server, server);
  await again.close();
  await waitFor(() => totalWebSockets(sims) === 0, 10_000, 'no websocket left');
});

t.test('an idle tunnel is closed after timeouts.websocketIdle; traffic keeps it open', async (t) => {
  const { sims, url, simOf } = await setup(t, { websocketIdle: '2s' });
  const b = browser(t, url);
  await b.get('/');
  const server = b.cookie('JSESSIONID')!.split('.')[1]!;
  const ws = await b.openWebSocket(WS_PATH);
  await ws.next(15_000);

  // Traffic every 300 ms for 3 s: longer than the idle timeout, never idle for it.
  for (let i = 0; i < 10; i++) {
    // The gap is the scenario (traffic more often than websocketIdle): a busy machine may
    // stretch 300 ms, far from the 2 s that would close the tunnel.
    await new Promise((r) => setTimeout(r, 300));
    ws.send(`tick ${i}`);
    t.equal((await ws.next(15_000)).echo, `tick ${i}`);
  }
  t.equal(ws.ws.readyState, ws.ws.OPEN, 'busy tunnel stays open');

  const idleFrom = Date.now();
  const closed = await within(ws.closed, 15_000);
  const after = Date.now() - idleFrom;
  t.ok(closed !== undefined, 'idle tunnel closed');
  // Not before websocketIdle (2 s); no upper bound but the 15 s above (a busy machine).
  t.ok(after >= 1900, `closed after ${after} ms of silence (websocketIdle 2s)`);
  await waitFor(() => simOf(server).websockets === 0, 10_000, 'server side closed too');
  t.equal(totalWebSockets(sims), 0);
});
