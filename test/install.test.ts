/**
 * `npm install -g` of the packed tarball gives a working `servoy-lb` (SPEC "Command line":
 * installed as `servoy-lb`): `npm pack` builds dist/ first (prepack) and packs what an
 * installation needs and nothing else (no tests, no benchmarks); the package installs into
 * a fresh prefix with its dependencies from the npm cache or registry; the installed command
 * answers --help and validates the shipped config. Real processes throughout, one bounded
 * test. It packs a copy of the sources without dist/ (a fresh clone): that proves prepack
 * builds, and it never rewrites this checkout's dist/ under tests running in parallel. The installed bin's shebang runs `node` from PATH (engines: >=24), so the project's
 * own Node (node_modules/.bin) goes first in PATH, as on a machine whose system Node is older.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { cp, symlink } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const env = { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}${delimiter}${process.env.PATH ?? ''}`, NODE_OPTIONS: undefined, SERVOY_LB_TOKEN: undefined };
const NETWORK = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network/i;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, timeout: number): Promise<Run> {
  return new Promise((done) => {
    execFile(command, args, { cwd, env, timeout, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('npm pack + npm install -g give a working servoy-lb', { timeout: 180_000 }, async (t) => {
  const dir = t.testdir({ prefix: {}, clone: {} });
  const clone = join(dir, 'clone');
  for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'dashboard', 'examples', 'bin', 'schema', 'lb.config.json', 'README.md', 'LICENSE', 'test', 'bench']) {
    await cp(join(root, entry), join(clone, entry), { recursive: true });
  }
  await symlink(join(root, 'node_modules'), join(clone, 'node_modules'));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], clone, 120_000);
  if (packed.code !== 0) {
    if (NETWORK.test(packed.stderr)) return t.skip(`npm pack needs the network and cannot reach it: ${packed.stderr.trim().split('\n').at(-1)}`);
    return t.fail(`npm pack failed (exit ${packed.code}):\n${packed.stderr}`);
  }
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as [{ filename: string; files: { path: string }[] }];
  const files = info.files.map((f) => f.path);
  for (const needed of ['bin/servoy-lb', 'dist/src/cli/main.js', 'schema/lb.config.schema.json', 'examples/lb.config.full.json', 'examples/systemd/servoy-lb.service', 'dashboard/index.html', 'dashboard/dashboard.js', 'lb.config.json', 'README.md', 'LICENSE', 'package.json']) {
    t.ok(files.includes(needed), `the tarball has ${needed}`);
  }
  t.same(files.filter((f) => /^(test|bench|src|scripts|dist\/test)\//.test(f)), [], 'no tests, benchmarks, scripts or TypeScript sources');

  const prefix = join(dir, 'prefix');
  const installed = await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(dir, info.filename)], dir, 150_000);
  if (installed.code !== 0 && NETWORK.test(installed.stderr)) return t.skip(`the dependencies are neither in the npm cache nor reachable: ${installed.stderr.trim().split('\n').at(-1)}`);
  t.equal(installed.code, 0, `npm install -g: ${installed.stderr}`);

  const bin = join(prefix, 'bin', 'servoy-lb');
  const help = await run(bin, ['--help'], dir, 30_000);
  t.equal(help.code, 0, `servoy-lb --help: ${help.stderr}`);
  for (const command of ['start', 'validate', 'status', 'drain', 'backends', 'reload']) t.match(help.stdout, new RegExp(`\\n  ${command}\\b`), `--help lists ${command}`);

  const config = join(prefix, 'lib', 'node_modules', 'servoy-lb', 'lb.config.json');
  const validate = await run(bin, ['validate', '-c', config], dir, 30_000);
  t.same(validate, { code: 0, stdout: 'config OK\n', stderr: '' }, 'servoy-lb validate -c <the shipped config>');
});
