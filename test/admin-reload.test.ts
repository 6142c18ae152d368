/**
 * Config reload through the admin API and SIGHUP (SPEC "Command line" reload, "Admin API",
 * issue "Admin plane" point 11): the real CLI in front of simulated Servoy servers.
 * - an open WebSocket through the balancer stays open and working across POST /api/reload
 *   with a changed config file (a weight changed, a backend added) and across SIGHUP;
 * - the reload answer lists what changed;
 * - an invalid file: 422 INVALID_CONFIG with the problems, and the running config (and
 *   traffic) is kept; the same on SIGHUP, where the refusal is logged.
 */
import t, { type Test } from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { api, browser, config, row, ROUTES, start } from './helpers/admin-env.js';
import type { BrowserSocket } from './helpers/browser.js';
import { backendsFor, startSims } from './helpers/processes.js';

const WS_PATH = '/websocket/1/main/1';

// ---- helpers only this file uses ---------------------------------------------------------

/** The WebSocket still echoes, from the same server. */
async function echoes(t: Test, ws: BrowserSocket, server: string, text: string): Promise<void> {
  t.equal(ws.ws.readyState, ws.ws.OPEN, `WebSocket open (${text})`);
  ws.send(text);
  t.same(await ws.next(), { server, echo: text }, `WebSocket echoes (${text})`);
}

// ---- 9. reload -----------------------------------------------------------------------------

t.test('reload: an open WebSocket survives POST /api/reload and SIGHUP; the answer lists the changes; an invalid file changes nothing', async (t) => {
  const [a, b, c, d] = await startSims(t, [...ROUTES, 'servoy-d']);
  const lb = await start(t, config(backendsFor([a!, b!, c!])));
  const client = browser(t, lb.url);
  const first = await client.get('/api/whoami');
  const server = first.json().server as string;
  const session = first.json().session as string;
  const ws = await client.openWebSocket(WS_PATH);
  t.same(await ws.next(), { server, hello: true, session, path: WS_PATH });
  const file = lb.configFile;
  const original = JSON.parse(await readFile(file, 'utf8'));

  // 1. POST /api/reload: servoy-b weight 3, servoy-d added, a live setting changed.
  const changed = structuredClone(original);
  changed.backends[1].weight = 3;
  changed.backends.push({ id: 'servoy-d', url: d!.url });
  changed.affinity.balanceFactor = 1.5;
  await writeFile(file, JSON.stringify(changed, null, 2));
  const reload = await api(lb, 'POST', '/api/reload');
  t.equal(reload.status, 200, reload.text);
  t.same(reload.json, { added: ['servoy-d'], removed: [], updated: ['servoy-b'], settings: ['affinity'], needsRestart: [] }, 'the answer lists what changed');
  const rows = (await api(lb, 'GET', '/api/backends')).json.backends as any[];
  t.same(rows.map((r) => r.id), [...ROUTES, 'servoy-d']);
  t.match(rows.find((r) => r.id === 'servoy-b'), { weight: 3, state: 'up' });
  t.match(rows.find((r) => r.id === 'servoy-d'), { source: 'config', state: 'up' });
  await echoes(t, ws, server, 'after reload');
  const again = await client.get('/api/whoami');
  t.same([again.status, again.json().server, again.json().session], [200, server, session], 'HTTP: same server, same session');
  t.equal((await row(lb, server)).websockets, 1, 'the WebSocket is still counted');

  // Reloading an unchanged file changes nothing.
  const same = await api(lb, 'POST', '/api/reload');
  t.same(same.json, { added: [], removed: [], updated: [], settings: [], needsRestart: [] }, 'nothing changed');

  // 2. SIGHUP: servoy-d gone again, weight and balanceFactor back, health-check and timeout settings changed.
  const hup = structuredClone(original);
  hup.healthCheck.interval = '300ms';
  hup.timeouts = { connect: '4s' }; // closes the idle upstream HTTP pools: tunnels are not theirs
  await writeFile(file, JSON.stringify(hup, null, 2));
  lb.proc.kill('SIGHUP');
  const line = await lb.waitForLog((l) => l.includes('config reloaded') && l.includes('"removed":["servoy-d"]'), 5000);
  t.match(JSON.parse(line), { added: [], removed: ['servoy-d'], updated: ['servoy-b'], settings: ['affinity', 'healthCheck', 'timeouts'], needsRestart: [] }, 'SIGHUP reloaded and logged the changes');
  const afterHup = (await api(lb, 'GET', '/api/backends')).json.backends as any[];
  t.same(afterHup.map((r) => r.id), ROUTES);
  t.equal(afterHup.find((r) => r.id === 'servoy-b').weight, 1);
  await echoes(t, ws, server, 'after SIGHUP');
  const afterHupHttp = await client.get('/api/whoami');
  t.same([afterHupHttp.status, afterHupHttp.json().server, afterHupHttp.json().session], [200, server, session], 'HTTP after SIGHUP: same server, same session');

  // 3. An invalid file: 422 with the problems; the running config and traffic are kept.
  const invalid = structuredClone(hup);
  invalid.backends[0].weight = 0;
  invalid.bogus = true;
  await writeFile(file, JSON.stringify(invalid, null, 2));
  const refused = await api(lb, 'POST', '/api/reload');
  t.equal(refused.status, 422);
  t.equal(refused.json.error.code, 'INVALID_CONFIG');
  t.match(refused.json.error.message, /running config is kept/);
  t.ok(Array.isArray(refused.json.error.details), 'the problems are listed');
  t.ok(refused.json.error.details.some((p: string) => p.startsWith('backends[0].weight: ')), 'names the bad weight');
  t.ok(refused.json.error.details.some((p: string) => /bogus/.test(p)), 'names the unknown key');
  t.same(((await api(lb, 'GET', '/api/backends')).json.backends as any[]).map((r) => [r.id, r.weight]), ROUTES.map((id) => [id, 1]), 'running pool unchanged');
  await echoes(t, ws, server, 'after a refused reload');
  const stillServing = await browser(t, lb.url).get('/');
  t.equal(stillServing.status, 200, 'new clients still served');

  await writeFile(file, '{ "backends": [ ');
  const broken = await api(lb, 'POST', '/api/reload');
  t.equal(broken.status, 422);
  t.equal(broken.json.error.code, 'INVALID_CONFIG');
  t.ok(broken.json.error.details.length >= 1, 'broken JSON: the problem is listed');

  // The same on SIGHUP: logged, nothing changes, the process keeps running.
  lb.proc.kill('SIGHUP');
  await lb.waitForLog(/reload refused/, 5000);
  t.equal(lb.proc.exitCode, null, 'still running');
  await echoes(t, ws, server, 'after a refused SIGHUP');
  t.same(((await api(lb, 'GET', '/api/backends')).json.backends as any[]).map((r) => r.id), ROUTES);

  // A reload never undoes an administrator's run-time changes.
  t.equal((await api(lb, 'POST', '/api/backends', { body: { id: 'servoy-d', url: d!.url } })).status, 201);
  const drainTarget = ROUTES.find((r) => r !== server)!;
  t.equal((await api(lb, 'POST', `/api/backends/${drainTarget}/drain`)).status, 200);
  await writeFile(file, JSON.stringify(original, null, 2));
  const kept = await api(lb, 'POST', '/api/reload');
  t.equal(kept.status, 200, kept.text);
  t.same(kept.json.removed, [], 'the run-time backend is not removed by a file that does not list it');
  const keptRows = new Map(((await api(lb, 'GET', '/api/backends')).json.backends as any[]).map((r) => [r.id, r]));
  t.match(keptRows.get('servoy-d'), { source: 'runtime', state: 'up' });
  t.equal(keptRows.get(drainTarget).admin, 'draining', 'the drain survives the reload');
  await echoes(t, ws, server, 'at the end');

  await ws.close();
  t.equal([a, b, c, d].reduce((n, s) => n + s!.stats().outOfSync + s!.stats().sessionsLost, 0), 0, 'no session lost');
});
