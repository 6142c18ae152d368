// Latency at a fixed request rate, servoy-lb (raw-socket plane, and the last release on node:http) against the
// naive undici proxy, HAProxy and nginx, in the same run, interleaved (each round runs every
// proxy once, in a rotating order; medians over rounds reported), with each percentile's
// ratio to HAProxy's. The rate is half of HAProxy's maximum (the issue's target: p99 at 50 %
// of HAProxy's max rate <= 1.5x HAProxy's p99), measured first in the same run with the
// closed-loop generator of bench/throughput.js (sticky cookie), unless --rate gives it.
// Load: bench/rate-client.js, an open-loop constant-rate generator that times queued
// requests from their scheduled time (wrk2's method; wrk is closed-loop and autocannon -R
// sends each second's share in a burst, so neither measures this).
// Setup: each proxy pinned to CPU 0 (taskset); the fast backend and the generator share
// CPU 1. The generator is a Node process too, so its own pauses show up in every row alike.
//   node bench/latency.js [--rate N | --rate-share 0.5 --probe-seconds 5] [--seconds 10] [--rounds 3] [--connections 64]
//        [--plane raw,release]                         this checkout and/or the last release (node:http, built from BASELINE_REF)
//        [--lb-flag=--max-semi-space-size=1 ...]   extra node flags for servoy-lb
//        [--lb-variant "semi1=--max-semi-space-size=1" ...]  one more servoy-lb with these flags
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { closedLoad, loadGenerator } from './closed-loop.js';
import { ROOT, cpuMicros, freePort, median, memoryKiB, runJsonClient, start, stop, waitQuiet, writeResult } from './lib.js';
import { parsePlanes, sessionCookies, startProxies } from './proxies.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string' },
    'rate-share': { type: 'string', default: '0.5' },
    'probe-seconds': { type: 'string', default: '5' },
    plane: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
    'lb-flag': { type: 'string', multiple: true, default: [] },
    'lb-variant': { type: 'string', multiple: true, default: [] },
    name: { type: 'string', default: 'latency' },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-latency-'));

/** fixedRate runs the generator (pinned to CPU 1) for `secs` and returns its JSON. */
function fixedRate(url, cookie, secs) {
  return runJsonClient([join(ROOT, 'bench/rate-client.js'), url, String(rate), String(secs), values.connections, cookie], (secs + 30) * 1000);
}

const backendPort = await freePort();
const backend = await start(process.execPath, [join(ROOT, 'bench/fast-backend.js'), String(backendPort), 'fast'], { cpu: 1, ready: /listening/ });
const proxies = await startProxies({ backendPort, dir, planes: parsePlanes(values.plane), lbArgs: values['lb-flag'], lbVariants: values['lb-variant'] });
await sessionCookies(proxies);
const haproxyProxy = proxies.find((p) => p.key === 'haproxy');
if (values.rate === undefined && haproxyProxy === undefined) throw new Error('HAProxy is not installed, so its maximum rate cannot be measured: give --rate');
/** HAProxy's maximum rate (closed loop, sticky cookie, 50 connections) when no --rate is given. */
let haproxyMaxRps;
if (values.rate === undefined) {
  await closedLoad({ url: haproxyProxy.url, cookie: haproxyProxy.cookie, seconds: 2, connections: 50, dir }); // warm-up
  await waitQuiet();
  haproxyMaxRps = (await closedLoad({ url: haproxyProxy.url, cookie: haproxyProxy.cookie, seconds: Number(values['probe-seconds']), connections: 50, dir })).rps;
}
const rate = values.rate === undefined ? Math.round(haproxyMaxRps * Number(values['rate-share'])) : Number(values.rate);
if (!(rate > 0)) throw new Error(`the rate must be a positive number of requests per second, not ${rate}`);
const direct = { name: 'direct (no proxy)', key: 'direct', url: `http://127.0.0.1:${backendPort}/`, cookie: 'JSESSIONID=0123456789abcdef.fast' };
const all = [direct, ...proxies];
for (const p of all) {
  p.results = [];
  await fixedRate(p.url, p.cookie, 2); // warm-up (JIT, connection pools)
}
const deadline = Date.now() + 12 * 60_000;
for (let round = 0; round < rounds && Date.now() < deadline; round++) {
  const order = all.map((_, i) => all[(i + round) % all.length]);
  for (const p of order) {
    const idle = await waitQuiet();
    const before = p.pid === undefined ? 0 : cpuMicros(p.pid);
    const r = await fixedRate(p.url, p.cookie, seconds);
    if (p.pid !== undefined && r.completed > 0) r.cpuMicrosPerRequest = (cpuMicros(p.pid) - before) / r.completed;
    r.idleBefore = Math.round(idle * 100) / 100;
    p.results.push(r);
  }
}
for (const p of proxies) p.rssKiB = memoryKiB(p.pid).rss;
for (const p of proxies) await stop(p.child);
await stop(backend);
rmSync(dir, { recursive: true, force: true });

const keys = ['p50', 'p90', 'p99', 'p999', 'max', 'cpuMicrosPerRequest'];
const rows = all.map((p) => {
  const ok = p.results.filter((r) => r.error === undefined && r.completed > 0);
  const row = { name: p.name, key: p.key, rounds: p.results, errors: p.results.reduce((a, r) => a + (r.error ? 1 : r.errors + r.non2xx + r.unanswered), 0) };
  for (const k of keys) row[k] = ok.length === 0 || ok[0][k] === undefined ? undefined : median(ok.map((r) => r[k]));
  row.rate = ok.length === 0 ? undefined : median(ok.map((r) => r.rate));
  if (p.rssKiB !== undefined) row.rssKiB = p.rssKiB;
  return row;
});
const haproxy = rows.find((r) => r.key === 'haproxy');
for (const r of rows) {
  if (haproxy === undefined) break;
  r.p99VsHaproxy = r.p99 / haproxy.p99;
  r.p999VsHaproxy = r.p999 / haproxy.p999;
}
writeResult(values.name, { rate, haproxyMaxRps, rateShare: haproxyMaxRps === undefined ? undefined : Number(values['rate-share']), seconds, rounds, connections: Number(values.connections), lbFlags: values['lb-flag'], generator: 'bench/rate-client.js (open loop; queued requests timed from their scheduled time)', proxies: rows });

const f = (n, d = 2) => (n === undefined || n === null || Number.isNaN(n) ? '–' : n.toFixed(d));
console.log(`Fixed rate ${rate} req/s${haproxyMaxRps === undefined ? ' (given)' : ` (${values['rate-share']} x HAProxy's maximum of ${haproxyMaxRps} req/s, measured first with ${loadGenerator}, 50 connections, sticky cookie)`} for ${seconds}s, ${values.connections} keep-alive connections, ${rounds} interleaved rounds (medians; the order rotates each round; each run waits up to 10 s for an 85%-idle machine). Open-loop generator (bench/rate-client.js): a request that waited for a free connection is timed from its scheduled send time (no coordinated omission), others from their send. Proxy pinned to CPU 0; backend and generator share CPU 1.${values['lb-flag'].length ? ` servoy-lb flags: ${values['lb-flag'].join(' ')}.` : ''}\n`);
console.log('| target | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | p99 / HAProxy | p99.9 / HAProxy | CPU µs/req | errors |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(`| ${r.name} | ${r.rate ?? '–'} | ${f(r.p50)} | ${f(r.p90)} | ${f(r.p99)} | ${f(r.p999)} | ${f(r.max, 1)} | ${r.p99VsHaproxy === undefined ? '–' : `${f(r.p99VsHaproxy)}x`} | ${r.p999VsHaproxy === undefined ? '–' : `${f(r.p999VsHaproxy)}x`} | ${f(r.cpuMicrosPerRequest, 1)} | ${r.errors} |`);
}
if (haproxy === undefined) console.log('\nHAProxy not installed (apt-get install haproxy): no ratio column.');
