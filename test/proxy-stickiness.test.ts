/**
 * Stickiness through the real balancer (SPEC "Routing rules" 2-3, "What Servoy needs from
 * stickiness"): the CLI runs as a child process in front of simulated Servoy servers, and
 * browser-like clients with their own cookie jars check what a user would notice — a
 * "session lost" answer from a simulator means stickiness broke.
 *
 * Every client here connects from 127.0.0.1, so new-session hashing alone would send them
 * all to one server: a client reaching each of the three servers in turn is placed there
 * by its cookie, session suffix or learned session id, not by luck.
 */
import t from 'tap';
import { Agent } from 'undici';
import type { ServoySim } from '../examples/servoy-sim.js';
import { AffinityCookieCodec } from '../src/routing/affinity-cookie.js';
import { BrowserClient, type BrowserResponse } from './helpers/browser.js';
import { lbConfig, setCookies, startBalancer } from './helpers/lb.js';
import { startSims, type TestLike } from './helpers/processes.js';

const SECRET = 'stickiness-test-secret-0123456789';
const codec = new AffinityCookieCodec([SECRET]);
const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];

function browser(t: TestLike, url: string): BrowserClient {
  const b = new BrowserClient(url);
  t.teardown(() => b.close());
  return b;
}

/** The SERVOYLB Set-Cookie lines of a response. */
function affinitySetCookies(res: BrowserResponse): string[] {
  return setCookies(res.headers['set-cookie']).filter((line) => line.startsWith('SERVOYLB='));
}

/** The value of a SERVOYLB Set-Cookie line. */
function cookieValue(line: string): string {
  return line.slice('SERVOYLB='.length).split(';')[0]!;
}

/** Three simulators and a balancer with a known cookie secret in front of them. */
async function setup(t: TestLike, extra: Record<string, unknown> = {}): Promise<{ sims: ServoySim[]; url: string }> {
  const sims = await startSims(t, ROUTES);
  const lb = await startBalancer(t, await lbConfig(sims, { affinity: { cookie: { secret: SECRET } }, log: { access: false }, ...extra }));
  return { sims, url: lb.url };
}

t.test('300 browsers stay on their server and the servers share the load', async (t) => {
  const { sims, url } = await setup(t);
  const agent = new Agent({ keepAliveTimeout: 2000, connections: 64 });
  t.teardown(() => agent.close());
  const CLIENTS = 300;
  const REQUESTS = 5;
  const simPorts = sims.map((s) => String(s.port));

  interface Outcome { servers: string[]; sessions: string[]; lost: number; statuses: number[]; affinityCookies: string[][] }
  const one = async (): Promise<Outcome> => {
    const b = new BrowserClient(url, { dispatcher: agent });
    const out: Outcome = { servers: [], sessions: [], lost: 0, statuses: [], affinityCookies: [] };
    for (let i = 0; i < REQUESTS; i++) {
      const res = await b.get('/api/whoami');
      out.statuses.push(res.status);
      if (res.headers['x-session-lost'] !== undefined) out.lost++;
      const who = res.json<{ server: string; session: string }>();
      out.servers.push(who.server);
      out.sessions.push(who.session);
      out.affinityCookies.push(affinitySetCookies(res));
    }
    return out;
  };
  const outcomes = await Promise.all(Array.from({ length: CLIENTS }, one));

  const perServer = new Map<string, number>(ROUTES.map((r) => [r, 0]));
  let moved = 0;
  let lost = 0;
  let badStatus = 0;
  let badCookieCount = 0;
  const cookieProblems = new Set<string>();
  for (const o of outcomes) {
    lost += o.lost;
    badStatus += o.statuses.filter((s) => s !== 200).length;
    if (new Set(o.servers).size !== 1 || new Set(o.sessions).size !== 1) moved++;
    const server = o.servers[0]!;
    perServer.set(server, (perServer.get(server) ?? 0) + 1);
    // The affinity cookie comes once, on the first response, and names the server that answered.
    const counts = o.affinityCookies.map((list) => list.length);
    if (counts[0] !== 1 || counts.slice(1).some((n) => n !== 0)) badCookieCount++;
    const line = o.affinityCookies[0]?.[0];
    if (line === undefined) continue;
    const attrs = line.split(';').slice(1).map((a) => a.trim().toLowerCase());
    if (!attrs.includes('httponly')) cookieProblems.add('no HttpOnly');
    if (!attrs.includes('samesite=lax')) cookieProblems.add('no SameSite=Lax');
    if (!attrs.includes('path=/')) cookieProblems.add('no Path=/');
    if (attrs.some((a) => a.startsWith('max-age') || a.startsWith('expires'))) cookieProblems.add('persistent (Max-Age/Expires)');
    if (attrs.includes('secure')) cookieProblems.add('Secure on plain HTTP');
    const value = cookieValue(line);
    if (/127\.0\.0\.1|http|:\d/.test(value) || simPorts.some((p) => value.includes(p))) cookieProblems.add(`backend address in cookie: ${value}`);
    const token = codec.verify(value);
    if (token === undefined) cookieProblems.add(`cookie does not verify: ${value}`);
    else if (token.backendId !== server) cookieProblems.add(`cookie names ${token.backendId}, server was ${server}`);
  }
  t.equal(badStatus, 0, 'every request answered 200');
  t.equal(lost, 0, 'no "session lost" answer');
  t.equal(moved, 0, 'every client stays on one server with one session');
  t.equal(badCookieCount, 0, 'SERVOYLB set exactly once per client, on its first response');
  t.same([...cookieProblems], [], 'affinity cookie: HttpOnly, SameSite=Lax, browser-session, no backend address, signed for the answering server');
  t.comment(`clients per server: ${[...perServer].map(([s, n]) => `${s} ${n}`).join(', ')}`);
  for (const [server, n] of perServer) {
    t.ok(n >= CLIENTS * 0.15, `${server} got ${n} of ${CLIENTS} clients (>= 15%)`);
  }
  const stats = sims.map((s) => s.stats());
  t.equal(stats.reduce((sum, s) => sum + s.sessionsLost, 0), 0, 'the simulators saw no lost session');
  t.equal(stats.reduce((sum, s) => sum + s.sessionsCreated, 0), CLIENTS, 'one server session per browser');
  t.equal(stats.reduce((sum, s) => sum + s.requests, 0), CLIENTS * REQUESTS, 'every request reached a server once');
});

t.test('a Tomcat route suffix in JSESSIONID (cookie or ;jsessionid= path) reaches its server', async (t) => {
  const { sims, url } = await setup(t);
  for (const sim of sims) {
    // A session created directly on the simulator, as if the client had been there before.
    const direct = browser(t, sim.url);
    const created = (await direct.get('/api/whoami')).json<{ session: string }>();
    t.match(created.session, new RegExp(`\\.${sim.route}$`));

    const viaCookie = browser(t, url);
    viaCookie.setCookie('JSESSIONID', created.session);
    const res = await viaCookie.get('/api/whoami');
    const who = res.json<{ server: string; session: string; new: boolean }>();
    t.equal(res.headers['x-session-lost'], undefined, `cookie ${sim.route}: not lost`);
    t.equal(who.server, sim.route, `cookie ${sim.route}: reached its server`);
    t.equal(who.session, created.session, `cookie ${sim.route}: same session`);
    t.equal(who.new, false);
    const fresh = affinitySetCookies(res);
    t.equal(fresh.length, 1, 'the balancer adds its affinity cookie');
    t.equal(codec.verify(cookieValue(fresh[0]!))?.backendId, sim.route, 'pinned to the session\'s server');

    // Tomcat URL rewriting: no cookies at all, the id in the path.
    const viaPath = browser(t, url);
    const pathRes = await viaPath.get(`/api/whoami;jsessionid=${created.session}?x=1`);
    const pathWho = pathRes.json<{ server: string; session: string }>();
    t.equal(pathRes.headers['x-session-lost'], undefined, `path ${sim.route}: not lost`);
    t.equal(pathWho.server, sim.route, `path ${sim.route}: reached its server`);
    t.equal(pathWho.session, created.session);
  }
  t.equal(sims.reduce((sum, s) => sum + s.stats().sessionsLost, 0), 0);
});

t.test('a session id without a known route is learned from Set-Cookie and followed', async (t) => {
  // Simulators whose ids end in ".other-N": no backend has such a route (route defaults to id).
  const sims = await startSims(t, ['other-1', 'other-2', 'other-3']);
  const backends = sims.map((s, i) => ({ id: ['x', 'y', 'z'][i]!, url: s.url }));
  const lb = await startBalancer(t, await lbConfig(backends, { affinity: { cookie: { secret: SECRET } }, log: { access: false } }));

  const CLIENTS = 12; // bounded load spreads 12 sessions from one address over all three servers
  const first: { session: string; server: string }[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const b = browser(t, lb.url);
    const who = (await b.get('/api/whoami')).json<{ session: string; server: string; new: boolean }>();
    t.equal(who.new, true);
    t.equal(b.cookie('JSESSIONID'), who.session);
    first.push({ session: who.session, server: who.server });
  }
  t.same([...new Set(first.map((f) => f.server))].sort(), ["other-1", "other-2", "other-3"], 'sessions on every server');

  for (const { session, server } of first) {
    // The browser dropped the affinity cookie (or never kept it): only JSESSIONID is left.
    const b = browser(t, lb.url);
    b.setCookie('JSESSIONID', session);
    const res = await b.get('/api/whoami');
    const who = res.json<{ session: string; server: string; new: boolean }>();
    t.equal(res.headers['x-session-lost'], undefined, `${session}: not lost`);
    t.equal(who.server, server, `${session}: back on ${server}`);
    t.equal(who.session, session);
    const fresh = affinitySetCookies(res);
    t.equal(fresh.length, 1, 'a fresh affinity cookie');
  }
  t.equal(sims.reduce((sum, s) => sum + s.stats().sessionsLost, 0), 0, 'no session lost');
});

t.test('affinity cookies: signed ones are followed, forged or unknown ones ignored', async (t) => {
  const { sims, url } = await setup(t);

  await t.test('a genuine cookie reaches the server it names, with no new cookie', async (t) => {
    for (const sim of sims) {
      const b = browser(t, url);
      b.setCookie('SERVOYLB', codec.sign('client-genuine-01', sim.route));
      const res = await b.get('/api/whoami');
      t.equal(res.json<{ server: string }>().server, sim.route);
      t.same(affinitySetCookies(res), [], 'no Set-Cookie for a valid cookie');
    }
  });

  await t.test('a forged cookie (wrong MAC, another backend) is ignored and replaced', async (t) => {
    for (const sim of sims) {
      // A real session on sim (via its suffix), plus a forged cookie naming another server.
      const direct = browser(t, sim.url);
      const session = (await direct.get('/api/whoami')).json<{ session: string }>().session;
      const other = sims.find((s) => s !== sim)!;
      const genuine = codec.sign('client-forged-01', other.route);
      const forged = `${genuine.slice(0, genuine.lastIndexOf('.') + 1)}${'A'.repeat(22)}`;
      t.equal(codec.verify(forged), undefined, 'the forged cookie is well-formed but does not verify');

      const b = browser(t, url);
      b.setCookie('JSESSIONID', session);
      b.setCookie('SERVOYLB', forged);
      const res = await b.get('/api/whoami');
      const who = res.json<{ server: string; session: string }>();
      t.equal(who.server, sim.route, `forged cookie naming ${other.route} did not move the session off ${sim.route}`);
      t.equal(who.session, session);
      t.equal(res.headers['x-session-lost'], undefined);
      const fresh = affinitySetCookies(res);
      t.equal(fresh.length, 1, 'a fresh cookie replaces the forged one');
      t.equal(codec.verify(cookieValue(fresh[0]!))?.backendId, sim.route);
      t.not(cookieValue(fresh[0]!), forged);
    }
    // Forged cookie alone: treated as a new session (a cookie is set), never honoured.
    const genuine = codec.sign('client-forged-02', 'servoy-c');
    const forged = `${genuine.slice(0, genuine.lastIndexOf('.') + 1)}${genuine.slice(genuine.lastIndexOf('.') + 1).split('').reverse().join('')}`;
    t.equal(codec.verify(forged), undefined);
    const b = browser(t, url);
    b.setCookie('SERVOYLB', forged);
    const res = await b.get('/api/whoami');
    const fresh = affinitySetCookies(res);
    t.equal(fresh.length, 1, 'a new, valid cookie');
    t.equal(codec.verify(cookieValue(fresh[0]!))?.backendId, res.json<{ server: string }>().server);
    t.equal(res.json<{ new: boolean }>().new, true);
  });

  await t.test('a validly signed cookie naming an unknown backend is ignored', async (t) => {
    const b = browser(t, url);
    b.setCookie('SERVOYLB', codec.sign('client-ghost-001', 'ghost'));
    const res = await b.get('/api/whoami');
    t.equal(res.status, 200);
    const who = res.json<{ server: string; new: boolean }>();
    t.ok(ROUTES.includes(who.server));
    const fresh = affinitySetCookies(res);
    t.equal(fresh.length, 1, 'a fresh cookie');
    t.equal(codec.verify(cookieValue(fresh[0]!))?.backendId, who.server, 'naming the server that answered');
    // And the browser sticks from now on.
    const again = (await b.get('/api/whoami')).json<{ server: string; new: boolean }>();
    t.equal(again.server, who.server);
    t.equal(again.new, false);
  });

  await t.test('a cookie signed with another secret is ignored', async (t) => {
    const foreign = new AffinityCookieCodec(['some-other-secret-0123456789']);
    const b = browser(t, url);
    b.setCookie('SERVOYLB', foreign.sign('client-foreign-1', 'servoy-b'));
    const res = await b.get('/api/whoami');
    const fresh = affinitySetCookies(res);
    t.equal(fresh.length, 1);
    t.equal(codec.verify(cookieValue(fresh[0]!))?.backendId, res.json<{ server: string }>().server);
  });
});
