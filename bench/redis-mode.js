// CPU per request on the sticky path, Redis mode (state.redis) against file mode, in the
// same run: the same balancer in front of two fast backends, loaded by autocannon (or wrk
// -t1 when installed) with a session cookie (session mode) or a known tenant (partition
// mode). The target (issue 12): no Redis round trip on the request path of an existing
// session or a known tenant, so the CPU per request is the same and Redis sees only the
// instance's timers (session counts every second, resyncs) during the load: the commands
// Redis processed while loaded are reported next to the requests.
// A redis-server of its own on a free port (never the system one). Interleaved rounds, medians.
//   node bench/redis-mode.js [--seconds 5] [--connections 50] [--rounds 3]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { ROOT, cpuMicros, freePort, median, servoyLbArgs, start, stop, waitQuiet, writeResult } from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const WRK = ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((f) => existsSync(f));
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-redis-mode-'));

/** Commands Redis has processed so far (INFO stats, through redis-cli). */
function redisCommands(port) {
  const info = execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'INFO', 'stats'], { encoding: 'utf8' });
  return Number(/total_commands_processed:(\d+)/.exec(info)[1]);
}

async function load(url, headers) {
  const pick = WRK
    ? [WRK, ['-t1', `-c${connections}`, `-d${seconds}s`, ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url]]
    : [process.execPath, [join(ROOT, 'node_modules/autocannon/autocannon.js'), '-c', String(connections), '-d', String(seconds), '--json', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}=${v}`]), url]];
  const child = await start(pick[0], pick[1], { quiet: false });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  await new Promise((resolve) => child.once('close', resolve));
  if (WRK) {
    const requests = Number(/(\d+) requests in/.exec(out)[1]);
    const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    return { requests, rps: Math.round(requests / seconds), errors };
  }
  const json = JSON.parse(out.slice(out.indexOf('{')));
  return { requests: json.requests.total, rps: json.requests.average, errors: json.errors + json.non2xx };
}

const redisPort = await freePort();
const redis = await start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { ready: /Ready to accept connections/ });

const backends = [];
for (const route of ['fast-a', 'fast-b']) {
  const port = await freePort();
  const child = await start(process.execPath, [join(ROOT, 'bench/fast-backend.js'), String(port), route], { ready: /listening/ });
  backends.push({ id: route, url: `http://127.0.0.1:${port}`, route, child });
}

const balancers = [];
for (const affinity of ['session', 'partition']) {
  for (const mode of ['file', 'redis']) {
    const port = await freePort();
    const config = join(dir, `lb-${affinity}-${mode}.json`);
    const stateFile = join(dir, `state-${affinity}-${mode}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        listen: { host: '127.0.0.1', port },
        admin: { host: '127.0.0.1', port: 0 },
        backends: backends.map((b) => ({ id: b.id, url: b.url, route: b.route })),
        state: mode === 'file' ? { file: stateFile } : { file: stateFile, redis: { url: `redis://127.0.0.1:${redisPort}`, pool: affinity } },
        ...(affinity === 'partition' ? { affinity: { mode: 'partition', partitionKey: { from: 'header', name: 'X-Tenant' } } } : {}),
        healthCheck: { path: '/', interval: '5s' },
        log: { level: 'warn', access: false },
      }),
    );
    const child = await start(process.execPath, servoyLbArgs(['start', '-c', config, '--log-level', 'info']), { ready: /servoy-lb listening/ });
    const url = `http://127.0.0.1:${port}/`;
    // The first request: a new session (its cookies), or the tenant's assignment.
    const headers = affinity === 'partition' ? { 'x-tenant': 'acme' } : {};
    const res = await request(url, { headers });
    await res.body.text();
    if (affinity === 'session') {
      const set = res.headers['set-cookie'];
      headers.cookie = (Array.isArray(set) ? set : [set]).map((c) => c.split(';')[0]).join('; ');
    }
    balancers.push({ affinity, mode, child, url, headers, results: [] });
  }
}

for (let round = 0; round < rounds; round++) {
  for (const b of balancers) {
    await waitQuiet();
    const before = cpuMicros(b.child.pid);
    const commandsBefore = redisCommands(redisPort);
    const result = await load(b.url, b.headers);
    result.lbCpuMicros = cpuMicros(b.child.pid) - before;
    // Every instance's timers, not only this one's: an upper bound on what this load cost Redis.
    result.redisCommands = redisCommands(redisPort) - commandsBefore;
    result.cpuMicrosPerRequest = result.lbCpuMicros / result.requests;
    b.results.push(result);
  }
}
for (const b of balancers) await stop(b.child);
for (const b of backends) await stop(b.child);
await stop(redis);
rmSync(dir, { recursive: true, force: true });

const med = (rs, k) => median(rs.map((r) => r[k]));
const summary = {
  cpus: availableParallelism(),
  loadGenerator: WRK ? 'wrk -t1' : 'autocannon',
  seconds,
  connections,
  rounds,
  balancers: balancers.map((b) => ({
    affinity: b.affinity,
    state: b.mode,
    rps: med(b.results, 'rps'),
    cpuMicrosPerRequest: Math.round(med(b.results, 'cpuMicrosPerRequest') * 10) / 10,
    redisCommandsPerRound: med(b.results, 'redisCommands'),
    requestsPerRound: med(b.results, 'requests'),
    errors: b.results.reduce((a, r) => a + r.errors, 0),
    rounds: b.results,
  })),
};
writeResult('redis-mode', summary);
console.log(`${summary.cpus} CPUs, nothing pinned. Load: ${summary.loadGenerator} (closed loop), ${connections} connections, ${seconds}s x ${rounds} interleaved rounds (medians). Two fast backends, one local redis-server.\n`);
console.log('| affinity | state | req/s | balancer CPU µs/req | requests per round | Redis commands per round (all instances) | errors |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (const b of summary.balancers) console.log(`| ${b.affinity} (${b.affinity === 'session' ? 'existing session' : 'known tenant'}) | ${b.state} | ${Math.round(b.rps)} | ${b.cpuMicrosPerRequest} | ${b.requestsPerRound} | ${b.redisCommandsPerRound} | ${b.errors} |`);
