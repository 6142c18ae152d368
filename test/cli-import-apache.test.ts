import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseConfigText } from '../src/config/load.js';

// `servoy-lb import-apache FILE` as an administrator runs it: the real bin/servoy-lb as a
// child process (needs the build: `npx tsc -p .`; `npm test` builds first).
const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin', 'servoy-lb');
const built = existsSync(join(root, 'dist', 'src', 'cli', 'import-apache.js'));
const skip = built ? false : 'not built: run `npx tsc -p .` first (npm test does)';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], cwd = root): Promise<Run> {
  return new Promise((done) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: undefined, SERVOY_LB_TOKEN: undefined, SERVOY_LB_SECRET: undefined };
    for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
    execFile(process.execPath, [bin, ...args], { cwd, env, timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

const lines = (text: string): string[] => text.split('\n').filter((line) => line !== '');

t.test('servoy-lb import-apache', { skip }, async (t) => {
  t.test('the example Servoy config: JSON on stdout, warnings on stderr, exit 0', async (t) => {
    const r = await run(['import-apache', 'examples/apache/servoy.conf']);
    t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
    t.ok(r.stdout.startsWith('{\n  "$schema": "./schema/lb.config.schema.json",\n'), 'pretty JSON, "$schema" first');
    t.ok(r.stdout.endsWith('}\n'));
    const config = JSON.parse(r.stdout) as Record<string, unknown>;
    t.doesNotThrow(() => parseConfigText(r.stdout, { baseDir: root, env: {} }), 'valid lb.config.json');
    t.match(config, {
      listen: { port: 443, tls: { redirectPort: 80 } },
      backends: [
        { id: 'servoy-a', url: 'http://10.0.0.11:8080', weight: 2, route: 'servoy-a' },
        { id: 'servoy-b', url: 'http://10.0.0.12:8080', weight: 1, route: 'servoy-b' },
      ],
      affinity: { sessionCookie: 'JSESSIONID' },
    });
    const warnings = lines(r.stderr);
    t.equal(warnings.length, 4, 'four warnings', { stderr: r.stderr });
    for (const line of warnings) t.match(line, /^import-apache: line \d+: \S/);
    t.match(warnings[0], /^import-apache: line 43: http:\/\/10\.0\.0\.13:8080 is left out \(status \+H, hot standby\).*servoy-lb backends add servoy-c http:\/\/10\.0\.0\.13:8080 --weight 1$/);
    t.match(warnings[1], /^import-apache: line 46: ProxySet lbmethod=byrequests has no equivalent/);
  });

  t.test('the output passes `servoy-lb validate`', async (t) => {
    const dir = t.testdir({});
    const r = await run(['import-apache', join(root, 'examples', 'apache', 'servoy-routeid.conf')]);
    t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
    t.match(JSON.parse(r.stdout), { affinity: { cookie: { name: 'ROUTEID' } } });
    t.match(r.stderr, /^import-apache: line 14: the route cookie ROUTEID/m);
    writeFileSync(join(dir, 'lb.config.json'), r.stdout);
    const v = await run(['validate', '-c', join(dir, 'lb.config.json')]);
    t.same(v, { code: 0, stdout: 'config OK\n', stderr: '' });
  });

  const dir = t.testdir({
    'no-pool.conf': 'Listen 80\nProxyPass / http://10.0.0.11:8080/\n',
    'includes.conf': 'Listen 80\nInclude conf.d/servoy.conf\n',
    'a-directory': {},
  });
  const failures: { desc: string; args: string[]; stderr: string }[] = [
    { desc: 'missing file', args: ['import-apache', 'examples/apache/missing.conf'], stderr: 'servoy-lb: examples/apache/missing.conf does not exist\n' },
    { desc: 'a directory', args: ['import-apache', join(dir, 'a-directory')], stderr: `servoy-lb: ${join(dir, 'a-directory')} is a directory, not an Apache config file\n` },
    {
      desc: 'no BalancerMember',
      args: ['import-apache', join(dir, 'no-pool.conf')],
      stderr: `servoy-lb: ${join(dir, 'no-pool.conf')} has no BalancerMember of an http:// or ws:// server and no mod_jk workers.properties (give it as another FILE, or name it with JkWorkersFile), so there is no pool to convert\n`,
    },
    {
      desc: 'no BalancerMember, but an Include',
      args: ['import-apache', join(dir, 'includes.conf')],
      stderr: `servoy-lb: ${join(dir, 'includes.conf')} has no BalancerMember of an http:// or ws:// server and no mod_jk workers.properties (give it as another FILE, or name it with JkWorkersFile), so there is no pool to convert; line 2: Include conf.d/servoy.conf: no such file (httpd would refuse to start); not followed\n`,
    },
  ];
  for (const f of failures) {
    t.test(`${f.desc}: exit 1, one sentence, no output`, async (t) => {
      const r = await run(f.args);
      t.same(r, { code: 1, stdout: '', stderr: f.stderr });
    });
  }

  t.test('no FILE: usage error, exit 1', async (t) => {
    const r = await run(['import-apache']);
    t.equal(r.code, 1);
    t.equal(r.stdout, '');
    t.match(r.stderr, /missing required argument 'FILE'/);
  });

  t.test('listed in the help', async (t) => {
    const r = await run(['--help']);
    t.equal(r.code, 0);
    t.match(r.stdout, /import-apache <FILE\.\.\.>\s+convert an Apache mod_proxy_balancer or mod_jk config\s+into lb\.config\.json/);
  });
});
