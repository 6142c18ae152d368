// Proxy throughput and CPU per request, servoy-lb against peers, on one machine:
// a fast backend and the load generator pinned to CPU 1, each proxy in turn pinned to
// CPU 0 (taskset). Peers: a naive Node proxy on undici (always), HAProxy with cookie
// insert and nginx (when installed: apt-get install haproxy nginx-light wrk). Load: wrk
// when installed (lighter), else autocannon. Interleaved rounds, medians reported.
// Latency at a fixed rate is bench/latency.js (autocannon -R is not constant-rate).
//   node bench/throughput.js [--seconds 8] [--connections 50] [--rounds 3]
//        [--lb-variant "semi1=--max-semi-space-size=1" ...]  one more servoy-lb with these node flags
//        [--only servoy-lb,haproxy]   measure only these (keys: servoy-lb*, naive, haproxy, nginx, direct)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, cpuMicros, freePort, median, memoryKiB, start, stop, waitQuiet, writeResult } from './lib.js';
import { sessionCookies, startProxies, which } from './proxies.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
    'lb-variant': { type: 'string', multiple: true, default: [] },
    only: { type: 'string' },
    name: { type: 'string', default: 'throughput' },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const WRK = which('wrk');
if (!WRK) console.log('wrk not installed (apt-get install wrk): load from autocannon, which costs more CPU on the shared core');
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-bench-'));

async function run(cmd, args) {
  const child = await start(cmd, args, { cpu: 1, quiet: false });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  await new Promise((resolve) => child.once('close', resolve));
  return out;
}

/** load runs the load generator for `seconds` against url with a cookie; returns requests, rps, p50, p99 (ms). */
async function load(url, cookie) {
  if (WRK) {
    const script = join(dir, 'report.lua');
    writeFileSync(script, `done = function(summary, latency, requests)\n io.write(string.format("JSON{\\"requests\\":%d,\\"errors\\":%d,\\"p50\\":%f,\\"p99\\":%f,\\"seconds\\":%f}\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(50)/1000, latency:percentile(99)/1000, summary.duration/1e6))\nend\n`);
    const out = await run(WRK, ['-t1', `-c${connections}`, `-d${seconds}s`, '-H', `Cookie: ${cookie}`, '-s', script, url]);
    const json = JSON.parse(/JSON(\{.*\})/.exec(out)[1]);
    return { requests: json.requests, rps: Math.round(json.requests / json.seconds), p50: json.p50, p99: json.p99, errors: json.errors };
  }
  const out = await run(process.execPath, [join(ROOT, 'node_modules/autocannon/autocannon.js'), '-c', String(connections), '-d', String(seconds), '--json', '-H', `cookie=${cookie}`, url]);
  const json = JSON.parse(out.slice(out.indexOf('{')));
  return { requests: json.requests.total, rps: json.requests.average, p50: json.latency.p50, p99: json.latency.p99, errors: json.errors + json.non2xx };
}

const backendPort = await freePort();
const backend = await start(process.execPath, [join(ROOT, 'bench/fast-backend.js'), String(backendPort), 'fast'], { cpu: 1, ready: /listening/ });
const backendUrl = `http://127.0.0.1:${backendPort}`;

const only = values.only?.split(',');
const wanted = (key) => only === undefined || only.some((o) => key === o || key.startsWith(`${o} `));
const started = await startProxies({ backendPort, dir, lbVariants: values['lb-variant'] });
for (const p of started) if (!wanted(p.key)) await stop(p.child);
const proxies = started.filter((p) => wanted(p.key));
await sessionCookies(proxies);
for (const p of proxies) p.results = [];
const direct = [];
for (let round = 0; round < rounds; round++) {
  if (wanted('direct')) {
    await waitQuiet();
    direct.push(await load(`${backendUrl}/`, 'JSESSIONID=0123456789abcdef.fast'));
  }
  for (const p of proxies) {
    await waitQuiet();
    const before = cpuMicros(p.pid);
    const result = await load(p.url, p.cookie);
    result.cpuMicrosPerRequest = (cpuMicros(p.pid) - before) / result.requests;
    p.results.push(result);
  }
}
for (const p of proxies) p.rssKiB = memoryKiB(p.pid).rss;
for (const p of proxies) await stop(p.child);
await stop(backend);
rmSync(dir, { recursive: true, force: true });

const med = (rs, k) => median(rs.map((r) => r[k]));
const summary = {
  loadGenerator: WRK ? 'wrk -t1' : 'autocannon',
  seconds,
  connections,
  rounds,
  direct: { rps: med(direct, 'rps'), p50: med(direct, 'p50'), p99: med(direct, 'p99') },
  proxies: proxies.map((p) => ({
    name: p.name,
    rps: med(p.results, 'rps'),
    p50: med(p.results, 'p50'),
    p99: med(p.results, 'p99'),
    cpuMicrosPerRequest: Math.round(med(p.results, 'cpuMicrosPerRequest') * 10) / 10,
    errors: p.results.reduce((a, r) => a + r.errors, 0),
    rssKiB: p.rssKiB,
    rounds: p.results,
  })),
};
writeResult(values.name, summary);
const fmt = (n) => (typeof n === 'number' ? (Number.isInteger(n) ? String(n) : n.toFixed(2)) : String(n));
console.log(`Load: ${summary.loadGenerator} (closed loop, as fast as it goes), ${connections} connections, ${seconds}s x ${rounds} interleaved rounds (medians; each run waits up to 10 s for an 85%-idle machine). Proxy pinned to CPU 0, backend and load generator to CPU 1. Latency at a fixed rate: bench/latency.js.\n`);
console.log(`| proxy | req/s | p50 ms | p99 ms | CPU µs/req | RSS MiB | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |`);
if (direct.length > 0) console.log(`| direct (no proxy) | ${fmt(summary.direct.rps)} | ${fmt(summary.direct.p50)} | ${fmt(summary.direct.p99)} | – | – | – |`);
for (const p of summary.proxies) console.log(`| ${p.name} | ${fmt(p.rps)} | ${fmt(p.p50)} | ${fmt(p.p99)} | ${fmt(p.cpuMicrosPerRequest)} | ${(p.rssKiB / 1024).toFixed(0)} | ${p.errors} |`);
