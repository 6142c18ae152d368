/**
 * Run-time pool changes through the admin API and their persistence (SPEC "Admin API",
 * "Backend states", issue "Admin plane" point 11): the real CLI in front of simulated
 * Servoy servers.
 * - POST /api/backends adds a backend that new sessions may use while existing sessions
 *   stay where they are; DELETE needs `drained` (409 NOT_DRAINED otherwise) or ?force=1;
 *   unknown ids are 404; a removed backend leaves /metrics;
 * - admin states and added/removed backends survive a restart (SIGTERM, start again with
 *   the same config and state file), and the state file is valid JSON; right after the
 *   restart a draining backend is not called drained before sessionIdle (its sessions
 *   are still out there, unseen by the new process).
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent } from 'undici';
import { api, browser, config, pinClients, row, ROUTES, start, waitState } from './helpers/admin-env.js';
import { BrowserClient } from './helpers/browser.js';
import { closedPort, waitFor } from './helpers/lb.js';
import { backendsFor, startSims, type BalancerProcess } from './helpers/processes.js';

// ---- helpers only this file uses ---------------------------------------------------------

async function ids(lb: BalancerProcess): Promise<string[]> {
  return ((await api(lb, 'GET', '/api/backends')).json.backends as any[]).map((b) => b.id);
}

// ---- 6. run-time add / remove ----------------------------------------------------------------

t.test('runtime add and remove: new sessions may use an added backend, pinned ones never move; remove needs drained or force', async (t) => {
  const [a, b, c, d] = await startSims(t, [...ROUTES, 'servoy-d']);
  const lb = await start(t, config(backendsFor([a!, b!, c!])));

  // 100 pinned clients, on all three servers.
  const agent = new Agent({ connections: 32, keepAliveTimeout: 2000 });
  t.teardown(() => agent.close());
  const pinned: { b: BrowserClient; server: string; session: string }[] = [];
  for (let batch = 0; batch < 10; batch++) {
    await Promise.all(Array.from({ length: 10 }, async () => {
      const client = new BrowserClient(lb.url, { dispatcher: agent });
      const res = await client.get('/api/whoami');
      if (res.status !== 200) throw new Error(`pinning: ${res.status}`);
      pinned.push({ b: client, server: res.json().server, session: res.json().session });
    }));
  }
  t.same([...new Set(pinned.map((p) => p.server))].sort(), ROUTES, '100 clients on all three servers');

  const added = await api(lb, 'POST', '/api/backends', { body: { id: 'servoy-d', url: d!.url, weight: 2 } });
  t.equal(added.status, 201, added.text);
  t.match(added.json.backend, { id: 'servoy-d', url: d!.url, weight: 2, state: 'up', admin: 'ready', source: 'runtime', sessions: 0 });
  t.same(await ids(lb), [...ROUTES, 'servoy-d']);

  const dup = await api(lb, 'POST', '/api/backends', { body: { id: 'servoy-d', url: d!.url } });
  t.equal(dup.status, 409);
  t.equal(dup.json.error.code, 'BACKEND_EXISTS');
  const bad = await api(lb, 'POST', '/api/backends', { body: { id: 'servoy-e', url: 'ftp://127.0.0.1:1' } });
  t.equal(bad.status, 400);
  t.equal(bad.json.error.code, 'INVALID_BODY');
  t.match(bad.json.error.details, [/^url: /]);

  // Existing sessions do not move.
  let moved = 0;
  let lost = 0;
  for (let batch = 0; batch < 10; batch++) {
    await Promise.all(pinned.slice(batch * 10, batch * 10 + 10).map(async (p) => {
      const res = await p.b.get('/api/whoami');
      if (res.status !== 200 || res.json().server !== p.server || res.json().session !== p.session) moved++;
      if (res.headers['x-session-lost'] !== undefined) lost++;
    }));
  }
  t.equal(moved, 0, 'none of the 100 pinned clients changed server or session');
  t.equal(lost, 0, 'no session lost');

  // New sessions can land on the added backend.
  const onD: BrowserClient[] = [];
  for (let i = 0; i < 30 && onD.length < 2; i++) {
    const nb = browser(t, lb.url);
    const res = await nb.get('/api/whoami');
    t.equal(res.status, 200);
    if (res.json().server === 'servoy-d') onD.push(nb);
  }
  t.equal(onD.length, 2, 'new sessions land on the added backend');
  t.ok((await row(lb, 'servoy-d')).sessions >= 1);

  // Remove: not drained -> 409; drain, wait for drained, remove.
  const early = await api(lb, 'DELETE', '/api/backends/servoy-d');
  t.equal(early.status, 409);
  t.equal(early.json.error.code, 'NOT_DRAINED');
  t.match(early.json.error.message, /servoy-d.*up/);
  t.ok((await ids(lb)).includes('servoy-d'), 'still there');
  t.equal((await api(lb, 'POST', '/api/backends/servoy-d/drain')).json.backend.state, 'draining');
  const stillDraining = await api(lb, 'DELETE', '/api/backends/servoy-d');
  t.equal(stillDraining.json.error?.code, 'NOT_DRAINED', 'draining is not drained');
  await waitState(lb, 'servoy-d', 'drained', 15_000);
  const removed = await api(lb, 'DELETE', '/api/backends/servoy-d');
  t.equal(removed.status, 200, removed.text);
  t.same(removed.json, { removed: 'servoy-d' });
  t.same(await ids(lb), ROUTES, 'gone');
  for (const nb of onD) {
    const res = await nb.get('/api/whoami');
    t.equal(res.status, 200, 'a client of the removed backend is placed anew without error');
    t.not(res.json().server, 'servoy-d');
  }

  // force=1 removes a backend that is up and holds sessions.
  const forced = await api(lb, 'DELETE', '/api/backends/servoy-c?force=1');
  t.equal(forced.status, 200, forced.text);
  t.same(await ids(lb), ['servoy-a', 'servoy-b']);
  const onC = pinned.filter((p) => p.server === 'servoy-c').slice(0, 5);
  for (const p of onC) {
    const res = await p.b.get('/api/whoami');
    t.equal(res.status, 200, 'a client of the force-removed backend is placed anew without error');
    t.not(res.json().server, 'servoy-c');
  }
  const cRequests = c!.stats().requests;
  for (let i = 0; i < 5; i++) await browser(t, lb.url).get('/');
  t.equal(c!.stats().requests, cRequests, 'the removed backend gets no traffic');

  // A removed backend disappears from /metrics.
  const metrics = await api(lb, 'GET', '/metrics');
  t.equal(metrics.status, 200);
  t.notMatch(metrics.text, /backend="servoy-d"/, 'no series of the removed servoy-d');
  t.notMatch(metrics.text, /backend="servoy-c"/, 'no series of the removed servoy-c');
  t.match(metrics.text, /backend="servoy-a"/);

  const unknown = await api(lb, 'DELETE', '/api/backends/nope');
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'UNKNOWN_BACKEND');
  const unknownForce = await api(lb, 'DELETE', '/api/backends/nope?force=1');
  t.equal(unknownForce.status, 404);
  // Removing the last backend is refused even with force.
  await api(lb, 'DELETE', '/api/backends/servoy-b?force=1');
  const last = await api(lb, 'DELETE', '/api/backends/servoy-a?force=1');
  t.equal(last.status, 409);
  t.equal(last.json.error.code, 'LAST_BACKEND');
});

// ---- 8. persistence ------------------------------------------------------------------------

t.test('admin states and run-time pool changes survive a restart with the same config and state file', async (t) => {
  const [a, b, c, d] = await startSims(t, [...ROUTES, 'servoy-d']);
  const dir = t.testdir({});
  const stateFile = join(dir, 'servoy-lb.state.json');
  // sessionIdle long: a drained verdict can only come from a real absence of sessions.
  // The same listen port both times, as an administrator's config has: the browsers keep their URL.
  // closedPort: below the ephemeral range, so no parallel listen(0) takes it between the two starts.
  const cfg = config(backendsFor([a!, b!, c!]), { listen: { port: await closedPort() }, state: { file: stateFile }, affinity: { sessionIdle: '30s' } });
  const lb1 = await start(t, cfg);
  const pinned = await pinClients(t, lb1.url, 1);
  const onA = pinned.get('servoy-a')![0]!;
  const sessionA = onA.cookie('JSESSIONID');

  const drained = await api(lb1, 'POST', '/api/backends/servoy-a/drain');
  t.equal(drained.json.backend.state, 'draining');
  const since = drained.json.backend.drainingSince;
  t.equal((await api(lb1, 'POST', '/api/backends', { body: { id: 'servoy-d', url: d!.url, weight: 3 } })).status, 201);
  t.equal((await api(lb1, 'POST', '/api/backends/servoy-b/disable')).json.backend.state, 'disabled');
  t.equal((await api(lb1, 'DELETE', '/api/backends/servoy-c?force=1')).status, 200);

  const state = JSON.parse(await readFile(stateFile, 'utf8'));
  t.equal(state.version, 1, 'the state file is valid JSON');
  t.match(state.backends, {
    added: [{ id: 'servoy-d', url: d!.url, weight: 3 }],
    removed: ['servoy-c'],
    admin: { 'servoy-a': { admin: 'draining', since: Date.parse(since) }, 'servoy-b': { admin: 'disabled' } },
  });

  t.equal(await lb1.stop('SIGTERM'), 0, 'stopped cleanly');
  const lb2 = await start(t, cfg);
  const restartedAt = Date.now();
  const rows = (await api(lb2, 'GET', '/api/backends')).json.backends as any[];
  t.same(rows.map((r) => r.id), ['servoy-a', 'servoy-b', 'servoy-d'], 'servoy-c still removed, servoy-d still present');
  const byId = new Map(rows.map((r) => [r.id, r]));
  t.match(byId.get('servoy-a'), { admin: 'draining', state: 'draining', drainingSince: since }, 'servoy-a still draining, same clock');
  t.match(byId.get('servoy-b'), { admin: 'disabled', state: 'disabled' });
  t.match(byId.get('servoy-d'), { url: d!.url, weight: 3, source: 'runtime', state: 'up' });

  // The restarted balancer has not seen servoy-a's sessions yet: it must not call it drained
  // before it could have (sessionIdle), or `drain --wait` + remove would drop live users.
  // The time window is the scenario (two drain-monitor rounds). Safe on a busy machine: a
  // longer wait only gives the monitor more rounds to get it wrong; sessionIdle is 30 s.
  await waitFor(() => Date.now() - restartedAt > 2200, 10_000, 'two drain-monitor rounds', 100);
  t.equal((await row(lb2, 'servoy-a')).state, 'draining', 'not drained right after a restart');

  const res = await onA.get('/api/whoami');
  t.equal(res.status, 200);
  t.equal(res.json().server, 'servoy-a', 'a session of the draining backend still reaches it after the restart');
  t.equal(res.json().session, sessionA, 'same session');
  const state2 = JSON.parse(await readFile(stateFile, 'utf8'));
  t.same(state2.backends, state.backends, 'the records are unchanged by the restart');
  t.equal(state2.cookieSecret, state.cookieSecret, 'the generated cookie secret is kept');
});
