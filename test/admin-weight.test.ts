/**
 * A backend's weight set at run time (SPEC "Command line": `backends set ID --weight N`,
 * PATCH /api/backends/ID): the real CLI in front of simulated Servoy servers.
 * - the API checks its body and the id; the `servoy-lb backends set` command reaches it;
 * - the weight is persisted in the state file and survives a restart;
 * - a reload keeps a run-time weight until the config file says the same weight, which
 *   retires the record (as a run-time addition is retired once the file lists it);
 * - on a backend added at run time it changes the recorded addition.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { api, config, ROUTES, start } from './helpers/admin-env.js';
import { closedPort } from './helpers/lb.js';
import { backendsFor, startSims, type BalancerProcess } from './helpers/processes.js';

const bin = join(resolve(import.meta.dirname, '..'), 'bin', 'servoy-lb');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const env = { ...process.env, SERVOY_LB_ADMIN: undefined, SERVOY_LB_TOKEN: undefined, NODE_OPTIONS: undefined };
    execFile(process.execPath, [bin, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

async function weights(lb: BalancerProcess): Promise<Record<string, number>> {
  const rows = (await api(lb, 'GET', '/api/backends')).json.backends as { id: string; weight: number }[];
  return Object.fromEntries(rows.map((r) => [r.id, r.weight]));
}

t.test('backends set --weight: checked, persisted, kept across a restart and a reload until the file agrees', async (t) => {
  const [a, b, c, d] = await startSims(t, [...ROUTES, 'servoy-d']);
  const dir = t.testdir({});
  const stateFile = join(dir, 'servoy-lb.state.json');
  const cfg = config(backendsFor([a!, b!, c!]), { listen: { port: await closedPort() }, state: { file: stateFile } });
  const lb1 = await start(t, cfg);

  const set = await api(lb1, 'PATCH', '/api/backends/servoy-a', { body: { weight: 4 } });
  t.equal(set.status, 200, set.text);
  t.match(set.json.backend, { id: 'servoy-a', weight: 4, state: 'up' });

  const refused: { desc: string; path: string; body: unknown; status: number; code: string }[] = [
    { desc: 'weight 0', path: '/api/backends/servoy-a', body: { weight: 0 }, status: 400, code: 'INVALID_BODY' },
    { desc: 'fraction', path: '/api/backends/servoy-a', body: { weight: 1.5 }, status: 400, code: 'INVALID_BODY' },
    { desc: 'string', path: '/api/backends/servoy-a', body: { weight: '2' }, status: 400, code: 'INVALID_BODY' },
    { desc: 'another key', path: '/api/backends/servoy-a', body: { weight: 2, url: 'http://127.0.0.1:1' }, status: 400, code: 'INVALID_BODY' },
    { desc: 'no body', path: '/api/backends/servoy-a', body: undefined, status: 400, code: 'INVALID_BODY' },
    { desc: 'unknown backend', path: '/api/backends/ghost', body: { weight: 2 }, status: 404, code: 'UNKNOWN_BACKEND' },
  ];
  for (const r of refused) {
    const res = await api(lb1, 'PATCH', r.path, { body: r.body });
    t.same({ status: res.status, code: res.json?.error?.code }, { status: r.status, code: r.code }, r.desc);
  }

  // The real command, and a backend added at run time.
  const viaCli = await cli(['backends', 'set', 'servoy-b', '--weight', '2', '--admin', lb1.adminUrl!]);
  t.same(viaCli, { code: 0, stdout: 'servoy-b has weight 2 (state up)\n', stderr: '' }, 'servoy-lb backends set');
  t.equal((await api(lb1, 'POST', '/api/backends', { body: { id: 'servoy-d', url: d!.url } })).status, 201);
  t.equal((await api(lb1, 'PATCH', '/api/backends/servoy-d', { body: { weight: 5 } })).status, 200);
  t.same(await weights(lb1), { 'servoy-a': 4, 'servoy-b': 2, 'servoy-c': 1, 'servoy-d': 5 });

  const state = JSON.parse(await readFile(stateFile, 'utf8'));
  t.same(state.backends.weights, { 'servoy-a': 4, 'servoy-b': 2 }, 'config-file backends: weight records');
  t.match(state.backends.added, [{ id: 'servoy-d', weight: 5 }], 'a run-time backend: its recorded addition');

  // Restart with the same config and state file.
  t.equal(await lb1.stop('SIGTERM'), 0, 'stopped cleanly');
  const lb2 = await start(t, cfg);
  t.same(await weights(lb2), { 'servoy-a': 4, 'servoy-b': 2, 'servoy-c': 1, 'servoy-d': 5 }, 'every weight survives the restart');

  // Reload: the file now says servoy-a has weight 4 (record retired) and servoy-b 3 (run time still wins).
  const file = JSON.parse(await readFile(lb2.configFile, 'utf8'));
  file.backends = file.backends.map((row: { id: string }) => (row.id === 'servoy-a' ? { ...row, weight: 4 } : row.id === 'servoy-b' ? { ...row, weight: 3 } : row));
  await writeFile(lb2.configFile, JSON.stringify(file));
  const reload = await api(lb2, 'POST', '/api/reload');
  t.equal(reload.status, 200, reload.text);
  t.same(await weights(lb2), { 'servoy-a': 4, 'servoy-b': 2, 'servoy-c': 1, 'servoy-d': 5 }, 'a reload keeps run-time weights');
  const after = JSON.parse(await readFile(stateFile, 'utf8'));
  t.same(after.backends.weights, { 'servoy-b': 2 }, 'the file says servoy-a weight 4: its record is dropped');

  // Setting a config-file backend back to the file's weight drops the record at once.
  t.equal((await api(lb2, 'PATCH', '/api/backends/servoy-b', { body: { weight: 3 } })).status, 200);
  t.same(JSON.parse(await readFile(stateFile, 'utf8')).backends.weights, {}, 'weight equal to the file: no record');
});
