/**
 * servoy-lb in front of two REAL Tomcat 10 servers (Debian's tomcat10 + tomcat10-examples),
 * not the simulator: the real CLI, health checks on `/`, and what a Servoy admin relies on,
 * checked against a real servlet container:
 * 1. health checks on `/` keep both Tomcats up and keep one HTTP session per Tomcat (the
 *    probes send back Tomcat's cookie), as Tomcat's own access log shows;
 * 2. stickiness by Tomcat's own JSESSIONID (Path=/examples, `<hex>.<jvmRoute>`): the same
 *    Tomcat and session on every request, and by the route suffix alone without SERVOYLB;
 * 3. URL rewriting: `;jsessionid=<id>.<route>` in the path, no cookies, reaches that session;
 * 4. Tomcat's WebSocket echo endpoint through the balancer (on the sticky Tomcat), and an
 *    upgrade Tomcat refuses (404) relayed, then the client connection closed (no raw pipe:
 *    a request smuggled behind it never reaches Tomcat);
 * 5. a Tomcat that is stopped: its users get 503 during affinity.failoverDelay while new
 *    users go to the live one; after the delay they are placed on the live Tomcat.
 * Skipped when Tomcat 10 is not installed. Both Tomcats start once, in parallel.
 */
import t from 'tap';
import { request } from 'undici';
import { browser, config, row, start, waitState } from './helpers/admin-env.js';
import { UpgradeRefused, type BrowserClient, type BrowserResponse } from './helpers/browser.js';
import { PROBE_AGENT, waitFor } from './helpers/lb.js';
import { probe } from './fixtures/hostile-net.js';
import { startTomcat, tomcatMissing, type Tomcat } from './helpers/tomcat.js';

const SESSION_PAGE = '/examples/servlets/servlet/SessionExample';
const FAILOVER_DELAY_MS = 8000;

/** The session id the SessionExample page shows (Tomcat's own `session.getId()`). */
function shownSession(res: BrowserResponse | { body: string }): string | undefined {
  return /Session ID: ([^\s<]+)/.exec(res.body)?.[1];
}

/** The JSESSIONID Set-Cookie line of an answer, if any. */
function sessionSetCookie(res: { headers: Record<string, string | string[] | undefined> }): string | undefined {
  const h = res.headers['set-cookie'];
  return (h === undefined ? [] : Array.isArray(h) ? h : [h]).find((l) => l.startsWith('JSESSIONID='));
}

const routeOf = (id: string): string => id.slice(id.indexOf('.') + 1);

t.test('servoy-lb in front of two real Tomcat 10 servers', { skip: tomcatMissing() ?? false }, async (t) => {
  const top = t;
  const [tcA, tcB] = (await Promise.all([startTomcat(t, 'tc-a'), startTomcat(t, 'tc-b')])) as [Tomcat, Tomcat];
  const tomcats = new Map([[tcA.route, tcA], [tcB.route, tcB]]);
  const lb = await start(t, config([...tomcats.values()].map((tc) => ({ id: tc.route, url: tc.url })), {
    affinity: { sessionIdle: '30m', failoverDelay: `${FAILOVER_DELAY_MS}ms` },
    // timeout 5s: a JVM on a busy 2-core machine can pause that long; fall 2 keeps a stopped one quick to notice.
    healthCheck: { path: '/', interval: '500ms', timeout: '5s', rise: 1, fall: 2 },
    outlier: { consecutiveFailures: 1000 },
  }));
  /** One browser pinned to each Tomcat, by the route of its session: filled in test 2, used after. */
  const users = new Map<string, { client: BrowserClient; session: string }>();

  await t.test('health checks on `/` keep both Tomcats up, with one session per Tomcat', async (t) => {
    for (const tc of tomcats.values()) await waitState(lb, tc.route, 'up', 30_000);
    for (const tc of tomcats.values()) {
      const probes = async () => (await tc.access()).filter((l) => l.userAgent === PROBE_AGENT);
      await waitFor(async () => (await probes()).length >= 5, 30_000, `5 probes on ${tc.route}`, 100);
      const lines = await probes();
      t.ok(lines.every((l) => l.requestLine === 'GET / HTTP/1.1' && l.status === 200), `${tc.route}: every probe was GET / answered 200`);
      const opened = lines.filter((l) => l.setCookie?.startsWith('JSESSIONID=') === true);
      t.equal(opened.length, 1, `${tc.route}: the probes opened one session, not one per probe`);
      const id = /^JSESSIONID=([^;]+)/.exec(opened[0]?.setCookie ?? '')?.[1];
      t.match(id, new RegExp(`^[0-9A-F]{32}\\.${tc.route}$`), `${tc.route}: Tomcat's id format, its jvmRoute appended`);
      const after = lines.slice(lines.indexOf(opened[0]!) + 1);
      t.ok(after.length >= 1 && after.every((l) => l.sessionCookie === id), `${tc.route}: later probes send that session back`);
    }
  });

  await t.test("stickiness by Tomcat's own JSESSIONID (Path=/examples, <hex>.<jvmRoute>)", async (t) => {
    for (let i = 0; i < 40 && users.size < 2; i++) {
      const client = browser(top, lb.url); // closed at the end of the file: tests 3 to 5 use it
      const res = await client.get(SESSION_PAGE);
      t.equal(res.status, 200);
      const session = shownSession(res)!;
      t.match(sessionSetCookie(res), new RegExp(`^JSESSIONID=${session.replace('.', '\\.')}; Path=/examples; HttpOnly`), 'the session cookie Tomcat set, Path=/examples');
      t.ok(client.cookie('SERVOYLB'), 'and the balancer its affinity cookie');
      if (!users.has(routeOf(session))) users.set(routeOf(session), { client, session });
    }
    t.same([...users.keys()].sort(), ['tc-a', 'tc-b'], 'new sessions were spread over both Tomcats');

    for (const [route, { client, session }] of users) {
      for (let i = 0; i < 5; i++) {
        const res = await client.get(SESSION_PAGE);
        t.equal(shownSession(res), session, `${route}: request ${i + 1} reached the same Tomcat and session`);
        t.equal(sessionSetCookie(res), undefined, `${route}: no new session`);
      }
      // Only Tomcat's cookie, no SERVOYLB (expired, another balancer, a bookmarked tab): the route suffix routes.
      const bare = browser(t, lb.url);
      bare.setCookie('JSESSIONID', session, '/examples');
      for (let i = 0; i < 3; i++) {
        const res = await bare.get(SESSION_PAGE);
        t.equal(res.status, 200);
        t.equal(shownSession(res), session, `${route}: JSESSIONID alone reaches its Tomcat and session`);
        t.equal(sessionSetCookie(res), undefined, `${route}: Tomcat opened no new session`);
      }
    }
  });

  await t.test('URL rewriting: ;jsessionid=<id>.<route> in the path, no cookies', async (t) => {
    for (const [route, { session }] of users) {
      for (let i = 0; i < 3; i++) {
        const res = await request(`${lb.url}${SESSION_PAGE};jsessionid=${session}?n=${i}`, { headersTimeout: 30_000 });
        const body = await res.body.text();
        t.equal(res.statusCode, 200);
        t.equal(shownSession({ body }), session, `${route}: the path parameter reaches its Tomcat and session`);
        t.equal(sessionSetCookie(res), undefined, `${route}: Tomcat took the session from the URL`);
      }
    }
  });

  await t.test("Tomcat's WebSocket endpoint through the balancer; a refused upgrade is relayed and closed", async (t) => {
    for (const [route, { client, session }] of users) {
      const ws = await client.openWebSocket('/examples/websocket/echoAnnotation');
      ws.send(`hello ${route}`);
      t.equal(await ws.next(), `hello ${route}`, `${route}: Tomcat echoed the message`);
      const big = 'x'.repeat(100_000);
      ws.send(big);
      t.equal(await ws.next(), big, `${route}: and a 100 KB one (Tomcat sends it in parts)`);
      await ws.close();
      // The handshake carried the session cookie and reached the session's Tomcat (101 in its access log).
      const tc = tomcats.get(route)!;
      await waitFor(async () => (await tc.access()).some((l) => l.requestLine.startsWith('GET /examples/websocket/echoAnnotation ') && l.status === 101 && l.sessionCookie === session), 15_000, `${route}: the handshake in its access log`, 100);
      t.pass(`${route}: the upgrade went to the sticky Tomcat`);
    }

    const refused = await users.get('tc-a')!.client.openWebSocket('/examples/websocket/no-such-endpoint').then(
      () => 101,
      (err: unknown) => (err instanceof UpgradeRefused ? err.status : -1),
    );
    t.equal(refused, 404, "Tomcat's 404 to an unknown endpoint reaches the client");

    // Raw: a request smuggled behind the refused handshake must never reach Tomcat.
    const key = Date.now().toString(36);
    const handshake = `GET /examples/websocket/refused-${key} HTTP/1.1\r\nHost: lb.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const smuggled = `GET /examples/smuggled-${key} HTTP/1.1\r\nHost: lb.test\r\n\r\n`;
    const res = await probe(lb.url, handshake + smuggled, { timeoutMs: 20_000 });
    t.equal(res.status, 404, 'the refusal is relayed');
    t.ok(res.closed, 'then the balancer closes the client connection');
    t.equal(res.raw.match(/^HTTP\/1\.[01] \d{3}/gm)?.length, 1, 'exactly one response');
    t.match(res.raw, /\r\nconnection: close\r\n/i);
    // A quiet point: the handshake is in a Tomcat's log, then a later request to that Tomcat is too.
    let got: Tomcat | undefined;
    await waitFor(async () => {
      for (const tc of tomcats.values()) if ((await tc.access()).some((l) => l.requestLine.includes(`refused-${key}`) && l.status === 404)) got = tc;
      return got !== undefined;
    }, 15_000, 'the refused handshake in an access log', 100);
    await (await request(`${got!.url}/examples/marker-${key}`)).body.dump();
    await waitFor(async () => (await got!.access()).some((l) => l.requestLine.includes(`marker-${key}`)), 15_000, 'the marker in the access log', 100);
    for (const tc of tomcats.values()) t.notOk((await tc.access()).some((l) => l.requestLine.includes(`smuggled-${key}`)), `${tc.route}: the smuggled request never reached Tomcat`);
  });

  await t.test('a stopped Tomcat: its users get 503 during failoverDelay, then are placed on the live one', async (t) => {
    const { client: userB, session: sessionB } = users.get('tc-b')!;
    const { client: userA, session: sessionA } = users.get('tc-a')!;
    await tcB.stop();
    await waitState(lb, 'tc-b', 'down', 30_000);
    t.equal((await row(lb, 'tc-b')).holdingSessions, true, 'tc-b holds its sessions');

    const held = await userB.get(SESSION_PAGE);
    t.equal(held.status, 503, 'a user of the stopped Tomcat gets 503, not a new session elsewhere');
    t.ok(held.headers['retry-after'], 'with Retry-After');
    for (let i = 0; i < 3; i++) {
      const res = await browser(t, lb.url).get(SESSION_PAGE);
      t.equal(res.status, 200);
      t.equal(routeOf(shownSession(res)!), 'tc-a', 'a new user goes to the live Tomcat');
    }
    t.equal(shownSession(await userA.get(SESSION_PAGE)), sessionA, 'tc-a users keep their session');

    await lb.waitForLog(/"backend":"tc-b".*failoverDelay passed while down/, FAILOVER_DELAY_MS + 30_000);
    await waitFor(async () => (await row(lb, 'tc-b')).holdingSessions === false, 10_000, 'hold ended', 50);
    const placed = await userB.get(SESSION_PAGE);
    t.equal(placed.status, 200, 'after the delay: served');
    const fresh = shownSession(placed)!;
    t.equal(routeOf(fresh), 'tc-a', 'by the live Tomcat');
    t.not(fresh, sessionB, 'in a new session (tc-b held the old one)');
    t.match(sessionSetCookie(placed), new RegExp(`^JSESSIONID=${fresh.replace('.', '\\.')};`), 'which Tomcat sets as its cookie');
    for (let i = 0; i < 3; i++) t.equal(shownSession(await userB.get(SESSION_PAGE)), fresh, 'and it stays there');
    t.equal(lb.proc.exitCode, null, 'the balancer is running');
  });
});
