/**
 * Who may reach the admin API, and how: admin.allow (peer addresses or CIDRs; everyone
 * else gets a 403 JSON error and the connection is closed, /healthz included) and
 * admin.tls (the admin API and dashboard over HTTPS, checked at start and by `validate`,
 * the dashboard cookie Secure, the admin CLI verifying the certificate with --ca or
 * admin.tls.cert of the config file, never trusting it silently). The real CLI, real sockets.
 */
import t from 'tap';
import http from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { config, start } from './helpers/admin-env.js';
import { runAdminCli } from './helpers/admin-cli.js';
import { backendsFor, runCli, startSims } from './helpers/processes.js';
import { makeCert, skipTls } from './fixtures/tls-cert.js';

const TOKEN = 'admin-access-test-token';

/** GET over plain HTTP from a chosen local (source) address. */
function getFrom(url: string, localAddress: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { localAddress, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: JSON.parse(text) }));
    });
    req.on('error', reject);
  });
}

t.test('admin.allow: only listed peers are answered, /healthz included; others get 403 and the connection is closed', async (t) => {
  const sims = await startSims(t, ['servoy-a']);
  const lb = await start(t, config(backendsFor(sims), { admin: { host: '127.0.0.1', allow: ['127.0.0.2/32'] } }));

  for (const path of ['/healthz', '/api/backends']) {
    const refused = await getFrom(`${lb.adminUrl}${path}`, '127.0.0.1');
    t.equal(refused.status, 403, `${path} from 127.0.0.1, not in admin.allow: 403`);
    t.equal(refused.json.error.code, 'FORBIDDEN');
    t.match(refused.json.error.message, /127\.0\.0\.1.*not in admin\.allow/);
    t.equal(refused.headers.connection, 'close', 'the connection is closed');
  }
  const allowed = await getFrom(`${lb.adminUrl}/healthz`, '127.0.0.2');
  t.equal(allowed.status, 200, 'from 127.0.0.2, which is listed: 200');
  t.equal(allowed.json.ok, true);
  t.equal((await getFrom(`${lb.adminUrl}/api/backends`, '127.0.0.2')).status, 200, 'the API too');
});

t.test('admin.tls: HTTPS admin API, Secure dashboard cookie, the CLI with --ca or the config file\'s certificate', { skip: skipTls }, async (t) => {
  const dir = t.testdir();
  const cert = await makeCert(dir, 'localhost', 'admin-');
  const sims = await startSims(t, ['servoy-a']);
  const lb = await start(t, config(backendsFor(sims), { admin: { host: '127.0.0.1', token: TOKEN, allow: ['127.0.0.1'], tls: { cert: cert.certFile, key: cert.keyFile } } }));
  t.match(lb.adminUrl, /^https:\/\/127\.0\.0\.1:\d+$/, 'the admin URL is https');

  const trusting = new Agent({ connect: { ca: cert.cert } });
  t.teardown(() => trusting.close());
  const health = await request(`${lb.adminUrl}/healthz`, { dispatcher: trusting, reset: true });
  t.equal(health.statusCode, 200, 'https /healthz from a listed peer: 200');
  t.equal(((await health.body.json()) as { ok: boolean }).ok, true);

  const login = await request(`${lb.adminUrl}/login`, {
    method: 'POST',
    dispatcher: trusting,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: TOKEN }),
    reset: true,
  });
  await login.body.text();
  t.equal(login.statusCode, 200);
  t.match(String(login.headers['set-cookie']), /; Secure/, 'the dashboard cookie is Secure over TLS');

  await t.rejects(request(`${lb.adminUrl}/healthz`, { reset: true }), 'a client that does not trust the certificate cannot connect');
  const plain = await request(`${lb.adminUrl!.replace('https:', 'http:')}/healthz`, { reset: true }).then(
    (res) => res.statusCode,
    () => 'refused',
  );
  t.not(plain, 200, 'plain HTTP is not answered');

  // The real CLI, with --ca.
  const status = await runCli(t, ['status', '--admin', lb.adminUrl!, '--token', TOKEN, '--ca', cert.certFile]);
  t.equal(status.code, 0, `status --ca: exit 0 (${status.stderr.trim()})`);
  t.match(status.stdout, /servoy-a/);

  const untrusted = await runAdminCli(['status', '--admin', lb.adminUrl!, '--token', TOKEN], {});
  t.equal(untrusted.code, 2, 'without --ca: refused, not silently trusted');
  t.match(untrusted.stderr, /does not trust.*--ca FILE or SERVOY_LB_CA/);

  const viaEnv = await runAdminCli(['status', '--admin', lb.adminUrl!, '--token', TOKEN], { SERVOY_LB_CA: cert.certFile });
  t.equal(viaEnv.code, 0, `SERVOY_LB_CA works (${viaEnv.stderr.trim()})`);

  const viaConfig = await runAdminCli(['status', '--admin', lb.adminUrl!, '-c', lb.configFile], {});
  t.equal(viaConfig.code, 0, `-c FILE supplies the token and admin.tls.cert (${viaConfig.stderr.trim()})`);

  const missingCa = await runAdminCli(['status', '--admin', lb.adminUrl!, '--token', TOKEN, '--ca', join(dir, 'nope.pem')], {});
  t.equal(missingCa.code, 1, 'an unreadable --ca is a usage error');
  t.match(missingCa.stderr, /--ca: cannot read .*nope\.pem \(ENOENT\)/);
});

t.test('admin.tls: a missing or mismatched certificate is refused at start and by validate, one <json-path>: <reason> line', { skip: skipTls }, async (t) => {
  const dir = t.testdir();
  const one = await makeCert(dir, 'localhost', 'one-');
  const two = await makeCert(dir, 'localhost', 'two-');
  const write = async (name: string, tls: object): Promise<string> => {
    const file = join(dir, name);
    await writeFile(file, JSON.stringify({ backends: [{ id: 'a', url: 'http://127.0.0.1:9' }], listen: { host: '127.0.0.1', port: 0 }, admin: { port: 0, tls }, state: { file: join(dir, `${name}.state.json`) } }));
    return file;
  };
  const missing = await write('missing.json', { cert: 'no-such-cert.pem', key: one.keyFile });
  const mismatched = await write('mismatched.json', { cert: one.certFile, key: two.keyFile });

  const escaped = join(dir, 'no-such-cert.pem').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  for (const [file, reason] of [
    [missing, `admin\\.tls\\.cert: cannot read ${escaped} \\(ENOENT\\)`],
    [mismatched, 'admin\\.tls\\.key: the certificate and key cannot be used \\(.+\\)'],
  ] as const) {
    const validate = await runCli(t, ['validate', '-c', file]);
    t.equal(validate.code, 1, `validate ${file}: exit 1`);
    t.match(validate.stderr, new RegExp(`^${reason}\\n$`), 'validate prints one line naming the key and the reason');
    const started = await runCli(t, ['start', '-c', file]);
    t.equal(started.code, 1, 'start refuses');
    t.match(started.stderr, new RegExp(`^servoy-lb: ${reason}$`, 'm'), 'start names the key and the reason');
    t.notMatch(started.stderr, /\n\s+at /, 'no stack trace');
  }
});
