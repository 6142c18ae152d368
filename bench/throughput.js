// Proxy throughput and CPU per request, servoy-lb against peers, on one machine:
// a fast backend and the load generator pinned to CPU 1, each proxy in turn pinned to
// CPU 0 (taskset). Peers: a naive Node proxy on undici (always), HAProxy with cookie
// insert and nginx (when installed: apt-get install haproxy nginx-light wrk). Load: wrk
// when installed (lighter), else autocannon. Interleaved rounds, medians reported.
// Also p99 at a fixed rate (autocannon -R) for each proxy.
//   node bench/throughput.js [--seconds 8] [--connections 50] [--rounds 3] [--rate 5000]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, cpuMicros, freePort, median, memoryKiB, start, stop, writeResult } from './lib.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '8' }, connections: { type: 'string', default: '50' }, rounds: { type: 'string', default: '3' }, rate: { type: 'string', default: '5000' } },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const rate = Number(values.rate);
const which = (cmd) => ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => join(d, cmd)).find((p) => existsSync(p));
const WRK = which('wrk');
const HAPROXY = which('haproxy');
const NGINX = which('nginx');
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

/** fixedRate measures latency at a fixed request rate (autocannon -R). */
async function fixedRate(url, cookie) {
  const out = await run(process.execPath, [join(ROOT, 'node_modules/autocannon/autocannon.js'), '-c', '50', '-R', String(rate), '-d', String(seconds), '--json', '-H', `cookie=${cookie}`, url]);
  const json = JSON.parse(out.slice(out.indexOf('{')));
  return { p50: json.latency.p50, p99: json.latency.p99 };
}

const backendPort = await freePort();
const backend = await start(process.execPath, [join(ROOT, 'bench/fast-backend.js'), String(backendPort), 'fast'], { cpu: 1, ready: /listening/ });
const backendUrl = `http://127.0.0.1:${backendPort}`;

const proxies = [];
{
  const port = await freePort();
  const config = join(dir, 'lb.config.json');
  writeFileSync(
    config,
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      admin: { port: await freePort() },
      backends: [{ id: 'fast', url: backendUrl }],
      state: { file: join(dir, 'state.json') },
      log: { level: 'info', access: true },
      metrics: { enabled: true },
    }),
  );
  const child = await start(process.execPath, [join(ROOT, 'bin/servoy-lb'), 'start', '-c', config], { cpu: 0, ready: /servoy-lb listening/ });
  proxies.push({ name: 'servoy-lb (sticky cookie, access log, metrics)', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
}
{
  const port = await freePort();
  const child = await start(process.execPath, [join(ROOT, 'bench/naive-proxy.js'), String(port), backendUrl], { cpu: 0, ready: /listening/ });
  proxies.push({ name: 'naive Node proxy on undici', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
}
if (HAPROXY) {
  const port = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\nfrontend fe\n  bind 127.0.0.1:${port}\n  default_backend be\nbackend be\n  cookie SERVOYLB insert indirect nocache\n  http-reuse always\n  server fast 127.0.0.1:${backendPort} cookie fast\n`,
  );
  const child = await start(HAPROXY, ['-db', '-f', cfg], { cpu: 0 });
  await new Promise((r) => setTimeout(r, 500));
  proxies.push({ name: 'HAProxy (cookie insert)', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
} else console.log('HAProxy not installed (apt-get install haproxy): skipped');
if (NGINX) {
  const port = await freePort();
  const cfg = join(dir, 'nginx.conf');
  writeFileSync(
    cfg,
    `daemon off;\nmaster_process off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log /dev/null;\nevents { worker_connections 10000; }\nhttp {\n  access_log off;\n  client_body_temp_path ${dir};\n  proxy_temp_path ${dir};\n  fastcgi_temp_path ${dir};\n  uwsgi_temp_path ${dir};\n  scgi_temp_path ${dir};\n  upstream be { server 127.0.0.1:${backendPort}; keepalive 64; }\n  server {\n    listen 127.0.0.1:${port};\n    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; }\n  }\n}\n`,
  );
  const child = await start(NGINX, ['-c', cfg, '-p', dir], { cpu: 0 });
  await new Promise((r) => setTimeout(r, 500));
  proxies.push({ name: 'nginx', url: `http://127.0.0.1:${port}/`, pid: child.pid, child });
} else console.log('nginx not installed (apt-get install nginx-light): skipped');

// A session cookie for each proxy (servoy-lb and HAProxy insert theirs on the first answer).
for (const p of proxies) {
  const res = await fetch(p.url);
  await res.text();
  p.cookie = [...res.headers.getSetCookie().map((c) => c.split(';')[0]), 'JSESSIONID=0123456789abcdef.fast'].join('; ');
  p.results = [];
}
const direct = [];
for (let round = 0; round < rounds; round++) {
  direct.push(await load(`${backendUrl}/`, 'JSESSIONID=0123456789abcdef.fast'));
  for (const p of proxies) {
    const before = cpuMicros(p.pid);
    const result = await load(p.url, p.cookie);
    result.cpuMicrosPerRequest = (cpuMicros(p.pid) - before) / result.requests;
    p.results.push(result);
  }
}
for (const p of proxies) {
  p.fixed = await fixedRate(p.url, p.cookie);
  p.rssKiB = memoryKiB(p.pid).rss;
}
for (const p of proxies) await stop(p.child);
await stop(backend);

const med = (rs, k) => median(rs.map((r) => r[k]));
const summary = {
  loadGenerator: WRK ? 'wrk -t1' : 'autocannon',
  seconds,
  connections,
  rounds,
  rate,
  direct: { rps: med(direct, 'rps'), p50: med(direct, 'p50'), p99: med(direct, 'p99') },
  proxies: proxies.map((p) => ({
    name: p.name,
    rps: med(p.results, 'rps'),
    p50: med(p.results, 'p50'),
    p99: med(p.results, 'p99'),
    cpuMicrosPerRequest: Math.round(med(p.results, 'cpuMicrosPerRequest') * 10) / 10,
    errors: p.results.reduce((a, r) => a + r.errors, 0),
    fixedRateP50: p.fixed.p50,
    fixedRateP99: p.fixed.p99,
    rssKiB: p.rssKiB,
    rounds: p.results,
  })),
};
writeResult('throughput', summary);
const fmt = (n) => (typeof n === 'number' ? (Number.isInteger(n) ? String(n) : n.toFixed(2)) : String(n));
console.log(`Load: ${summary.loadGenerator}, ${connections} connections, ${seconds}s x ${rounds} interleaved rounds (medians); fixed rate ${rate} req/s.\n`);
console.log(`| proxy | req/s | p50 ms | p99 ms | CPU µs/req | p99 at ${rate}/s ms | RSS MiB | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`);
console.log(`| direct (no proxy) | ${fmt(summary.direct.rps)} | ${fmt(summary.direct.p50)} | ${fmt(summary.direct.p99)} | – | – | – | – |`);
for (const p of summary.proxies) console.log(`| ${p.name} | ${fmt(p.rps)} | ${fmt(p.p50)} | ${fmt(p.p99)} | ${fmt(p.cpuMicrosPerRequest)} | ${fmt(p.fixedRateP99)} | ${(p.rssKiB / 1024).toFixed(0)} | ${p.errors} |`);
