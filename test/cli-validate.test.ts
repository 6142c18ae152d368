import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeCert, skipTls } from './fixtures/tls-cert.js';

// Runs the real command an administrator runs; needs the build (`npm test` builds first).
const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin', 'servoy-lb');
const built = existsSync(join(root, 'dist', 'src', 'cli', 'main.js'));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((done) => {
    const env = { ...process.env, SERVOY_LB_TOKEN: undefined, SERVOY_LB_SECRET: undefined, ...opts.env };
    // 120 s: a node start-up takes seconds on a busy 2-core machine; only a hung command waits this long.
    execFile(process.execPath, [bin, ...args], { cwd: opts.cwd ?? root, env, timeout: 120_000 }, (err, stdout, stderr) => {
      const killed = err !== null && (err as { killed?: boolean }).killed === true;
      done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr: killed ? `${stderr}(test: killed after 120 s)\n` : stderr });
    });
  });
}

const backends = [{ id: 'servoy-a', url: 'http://127.0.0.1:8091' }];

t.test('servoy-lb validate', { skip: built ? false : 'not built: run `npx tsc -p .` first (npm test does)' }, async (t) => {
  const dir = t.testdir({
    'ok.json': JSON.stringify({ backends }),
    'env.json': JSON.stringify({ backends, admin: { host: '0.0.0.0', token: '${SERVOY_LB_TOKEN}' } }),
    'bad.json': JSON.stringify({
      listen: { port: '8080' },
      backends: [...backends, { id: 'servoy-a', url: 'http://127.0.0.1:8092', wieght: 2 }],
      affinity: { mode: 'partition' },
    }),
    'crossed.json': JSON.stringify({ backends: [...backends, { id: 'servoy-a', url: 'http://127.0.0.1:8092' }], affinity: { mode: 'partition' } }),
    'broken.json': '{\n  "backends": [\n    { "id": "a", "url": "http://127.0.0.1:8091" },\n  ]\n}\n',
    cwd: { 'lb.config.json': JSON.stringify({ backends }) },
    'redis.json': JSON.stringify({ backends, state: { redis: 'redis://127.0.0.1:6379/0' } }),
    'files.json': JSON.stringify({
      backends,
      listen: { tls: { cert: './nope.pem', key: './nope-key.pem' } },
      state: { file: './no-such-dir/state.json' },
      errorPages: { '503': './missing.html' },
    }),
    'page.json': JSON.stringify({ backends, state: { file: './state/s.json' }, errorPages: { '503': './page.html' } }),
    'page.html': '<h1>wait</h1>',
    state: {},
  });

  const cases: { desc: string; args: string[]; env?: NodeJS.ProcessEnv; cwd?: string; code: number; stdout: string; stderr: string[] }[] = [
    { desc: 'valid file', args: ['-c', join(dir, 'ok.json')], code: 0, stdout: 'config OK\n', stderr: [] },
    { desc: 'long option', args: ['--config', join(dir, 'ok.json')], code: 0, stdout: 'config OK\n', stderr: [] },
    { desc: 'default ./lb.config.json', args: [], cwd: join(dir, 'cwd'), code: 0, stdout: 'config OK\n', stderr: [] },
    { desc: 'env variable set', args: ['-c', join(dir, 'env.json')], env: { SERVOY_LB_TOKEN: 't0ken' }, code: 0, stdout: 'config OK\n', stderr: [] },
    { desc: 'env variable missing', args: ['-c', join(dir, 'env.json')], code: 1, stdout: '', stderr: ['admin.token: environment variable SERVOY_LB_TOKEN is not set'] },
    {
      desc: 'schema problems, one line each',
      args: ['-c', join(dir, 'bad.json')],
      code: 1,
      stdout: '',
      stderr: ['listen.port: expected a number, got string (write 8080 without quotes)', 'backends[1].wieght: unknown key (did you mean "weight"?)'],
    },
    {
      desc: 'cross-field problems, one line each',
      args: ['-c', join(dir, 'crossed.json')],
      code: 1,
      stdout: '',
      stderr: ['backends[1].id: duplicate id "servoy-a" (also backends[0])', 'affinity.partitionKey: required when affinity.mode is "partition" (it says where the partition key comes from)'],
    },
    {
      desc: 'broken JSON',
      args: ['-c', join(dir, 'broken.json')],
      code: 1,
      stdout: '',
      stderr: ["(file): invalid JSON at line 4, column 3: unexpected token ']' (JSON does not allow a comma before a closing bracket)"],
    },
    {
      desc: 'missing file',
      args: ['-c', join(dir, 'nope.json')],
      code: 1,
      stdout: '',
      stderr: [`(file): config file ${join(dir, 'nope.json')} does not exist (name another one with -c FILE)`],
    },
    {
      desc: 'default file missing',
      args: [],
      cwd: dir,
      code: 1,
      stdout: '',
      stderr: [`(file): config file ${join(dir, 'lb.config.json')} does not exist (name another one with -c FILE)`],
    },
    { desc: 'shipped demo config', args: ['-c', join(root, 'lb.config.json')], code: 0, stdout: 'config OK\n', stderr: [] },
    {
      desc: 'shipped full example',
      args: ['-c', join(root, 'examples', 'lb.config.full.json')],
      env: { SERVOY_LB_TOKEN: 'token', SERVOY_LB_SECRET: 'a-secret-of-some-length' },
      code: 1,
      stdout: '',
      // The example names the TLS files a real installation has; validate checks them as start does.
      stderr: [
        `listen.tls.cert: cannot read ${join(root, 'examples', 'tls', 'cert.pem')} (ENOENT)`,
      ],
    },
    // state.redis is accepted without reaching Redis (nothing listens on that address in the test).
    { desc: 'state.redis, not reached', args: ['-c', join(dir, 'redis.json')], code: 0, stdout: 'config OK\n', stderr: [] },
    {
      desc: 'start-time file checks, every problem listed',
      args: ['-c', join(dir, 'files.json')],
      code: 1,
      stdout: '',
      stderr: [
        `state.file: the directory ${join(dir, 'no-such-dir')} does not exist (create it, writable by the balancer's user)`,
        `errorPages.503: cannot read ${join(dir, 'missing.html')} (ENOENT)`,
        `listen.tls.cert: cannot read ${join(dir, 'nope.pem')} (ENOENT)`,
      ],
    },
    { desc: 'readable error page and writable state directory', args: ['-c', join(dir, 'page.json')], code: 0, stdout: 'config OK\n', stderr: [] },
  ];
  // Each run is a fresh node process; three at a time (all at once starved each other on a busy machine).
  const results: Run[] = [];
  for (let i = 0; i < cases.length; i += 3) {
    const batch = cases.slice(i, i + 3);
    results.push(...(await Promise.all(batch.map((c) => run(['validate', ...c.args], { cwd: c.cwd, env: c.env })))));
  }
  for (const [i, c] of cases.entries()) {
    const result = results[i]!;
    t.same(
      { code: result.code, stdout: result.stdout, stderr: result.stderr.split('\n').filter((line) => line !== '') },
      { code: c.code, stdout: c.stdout, stderr: c.stderr },
      c.desc,
    );
    t.notMatch(result.stderr, /\n\s+at /, `${c.desc}: no stack trace`);
  }

  t.test('--help explains the command', async (t) => {
    const result = await run(['validate', '--help']);
    t.equal(result.code, 0);
    t.match(result.stdout, /Usage: servoy-lb validate/);
    t.match(result.stdout, /-c, --config <FILE>/);
    t.match(result.stdout, /default: "\.\/lb\.config\.json"/);
    t.match(result.stdout, /config OK/);
    t.match(result.stdout, /<json-path>: <reason>/);
  });

  t.test('a bad option is bad usage', async (t) => {
    const result = await run(['validate', '--bogus']);
    t.equal(result.code, 1);
    t.match(result.stderr, /unknown option '--bogus'/);
    t.notMatch(result.stderr, /\n\s+at /);
  });
});

t.test('validate tries the TLS pair as start does', { skip: !built ? 'not built' : skipTls }, async (t) => {
  const dir = t.testdir({});
  const a = await makeCert(dir, 'localhost', 'a-');
  const b = await makeCert(dir, 'localhost', 'b-');
  const write = (name: string, tls: object): string => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify({ backends, listen: { tls } }));
    return file;
  };
  const good = await run(['validate', '-c', write('good.json', { cert: a.certFile, key: a.keyFile })]);
  t.same({ code: good.code, stdout: good.stdout }, { code: 0, stdout: 'config OK\n' }, 'a matching pair');
  const crossed = await run(['validate', '-c', write('crossed.json', { cert: a.certFile, key: b.keyFile })]);
  t.equal(crossed.code, 1, 'a key of another certificate');
  t.match(crossed.stderr, /^listen\.tls\.key: the certificate and key cannot be used \(.+\)\n$/);
});
