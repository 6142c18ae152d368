import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startFakeAdmin, statusRow } from './helpers/admin-fake.js';
import { runAdminCli } from './helpers/admin-cli.js';
import { resolveTarget } from '../src/cli/admin-client.js';
import { closedPort, waitFor } from './helpers/lb.js';
import type { CliRun } from './helpers/processes.js';

// The admin commands against a real admin API (a fake balancer behind it). A few cases run
// the real `bin/servoy-lb` as a child process (needs the build: `npx tsc -p .`; `npm test`
// builds first); the rest run the same program in this process, which is many times faster.
const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin', 'servoy-lb');
const built = existsSync(join(root, 'dist', 'src', 'cli', 'admin-commands.js'));
const skip = built ? false : 'not built: run `npx tsc -p .` first (npm test does)';

const TOKEN = 'cli-test-token';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** childEnv: no admin variables from the caller, and no coverage hook (it triples start-up time). */
function childEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env, SERVOY_LB_ADMIN: undefined, SERVOY_LB_TOKEN: undefined, SERVOY_LB_CA: undefined, SERVOY_LB_SECRET: undefined, NODE_OPTIONS: undefined, ...env };
  for (const [key, value] of Object.entries(out)) if (value === undefined) delete out[key];
  return out;
}

/** runBin runs the real command as a child process. */
function runBin(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, [bin, ...args], { cwd: opts.cwd ?? root, env: childEnv(opts.env), timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** cli runs the admin commands in this process, with only the admin variables in `env` set. */
const cli = (args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> => runAdminCli(args, env);


t.test('the real command: table, JSON, config file, exit codes', { skip }, async (t) => {
  const { url, port, control } = await startFakeAdmin(t, { token: TOKEN });
  const closed = await closedPort();
  const dir = t.testdir({
    'lb.config.json': JSON.stringify({ admin: { host: '0.0.0.0', port, token: '${SERVOY_LB_TOKEN}' }, backends: [{ id: 'servoy-a', url: 'http://127.0.0.1:9101' }] }),
  });
  const admin = ['--admin', url, '--token', TOKEN];
  const [table, json, fromConfig, unreachable, refused, usage] = await Promise.all([
    runBin(['status', ...admin]),
    runBin(['status', '--json', ...admin]),
    runBin(['status'], { cwd: dir, env: { SERVOY_LB_TOKEN: TOKEN } }),
    runBin(['status', '--admin', `http://127.0.0.1:${closed}`, '--token', TOKEN]),
    runBin(['status', '--admin', url, '--token', 'wrong']),
    runBin(['drain', ...admin]),
  ]);

  t.equal(table.code, 0, table.stderr);
  t.equal(table.stderr, '');
  const lines = table.stdout.trimEnd().split('\n');
  t.equal(lines.length, 3);
  t.match(lines[0], /^ID\s+URL\s+STATE\s+HEALTH\s+WEIGHT\s+SESSIONS\s+WEBSOCKETS\s+REQUESTS\s+ERRORS$/);
  t.match(lines[1], /^servoy-a\s+http:\/\/127\.0\.0\.1:9101\s+up\s+up\s+1\s+3\s+1\s+1234\s+2$/);
  t.match(lines[2], /^servoy-b\s+http:\/\/127\.0\.0\.1:9102\s+up\s+up\s+1\s+7\/100\s+0\s+56\s+3$/, 'sessions of maxSessions');
  // Aligned: text columns start, number columns end, where their header does.
  t.equal(lines[1]!.indexOf('up'), lines[0]!.indexOf('STATE'));
  t.equal(lines[2]!.indexOf('up'), lines[0]!.indexOf('STATE'));
  t.equal(lines[1]!.length, lines[0]!.length, 'ERRORS right-aligned');
  t.equal(lines[2]!.indexOf('7/100') + '7/100'.length, lines[0]!.indexOf('SESSIONS') + 'SESSIONS'.length);

  t.equal(json.code, 0, json.stderr);
  t.same(JSON.parse(json.stdout), [...control.rows.values()]);

  t.equal(fromConfig.code, 0, `./lb.config.json by default, admin.host 0.0.0.0 -> 127.0.0.1, token from \${SERVOY_LB_TOKEN}: ${fromConfig.stderr}`);
  t.match(fromConfig.stdout, /^ID\s+URL/);

  t.equal(unreachable.code, 2, 'unreachable: exit 2');
  t.equal(unreachable.stderr, `servoy-lb: cannot reach the balancer's admin API at http://127.0.0.1:${closed} (is it running?)\n`);

  t.equal(refused.code, 2, 'refused: exit 2');
  t.equal(refused.stderr, 'servoy-lb: the balancer refused the token (check --token, SERVOY_LB_TOKEN or admin.token in the config file)\n');

  t.equal(usage.code, 1, 'missing ID: exit 1');
  t.match(usage.stderr, /error: missing required argument 'ID'/);
});

t.test('drain --wait: Ctrl+C stops waiting, the backend keeps draining', { skip }, async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  control.rows.set('servoy-big', statusRow('servoy-big', { sessions: 100_000 }));
  const child = spawn(process.execPath, [bin, 'drain', 'servoy-big', '--wait', '--admin', url, '--token', TOKEN], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let stdout = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('servoy-big draining: ')) resolve();
    });
  });
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  t.equal(code, 130);
  t.match(stdout, /^servoy-big draining: 100000 sessions, 0 websockets left\n/);
  t.match(stdout, /stopped waiting; servoy-big keeps draining \(undo with: servoy-lb undrain servoy-big\)\n$/);
  t.same(control.calls.filter(([name]) => name === 'setAdminState'), [['setAdminState', 'servoy-big', 'drain']], 'not undrained');
  t.equal(control.rows.get('servoy-big')!.admin, 'draining');
});

t.test('finding the admin API', async (t) => {
  const { url, port } = await startFakeAdmin(t, { token: TOKEN });
  const backends = [{ id: 'servoy-a', url: 'http://127.0.0.1:9101' }];
  const dir = t.testdir({
    'env.json': JSON.stringify({ admin: { port, token: '${SERVOY_LB_TOKEN}' }, backends }),
    'service.json': JSON.stringify({ admin: { port, token: TOKEN }, backends, affinity: { cookie: { secret: '${ONLY_THE_SERVICE_HAS_THIS}' } } }),
    'broken.json': '{ "backends": [ }',
  });

  const fromEnv = await cli(['status'], { SERVOY_LB_ADMIN: url.replace('http://', ''), SERVOY_LB_TOKEN: TOKEN });
  t.equal(fromEnv.code, 0, `SERVOY_LB_ADMIN (scheme optional) and SERVOY_LB_TOKEN: ${fromEnv.stderr}`);
  t.match(fromEnv.stdout, /servoy-a/);

  const missingEnv = await cli(['status', '-c', join(dir, 'env.json')]);
  t.equal(missingEnv.code, 1);
  t.match(missingEnv.stderr, /admin\.token: environment variable SERVOY_LB_TOKEN is not set/);
  const tokenFlag = await cli(['status', '-c', join(dir, 'env.json'), '--token', TOKEN]);
  t.equal(tokenFlag.code, 0, `--token covers an unset admin.token variable: ${tokenFlag.stderr}`);

  const lenient = await cli(['status', '-c', join(dir, 'service.json')]);
  t.equal(lenient.code, 0, `a variable outside admin.* that only the service has does not matter: ${lenient.stderr}`);
  const tokenFromConfig = await cli(['status', '--admin', url, '-c', join(dir, 'service.json')]);
  t.equal(tokenFromConfig.code, 0, `--admin with an explicit -c takes the token from the file: ${tokenFromConfig.stderr}`);

  const broken = await cli(['status', '-c', join(dir, 'broken.json')]);
  t.equal(broken.code, 1);
  t.match(broken.stderr, /^servoy-lb: cannot find the admin API from the config file: invalid config file .*broken\.json/);
  t.match(broken.stderr, /invalid JSON at line 1/);

  const none = await cli(['status', '-c', join(dir, 'absent.json')]);
  t.equal(none.code, 1);
  t.match(none.stderr, /absent\.json does not exist/);
  t.match(none.stderr, /--admin URL/);

  const noToken = await cli(['drain', 'servoy-a', '--admin', url]);
  t.equal(noToken.code, 2);
  t.match(noToken.stderr, /needs a token: pass --token TOKEN or set SERVOY_LB_TOKEN/);

  const badAdmin = await cli(['status', '--admin', 'ftp://127.0.0.1:1']);
  t.equal(badAdmin.code, 1);
  t.match(badAdmin.stderr, /--admin: expected an http: or https: URL/);

  const notOurs = await cli(['status', '--admin', `${url}/healthz-is-not-here`, '--token', TOKEN]);
  t.equal(notOurs.code, 2, 'an answer that is not the admin API');
  t.match(notOurs.stderr, /no such admin API call/);

  for (const args of [['backends', 'add', 'servoy-c'], ['backends', 'add', 'servoy-c', 'http://127.0.0.1:9103', '--weight', 'two'], ['status', '--bogus']]) {
    const res = await cli([...args, '--admin', url, '--token', TOKEN]);
    t.equal(res.code, 1, `bad usage: ${args.join(' ')}`);
    t.match(res.stderr, /error: /);
  }
  const noRequest = await cli(['route', '--admin', url, '--token', TOKEN]);
  t.equal(noRequest.code, 1, 'route with nothing to explain is bad usage');
  t.match(noRequest.stderr, /^servoy-lb: say which request to explain: --client ADDR/);
});

t.test('finding an https admin API: admin.tls of the config file gives the scheme and the certificate to trust', async (t) => {
  const dir = t.testdir({
    'admin-cert.pem': 'CERT',
    'other-ca.pem': 'OTHER',
    'lb.config.json': JSON.stringify({ backends: [{ id: 'a', url: 'http://127.0.0.1:9' }], admin: { port: 9443, token: TOKEN, tls: { cert: 'admin-cert.pem', key: 'admin-key.pem' } } }),
    // A variable the operator's shell lacks fails the full load: the admin section alone is read (relative paths still from the file).
    'partial.json': JSON.stringify({ backends: [{ id: 'a', url: 'http://127.0.0.1:9' }], affinity: { cookie: { secret: '${NOT_SET_IN_THIS_SHELL}' } }, admin: { port: 9443, tls: { cert: 'admin-cert.pem', key: 'k.pem' } } }),
  });
  const fromFile = await resolveTarget({ config: join(dir, 'lb.config.json') }, {});
  t.equal(fromFile.url, 'https://127.0.0.1:9443');
  t.equal(fromFile.token, TOKEN);
  t.equal(fromFile.ca?.toString(), 'CERT', 'admin.tls.cert is the certificate to trust');
  const partial = await resolveTarget({ config: join(dir, 'partial.json') }, {});
  t.equal(partial.url, 'https://127.0.0.1:9443');
  t.equal(partial.ca?.toString(), 'CERT', 'also when only the admin section could be read');
  t.equal((await resolveTarget({ config: join(dir, 'lb.config.json'), ca: join(dir, 'other-ca.pem') }, {})).ca?.toString(), 'OTHER', '--ca wins');
  t.equal((await resolveTarget({ config: join(dir, 'lb.config.json') }, { SERVOY_LB_CA: join(dir, 'other-ca.pem') })).ca?.toString(), 'OTHER', 'then SERVOY_LB_CA');
  const given = await resolveTarget({ admin: 'https://lb.example:9443', config: join(dir, 'lb.config.json') }, {});
  t.equal(given.ca?.toString(), 'CERT', '--admin https://... with -c: the config file still names the certificate');
  t.equal((await resolveTarget({ admin: 'https://lb.example:9443', token: TOKEN }, {})).ca, undefined, 'otherwise the system CAs');
  await t.rejects(resolveTarget({ admin: 'https://lb.example:9443', ca: join(dir, 'missing.pem') }, {}), { message: /^--ca: cannot read .*missing\.pem \(ENOENT\)$/, exitCode: 1 });
});

t.test('state commands', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  const env = { SERVOY_LB_ADMIN: url, SERVOY_LB_TOKEN: TOKEN };

  const drain = await cli(['drain', 'servoy-b'], env);
  t.equal(drain.code, 0, drain.stderr);
  t.equal(drain.stdout, 'servoy-b is draining: it takes no new sessions; 7 sessions, 0 websockets finish there (follow with: servoy-lb drain servoy-b --wait)\n');
  t.same(control.calls.at(-1), ['setAdminState', 'servoy-b', 'drain']);
  t.equal((await cli(['undrain', 'servoy-b'], env)).stdout, 'servoy-b takes new sessions again (state up)\n');
  t.same(control.calls.at(-1), ['setAdminState', 'servoy-b', 'undrain']);
  t.equal((await cli(['disable', 'servoy-a'], env)).stdout, 'servoy-a is disabled: it gets no traffic; its 3 sessions will be placed on other backends\n');
  t.same(control.calls.at(-1), ['setAdminState', 'servoy-a', 'disable']);
  t.equal((await cli(['disable', 'servoy-a', '--close'], env)).stdout, 'servoy-a is disabled: it gets no traffic; its 3 sessions will be placed on other backends; its open websockets are closed\n');
  t.same(control.calls.at(-1), ['setAdminState', 'servoy-a', 'disable', { close: true }]);
  t.equal((await cli(['enable', 'servoy-a'], env)).stdout, 'servoy-a is enabled (state up)\n');
  t.same(control.calls.at(-1), ['setAdminState', 'servoy-a', 'enable']);

  const unknown = await cli(['drain', 'ghost'], env);
  t.equal(unknown.code, 2, 'refused by the balancer');
  t.equal(unknown.stderr, 'servoy-lb: no backend "ghost"\n');
});

t.test('drain --wait shows progress until drained', async (t) => {
  const { url } = await startFakeAdmin(t, { token: TOKEN });
  // servoy-a holds 3 sessions and 1 websocket; the fake loses one per look.
  const res = await cli(['drain', 'servoy-a', '--wait', '--admin', url, '--token', TOKEN]);
  t.equal(res.code, 0, res.stderr);
  t.same(res.stdout.trimEnd().split('\n'), [
    'servoy-a draining: 3 sessions, 1 websocket left',
    'servoy-a draining: 2 sessions, 1 websocket left',
    'servoy-a draining: 1 session, 1 websocket left',
    'servoy-a draining: 0 sessions, 1 websocket left',
    'servoy-a is drained: no sessions left',
  ], 'one line per change when stdout is not a terminal');
});

t.test('drain --wait stops when someone else undrains', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  const waiting = cli(['drain', 'servoy-a', '--wait', '--admin', url, '--token', TOKEN]);
  // The CLI is waiting once it drained and then read the status (a poll after the drain).
  await waitFor(() => {
    const drained = control.calls.findIndex((c) => c[0] === 'setAdminState' && c[2] === 'drain');
    return drained !== -1 && control.calls.slice(drained + 1).some((c) => c[0] === 'backends');
  }, 30_000, 'the CLI to drain and poll', 10);
  await control.setAdminState('servoy-a', 'undrain');
  const res = await waiting;
  t.equal(res.code, 2);
  t.equal(res.stderr, 'servoy-lb: servoy-a is no longer draining (state up; someone changed it); stopped waiting\n');
});

t.test('backends add / remove', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  const env = { SERVOY_LB_ADMIN: url, SERVOY_LB_TOKEN: TOKEN };

  const add = await cli(['backends', 'add', 'servoy-c', 'http://127.0.0.1:9103', '--weight', '2', '--max-sessions', '400', '--route', 'jvm3'], env);
  t.equal(add.code, 0, add.stderr);
  t.equal(add.stdout, 'added servoy-c (http://127.0.0.1:9103, weight 2, at most 400 sessions): state up\n');
  t.same(control.calls.at(-1), ['addBackend', { id: 'servoy-c', url: 'http://127.0.0.1:9103', weight: 2, maxSessions: 400, route: 'jvm3' }]);
  const plain = await cli(['backends', 'add', 'servoy-d', 'http://127.0.0.1:9104'], env);
  t.equal(plain.stdout, 'added servoy-d (http://127.0.0.1:9104, weight 1): state up\n');

  const invalid = await cli(['backends', 'add', 'servoy-e', 'not a url'], env);
  t.equal(invalid.code, 1, 'the balancer says the input is wrong: bad usage');
  t.match(invalid.stderr, /^servoy-lb: invalid backend: url: /);

  const exists = await cli(['backends', 'add', 'servoy-c', 'http://127.0.0.1:9105'], env);
  t.equal(exists.code, 2);
  t.equal(exists.stderr, 'servoy-lb: a backend "servoy-c" already exists\n');

  const notDrained = await cli(['backends', 'remove', 'servoy-b'], env);
  t.equal(notDrained.code, 2);
  t.equal(notDrained.stderr, 'servoy-lb: servoy-b is up, not drained\n(drain it first: servoy-lb drain servoy-b --wait; or remove it anyway with --force)\n');
  const unknown = await cli(['backends', 'remove', 'ghost'], env);
  t.equal(unknown.code, 2);
  t.equal(unknown.stderr, 'servoy-lb: no backend "ghost"\n');

  const forced = await cli(['backends', 'remove', 'servoy-b', '--force'], env);
  t.equal(forced.code, 0, forced.stderr);
  t.equal(forced.stdout, 'removed servoy-b\n');
  t.same(control.calls.at(-1), ['removeBackend', 'servoy-b', true]);

  const backends = await cli(['backends'], env);
  t.equal(backends.code, 1, 'backends without a subcommand shows its help');
  t.match(backends.stderr, /add \[options\] <ID> <URL>/);
});

t.test('backends set --weight', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  const env = { SERVOY_LB_ADMIN: url, SERVOY_LB_TOKEN: TOKEN };
  const set = await cli(['backends', 'set', 'servoy-a', '--weight', '3'], env);
  t.equal(set.code, 0, set.stderr);
  t.equal(set.stdout, 'servoy-a has weight 3 (state up)\n');
  t.same(control.calls.at(-1), ['setWeight', 'servoy-a', 3]);

  const cases: { desc: string; args: string[]; code: number; stderr: RegExp }[] = [
    { desc: 'no --weight', args: ['servoy-a'], code: 1, stderr: /required option '--weight <N>' not specified/ },
    { desc: 'weight 0', args: ['servoy-a', '--weight', '0'], code: 1, stderr: /expected a whole number from 1 to 1000/ },
    { desc: 'weight too large', args: ['servoy-a', '--weight', '1001'], code: 1, stderr: /expected a whole number from 1 to 1000/ },
    { desc: 'not a number', args: ['servoy-a', '--weight', 'two'], code: 1, stderr: /expected a whole number from 1 to 1000/ },
    { desc: 'unknown backend', args: ['ghost', '--weight', '2'], code: 2, stderr: /^servoy-lb: no backend "ghost"\n$/ },
  ];
  for (const c of cases) {
    const res = await cli(['backends', 'set', ...c.args], env);
    t.equal(res.code, c.code, c.desc);
    t.match(res.stderr, c.stderr, c.desc);
  }
});

t.test('route, reload, partitions', async (t) => {
  const { url, control } = await startFakeAdmin(t, { token: TOKEN });
  const env = { SERVOY_LB_ADMIN: url, SERVOY_LB_TOKEN: TOKEN };

  const route = await cli(['route', '--key', '10.0.0.5'], env);
  t.equal(route.code, 0, route.stderr);
  const lines = route.stdout.split('\n');
  t.equal(lines[0], 'client 10.0.0.5 -> servoy-b (new-session)', 'in session mode a key is the client address');
  t.match(lines[1], /^why: a new session goes to servoy-b/);
  t.ok(lines.includes('rules tried:'));
  t.ok(lines.includes('  1. affinity-cookie: skipped - no affinity cookie'));
  t.ok(lines.includes('new-session candidates in hash order (* = chosen):'));
  t.same(control.calls.at(-1), ['explainRoute', { key: '10.0.0.5', client: undefined, path: undefined, cookie: undefined, session: undefined }]);
  const byClient = await cli(['route', '--client', '10.0.0.9', '--key', 'acme'], env);
  t.equal(byClient.code, 0, byClient.stderr);
  t.same(control.calls.at(-1), ['explainRoute', { key: 'acme', client: '10.0.0.9', path: undefined, cookie: undefined, session: undefined }]);
  t.match(byClient.stdout, /^key acme from 10\.0\.0\.9 -> servoy-b/);
  t.match(route.stdout, /\n\*\s+1\s+servoy-b\s+up\s+7\s+12\s+yes\n/);
  t.match(route.stdout, /\n\s+2\s+servoy-a\s+up\s+3\s+-\s+yes\n/);
  const withPath = await cli(['route', '--client', '192.0.2.7', '--path', '/x/../servoy-admin/'], env);
  t.equal(withPath.code, 0, withPath.stderr);
  t.same(control.calls.at(-1), ['explainPath', '/x/../servoy-admin/', '192.0.2.7'], 'the path and client reach explainPath');
  t.match(withPath.stdout, /^path \/x\/\.\.\/servoy-admin\/ \(normalised: \/servoy-admin\/\): denied, rule "\/servoy-admin\/" \(allow\)\nwhy: 192\.0\.2\.7 is not in the allow list: 403\n\nclient 192\.0\.2\.7 -> servoy-b/);
  const routeJson = await cli(['route', '--key', 'a b&c', '--json'], env);
  t.equal(JSON.parse(routeJson.stdout).key, 'a b&c', 'the key is URL-encoded on the way');

  const reload = await cli(['reload'], env);
  t.equal(reload.code, 0, reload.stderr);
  t.equal(
    reload.stdout,
    'config reloaded\n  added:           servoy-c\n  updated:         servoy-a\n  applied:         healthCheck\n  needs a restart: listen.port\n(restart servoy-lb to apply the settings that need a restart)\n',
  );
  control.reloadFails = true;
  const failed = await cli(['reload'], env);
  t.equal(failed.code, 1, 'a bad config file is exit 1');
  t.equal(failed.stderr, 'servoy-lb: the config file has problems; the balancer keeps its running config\nbackends[1].url: expected an http: or https: URL without a path, such as "http://10.0.0.11:8080"\n');

  for (const args of [['partitions'], ['partitions', 'list'], ['partitions', 'move', 'acme', 'servoy-b', '--drain']]) {
    const res = await cli(args, env);
    t.equal(res.code, 2, args.join(' '));
    t.match(res.stderr, /^servoy-lb: partition mode is not enabled on this balancer: set affinity\.mode to "partition"/);
  }
});

t.test('help texts have examples', async (t) => {
  for (const path of [['status'], ['drain'], ['undrain'], ['disable'], ['enable'], ['backends', 'add'], ['backends', 'set'], ['backends', 'remove'], ['route'], ['reload'], ['partitions', 'list'], ['partitions', 'move']]) {
    const res = await cli([...path, '--help']);
    t.equal(res.code, 0, path.join(' '));
    t.match(res.stdout, /Examples:\n  servoy-lb /, path.join(' '));
    t.match(res.stdout, /--admin <URL>/, path.join(' '));
    t.match(res.stdout, /Exit codes: 0 done, 1 bad usage or config, 2 balancer unreachable or refused/, path.join(' '));
  }
});
