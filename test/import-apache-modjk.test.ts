import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImportInputError, importFiles } from '../src/apache/import-files.js';
import { httpPortForAjp } from '../src/apache/modjk-convert.js';
import { mountPrefix } from '../src/apache/modjk-httpd.js';
import { looksLikeWorkersProperties, parseWorkers } from '../src/apache/modjk-workers.js';
import { placeholderEnv } from '../src/apache/convert.js';
import { parseConfigText } from '../src/config/load.js';
import { makeCert } from './fixtures/tls-cert.js';
import { repoRoot, runCli } from './helpers/processes.js';

// `import-apache` on mod_jk setups and the newer mod_proxy_balancer rules: each case is a
// set of files -> a config fragment (`backends` exactly) and the warning lines (each a part
// of one line, no more lines than listed); every output must pass the config loader.

interface Case {
  desc: string;
  files: Record<string, string>;
  want: Record<string, unknown>;
  warnings: string[];
  absent?: string[];
}

const workers = (extra: string): string => `worker.list=lb
worker.a.type=ajp13
worker.a.host=10.0.0.1
worker.a.port=8009
worker.b.type=ajp13
worker.b.host=10.0.0.2
worker.b.port=8109
worker.lb.type=lb
worker.lb.balance_workers=a,b
${extra}`;
const ajp = (name: string): string => `worker.${name} (AJP`;
const ajpWarnings = [ajp('a'), ajp('b')];

const cases: Case[] = [
  {
    desc: 'workers.properties alone: ports 8009 -> 8080, 8109 -> 8180, route = worker name',
    files: { 'workers.properties': workers('') },
    want: { backends: [{ id: 'a', url: 'http://10.0.0.1:8080', weight: 1, route: 'a' }, { id: 'b', url: 'http://10.0.0.2:8180', weight: 1, route: 'b' }] },
    warnings: [...ajpWarnings, 'no JkMount sends requests to lb', 'no Listen or <VirtualHost> port found'],
  },
  {
    desc: 'route, lbfactor, older balanced_workers and jvm_route',
    files: { 'w.properties': workers('worker.a.route=servoy-a\nworker.b.jvm_route=servoy-b\nworker.a.lbfactor=3\n').replace('balance_workers', 'balanced_workers') },
    want: { backends: [{ id: 'a', url: 'http://10.0.0.1:8080', weight: 3, route: 'servoy-a' }, { id: 'b', url: 'http://10.0.0.2:8180', weight: 1, route: 'servoy-b' }] },
    warnings: [...ajpWarnings, 'no JkMount', 'no Listen'],
  },
  {
    desc: 'activation=D imported with the drain command, activation=S left out with backends add',
    files: { 'workers.properties': workers('worker.a.activation=D\nworker.b.activation=S\n') },
    want: { backends: [{ id: 'a', url: 'http://10.0.0.1:8080', weight: 1, route: 'a' }] },
    warnings: [...ajpWarnings, 'line 10: worker a is disabled (activation=D): imported', 'line 11: worker b is left out (activation=S', 'servoy-lb backends add b http://10.0.0.2:8180 --weight 1 --route b', 'no JkMount', 'no Listen'],
  },
  {
    desc: 'reference templates: the worker\'s own property wins',
    files: { 'workers.properties': 'worker.list=lb\nworker.t.type=ajp13\nworker.t.port=8009\nworker.t.lbfactor=4\nworker.x.reference=worker.t\nworker.x.host=h1\nworker.x.lbfactor=2\nworker.lb.type=lb\nworker.lb.balance_workers=x\n' },
    want: { backends: [{ id: 'x', url: 'http://h1:8080', weight: 2, route: 'x' }] },
    warnings: ['worker.x (AJP h1:8009)', 'no JkMount', 'no Listen'],
  },
  {
    desc: 'JkMount /*, a non-sticky REST lb on a sub-path, JkUnMount, sticky_session_force, method',
    files: {
      'httpd.conf': 'Listen 80\nJkWorkersFile workers.properties\nJkMount /* lb\nJkMount /servoy-service/rest_ws/* rest\nJkUnMount /static/* lb\n',
      'workers.properties': workers('worker.rest.type=lb\nworker.rest.balance_workers=a,b\nworker.rest.sticky_session=false\nworker.lb.sticky_session_force=true\nworker.lb.method=B\n'),
    },
    want: { listen: { port: 80 }, paths: [{ prefix: '/servoy-service/rest_ws/', affinity: 'none' }], affinity: { failoverDelay: '60s' } },
    warnings: [...ajpWarnings, 'line 5: JkUnMount /static/* lb: Apache served /static/* itself', 'worker.lb.sticky_session_force=true: servoy-lb holds the sessions', 'worker.lb.method=B has no equivalent'],
  },
  {
    desc: 'sticky_session=false on the pool is warned',
    files: { 'workers.properties': workers('worker.lb.sticky_session=0\n') },
    want: {},
    warnings: [...ajpWarnings, 'worker.lb.sticky_session=0: servoy-lb pins every Servoy session', 'no JkMount', 'no Listen'],
  },
  {
    desc: 'JkWorkersFile found next to the httpd config; jkstatus and JkOptions warned',
    files: {
      'httpd.conf': 'Listen 8000\nJkWorkersFile conf/workers.properties\nJkOptions +ForwardKeySize\nJkLogFile logs/mod_jk.log\n<Location /jkstatus>\nJkMount status\n</Location>\nJkMount /* lb\n',
      'conf/workers.properties': workers('worker.status.type=status\nworker.a.redirect=b\nworker.a.socket_keepalive=true\n'),
    },
    want: { listen: { port: 8000 } },
    warnings: [...ajpWarnings, 'JkOptions +ForwardKeySize: no servoy-lb equivalent', 'JkMount /jkstatus status: the jkstatus page is replaced', 'worker.a.redirect=b', 'worker.a: socket_keepalive=true: AJP and mod_jk tuning'],
  },
  {
    desc: 'mod_proxy: Include followed (glob), Header and CustomLog warned',
    files: {
      'httpd.conf': 'Listen 80\nIncludeOptional conf.d/*.conf\nInclude missing.conf\nHeader always set X-Test 1\nCustomLog logs/access.log combined\n',
      'conf.d/pool.conf': '<Proxy balancer://s>\nBalancerMember http://h1:8080 route=r1\nProxySet stickysession=JSESSIONID\n</Proxy>\nProxyPass / balancer://s/\n',
    },
    want: { backends: [{ id: 'r1', url: 'http://h1:8080', weight: 1, route: 'r1' }] },
    warnings: ['line 3: Include missing.conf: no such file', 'line 4: Header always set X-Test 1: servoy-lb does not change response headers', "line 5: CustomLog logs/access.log combined: Apache's access log is not converted"],
  },
  {
    desc: 'mod_proxy: +D imported and drained, +H left out, nofailover -> failoverDelay, non-sticky REST balancer -> path rule',
    files: {
      'servoy.conf':
        'Listen 80\n<Proxy balancer://app>\nBalancerMember http://h1:8080 route=a\nBalancerMember http://h2:8080 route=b status=+D\nBalancerMember http://h3:8080 route=c status=+H\nProxySet stickysession=JSESSIONID nofailover=On\n</Proxy>\n<Proxy balancer://rest>\nBalancerMember http://h1:8080\nBalancerMember http://h2:8080\n</Proxy>\nProxyPass /servoy-service/rest_ws balancer://rest/servoy-service/rest_ws\nProxyPass / balancer://app/\n',
    },
    want: {
      backends: [{ id: 'a', url: 'http://h1:8080', weight: 1, route: 'a' }, { id: 'b', url: 'http://h2:8080', weight: 1, route: 'b' }],
      affinity: { failoverDelay: '60s' },
      paths: [{ prefix: '/servoy-service/rest_ws/', affinity: 'none' }],
    },
    warnings: ['line 4: http://h2:8080 has status +D, disabled: imported', 'servoy-lb drain b', 'line 5: http://h3:8080 is left out (status +H, hot standby)', 'line 6: ProxySet nofailover=On'],
  },
];

t.test('import-apache: mod_jk and the newer mod_proxy rules', async (t) => {
  for (const c of cases) {
    t.test(c.desc, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'modjk-'));
      const names: string[] = [];
      for (const [name, text] of Object.entries(c.files)) {
        const path = join(dir, name);
        await import('node:fs').then((fs) => fs.mkdirSync(join(path, '..'), { recursive: true }));
        writeFileSync(path, text);
        if (!name.startsWith('conf')) names.push(path);
      }
      const result = importFiles(names);
      const { backends, ...rest } = c.want;
      if (backends !== undefined) t.same(result.config.backends, backends, 'backends exactly');
      t.match(result.config, rest);
      for (const key of c.absent ?? []) t.notOk(key in result.config, `no ${key}`);
      for (const part of c.warnings) t.ok(result.lines.some((line) => line.includes(part)), `warning: ${part}`, { found: result.lines });
      t.ok(result.lines.length <= c.warnings.length, 'no other warnings', { found: result.lines });
      for (const line of result.lines) t.notMatch(line, /\n/, 'one line each');
      t.doesNotThrow(() => parseConfigText(JSON.stringify(result.config), { baseDir: dir, env: placeholderEnv() }), 'valid config');
    });
  }
});

t.test('nothing to convert: one sentence', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'modjk-'));
  writeFileSync(join(dir, 'a.conf'), 'Listen 80\nJkMount /* lb\n');
  t.throws(() => importFiles([join(dir, 'a.conf')]), ImportInputError);
});

t.test('small readers', async (t) => {
  t.equal(httpPortForAjp(8009), 8080);
  t.equal(httpPortForAjp(8109), 8180);
  t.equal(mountPrefix('/*'), '/');
  t.equal(mountPrefix('/servoy-service/rest_ws/*'), '/servoy-service/rest_ws/');
  t.equal(mountPrefix('/app|/*'), '/app/');
  t.equal(mountPrefix('/*.jsp'), undefined);
  t.ok(looksLikeWorkersProperties('# x\nworker.list=lb\n'));
  t.notOk(looksLikeWorkersProperties('Listen 80\nJkMount /* lb\n'));
  const w = parseWorkers('worker.lb.balance_workers=a\nworker.lb.balance_workers=b\n');
  t.equal(w.workers.get('lb')?.props.get('balance_workers')?.value, 'a,b', 'repeated balance_workers add up');
});

const examples: string[][] = [
  ['examples/apache/mod_jk/httpd-servoy.conf', 'examples/apache/mod_jk/workers.properties'],
  ['examples/apache/mod_jk/workers.properties', 'examples/apache/mod_jk/httpd-servoy.conf'],
  ['examples/apache/mod_jk/httpd-servoy.conf'],
  ['examples/apache/servoy-rest.conf'],
  ['examples/apache/include/httpd.conf'],
  ['examples/apache/servoy.conf'],
  ['examples/apache/servoy-routeid.conf'],
];

t.test('round trip: the real CLI on each example, then `servoy-lb validate`', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'modjk-rt-'));
  for (const [i, files] of examples.entries()) {
    t.test(files.join(' + '), async (t) => {
      const r = await runCli(t, ['import-apache', ...files], { cwd: repoRoot });
      t.equal(r.code, 0, 'import exit 0', { stderr: r.stderr });
      for (const line of r.stderr.split('\n').filter((l) => l !== '')) t.match(line, /^import-apache: /);
      const out = join(dir, `lb-${i}.json`);
      // validate reads the TLS files start would read: the example's certificate paths
      // (/etc/pki/...) are not on this machine, so the imported listen.tls points at a test pair.
      const imported = JSON.parse(r.stdout) as { listen?: { tls?: { cert: string; key: string } } };
      if (imported.listen?.tls !== undefined) {
        const pair = await makeCert(dir, 'localhost', `tls-${i}-`);
        imported.listen.tls = { ...imported.listen.tls, cert: pair.certFile, key: pair.keyFile };
      }
      writeFileSync(out, JSON.stringify(imported, null, 2));
      const v = await runCli(t, ['validate', '-c', out]);
      t.same({ code: v.code, stdout: v.stdout }, { code: 0, stdout: 'config OK\n' }, 'validate exit 0', { stderr: v.stderr });
    });
  }
});
