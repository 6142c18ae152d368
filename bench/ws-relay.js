// WebSocket relay: CPU per message, servoy-lb (raw-socket plane, and the last release on node:http) against HAProxy
// (HTTP mode tunnels the upgrade), in the same run. COUNT WebSockets stay open through the
// proxy to a ws echo backend (bench/ws-echo-backend.js, own process); each sends a BYTES-byte
// message every INTERVAL ms and times the echo (1,000 x 200 bytes every 100 ms: 10,000 round
// trips a second). Reported per proxy: its CPU µs per round trip (the message in and its echo
// out: two frames relayed; from /proc over the measured window), the ratio to HAProxy's (the
// issue's target: <= 1.5x), round trips per second achieved, p50/p99 round trip, RSS after.
// Setup: the proxy pinned to CPU 0, backend and client (bench/ws-relay-client.js, its own
// process) to CPU 1. Interleaved rounds, medians reported. A proxy holds 2 x COUNT file
// descriptors, the client COUNT (see bench/websockets.js for the limit).
//   node bench/ws-relay.js [--count 1000] [--interval 100] [--bytes 200] [--seconds 10] [--warmup 3]
//        [--rounds 3] [--plane raw,release] [--only servoy-lb,haproxy]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, freePort, median, memoryKiB, openFileHardLimit, runJsonClient, start, stop, waitQuiet, writeResult } from './lib.js';
import { parsePlanes, startProxies } from './proxies.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    interval: { type: 'string', default: '100' },
    bytes: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    plane: { type: 'string' },
    only: { type: 'string' },
    name: { type: 'string', default: 'ws-relay' },
  },
});
const [count, interval, bytes, seconds, warmup, rounds] = ['count', 'interval', 'bytes', 'seconds', 'warmup', 'rounds'].map((k) => Number(values[k]));
// One process holds every tunnel (HAProxy has one thread, servoy-lb runs without --workers here).
if (2 * count + 500 > openFileHardLimit()) throw new Error(`--count ${count} needs ${2 * count + 500} file descriptors in the proxy, over this machine's hard limit of ${openFileHardLimit()} (ulimit -Hn)`);
const only = values.only?.split(',');
const wanted = (key) => (key.startsWith('servoy-lb ') || key === 'haproxy') && (only === undefined || only.some((o) => key === o || key.startsWith(`${o} `)));
if (count > 3900 && wanted('haproxy')) throw new Error(`--count ${count}: HAProxy here takes 4,000 connections at most (maxconn in proxies.js); measure more with --only servoy-lb`);
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-ws-relay-'));

const backendPort = await freePort();
const backend = await start(process.execPath, [join(ROOT, 'bench/ws-echo-backend.js'), String(backendPort)], { cpu: 1, ready: /listening/ });
const proxies = await startProxies({
  backendPort,
  dir,
  planes: parsePlanes(values.plane),
  // The plain ws backend answers a health probe's GET with 426 Upgrade Required: healthy.
  lbConfig: { limits: { maxConnections: count + 100 }, healthCheck: { expectStatus: '426' } },
  only: wanted,
});
for (const p of proxies) p.results = [];
const deadline = Date.now() + 12 * 60_000;
for (let round = 0; round < rounds && Date.now() < deadline; round++) {
  for (const p of proxies) {
    const idle = await waitQuiet();
    const url = p.url.replace(/^http/, 'ws').replace(/\/$/, '');
    const r = await runJsonClient([join(ROOT, 'bench/ws-relay-client.js'), url, String(count), String(interval), String(bytes), String(warmup), String(seconds), String(p.pid)], (warmup + seconds + 60) * 1000);
    r.idleBefore = Math.round(idle * 100) / 100;
    p.results.push(r);
    if (r.error !== undefined) console.log(`${p.name}: ${r.error}`);
  }
}
for (const p of proxies) p.rssKiB = memoryKiB(p.pid).rss;
for (const p of proxies) await stop(p.child);
await stop(backend);
rmSync(dir, { recursive: true, force: true });

const rows = proxies.map((p) => {
  const ok = p.results.filter((r) => r.error === undefined && r.received > 0);
  const med = (k) => (ok.length === 0 ? undefined : median(ok.map((r) => r[k])));
  return {
    name: p.name,
    key: p.key,
    cpuMicrosPerMessage: med('cpuMicrosPerMessage'),
    messagesPerSecond: med('messagesPerSecond'),
    p50: med('p50'),
    p99: med('p99'),
    errors: p.results.reduce((a, r) => a + (r.error === undefined ? r.errors : 1), 0),
    rssKiB: p.rssKiB,
    rounds: p.results,
  };
});
const haproxy = rows.find((r) => r.key === 'haproxy');
for (const r of rows) if (haproxy?.cpuMicrosPerMessage !== undefined && r.cpuMicrosPerMessage !== undefined) r.cpuVsHaproxy = r.cpuMicrosPerMessage / haproxy.cpuMicrosPerMessage;
writeResult(values.name, { count, intervalMs: interval, bytes, seconds, warmup, rounds, proxies: rows });
const f = (n, d = 1) => (n === undefined ? '–' : n.toFixed(d));
console.log(`${count} WebSockets through each proxy, each sending ${bytes} bytes every ${interval} ms to an echo backend (${Math.round((count * 1000) / interval)} round trips/s offered); ${warmup} s warm-up, then ${seconds} s measured, ${rounds} interleaved rounds (medians). CPU: the proxy's user+system µs per round trip (message and echo). Proxy on CPU 0; backend and client on CPU 1.\n`);
console.log('| proxy | round trips/s | CPU µs/message | CPU / HAProxy | p50 ms | p99 ms | RSS MiB | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name} | ${r.messagesPerSecond ?? '–'} | ${f(r.cpuMicrosPerMessage)} | ${r.cpuVsHaproxy === undefined ? '–' : `${f(r.cpuVsHaproxy, 2)}x`} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${(r.rssKiB / 1024).toFixed(0)} | ${r.errors} |`);
if (haproxy === undefined) console.log('\nHAProxy not installed (apt-get install haproxy): no ratio column.');
