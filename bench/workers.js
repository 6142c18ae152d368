// CPU-bound scaling of `servoy-lb start --workers N`: the same balancer with 1 and with 2
// (or more) processes sharing the port, in front of two fast backends, loaded as hard as
// the load generator goes (wrk -t1 when installed, else autocannon) with a session cookie.
// Nothing is pinned: on a small machine the load generator and the backends compete with
// the workers for the same cores, and the result says so (CPU of each part is reported).
// Interleaved rounds, medians reported.
//   node bench/workers.js [--workers 1,2] [--seconds 8] [--connections 50] [--rounds 3]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { ROOT, cpuMicros, freePort, median, servoyLbArgs, start, stop, waitQuiet, writeResult } from './lib.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2' },
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
  },
});
const counts = values.workers.split(',').map(Number);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const WRK = ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((f) => existsSync(f));
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-workers-'));

/** The balancer's processes: the primary and its workers. */
function tree(pid) {
  let children = [];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    // no children (one process)
  }
  return [pid, ...children];
}

const cpuOf = (pids) => pids.reduce((sum, pid) => sum + cpuMicros(pid), 0);

async function load(url, cookie) {
  const run = async (cmd, args) => {
    const child = await start(cmd, args, { quiet: false });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const pid = child.pid;
    const before = cpuMicros(pid);
    let after = before;
    const sampler = setInterval(() => {
      try {
        after = cpuMicros(pid);
      } catch {
        // exited
      }
    }, 200);
    await new Promise((resolve) => child.once('close', resolve));
    clearInterval(sampler);
    return { out, loadCpuMicros: after - before };
  };
  if (WRK) {
    const script = join(dir, 'report.lua');
    writeFileSync(script, `done = function(summary, latency, requests)\n io.write(string.format("JSON{\\"requests\\":%d,\\"errors\\":%d,\\"p50\\":%f,\\"p99\\":%f,\\"seconds\\":%f}\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(50)/1000, latency:percentile(99)/1000, summary.duration/1e6))\nend\n`);
    const { out, loadCpuMicros } = await run(WRK, ['-t1', `-c${connections}`, `-d${seconds}s`, '-H', `Cookie: ${cookie}`, '-s', script, url]);
    const json = JSON.parse(/JSON(\{.*\})/.exec(out)[1]);
    return { requests: json.requests, rps: Math.round(json.requests / json.seconds), p50: json.p50, p99: json.p99, errors: json.errors, loadCpuMicros };
  }
  const { out, loadCpuMicros } = await run(process.execPath, [join(ROOT, 'node_modules/autocannon/autocannon.js'), '-c', String(connections), '-d', String(seconds), '--json', '-H', `cookie=${cookie}`, url]);
  const json = JSON.parse(out.slice(out.indexOf('{')));
  return { requests: json.requests.total, rps: json.requests.average, p50: json.latency.p50, p99: json.latency.p99, errors: json.errors + json.non2xx, loadCpuMicros };
}

const backends = [];
for (const route of ['fast-a', 'fast-b']) {
  const port = await freePort();
  const child = await start(process.execPath, [join(ROOT, 'bench/fast-backend.js'), String(port), route], { ready: /listening/ });
  backends.push({ id: route, url: `http://127.0.0.1:${port}`, child });
}

const balancers = [];
for (const n of counts) {
  const port = await freePort();
  const config = join(dir, `lb-${n}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      admin: { host: '127.0.0.1', port: 0 },
      backends: backends.map((b) => ({ id: b.id, url: b.url })),
      state: { file: join(dir, `state-${n}.json`) },
      healthCheck: { path: '/', interval: '5s' },
      log: { level: 'warn', access: false },
    }),
  );
  const child = await start(process.execPath, servoyLbArgs(['start', '-c', config, '--workers', String(n), '--log-level', 'info']), { ready: /servoy-lb listening/ });
  const url = `http://127.0.0.1:${port}/`;
  const res = await request(url);
  await res.body.text();
  const set = res.headers['set-cookie'];
  const cookie = (Array.isArray(set) ? set : [set]).map((c) => c.split(';')[0]).join('; ');
  balancers.push({ workers: n, child, url, cookie, results: [] });
}

for (let round = 0; round < rounds; round++) {
  for (const b of balancers) {
    await waitQuiet();
    const pids = tree(b.child.pid);
    const backendPids = backends.map((x) => x.child.pid);
    const before = cpuOf(pids);
    const backendBefore = cpuOf(backendPids);
    const result = await load(b.url, b.cookie);
    result.lbCpuMicros = cpuOf(pids) - before;
    result.backendCpuMicros = cpuOf(backendPids) - backendBefore;
    result.lbCores = result.lbCpuMicros / (seconds * 1e6);
    result.cpuMicrosPerRequest = result.lbCpuMicros / result.requests;
    b.results.push(result);
  }
}
for (const b of balancers) await stop(b.child);
for (const b of backends) await stop(b.child);
rmSync(dir, { recursive: true, force: true });

const med = (rs, k) => median(rs.map((r) => r[k]));
const summary = {
  cpus: availableParallelism(),
  loadGenerator: WRK ? 'wrk -t1' : 'autocannon',
  seconds,
  connections,
  rounds,
  balancers: balancers.map((b) => ({
    workers: b.workers,
    rps: med(b.results, 'rps'),
    p50: med(b.results, 'p50'),
    p99: med(b.results, 'p99'),
    lbCores: Math.round(med(b.results, 'lbCores') * 100) / 100,
    loadGeneratorCores: Math.round((med(b.results, 'loadCpuMicros') / (seconds * 1e6)) * 100) / 100,
    backendCores: Math.round((med(b.results, 'backendCpuMicros') / (seconds * 1e6)) * 100) / 100,
    cpuMicrosPerRequest: Math.round(med(b.results, 'cpuMicrosPerRequest') * 10) / 10,
    errors: b.results.reduce((a, r) => a + r.errors, 0),
    rounds: b.results,
  })),
};
writeResult('workers', summary);
const fmt = (n) => (typeof n === 'number' ? (Number.isInteger(n) ? String(n) : n.toFixed(2)) : String(n));
console.log(`${summary.cpus} CPUs, nothing pinned. Load: ${summary.loadGenerator} (closed loop), ${connections} connections with a session cookie, ${seconds}s x ${rounds} interleaved rounds (medians). Two fast backends.\n`);
console.log('| --workers | req/s | p50 ms | p99 ms | balancer CPU (cores) | load generator (cores) | backends (cores) | balancer CPU µs/req | errors |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const b of summary.balancers) {
  console.log(`| ${b.workers} | ${fmt(b.rps)} | ${fmt(b.p50)} | ${fmt(b.p99)} | ${fmt(b.lbCores)} | ${fmt(b.loadGeneratorCores)} | ${fmt(b.backendCores)} | ${fmt(b.cpuMicrosPerRequest)} | ${b.errors} |`);
}
