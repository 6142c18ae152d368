// Proxy CPU per request: servoy-lb (sticky cookie routing, access log on) in front of a
// fast backend, loaded by autocannon. The balancer is pinned to CPU 0, the backend and
// the load generator to CPU 1 (when taskset exists). Reports req/s, p50/p99 latency and
// the balancer's CPU microseconds per request (from /proc/PID/stat), direct vs proxied.
//   node bench/proxy-cpu.js [--seconds 10] [--connections 50] [--rounds 3]
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, cpuMicros, freePort, median, memoryKiB, start, stop, writeResult } from './lib.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' }, rounds: { type: 'string', default: '3' } } });
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);

async function autocannon(url, headers) {
  const args = [join(ROOT, 'node_modules/autocannon/autocannon.js'), '-c', String(connections), '-d', String(seconds), '--json'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}=${v}`);
  args.push(url);
  const child = await start(process.execPath, args, { cpu: 1, quiet: false });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  await new Promise((resolve) => child.once('exit', resolve));
  const json = JSON.parse(out);
  return { requests: json.requests.total, rps: json.requests.average, p50: json.latency.p50, p99: json.latency.p99, errors: json.errors + json.non2xx };
}

const backendPort = await freePort();
const lbPort = await freePort();
const backend = await start(process.execPath, [join(ROOT, 'bench/fast-backend.js'), String(backendPort), 'fast'], { cpu: 1, ready: /listening/ });
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-bench-'));
const configFile = join(dir, 'lb.config.json');
writeFileSync(
  configFile,
  JSON.stringify({
    listen: { host: '127.0.0.1', port: lbPort },
    admin: { port: await freePort() },
    backends: [{ id: 'fast', url: `http://127.0.0.1:${backendPort}` }],
    state: { file: join(dir, 'state.json') },
    log: { level: 'info', access: process.env.ACCESS !== '0' },
  }),
);
const lb = await start(process.execPath, [join(ROOT, 'bin/servoy-lb'), 'start', '-c', configFile], { cpu: 0, ready: /listening/ });
const lbUrl = `http://127.0.0.1:${lbPort}/`;
const naivePort = await freePort();
const naive = await start(process.execPath, [join(ROOT, 'bench/naive-proxy.js'), String(naivePort), `http://127.0.0.1:${backendPort}`], { cpu: 0, ready: /listening/ });
const first = await fetch(lbUrl);
const cookie = first.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
await first.text();

async function measured(pid, url) {
  const before = cpuMicros(pid);
  const result = await autocannon(url, { cookie });
  result.cpuMicrosPerRequest = (cpuMicros(pid) - before) / result.requests;
  return result;
}

// Interleaved rounds: direct, naive peer, servoy-lb, so drift of the machine hits all alike.
const direct = [];
const naives = [];
const proxied = [];
for (let round = 0; round < rounds; round++) {
  direct.push(await autocannon(`http://127.0.0.1:${backendPort}/`, { cookie }));
  naives.push(await measured(naive.pid, `http://127.0.0.1:${naivePort}/`));
  proxied.push(await measured(lb.pid, lbUrl));
}
const memory = memoryKiB(lb.pid);
await stop(lb);
await stop(naive);
await stop(backend);

const summary = {
  seconds,
  connections,
  rounds,
  direct: { rps: median(direct.map((r) => r.rps)), p50: median(direct.map((r) => r.p50)), p99: median(direct.map((r) => r.p99)) },
  naiveUndici: {
    rps: median(naives.map((r) => r.rps)),
    p50: median(naives.map((r) => r.p50)),
    p99: median(naives.map((r) => r.p99)),
    cpuMicrosPerRequest: Math.round(median(naives.map((r) => r.cpuMicrosPerRequest)) * 10) / 10,
  },
  servoyLb: {
    rps: median(proxied.map((r) => r.rps)),
    p50: median(proxied.map((r) => r.p50)),
    p99: median(proxied.map((r) => r.p99)),
    cpuMicrosPerRequest: Math.round(median(proxied.map((r) => r.cpuMicrosPerRequest)) * 10) / 10,
    errors: proxied.reduce((a, r) => a + r.errors, 0),
    rssKiB: memory.rss,
    peakRssKiB: memory.peak,
  },
  rounds_raw: { direct, naives, proxied },
};
writeResult('proxy-cpu', summary);
console.log(`| target | req/s | p50 ms | p99 ms | proxy CPU µs/req | errors |
| --- | ---: | ---: | ---: | ---: | ---: |
| direct | ${summary.direct.rps} | ${summary.direct.p50} | ${summary.direct.p99} | – | – |
| naive undici proxy | ${summary.naiveUndici.rps} | ${summary.naiveUndici.p50} | ${summary.naiveUndici.p99} | ${summary.naiveUndici.cpuMicrosPerRequest} | – |
| servoy-lb | ${summary.servoyLb.rps} | ${summary.servoyLb.p50} | ${summary.servoyLb.p99} | ${summary.servoyLb.cpuMicrosPerRequest} | ${summary.servoyLb.errors} |`);
