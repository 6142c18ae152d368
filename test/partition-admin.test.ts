/**
 * Administering partitions of a running balancer (SPEC "Routing rules" rule 1, admin API
 * `GET /api/partitions` · `PUT /api/partitions/KEY`, commands `servoy-lb partitions`,
 * `partitions move`, `route`; issue "Partition mode", point 8), through the real CLI in front
 * of three simulated Servoy servers:
 * - a move without drain sends every request of the key to the new server at once; with
 *   drain, a client with a live session on the old server keeps reaching it while new
 *   clients go to the new one;
 * - pins (affinity.partitions) always win, even over an existing durable assignment, and a
 *   pinned key cannot be moved through the API (409 PARTITION_PINNED);
 * - `servoy-lb partitions --json`, `partitions move`, `route --key` against the running
 *   balancer, and paging of GET /api/partitions.
 * Needs the build (`npx tsc -p .`): the CLI runs from dist/.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { lbConfig, startBalancer } from './helpers/lb.js';
import { repoRoot, startSims, type BalancerProcess, type CliRun } from './helpers/processes.js';
import { runAdminCli } from './helpers/admin-cli.js';
import { serverOf, tenantClient } from './helpers/partition.js';
import { api as adminApi, partitionRows as partitions } from './helpers/admin-env.js';

/** The admin API call of test/helpers/admin-env.ts, with the body as 4th argument. */
const api = (lb: BalancerProcess, method: string, path: string, body?: unknown) => adminApi(lb, method, path, { body });

const ROUTES = ['servoy-a', 'servoy-b', 'servoy-c'];
const BIN = join(repoRoot, 'bin', 'servoy-lb');

// ---- helpers only this file uses (shared ones: test/helpers/admin-env.ts) ------------

/** The server a tenant's first request went to (a fresh browser). */
async function visit(t: Test, lb: BalancerProcess, tenant: string): Promise<string> {
  const res = await tenantClient(t, lb.url, tenant).get('/api/whoami');
  if (res.status !== 200) throw new Error(`${tenant}: ${res.status} ${res.body.slice(0, 200)}`);
  return serverOf(res)!;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `bin/servoy-lb` (no admin variables or coverage hook from this process). */
function cli(args: string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['SERVOY_LB_ADMIN', 'SERVOY_LB_TOKEN', 'NODE_OPTIONS']) delete env[name];
  return new Promise((done) => {
    execFile(process.execPath, [BIN, ...args], { cwd: repoRoot, env, timeout: 30_000 }, (err, stdout, stderr) => {
      done({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The same admin commands run in this process, for the extra cases. */
const cliHere = (args: string[]): Promise<CliRun> => runAdminCli(args);

const other = (route: string, offset = 1): string => ROUTES[(ROUTES.indexOf(route) + offset) % ROUTES.length]!;

// ---- tests -------------------------------------------------------------------------------

t.test('partition administration on a running balancer', async (t) => {
  const sims = await startSims(t, ROUTES);
  const lb = await startBalancer(
    t,
    await lbConfig(sims, {
      affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' }, partitions: { acme: 'servoy-a' } },
      // timeout 1s: on a loaded machine short probes of the in-process simulators fail at random.
      healthCheck: { path: '/', interval: '1s', timeout: '1s', rise: 1, fall: 3 },
      log: { access: false },
    }),
  );

  await t.test('move without drain: every request of the key goes to the new server at once', async (t) => {
    const old = await visit(t, lb, 'move-now');
    const target = other(old);
    // Two browsers with sessions on the old server.
    const browsers = [tenantClient(t, lb.url, 'move-now'), tenantClient(t, lb.url, 'move-now')];
    for (const b of browsers) t.equal(serverOf(await b.get('/api/whoami')), old, `a browser on ${old}`);

    const moved = await api(lb, 'PUT', '/api/partitions/move-now', { backend: target });
    t.equal(moved.status, 200, `PUT answered 200 (${moved.text.slice(0, 200)})`);
    t.match(moved.json?.partition, { key: 'move-now', backend: target, pinned: false, previous: null }, 'the answer shows the new assignment');

    browsers.push(tenantClient(t, lb.url, 'move-now'));
    for (const [i, b] of browsers.entries()) {
      for (let r = 0; r < 3; r++) t.equal(serverOf(await b.get('/api/whoami')), target, `browser ${i} request ${r}: ${target}`);
    }
    const ws = await browsers[0]!.openWebSocket('/websocket/1/main/0');
    t.equal((await ws.next(10_000)).server, target, 'its WebSocket goes to the new server too');
    await ws.close();
    t.equal((await partitions(lb)).get('move-now')?.backend, target, 'listed on the new server');
  });

  await t.test('move with drain: a live session finishes on the old server, new clients go to the new one', async (t) => {
    const oldServer = await visit(t, lb, 'move-drain');
    const target = other(oldServer);
    const live = tenantClient(t, lb.url, 'move-drain');
    const first = await live.get('/api/whoami');
    t.equal(serverOf(first), oldServer, `a live browser on ${oldServer}`);
    t.ok(live.cookie('SERVOYLB'), 'it holds the balancer\'s affinity cookie');
    const session = first.json().session;

    const moved = await api(lb, 'PUT', '/api/partitions/move-drain', { backend: target, drain: true });
    t.equal(moved.status, 200, `PUT with drain answered 200 (${moved.text.slice(0, 200)})`);
    t.match(moved.json?.partition, { key: 'move-drain', backend: target, previous: oldServer }, 'the answer names the old server as draining');

    for (let r = 0; r < 3; r++) {
      const res = await live.get('/api/whoami');
      t.equal(serverOf(res), oldServer, `live browser request ${r}: still ${oldServer}`);
      t.equal(res.json().session, session, 'in its session');
      t.equal(res.headers['x-session-lost'], undefined, 'no session lost');
    }
    const ws = await live.openWebSocket('/websocket/1/main/0');
    const hello = await ws.next(10_000);
    t.same([hello.server, hello.session], [oldServer, session], 'its WebSocket reaches the old server, in its session');
    await ws.close();

    for (let i = 0; i < 3; i++) {
      const fresh = tenantClient(t, lb.url, 'move-drain');
      for (let r = 0; r < 2; r++) t.equal(serverOf(await fresh.get('/api/whoami')), target, `new browser ${i} request ${r}: ${target}`);
    }
    t.equal(serverOf(await live.get('/api/whoami')), oldServer, 'the live browser is still on the old server');
    const row = (await partitions(lb)).get('move-drain');
    t.match(row, { backend: target, previous: oldServer }, 'listed with the old server draining');

    // Refusals.
    const unknown = await api(lb, 'PUT', '/api/partitions/move-drain', { backend: 'servoy-z' });
    t.equal(unknown.status, 404, 'moving to an unknown backend: 404');
    t.equal(unknown.json?.error?.code ?? unknown.json?.code, 'UNKNOWN_BACKEND', 'UNKNOWN_BACKEND');
    t.equal((await api(lb, 'PUT', '/api/partitions/move-drain', {})).status, 400, 'no backend in the body: 400');
    t.equal((await partitions(lb)).get('move-drain')?.backend, target, 'refused moves change nothing');
  });

  await t.test('pins always win, and a pinned key cannot be moved through the API', async (t) => {
    for (let i = 0; i < 4; i++) t.equal(await visit(t, lb, 'acme'), 'servoy-a', `acme (pinned to servoy-a), browser ${i}`);
    const listed = (await partitions(lb)).get('acme');
    t.match(listed, { backend: 'servoy-a', pinned: true }, 'acme is listed as pinned');
    // LAST SEEN of `partitions list`: a pinned key's requests count like anyone's.
    t.ok(listed?.lastSeen !== null && Date.parse(listed?.lastSeen) > 0, `acme shows when it was last seen (${listed?.lastSeen})`);
    t.ok(Date.parse((await partitions(lb)).get('move-drain')?.lastSeen) > 0, 'as an assigned key does');

    // A key with a durable assignment, then pinned elsewhere in the config file.
    const assigned = await visit(t, lb, 'beta');
    const pinTo = other(assigned);
    const config = JSON.parse(await readFile(lb.configFile, 'utf8'));
    config.affinity.partitions = { acme: 'servoy-a', beta: pinTo };
    await writeFile(lb.configFile, JSON.stringify(config, null, 2));
    t.equal((await api(lb, 'POST', '/api/reload')).status, 200, 'reload with beta pinned');
    for (let i = 0; i < 3; i++) t.equal(await visit(t, lb, 'beta'), pinTo, `beta goes to its pin ${pinTo}, not to its assignment ${assigned}`);
    const browser = tenantClient(t, lb.url, 'beta');
    for (let r = 0; r < 3; r++) t.equal(serverOf(await browser.get('/api/whoami')), pinTo, `a browser of beta, request ${r}: ${pinTo}`);
    const rows = await partitions(lb);
    t.match(rows.get('beta'), { backend: pinTo, pinned: true }, 'beta is listed once, as pinned');

    for (const key of ['acme', 'beta']) {
      const refused = await api(lb, 'PUT', `/api/partitions/${key}`, { backend: other(rows.get(key).backend) });
      t.equal(refused.status, 409, `moving pinned ${key}: 409`);
      t.equal(refused.json?.error?.code ?? refused.json?.code, 'PARTITION_PINNED', `moving pinned ${key}: PARTITION_PINNED`);
      t.match(refused.text, /pinned in the config file/, 'saying where the pin is');
    }
    t.equal(await visit(t, lb, 'acme'), 'servoy-a', 'acme still on its pin');

    // The pin shadowed the assignment; it did not replace it.
    config.affinity.partitions = { acme: 'servoy-a' };
    await writeFile(lb.configFile, JSON.stringify(config, null, 2));
    t.equal((await api(lb, 'POST', '/api/reload')).status, 200, 'reload without the beta pin');
    t.equal(await visit(t, lb, 'beta'), assigned, `unpinned, beta is back on its durable assignment ${assigned}`);
    t.match((await partitions(lb)).get('beta'), { backend: assigned, pinned: false }, 'and listed so');
  });

  await t.test('CLI: partitions --json, partitions move, route --key; API paging', async (t) => {
    const admin = ['--admin', lb.adminUrl!];
    const tenants = Array.from({ length: 24 }, (_, i) => `cli-${String(i).padStart(2, '0')}`);
    const home = new Map<string, string>();
    for (const tenant of tenants) home.set(tenant, await visit(t, lb, tenant));

    // partitions --json: every row, the same as the API says.
    const [listed, table] = await Promise.all([cli(['partitions', '--json', ...admin]), cliHere(['partitions', ...admin])]);
    t.equal(listed.code, 0, `partitions --json exits 0 ${listed.stderr}`);
    const rows = JSON.parse(listed.stdout) as { key: string; backend: string; pinned: boolean }[];
    const api0 = await partitions(lb);
    t.same(rows.map((r) => [r.key, r.backend, r.pinned]), [...api0.values()].map((r) => [r.key, r.backend, r.pinned]), 'the CLI lists what the API lists, in the same order');
    t.match(rows.find((r) => r.key === 'acme'), { backend: 'servoy-a', pinned: true }, 'the pin is listed');
    for (const tenant of tenants) t.equal(rows.find((r) => r.key === tenant)?.backend, home.get(tenant), `${tenant} listed on ${home.get(tenant)}`);
    t.equal(table.code, 0, 'partitions (table) exits 0');
    t.match(table.stdout, /KEY\s+BACKEND/, 'with a header');
    t.match(table.stdout, /acme\s+servoy-a\s+pinned in config/, 'and the pin');

    // partitions move.
    const key = tenants[0]!;
    const target = other(home.get(key)!);
    const moved = await cli(['partitions', 'move', key, target, ...admin]);
    t.equal(moved.code, 0, `partitions move exits 0 ${moved.stderr}`);
    t.match(moved.stdout, `moved partition ${key} to ${target}`, 'and says so');
    t.equal(await visit(t, lb, key), target, `${key} is now served by ${target}`);
    t.equal((await partitions(lb)).get(key)?.backend, target, 'and listed there');
    const drained = await cliHere(['partitions', 'move', tenants[1]!, other(home.get(tenants[1]!)!), '--drain', ...admin]);
    t.equal(drained.code, 0, 'partitions move --drain exits 0');
    t.match((await partitions(lb)).get(tenants[1]!), { backend: other(home.get(tenants[1]!)!), previous: home.get(tenants[1]!) }, 'moved with the old server draining');
    // A key with a slash and a space travels through the URL intact.
    const odd = 'north/acme co';
    const oddHome = await visit(t, lb, odd);
    const oddMoved = await cliHere(['partitions', 'move', odd, other(oddHome), ...admin]);
    t.equal(oddMoved.code, 0, `moving "${odd}" exits 0 ${oddMoved.stderr}`);
    t.equal(await visit(t, lb, odd), other(oddHome), `"${odd}" is served by ${other(oddHome)}`);
    const pinned = await cli(['partitions', 'move', 'acme', 'servoy-b', ...admin]);
    t.equal(pinned.code, 2, 'moving a pinned key: exit 2 (refused)');
    t.match(pinned.stderr, /pinned in the config file/, 'with one clear sentence');
    t.notMatch(pinned.stderr, /\n\s+at /, 'no stack trace');
    const unknown = await cliHere(['partitions', 'move', key, 'servoy-z', ...admin]);
    t.equal(unknown.code, 2, 'moving to an unknown backend: exit 2');

    // route --key: pinned, assigned, unassigned.
    const total = (await api(lb, 'GET', '/api/partitions?limit=1')).json.total;
    const assignedKey = tenants[5]!;
    const [pin, assigned, fresh, text] = await Promise.all([
      cli(['route', '--key', 'acme', ...admin]),
      cli(['route', '--key', assignedKey, ...admin]),
      cli(['route', '--key', 'not-yet-seen', '--json', ...admin]),
      cliHere(['route', '--key', 'not-yet-seen', ...admin]),
    ]);
    t.equal(pin.code, 0, 'route --key acme exits 0');
    t.match(pin.stdout, /key acme -> servoy-a/, 'pinned key: its backend');
    t.match(pin.stdout, /pinned in the config file/, 'pinned key: why');
    t.match(assigned.stdout, new RegExp(`key ${assignedKey} -> ${home.get(assignedKey)}`), 'assigned key: its backend');
    t.match(assigned.stdout, /durably assigned/, 'assigned key: why');
    t.equal(fresh.code, 0, 'route --key for an unassigned key exits 0');
    const explained = JSON.parse(fresh.stdout) as { key: string; backend: string | null; reason: string; candidates: { id: string }[] };
    t.match(explained.reason, /not assigned yet/, 'unassigned key: why');
    t.ok(explained.backend !== null && ROUTES.includes(explained.backend), `unassigned key: where it would go (${explained.backend})`);
    t.same(explained.candidates.map((c) => c.id).sort(), ROUTES, 'every server is a candidate');
    t.match(text.stdout, /not assigned yet/, 'the text form says so too');
    t.equal((await api(lb, 'GET', '/api/partitions?limit=1')).json.total, total, 'route assigns nothing');
    t.equal(await visit(t, lb, 'not-yet-seen'), explained.backend, 'its first request goes where route said');

    // Paging: stable order, total, no row twice or missing.
    const all = await api(lb, 'GET', '/api/partitions?offset=0&limit=10000');
    const everyKey = (all.json.partitions as { key: string; pinned: boolean }[]).map((p) => p.key);
    t.equal(all.json.total, everyKey.length, `total is the number of rows (${everyKey.length})`);
    t.equal(new Set(everyKey).size, everyKey.length, 'no key twice');
    const pinnedKeys = (all.json.partitions as { key: string; pinned: boolean }[]).filter((p) => p.pinned).map((p) => p.key);
    t.same(everyKey.slice(0, pinnedKeys.length), pinnedKeys, 'pins first');
    const rest = everyKey.slice(pinnedKeys.length);
    t.same(rest, [...rest].sort(), 'then assignments in key order');
    for (const limit of [1, 7, 10]) {
      const paged: string[] = [];
      for (let offset = 0; offset < everyKey.length + limit; offset += limit) {
        const page = await api(lb, 'GET', `/api/partitions?offset=${offset}&limit=${limit}`);
        t.equal(page.status, 200);
        if (page.json.total !== everyKey.length || page.json.offset !== offset) t.fail(`page ${offset}/${limit}: total ${page.json.total}, offset ${page.json.offset}`);
        t.ok(page.json.partitions.length <= limit, `page ${offset}/${limit} holds at most ${limit} rows`);
        paged.push(...(page.json.partitions as { key: string }[]).map((p) => p.key));
      }
      t.same(paged, everyKey, `pages of ${limit} give every row once, in the same order`);
    }
    const empty = await api(lb, 'GET', `/api/partitions?offset=${everyKey.length}&limit=5`);
    t.same([empty.status, empty.json.partitions], [200, []], 'a page past the end is empty');
    t.equal((await api(lb, 'GET', '/api/partitions?offset=-1')).status, 400, 'a negative offset: 400');
    t.equal((await api(lb, 'GET', '/api/partitions?limit=abc')).status, 400, 'a limit that is no number: 400');
  });
});
