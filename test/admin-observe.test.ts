/**
 * The data behind the dashboard (SPEC "Admin API", "Dashboard"), end to end: the real CLI
 * in front of simulated Servoy servers, browser-like clients, the admin API over HTTP and
 * the `sessions` / `events` commands.
 * - GET /api/sessions lists the sessions browsers made, with shortened ids (never the full
 *   client id), on the right backends, filtered by backend; with `--workers 2` it lists the
 *   sessions of both workers;
 * - GET /api/events shows an admin drain (who, cause) and a health-check failure (cause);
 * - GET /api/series has points once a few samples were taken (waited for, never slept);
 * - GET /api/backends rows carry stateSince, lastCheck and p95Ms.
 */
import t from 'tap';
import { runAdminCli } from './helpers/admin-cli.js';
import { api, config, pinClients, start, waitState } from './helpers/admin-env.js';
import type { BrowserClient } from './helpers/browser.js';
import { waitFor } from './helpers/lb.js';
import { backendsFor, startSims } from './helpers/processes.js';

/** The client id inside a browser's affinity cookie (`<clientId>.<backend>.<mac>`). */
function clientId(b: BrowserClient): string {
  const value = b.cookie('SERVOYLB');
  if (value === undefined) throw new Error('the browser has no affinity cookie');
  return value.split('.')[0]!;
}

t.test('sessions, events, series and backend rows of one balancer', async (t) => {
  const sims = await startSims(t, ['servoy-a', 'servoy-b', 'servoy-c']);
  const lb = await start(t, config(backendsFor(sims), { affinity: { sessionIdle: '60s' } }));
  const pinned = await pinClients(t, lb.url, 1);
  // pinClients may make more browsers than it keeps (until every backend has one): count them all.
  let sessionCount = 0;
  // A second request confirms each session (the client came back with the cookie).
  for (const [, [b]] of pinned) t.equal((await b!.get('/api/whoami')).status, 200);

  await t.test('GET /api/sessions: shortened ids on the right backends, filter, limits', async (t) => {
    const all = await api(lb, 'GET', '/api/sessions');
    t.equal(all.status, 200);
    t.equal(all.json.instance, true, 'says it is this instance\'s list');
    sessionCount = all.json.total;
    t.ok(sessionCount >= 3, 'at least the three pinned browsers');
    t.equal(all.json.sessions.length, sessionCount, 'all of them listed (under the default limit)');
    for (const [backend, [b]] of pinned) {
      const id = clientId(b!);
      const rowOf = all.json.sessions.find((s: any) => s.client === `${id.slice(0, 6)}…`);
      t.ok(rowOf, `the session of the browser on ${backend} is listed by its shortened id`);
      t.equal(rowOf?.backend, backend);
      t.equal(rowOf?.requests, 2, 'its two requests');
      t.equal(rowOf?.websockets, 0);
      t.ok(rowOf?.ageMs >= rowOf?.idleMs, 'age >= idle');
      t.notOk(all.text.includes(id), 'the full client id is never in the answer');
    }
    const onB = await api(lb, 'GET', '/api/sessions?backend=servoy-b');
    const bRows = all.json.sessions.filter((s: any) => s.backend === 'servoy-b');
    t.equal(onB.json.total, bRows.length, 'the filter counts only servoy-b');
    t.same(onB.json.sessions.map((s: any) => s.client), bRows.map((s: any) => s.client), 'and lists only servoy-b, in the same order');
    const one = await api(lb, 'GET', '/api/sessions?limit=1');
    t.equal(one.json.sessions.length, 1);
    t.equal(one.json.total, sessionCount, 'total counts every session, not only those shown');
    t.equal((await api(lb, 'GET', '/api/sessions?backend=nope')).json.error.code, 'UNKNOWN_BACKEND');
    t.equal((await api(lb, 'GET', '/api/sessions?limit=0')).status, 400);
    t.equal((await api(lb, 'GET', '/api/sessions?limit=10001')).status, 400);
  });

  await t.test('servoy-lb sessions: a table headed "this instance", --backend, --json', async (t) => {
    const run = await runAdminCli(['sessions', '--admin', lb.adminUrl!]);
    t.equal(run.code, 0, run.stderr);
    t.match(run.stdout, new RegExp(`^${sessionCount} active sessions on this instance\n`));
    t.match(run.stdout, /ID\s+BACKEND\s+AGE\s+IDLE\s+REQUESTS\s+WS/);
    for (const [, [b]] of pinned) t.ok(run.stdout.includes(`${clientId(b!).slice(0, 6)}…`));
    const filtered = await runAdminCli(['sessions', '--admin', lb.adminUrl!, '--backend', 'servoy-c', '--json']);
    t.equal(filtered.code, 0, filtered.stderr);
    const cRows = JSON.parse(filtered.stdout).sessions as any[];
    t.ok(cRows.length >= 1 && cRows.every((s) => s.backend === 'servoy-c'), 'only servoy-c');
    const unknown = await runAdminCli(['sessions', '--admin', lb.adminUrl!, '--backend', 'nope']);
    t.equal(unknown.code, 2);
    t.match(unknown.stderr, /no backend "nope"/);
  });

  await t.test('events: an admin drain and a failed health check, with their causes', async (t) => {
    t.equal((await api(lb, 'POST', '/api/backends/servoy-a/drain')).status, 200);
    sims[2]!.setHealthy(false);
    await waitState(lb, 'servoy-c', 'down', 15_000);
    const events = (await api(lb, 'GET', '/api/events')).json.events as any[];
    t.ok(events.every((e, i) => i === 0 || e.time <= events[i - 1].time), 'newest first');
    const admin = events.find((e) => e.kind === 'admin' && e.backend === 'servoy-a');
    t.match(admin, { from: null, to: 'draining', who: '127.0.0.1', cause: /^admin drain by 127\.0\.0\.1$/ }, 'the drain, with who asked');
    t.match(events.find((e) => e.kind === 'state' && e.backend === 'servoy-a'), { from: 'up', to: 'draining', cause: /drain/ });
    t.match(events.find((e) => e.kind === 'state' && e.backend === 'servoy-c'), { from: 'up', to: 'down', cause: /^health check failed/ });
    t.equal((await api(lb, 'GET', '/api/events?limit=1')).json.events.length, 1);
    t.equal((await api(lb, 'GET', '/api/events?limit=x')).status, 400);

    const run = await runAdminCli(['events', '--admin', lb.adminUrl!]);
    t.equal(run.code, 0, run.stderr);
    t.match(run.stdout, /TIME\s+BACKEND\s+CHANGE\s+CAUSE/);
    t.match(run.stdout, /servoy-c\s+up -> down\s+health check failed/);
    t.match(run.stdout, /servoy-a\s+\? -> draining\s+admin drain by 127\.0\.0\.1/);
  });

  await t.test('backend rows: stateSince, the last health check, p95', async (t) => {
    const rows = (await api(lb, 'GET', '/api/backends')).json.backends as any[];
    const c = rows.find((r) => r.id === 'servoy-c');
    const b = rows.find((r) => r.id === 'servoy-b');
    t.ok(Date.parse(c.stateSince) >= Date.parse(b.stateSince), 'servoy-c entered its state (down) after servoy-b (up since start)');
    t.match(c.lastCheck, { ok: false, status: 500 });
    t.ok(!Number.isNaN(Date.parse(c.lastCheck.at)));
    t.match(b.lastCheck, { ok: true, status: 200 });
    t.ok(typeof b.p95Ms === 'number' && b.p95Ms > 0, 'servoy-b served requests: a recent p95');
  });

  await t.test('GET /api/series: points after a few samples', async (t) => {
    let series: any;
    await waitFor(async () => ((series = (await api(lb, 'GET', '/api/series')).json).points ?? 0) >= 2, 20_000, 'two samples of the series', 100);
    t.equal(series.step, 2);
    t.ok(!Number.isNaN(Date.parse(series.start)));
    t.same(Object.keys(series.backends).sort(), ['servoy-a', 'servoy-b', 'servoy-c']);
    for (const field of ['sessions', 'websockets', 'rps', 'eps']) t.equal(series.backends['servoy-b'][field].length, series.points, `${field} has one value per point`);
    t.equal(series.total.sessions.at(-1), sessionCount, 'the pool-wide sessions');
    t.equal((await api(lb, 'GET', '/api/series?seconds=901')).status, 400);
  });
});

t.test('--workers 2: the sessions of both workers are listed', async (t) => {
  const sims = await startSims(t, ['servoy-a', 'servoy-b']);
  const lb = await start(t, config(backendsFor(sims), { affinity: { sessionIdle: '60s' } }), { args: ['--workers', '2'], timeoutMs: 60_000 });
  // Keep-alive browsers stay on the worker that accepted their connection; new connections take turns.
  const pinned = await pinClients(t, lb.url, 3, ['servoy-a', 'servoy-b']);
  const ids = [...pinned.values()].flat().map(clientId);
  let list: any;
  await waitFor(async () => ((list = (await api(lb, 'GET', '/api/sessions')).json).total ?? 0) >= ids.length, 15_000, 'every session listed', 100);
  t.equal(list.instance, true);
  t.notOk(list.missingWorkers, 'every worker answered');
  for (const id of ids) t.ok(list.sessions.some((s: any) => s.client === `${id.slice(0, 6)}…`), 'a session is listed, whichever worker holds it');
  t.same(new Set(list.sessions.map((s: any) => s.worker)), new Set([1, 2]), 'sessions of both workers');
  const onA = (await api(lb, 'GET', '/api/sessions?backend=servoy-a')).json;
  t.ok(onA.sessions.length >= 3 && onA.sessions.every((s: any) => s.backend === 'servoy-a'), 'the filter applies in every worker');
});
