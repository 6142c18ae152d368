/**
 * `servoy-lb start` and `servoy-lb demo` as an administrator runs them (SPEC "Command
 * line"): help, one-sentence errors with exit 1 (never a stack trace), a port in use, and
 * SIGTERM: stop accepting, let in-flight requests finish within the grace period, exit 0.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { closedPort, lbConfig, startBalancer, waitFor, within } from './helpers/lb.js';
import { repoRoot, runCli, startSims, type CliRun } from './helpers/processes.js';

const BIN = join(repoRoot, 'bin', 'servoy-lb');

/** Asserts one line of error output, prefixed "servoy-lb:", with no stack trace. */
function assertOneSentence(t: Test, run: CliRun, pattern: RegExp): void {
  t.equal(run.code, 1, 'exit 1');
  const lines = run.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `one line: ${JSON.stringify(run.stderr)}`);
  t.match(lines[0], /^servoy-lb: /);
  t.match(lines[0], pattern);
  t.notMatch(run.stderr + run.stdout, /\n\s+at |Error:|node:internal/, 'no stack trace');
}

t.test('start: --help, and one sentence with exit 1 for what stops it from starting', async (t) => {
  // Four CLI runs at once: each is a cold Node start, slow on a busy machine.
  const [sim] = await startSims(t, ['servoy-a']);
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as net.AddressInfo).port;
  const dir = t.testdir({
    'bad.json': JSON.stringify({ backends: [] }),
    'lb.config.json': JSON.stringify({ ...(await lbConfig([sim!])), listen: { host: '127.0.0.1', port } }),
  });
  const [help, missing, invalid, inUse] = await Promise.all([
    runCli(t, ['start', '--help']),
    runCli(t, ['start', '-c', 'missing.json'], { cwd: dir }),
    runCli(t, ['start', '-c', 'bad.json'], { cwd: dir }),
    runCli(t, ['start'], { cwd: dir }),
  ]);

  await t.test('start --help shows the options and exits 0', async (t) => {
    t.equal(help.code, 0);
    t.match(help.stdout, /Usage: servoy-lb start/);
    t.match(help.stdout, /-c, --config <file>/);
    t.match(help.stdout, /--workers <n>/);
    t.match(help.stdout, /SIGTERM/);
    t.equal(help.stderr, '');
  });

  await t.test('a missing config file', async (t) => {
    assertOneSentence(t, missing, /missing\.json/);
    t.match(missing.stderr, /does not exist/);
  });

  await t.test('an invalid config names the problem', async (t) => {
    assertOneSentence(t, invalid, /bad\.json: backends: /);
  });

  await t.test('a port in use', async (t) => {
    assertOneSentence(t, inUse, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`));
  });
});

t.test('SIGTERM lets an in-flight request finish, refuses new connections, exits 0', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!]));
  const started = Date.now();
  const inFlight = request(`${lb.url}/slow?ms=1500`).then(async (res) => ({ status: res.statusCode, body: (await res.body.json()) as { slept: number }, at: Date.now() }));
  await waitFor(() => sim!.stats().requests === 1, 15_000, 'the request to reach the backend');
  const exited = lb.stop('SIGTERM');
  await lb.waitForLog(/shutting down/, 30_000);

  // No new connections once stopping (the listener is closed).
  const refused = await new Promise<string>((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port: Number(new URL(lb.url).port) });
    sock.once('connect', () => { sock.destroy(); resolve('connected'); });
    sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused while draining');

  const res = await inFlight;
  t.equal(res.status, 200, 'the in-flight request completed');
  t.equal(res.body.slept, 1500);
  t.ok(res.at - started >= 1400, 'after its full time');
  const code = await exited;
  t.equal(code, 0, 'exit 0');
  t.ok(lb.logs().some((l) => l.includes('"msg":"stopped"')), 'logged "stopped"');
});

t.test('SIGTERM cuts what is still running after timeouts.shutdownGrace', async (t) => {
  const [sim] = await startSims(t, ['servoy-a']);
  const lb = await startBalancer(t, await lbConfig([sim!], { timeouts: { shutdownGrace: '500ms' } }));
  const inFlight = request(`${lb.url}/slow?ms=20000`).then(
    async (res) => { await res.body.dump(); return 'completed'; },
    () => 'cut',
  );
  await waitFor(() => sim!.stats().requests === 1, 15_000, 'the request to reach the backend');
  const started = Date.now();
  const code = await lb.stop('SIGTERM');
  const took = Date.now() - started;
  t.equal(code, 0, 'exit 0');
  t.ok(took >= 400 && took < 15_000, `exited after the grace period, long before the request would end (${took} ms)`);
  t.equal(await inFlight, 'cut', 'the long request was cut');
});

t.test('demo starts three servers behind the balancer, prints the URL, exits 0 on SIGTERM', async (t) => {
  const port = await closedPort(); // free, and outside the range parallel listen(0) calls pick from
  const proc = spawn(process.execPath, [BIN, 'demo', '--port', String(port)], { cwd: t.testdir({}), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(() => stdout.includes(`servoy-lb demo is running: ${url}`) || proc.exitCode !== null, 60_000, 'the demo banner');
  t.match(stdout, `servoy-lb demo is running: ${url}`, `prints the URL; stderr: ${stderr}`);
  t.match(stdout, /servoy-a\s+http:\/\/127\.0\.0\.1:\d+/);

  const servers = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const res = await request(`${url}/api/whoami`);
    t.equal(res.statusCode, 200);
    servers.add(((await res.body.json()) as { server: string }).server);
  }
  t.ok([...servers].every((s) => /^servoy-[abc]$/.test(s)), `answered by the demo servers: ${[...servers].join(', ')}`);

  proc.kill('SIGTERM');
  const code = await within(exited, 30_000);
  t.equal(code, 0, 'exit 0 on SIGTERM');
  t.equal(stderr, '', 'nothing on stderr');
});
