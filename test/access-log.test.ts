/**
 * The access log (README "Access log"), end to end through the real CLI: a line per request
 * in `json` and in Apache's `combined` format, checked field by field (the combined line
 * parsed as GoAccess's COMBINED format reads it); `log.file` appended to and reopened on
 * SIGUSR1 after a logrotate-style rename, in one process and with --workers 2; an
 * unwritable log.file is one sentence; X-Request-Id kept from a trusted proxy, replaced
 * from anyone else, generated unique, seen by the backend and logged.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { request, upgrade } from 'undici';
import { countingBackend, headerMap } from './fixtures/hostile-net.js';
import { jsonLogs, lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { repoRoot, spawnBalancer } from './helpers/processes.js';

/** The config file spawnBalancer wrote last into dir. */
function lbConfigFile(dir: string): string {
  return join(dir, readdirSync(dir).filter((f) => f.endsWith('.config.json')).sort().at(-1)!);
}

/** GoAccess's COMBINED: %h %^[%d:%t %^] "%r" %s %b "%R" "%u" (with Apache's \" escapes inside quotes). */
const COMBINED = /^(\S+) - - \[(\d{2})\/(\w{3})\/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$/;

const UA = 'Mozilla/5.0 (say "hi") back\\slash';

async function get(url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await request(url + path, { headers });
  return { status: res.statusCode, body: await res.body.text() };
}

/** The X-Request-Id values the backend saw, in order. */
function seenIds(backend: Awaited<ReturnType<typeof countingBackend>>): string[] {
  return backend.seen.map((r) => headerMap(r.rawHeaders).get('x-request-id')?.join('|') ?? '');
}

t.test('json: one line per request with every field', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'a', url: backend.url }], { healthCheck: { path: '/health' } }));
  const res = await get(lb.url, '/servoy-service/rest_ws/app/x?q=1', { 'user-agent': UA, referer: 'http://example.test/from' });
  t.equal(res.status, 200);
  const line = await lb.waitForLog((l) => l.includes('"log":"access"') && l.includes('/rest_ws/app/x'), 10_000);
  const entry = JSON.parse(line) as Record<string, unknown>;
  t.equal(entry.level, 30);
  t.type(entry.time, 'number');
  t.equal(entry.client, '127.0.0.1');
  t.equal(entry.method, 'GET');
  t.equal(entry.host, new URL(lb.url).host);
  t.equal(entry.path, '/servoy-service/rest_ws/app/x?q=1');
  t.equal(entry.status, 200);
  t.equal(entry.backend, 'a');
  t.type(entry.route, 'string');
  t.type(entry.ms, 'number');
  t.ok((entry.bytesIn as number) > 50, 'bytes in: the request head');
  t.equal(entry.bytes, Buffer.byteLength(res.body), 'bytes out: the body');
  t.equal(entry.ua, UA);
  t.equal(entry.referer, 'http://example.test/from');
  t.equal(entry.outcome, 'ok');
  t.match(entry.requestId, /^[A-Za-z0-9_-]+-[0-9a-z]+$/);
  t.same(seenIds(backend), [entry.requestId], 'the backend got the logged id');
});

t.test('combined: parseable as GoAccess COMBINED, Apache escaping, - for empty', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'a', url: backend.url }], { healthCheck: { path: '/health' }, log: { format: 'combined' } }));
  const res = await get(lb.url, '/app/index.html?a=b', { 'user-agent': UA, referer: 'http://example.test/r' });
  t.equal(res.status, 200);
  await get(lb.url, '/app/noua', { 'user-agent': '' });
  const line = await lb.waitForLog((l) => l.includes('/app/index.html'), 10_000);
  const m = COMBINED.exec(line);
  t.ok(m, `parses: ${line}`);
  if (m === null) return;
  t.equal(m[1], '127.0.0.1', '%h');
  t.match(m[3], /^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)$/, '%b');
  t.equal(m[9], 'GET /app/index.html?a=b HTTP/1.1', '%r');
  t.equal(m[10], '200', '%>s');
  t.equal(m[11], String(Buffer.byteLength(res.body)), '%b');
  t.equal(m[12], 'http://example.test/r', 'referer');
  t.equal(m[13], 'Mozilla/5.0 (say \\"hi\\") back\\\\slash', 'user agent, escaped as Apache does');
  const noUa = COMBINED.exec(await lb.waitForLog((l) => l.includes('/app/noua'), 10_000));
  t.ok(noUa);
  t.equal(noUa?.[12], '-', 'no referer: -');
  t.equal(noUa?.[13], '-', 'empty user agent: -');
  t.notOk(lb.logs().some((l) => l.includes('"log":"access"')), 'no JSON access lines');
});

t.test('X-Request-Id: generated and unique; a client cannot set it', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'a', url: backend.url }], { healthCheck: { path: '/health' } }));
  await get(lb.url, '/one', { 'x-request-id': 'forged-by-client' });
  await get(lb.url, '/two');
  const ids = seenIds(backend);
  t.equal(ids.length, 2);
  t.not(ids[0], 'forged-by-client', 'an untrusted client\'s id is replaced');
  t.not(ids[0], ids[1], 'unique');
  for (const id of ids) t.match(id, /^[A-Za-z0-9_-]+-[0-9a-z]+$/, 'one id, generated');
  await waitFor(() => jsonLogs(lb.logs()).filter((l) => l.log === 'access').length >= 2, 10_000, 'two access lines');
  t.same(jsonLogs(lb.logs()).filter((l) => l.log === 'access').map((l) => l.requestId), ids, 'logged as sent');
});

t.test('X-Request-Id: kept from a trusted proxy (a token, bounded), else replaced; WebSocket handshakes too', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'a', url: backend.url }], { healthCheck: { path: '/health' }, trustedProxies: ['127.0.0.1'] }));
  await get(lb.url, '/kept', { 'x-request-id': 'edge-4711.abc' });
  await get(lb.url, '/spaces', { 'x-request-id': 'has spaces "and quotes"' });
  await get(lb.url, '/long', { 'x-request-id': 'x'.repeat(129) });
  const ws = await upgrade(`${lb.url}/websocket`, { protocol: 'websocket', headers: { 'x-request-id': 'ws-edge-1', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
  ws.socket.destroy();
  const ids = seenIds(backend);
  t.equal(ids[0], 'edge-4711.abc', 'kept');
  t.not(ids[1], 'has spaces "and quotes"', 'not a token: replaced');
  t.match(ids[1], /^[A-Za-z0-9_-]+-[0-9a-z]+$/);
  t.match(ids[2], /^[A-Za-z0-9_-]+-[0-9a-z]+$/, 'too long: replaced');
  t.equal(ids[3], 'ws-edge-1', 'the WebSocket handshake carries it upstream');
  await waitFor(() => jsonLogs(lb.logs()).some((l) => l.log === 'access' && l.websocket === true), 10_000, 'the handshake line');
  const wsLine = jsonLogs(lb.logs()).find((l) => l.log === 'access' && l.websocket === true)!;
  t.equal(wsLine.requestId, 'ws-edge-1');
  t.equal(wsLine.status, 101);
  t.equal(wsLine.backend, 'a');
});

/** Lines of a file (empty when it does not exist). */
function fileLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
}

for (const workers of [1, 2]) {
  t.test(`log.file: appended, reopened on SIGUSR1 after a rename (--workers ${workers})`, async (t) => {
    const backend = await countingBackend(t);
    t.testdir();
    const file = join(t.testdirName, 'access.log');
    const config = await lbConfig([{ id: 'a', url: backend.url }], { healthCheck: { path: '/health' }, log: { file: 'access.log' } });
    const lb = await spawnBalancer(t, config, { timeoutMs: 60_000, args: workers === 1 ? [] : ['--workers', String(workers)] });
    // Fresh connections (reset): with two workers, requests reach both.
    const hit = async (path: string): Promise<void> => {
      const res = await request(lb.url + path, { reset: true });
      await res.body.text();
    };
    const workersIn = (lines: string[]): Set<unknown> => new Set(lines.map((l) => (JSON.parse(l) as { worker?: number }).worker));
    let n = 0;
    await waitFor(async () => {
      await hit(`/before-${n++}`);
      return fileLines(file).length > 0 && workersIn(fileLines(file)).size === workers;
    }, 30_000, 'lines of every worker in log.file');
    t.notOk(lb.logs().some((l) => l.includes('"log":"access"')), 'nothing on stdout');
    renameSync(file, `${file}.1`);
    lb.proc.kill('SIGUSR1');
    await waitFor(async () => {
      await hit(`/after-${n++}`);
      return existsSync(file) && workersIn(fileLines(file)).size === workers;
    }, 30_000, 'the reopened log.file with lines of every worker');
    t.equal(await lb.stop(), 0, 'SIGUSR1 did not stop it; a clean exit (which writes out what is buffered)');
    // Lines still batched at the reopen land in the new file: none lost, none twice, none torn.
    const paths = [...fileLines(`${file}.1`), ...fileLines(file)].map((line) => (JSON.parse(line) as { path: string }).path).sort();
    t.same(paths, Array.from({ length: n }, (_, i) => (paths.includes(`/before-${i}`) ? `/before-${i}` : `/after-${i}`)).sort(), 'every request once, whole lines only');
    t.ok(fileLines(`${file}.1`).length > 0 && fileLines(file).some((l) => l.includes('/after-')), 'both files written');
    t.notOk(lb.logs().some((l) => l.includes('Debugger listening')), 'no inspector started by SIGUSR1');
  });
}

t.test('log.file in a directory that does not exist: one sentence, exit 1', async (t) => {
  const backend = await countingBackend(t);
  const config = await lbConfig([{ id: 'a', url: backend.url }], { healthCheck: { path: '/health' }, log: { file: 'no-such-dir/access.log' } });
  const err = await spawnBalancer(t, config, { timeoutMs: 60_000 }).then(() => undefined, (e: Error) => e);
  t.ok(err, 'did not start');
  t.match(err?.message ?? '', /log\.file: cannot open .*no-such-dir\/access\.log: its directory does not exist/);
  t.notMatch(err?.message ?? '', /\n\s+at /, 'no stack trace');
  const validate = spawnSync(process.execPath, [join(repoRoot, 'bin', 'servoy-lb'), 'validate', '-c', lbConfigFile(t.testdirName)], { encoding: 'utf8' });
  t.equal(validate.status, 1, 'validate refuses it too');
  t.match(validate.stderr, /^log\.file: cannot open .*no-such-dir\/access\.log: its directory does not exist\n$/);
});
