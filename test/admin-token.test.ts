/**
 * Admin API authentication (SPEC "Admin API", issue "Admin plane" point 11): with
 * `admin.token` every call but /healthz needs `Authorization: Bearer TOKEN` (401 JSON
 * otherwise, and nothing changes); without a token the admin API may only listen on
 * loopback, and `start` refuses a non-loopback admin.host without one: exit 1, one line.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { api, browser, config, ROUTES, seeLog, start } from './helpers/admin-env.js';
import { backendsFor, repoRoot, startSims } from './helpers/processes.js';

const TOKEN = 'admin-token-0123456789-abcdef';

// ---- 7. token ----------------------------------------------------------------------------

t.test('with admin.token: no or a wrong token is 401 JSON and changes nothing, the right one works, /healthz is open', async (t) => {
  const sims = await startSims(t, ROUTES);
  // The token comes from the environment, as SPEC's example config has it.
  const lb = await start(t, config(backendsFor(sims), { admin: { token: '${SERVOY_LB_TOKEN}' } }), { env: { SERVOY_LB_TOKEN: TOKEN } });

  const calls: [string, string][] = [
    ['GET', '/api/backends'],
    ['GET', '/api/route?key=127.0.0.1'],
    ['GET', '/metrics'],
    ['POST', '/api/backends/servoy-a/drain'],
    ['POST', '/api/backends/servoy-a/disable'],
    ['DELETE', '/api/backends/servoy-a?force=1'],
    ['POST', '/api/reload'],
  ];
  for (const [method, path] of calls) {
    for (const token of [undefined, 'wrong-token', `${TOKEN}x`, TOKEN.slice(0, -1), '']) {
      const res = await api(lb, method, path, token === undefined ? {} : { token });
      const what = `${method} ${path} with ${token === undefined ? 'no token' : `token ${JSON.stringify(token)}`}`;
      t.equal(res.status, 401, `${what}: 401`);
      t.match(res.headers['content-type'], /^application\/json/, `${what}: JSON`);
      t.equal(res.json?.error?.code, 'UNAUTHORIZED', `${what}: code UNAUTHORIZED`);
      t.type(res.json?.error?.message, 'string');
      t.match(res.headers['www-authenticate'], /^Bearer/);
    }
  }
  const addRefused = await api(lb, 'POST', '/api/backends', { body: { id: 'servoy-x', url: 'http://127.0.0.1:9' } });
  t.equal(addRefused.status, 401, 'adding without a token: 401');

  // Nothing changed.
  const ok = await api(lb, 'GET', '/api/backends', { token: TOKEN });
  t.equal(ok.status, 200, 'the right token: 200');
  t.same((ok.json.backends as any[]).map((b) => [b.id, b.state]), ROUTES.map((id) => [id, 'up']), 'the refused calls changed nothing');

  // The right token works for changes too.
  const drain = await api(lb, 'POST', '/api/backends/servoy-a/drain', { token: TOKEN });
  t.equal(drain.status, 200);
  t.equal(drain.json.backend.admin, 'draining', 'drained (it holds no session) or draining');
  t.equal((await api(lb, 'POST', '/api/backends/servoy-a/undrain', { token: TOKEN })).json.backend.state, 'up');
  const metrics = await api(lb, 'GET', '/metrics', { token: TOKEN });
  t.equal(metrics.status, 200);
  t.match(metrics.text, /servoylb_backend_up\{backend="servoy-a"\} 1/);

  const health = await api(lb, 'GET', '/healthz');
  t.equal(health.status, 200, '/healthz needs no token');
  t.match(health.json, { ok: true, state: { kind: 'file', ok: true } });
  t.equal((await api(lb, 'GET', '/healthz', { token: 'wrong' })).status, 200, '/healthz ignores a wrong token');

  // The proxy itself never asks for the admin token.
  const client = browser(t, lb.url);
  t.equal((await client.get('/')).status, 200);
  await seeLog(t, lb, /admin API: wrong token/, 'wrong tokens are logged');
  t.notOk(lb.logs().some((l) => l.includes(TOKEN)), 'the token itself is never logged');
});

t.test('without admin.token: loopback only; `start` with admin.host 0.0.0.0 exits 1 with one clear line', async (t) => {
  const sims = await startSims(t, ROUTES);
  // Loopback without a token: the API answers without one.
  const lb = await start(t, config(backendsFor(sims)));
  t.equal((await api(lb, 'GET', '/api/backends')).status, 200, 'loopback, no token configured: open');

  const dir = t.testdir({});
  const file = join(dir, 'open-admin.json');
  await writeFile(file, JSON.stringify(config(backendsFor(sims), { admin: { host: '0.0.0.0', port: 0 } })));
  const proc = spawn(process.execPath, [join(repoRoot, 'bin', 'servoy-lb'), 'start', '-c', file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  const kill = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  t.teardown(() => {
    clearTimeout(kill);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const code = await exited;
  t.equal(code, 1, 'exit 1');
  const lines = stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `one line: ${JSON.stringify(stderr)}`);
  t.match(lines[0], /^servoy-lb: /);
  t.match(lines[0], /admin\.token/, 'names the missing key');
  t.match(lines[0], /0\.0\.0\.0/, 'names the address');
  t.notMatch(stderr + stdout, /\n\s+at |node:internal/, 'no stack trace');
  t.notMatch(stdout, /listening/, 'never listened');
});
