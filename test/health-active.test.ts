/**
 * Active health checks against real simulated Servoy servers (SPEC "Backend states"):
 * `fall` bad probes take a backend down, `rise` good ones bring it back, the sink hears
 * only real flips, probes keep the backend's cookies (one Servoy session, not one per
 * probe), the probed set follows setTargets, and close() leaves nothing running.
 * Short intervals and bounded polls keep the file fast.
 */
import t from 'tap';
import { startServoySim, type ServoySim } from '../examples/servoy-sim.js';
import { ActiveHealthChecker, keepCookies, type ActiveCheckerOptions, type ActiveCheckSettings, type ProbeReport } from '../src/health/active-checker.js';
import type { HealthSink } from '../src/health/health-sink.js';
import { closedPort, waitFor } from './helpers/lb.js';
import type { TestLike } from './helpers/processes.js';

interface Flip {
  id: string;
  healthy: boolean;
  cause: string;
}

/** A sink that records every call. */
function recordingSink(): HealthSink & { flips: Flip[]; maintenance: string[] } {
  const flips: Flip[] = [];
  const maintenance: string[] = [];
  return { flips, maintenance, setHealth: (id, healthy, cause) => void flips.push({ id, healthy, cause }), inMaintenance: (id) => void maintenance.push(id) };
}

/**
 * Probes of `/` every 100 ms. The timeout is long on purpose: a loopback probe answers in a
 * millisecond, but a busy 2-core machine can hold a probe up for hundreds; only the test of
 * the timeout itself uses a short one.
 */
const FAST: ActiveCheckSettings = { path: '/', interval: '100ms', timeout: '5s', rise: 2, fall: 2, expectStatus: '200-399' };

async function sim(t: TestLike, route: string): Promise<ServoySim> {
  const s = await startServoySim({ route });
  t.teardown(() => s.close());
  return s;
}

/** A started checker whose probes are recorded; closed at teardown. */
function checker(t: TestLike, settings: Partial<ActiveCheckSettings> = {}, options: Pick<ActiveCheckerOptions, 'maintenanceLimit' | 'now'> = {}) {
  const sink = recordingSink();
  const probes: ProbeReport[] = [];
  const hc = new ActiveHealthChecker({ ...FAST, ...settings }, sink, { onProbe: (p) => void probes.push(p), ...options });
  t.teardown(() => hc.close());
  const count = (id: string) => probes.filter((p) => p.id === id).length;
  return { hc, sink, probes, count };
}

t.test('a backend whose application fails (500 on `/`) goes down after fall probes and comes back after rise', async (t) => {
  const a = await sim(t, 'a');
  const { hc, sink, probes, count } = checker(t, { rise: 3, fall: 2 });
  hc.setTargets([{ id: 'a', url: a.url }]);
  hc.start();
  await waitFor(() => count('a') >= 3, 10_000, 'three good probes');
  t.same(sink.flips, [], 'healthy backend: nothing to report');
  t.ok(probes.every((p) => p.ok && 'status' in p && p.status === 200), 'probes saw 200');

  a.setHealthy(false);
  await waitFor(() => sink.flips.length === 1, 10_000, 'down flip');
  t.same(sink.flips[0], { id: 'a', healthy: false, cause: 'health check failed: 500' });
  t.same(probes.slice(-2).map((p) => p.ok), [false, false], 'down exactly at the 2nd bad probe in a row');
  t.equal(hc.isHealthy('a'), false);

  const badBefore = probes.length;
  await waitFor(() => probes.length >= badBefore + 2, 10_000, 'more bad probes');
  t.equal(sink.flips.length, 1, 'still down: not reported again');

  a.setHealthy(true);
  await waitFor(() => sink.flips.length === 2, 10_000, 'up flip');
  t.same(sink.flips[1], { id: 'a', healthy: true, cause: 'health check passed' });
  t.same(probes.slice(-3).map((p) => p.ok), [true, true, true], 'up exactly at the 3rd good probe in a row');
  const goodBefore = probes.length;
  await waitFor(() => probes.length >= goodBefore + 3, 10_000, 'more good probes');
  t.equal(sink.flips.length, 2, 'flips reported once each');
});

t.test('a dead port goes down once, with the error code', async (t) => {
  const port = await closedPort();
  const { hc, sink, count } = checker(t);
  hc.setTargets([{ id: 'dead', url: `http://127.0.0.1:${port}` }]);
  hc.start();
  await waitFor(() => sink.flips.length === 1, 10_000, 'down flip');
  t.same(sink.flips[0], { id: 'dead', healthy: false, cause: 'health check failed: ECONNREFUSED' });
  const seen = count('dead');
  await waitFor(() => count('dead') >= seen + 3, 10_000, 'more probes');
  t.equal(sink.flips.length, 1, 'reported once');
});

t.test('a probe slower than the timeout fails as timeout', async (t) => {
  const a = await sim(t, 'a');
  const { hc, sink, probes } = checker(t, { path: '/slow?ms=30000', timeout: '100ms', fall: 1 });
  hc.setTargets([{ id: 'a', url: a.url }]);
  hc.start();
  await waitFor(() => sink.flips.length === 1, 10_000, 'down flip');
  t.same(sink.flips[0], { id: 'a', healthy: false, cause: 'health check failed: timeout' });
  const first = probes[0]!;
  // The order of events, not a tight time: it timed out (after at least the timeout) long before the answer was due.
  t.ok(first.ms >= 90 && first.ms < 30_000, `timed out after the 100 ms timeout, not at the answer (${first.ms} ms)`);
});

t.test('expectStatus decides what a good probe is', async (t) => {
  const a = await sim(t, 'a');
  const { hc, sink, count } = checker(t, { path: '/status/302', expectStatus: '200', fall: 1 });
  hc.setTargets([{ id: 'a', url: a.url }]);
  hc.start();
  await waitFor(() => sink.flips.length === 1, 10_000, 'down flip');
  t.same(sink.flips[0], { id: 'a', healthy: false, cause: 'health check failed: 302' });

  hc.updateSettings({ ...FAST, path: '/status/302', expectStatus: '200,302', rise: 1 });
  await waitFor(() => sink.flips.length === 2, 10_000, 'up flip after reload');
  t.same(sink.flips[1], { id: 'a', healthy: true, cause: 'health check passed' });
  t.ok(count('a') >= 2);
});

t.test('probes keep the cookies a backend sets: probing "/" opens one Servoy session', async (t) => {
  const a = await sim(t, 'a');
  const { hc, sink, count } = checker(t, { path: '/' });
  hc.setTargets([{ id: 'a', url: a.url }]);
  hc.start();
  await waitFor(() => count('a') >= 6, 10_000, 'six probes');
  const stats = a.stats();
  t.equal(stats.probeSessionsCreated, 1, 'one session for all probes');
  t.equal(stats.sessionsLost, 0, 'the cookie sent back is the one the server knows');
  t.ok(stats.healthChecks >= 6, `the probes reached the page (${stats.healthChecks})`);
  t.same(sink.flips, []);
});

t.test('a probe answered 503 is Servoy maintenance mode: reported as maintenance, never as down', async (t) => {
  // The balancer (re)started while the server is in maintenance: the checker holds no session, so Servoy answers 503.
  const a = await sim(t, 'a');
  a.setMaintenance(true);
  const { hc, sink, probes } = checker(t, { fall: 2 });
  hc.setTargets([{ id: 'a', url: a.url }]);
  hc.start();
  await waitFor(() => sink.maintenance.length >= 4, 10_000, 'four maintenance reports');
  t.ok(probes.slice(0, 4).every((p) => 'status' in p && p.status === 503), 'the probes met 503');
  t.same(sink.flips, [], 'never down, although more than `fall` probes were not good');
  t.equal(hc.isHealthy('a'), true);
  a.setMaintenance(false);
  const reports = sink.maintenance.length;
  await waitFor(() => probes.length >= 2 && probes.slice(-2).every((p) => p.ok), 10_000, 'good probes after maintenance');
  t.ok(sink.maintenance.length <= reports + 1, 'no more maintenance reports once the probes are good (one probe may have been in flight)');
  t.same(sink.flips, []);
});

t.test('from down, 503 probes do not bring a server back; rise good ones do', async (t) => {
  const a = await sim(t, 'a');
  a.setHealthy(false);
  const { hc, sink, probes } = checker(t, { fall: 2, rise: 2 });
  hc.setTargets([{ id: 'a', url: a.url }]);
  hc.start();
  await waitFor(() => sink.flips.length === 1, 10_000, 'down flip');
  t.same(sink.flips[0], { id: 'a', healthy: false, cause: 'health check failed: 500' });
  a.setHealthy(true);
  a.setMaintenance(true); // no session in the jar (500 set none): probes meet 503
  const seen = probes.length;
  await waitFor(() => probes.slice(seen).filter((p) => 'status' in p && p.status === 503).length >= 3, 10_000, 'three 503 probes');
  t.equal(sink.flips.length, 1, 'still down after three 503 probes (rise is 2)');
  t.same(sink.maintenance, [], 'a down server is not reported as in maintenance');
  a.setMaintenance(false);
  await waitFor(() => sink.flips.length === 2, 10_000, 'up flip');
  t.same(sink.flips[1], { id: 'a', healthy: true, cause: 'health check passed' });
});

t.test('503 probes for longer than the maintenance limit (drain.maxWait) count as down', async (t) => {
  // A Tomcat whose web application failed to start answers 503 forever: that is no maintenance.
  const a = await sim(t, 'a');
  a.setMaintenance(true);
  let clock = 1_000_000;
  const { hc, sink } = checker(t, { fall: 3 }, { maintenanceLimit: () => 60_000, now: () => clock });
  hc.setTargets([{ id: 'a', url: a.url }]);
  hc.start();
  await waitFor(() => sink.maintenance.length >= 2, 10_000, 'maintenance reports');
  t.same(sink.flips, [], 'within the limit: maintenance');
  clock += 60_001;
  await waitFor(() => sink.flips.length === 1, 10_000, 'down flip');
  t.same(sink.flips[0], { id: 'a', healthy: false, cause: 'health check answered 503 for longer than drain.maxWait (a failed application, not maintenance)' });
});

t.test('the cookie jar honours Set-Cookie deletion and expiry', async (t) => {
  const cases: { desc: string; lines: string[]; want: Record<string, string> }[] = [
    { desc: 'keeps name=value', lines: ['JSESSIONID=abc.a; Path=/; HttpOnly'], want: { JSESSIONID: 'abc.a' } },
    { desc: 'replaces a value', lines: ['A=1', 'A=2; Path=/'], want: { A: '2' } },
    { desc: 'Max-Age=0 deletes', lines: ['A=1', 'B=2', 'A=; Max-Age=0; Path=/'], want: { B: '2' } },
    { desc: 'negative Max-Age deletes', lines: ['A=1', 'A=x; Max-Age=-1'], want: {} },
    { desc: 'past Expires deletes', lines: ['A=1', 'A=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT'], want: {} },
    { desc: 'Max-Age wins over Expires', lines: ['A=1; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT'], want: { A: '1' } },
    { desc: 'value with "=" kept whole', lines: ['T=a=b==; Secure'], want: { T: 'a=b==' } },
    { desc: 'lines without a name are ignored', lines: ['=x', 'garbage'], want: {} },
  ];
  for (const c of cases) {
    const jar = new Map<string, string>();
    for (const line of c.lines) keepCookies(jar, line);
    t.same(Object.fromEntries(jar), c.want, c.desc);
  }
  const jar = new Map<string, string>();
  keepCookies(jar, ['A=1', 'B=2']);
  keepCookies(jar, undefined);
  t.same(Object.fromEntries(jar), { A: '1', B: '2' }, 'several lines at once');
});

t.test('setTargets adds, removes and restarts probes; unchanged ones keep their state', async (t) => {
  const [a, b, c] = await Promise.all([sim(t, 'a'), sim(t, 'b'), sim(t, 'c')]);
  const { hc, sink, count } = checker(t);
  hc.setTargets([{ id: 'a', url: a.url }]);
  hc.start();
  await waitFor(() => count('a') >= 2, 10_000, 'probes of a');
  t.equal(count('b'), 0);

  hc.setTargets([{ id: 'a', url: a.url }, { id: 'b', url: b.url }]);
  await waitFor(() => count('b') >= 2, 10_000, 'probes of added b');

  b.setHealthy(false);
  await waitFor(() => sink.flips.length === 1, 10_000, 'b down');
  hc.setTargets([{ id: 'a', url: a.url }, { id: 'b', url: b.url }]);
  t.equal(hc.isHealthy('b'), false, 'an unchanged target keeps its verdict');

  hc.setTargets([{ id: 'b', url: b.url }]);
  t.equal(hc.isHealthy('a'), undefined, 'a removed');
  const aProbes = count('a');
  const aChecks = a.stats().healthChecks;
  const bProbes = count('b');
  await waitFor(() => count('b') >= bProbes + 3, 10_000, 'more probes of b');
  t.equal(count('a'), aProbes, 'no probe of a after removal');
  // A probe already on its way when a was removed may still reach it (at most that one);
  // once b has been probed three more times after that, a must have heard nothing new.
  const aSettled = a.stats().healthChecks;
  t.ok(aSettled <= aChecks + 1, 'at most the probe in flight at removal reached a');
  await waitFor(() => count('b') >= bProbes + 6, 10_000, 'still more probes of b');
  t.equal(a.stats().healthChecks, aSettled, 'a is no longer contacted');

  // b's URL changes to a healthy server: a new probe whose rise good checks bring b up.
  hc.setTargets([{ id: 'b', url: c.url }]);
  await waitFor(() => sink.flips.length === 2, 10_000, 'b up on its new URL');
  t.same(sink.flips[1], { id: 'b', healthy: true, cause: 'health check passed' });
  t.ok(c.stats().healthChecks >= 2, 'the new URL is probed');
});

t.test('probeOnce answers whether the last rise probes were good', async (t) => {
  const a = await sim(t, 'a');
  const { hc } = checker(t, { rise: 2, interval: '10s' });
  hc.setTargets([{ id: 'a', url: a.url }]);
  t.equal(await hc.probeOnce('a'), false, 'one good probe is not rise=2');
  t.equal(await hc.probeOnce('a'), true, 'two good probes in a row');
  a.setHealthy(false);
  t.equal(await hc.probeOnce('a'), false, 'bad probe');
  t.equal(await hc.probeOnce('nope'), false, 'unknown backend');
  await hc.close();
  t.equal(await hc.probeOnce('a'), false, 'after close');
});

t.test('the first probes are spread over the first interval', async (t) => {
  const [a, b] = await Promise.all([sim(t, 'a'), sim(t, 'b')]);
  const draws = [0.0, 0.9];
  const sink = recordingSink();
  const seen: { id: string; at: number }[] = [];
  const startedAt = Date.now();
  const hc = new ActiveHealthChecker({ ...FAST, interval: '400ms', timeout: '200ms' }, sink, {
    random: () => draws.shift() ?? 0.5,
    onProbe: (p) => void seen.push({ id: p.id, at: Date.now() - startedAt }),
  });
  t.teardown(() => hc.close());
  hc.setTargets([{ id: 'a', url: a.url }, { id: 'b', url: b.url }]);
  hc.start();
  await waitFor(() => seen.length >= 2, 10_000, 'both first probes');
  t.equal(seen[0]!.id, 'a', 'a first (delay 0)');
  t.equal(seen[1]!.id, 'b', 'b later (delay 0.9 × interval)');
  t.ok(seen[1]!.at >= 300, `b's first probe waited (${seen[1]!.at} ms)`);
});

t.test('close() stops every timer and probe and closes the probe connections', async (t) => {
  const sims = await Promise.all([sim(t, 'a'), sim(t, 'b'), sim(t, 'c')]);
  const deadPort = await closedPort();
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const { hc, probes } = checker(t, { path: '/slow?ms=50' });
  hc.setTargets([...sims.map((s) => ({ id: s.route, url: s.url })), { id: 'dead', url: `http://127.0.0.1:${deadPort}` }]);
  hc.start();
  await waitFor(() => probes.length >= 8, 10_000, 'probes of every backend');
  await hc.close();
  // The simulators' own /slow timers end when they see the aborted probes close (a moment later
  // on a busy machine): wait for the count to come back. A timer the checker left behind
  // (its probe schedule re-arms itself) would keep it up, and this wait would fail.
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  await waitFor(() => timers() <= timersBefore, 10_000, 'timers back to their count before the checker');
  t.equal(timers(), timersBefore, 'no timer left behind');
  const after = probes.length;
  const checks = sims.map((s) => s.stats().healthChecks);
  // Belt and braces: no timer is left (checked above), so nothing can probe later; this
  // sleep can only make the check pass for the wrong reason, never fail on a busy machine.
  await new Promise((r) => setTimeout(r, 250));
  t.equal(probes.length, after, 'no probe after close');
  t.same(sims.map((s) => s.stats().healthChecks), checks, 'no backend contacted after close');
  hc.setTargets([{ id: 'a', url: sims[0]!.url }]);
  hc.start();
  t.equal(hc.isHealthy('a'), undefined, 'a closed checker takes no targets');
});
