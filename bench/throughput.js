// Proxy throughput and CPU per request, servoy-lb (raw-socket plane, and the last release on node:http) against
// peers, on one machine: a fast backend and the load generator pinned to CPU 1, each proxy in
// turn pinned to CPU 0 (taskset). Peers: a naive Node proxy on undici (always), HAProxy with
// cookie insert and nginx (when installed: apt-get install haproxy nginx-light wrk). Load: wrk
// when installed (lighter), else autocannon. Two cases, each with its ratio to HAProxy's CPU:
// `sticky` (every request carries the session cookie) and `new-session` (no cookie: every
// request starts a session; the backend hands out a new JSESSIONID, servoy-lb and HAProxy
// insert their cookie). Interleaved rounds, medians reported.
// Latency at a fixed rate is bench/latency.js (autocannon -R is not constant-rate).
//   node bench/throughput.js [--seconds 8] [--connections 50] [--rounds 3]
//        [--plane raw,release]            this checkout and/or the last release (node:http, built from BASELINE_REF)
//        [--case sticky,new-session]   which cases
//        [--lb-variant "semi1=--max-semi-space-size=1" ...]  one more servoy-lb with these node flags
//        [--only servoy-lb,haproxy]   measure only these (keys: servoy-lb*, naive, haproxy, nginx, direct)
//        [--haproxy-log]              add HAProxy with an httplog line per request to stdout (servoy-lb logs each request too)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { closedLoad, loadGenerator } from './closed-loop.js';
import { ROOT, cpuMicros, freePort, median, memoryKiB, start, stop, waitQuiet, writeResult } from './lib.js';
import { parsePlanes, sessionCookies, startProxies } from './proxies.js';

const CASES = ['sticky', 'new-session'];
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
    plane: { type: 'string' },
    case: { type: 'string', default: CASES.join(',') },
    'lb-variant': { type: 'string', multiple: true, default: [] },
    only: { type: 'string' },
    'haproxy-log': { type: 'boolean', default: false },
    name: { type: 'string', default: 'throughput' },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const rounds = Number(values.rounds);
const cases = values.case.split(',').filter(Boolean);
if (cases.length === 0 || cases.some((c) => !CASES.includes(c))) throw new Error(`--case takes ${CASES.join(', ')}, not ${values.case}`);
if (loadGenerator === 'autocannon') console.log('wrk not installed (apt-get install wrk): load from autocannon, which costs more CPU on the shared core');
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-bench-'));

const backendPort = await freePort();
const backend = await start(process.execPath, [join(ROOT, 'bench/fast-backend.js'), String(backendPort), 'fast'], { cpu: 1, ready: /listening/ });
const backendUrl = `http://127.0.0.1:${backendPort}`;

const only = values.only?.split(',');
const wanted = (key) => only === undefined || only.some((o) => key === o || key.startsWith(`${o} `));
const proxies = await startProxies({ backendPort, dir, planes: parsePlanes(values.plane), lbVariants: values['lb-variant'], only: wanted, haproxyLog: values['haproxy-log'] });
await sessionCookies(proxies);
const direct = { name: 'direct (no proxy)', key: 'direct', url: `${backendUrl}/`, cookie: 'JSESSIONID=0123456789abcdef.fast' };
const targets = [...(wanted('direct') ? [direct] : []), ...proxies];
for (const p of targets) p.results = Object.fromEntries(cases.map((c) => [c, []]));
for (let round = 0; round < rounds; round++) {
  for (const c of cases) {
    for (const p of targets) {
      await waitQuiet();
      const before = p.pid === undefined ? 0 : cpuMicros(p.pid);
      const result = await closedLoad({ url: p.url, cookie: c === 'sticky' ? p.cookie : undefined, seconds, connections, dir });
      if (p.pid !== undefined) result.cpuMicrosPerRequest = (cpuMicros(p.pid) - before) / result.requests;
      p.results[c].push(result);
    }
  }
}
for (const p of proxies) p.rssKiB = memoryKiB(p.pid).rss;
for (const p of proxies) await stop(p.child);
await stop(backend);
rmSync(dir, { recursive: true, force: true });

const med = (rs, k) => (rs[0]?.[k] === undefined ? undefined : median(rs.map((r) => r[k])));
const summary = {
  loadGenerator,
  seconds,
  connections,
  rounds,
  cases: Object.fromEntries(
    cases.map((c) => {
      const rows = targets.map((p) => ({
        name: p.name,
        key: p.key,
        rps: med(p.results[c], 'rps'),
        p50: med(p.results[c], 'p50'),
        p99: med(p.results[c], 'p99'),
        cpuMicrosPerRequest: p.pid === undefined ? undefined : Math.round(med(p.results[c], 'cpuMicrosPerRequest') * 10) / 10,
        errors: p.results[c].reduce((a, r) => a + r.errors, 0),
        rssKiB: p.rssKiB,
        rounds: p.results[c],
      }));
      const haproxy = rows.find((r) => r.key === 'haproxy');
      for (const r of rows) if (haproxy !== undefined && r.cpuMicrosPerRequest !== undefined) r.cpuVsHaproxy = Math.round((r.cpuMicrosPerRequest / haproxy.cpuMicrosPerRequest) * 100) / 100;
      return [c, rows];
    }),
  ),
};
writeResult(values.name, summary);
const fmt = (n) => (n === undefined ? '–' : Number.isInteger(n) ? String(n) : n.toFixed(2));
console.log(`Load: ${loadGenerator} (closed loop, as fast as it goes), ${connections} connections, ${seconds}s x ${rounds} interleaved rounds (medians; each run waits up to 10 s for an 85%-idle machine). Proxy pinned to CPU 0, backend and load generator to CPU 1. sticky: every request carries the session cookie; new-session: none does, so each starts a session. Latency at a fixed rate: bench/latency.js.`);
for (const [c, rows] of Object.entries(summary.cases)) {
  console.log(`\n${c}:\n\n| proxy | req/s | p50 ms | p99 ms | CPU µs/req | CPU / HAProxy | RSS MiB | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`);
  for (const r of rows) console.log(`| ${r.name} | ${fmt(r.rps)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.cpuMicrosPerRequest)} | ${r.cpuVsHaproxy === undefined ? '–' : `${r.cpuVsHaproxy.toFixed(2)}x`} | ${r.rssKiB === undefined ? '–' : (r.rssKiB / 1024).toFixed(0)} | ${r.errors} |`);
}
