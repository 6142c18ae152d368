// 1 GiB upload and 1 GiB download through servoy-lb (raw sockets, and the last release on
// node:http), against the same transfer direct to
// the backend, through the naive undici proxy, HAProxy and nginx (when installed:
// apt-get install haproxy nginx-light). Reports throughput (MiB/s), the proxy's peak RSS
// (VmHWM: each proxy is started fresh for each transfer, so the peak is that transfer's,
// start-up included) and its CPU seconds per GiB moved. The backend (bench/transfer-backend.js)
// and the client (bench/transfer-client.js) are pinned to CPU 1, the proxy to CPU 0.
// Interleaved rounds, medians reported, with each MiB/s as a ratio to HAProxy's (the issue's
// target: >= 0.6x with a peak RSS under 100 MiB). Each transfer is cut after --timeout seconds.
//   node bench/transfer.js [--mib 1024] [--rounds 3] [--timeout 120]
//        [--plane raw,release]                   this checkout and/or the last release (node:http, built from BASELINE_REF)
//        [--variant "label=ARGS" ...]         extra servoy-lb runs (on the first plane); ARGS are node/V8 flags,
//                                             NAME=value environment variables and @DIR (run
//                                             the servoy-lb built in DIR instead), e.g.
//                                             --variant "semi1=--max-semi-space-size=1"
//                                             --variant "trim=GLIBC_TUNABLES=glibc.malloc.trim_threshold=67108864"
//        [--only servoy-lb,direct]            restrict the targets
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, freePort, median, memoryKiB, procStat, runJsonClient, start, stop, waitForPort, waitQuiet, writeResult } from './lib.js';
import { PLANE_NAMES, haproxyConfig, parsePlanes, planeArgs, startServoyLb, which } from './proxies.js';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '3' },
    timeout: { type: 'string', default: '120' },
    variant: { type: 'string', multiple: true, default: [] },
    plane: { type: 'string' },
    only: { type: 'string' },
    name: { type: 'string', default: 'transfer' },
  },
});
const bytes = Number(values.mib) * 1024 * 1024;
const rounds = Number(values.rounds);
const timeoutMs = Number(values.timeout) * 1000;
const only = values.only?.split(',');
const HAPROXY = which('haproxy');
const NGINX = which('nginx');
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-transfer-'));

const backendPort = await freePort();
const backend = await start(process.execPath, [join(ROOT, 'bench/transfer-backend.js'), String(backendPort)], { cpu: 1, ready: /listening/ });
const backendUrl = `http://127.0.0.1:${backendPort}`;

/** Each target's start() runs a fresh proxy and resolves with { url, pid, child }. */
const targets = [{ name: 'direct (no proxy)', key: 'direct', start: async () => ({ url: backendUrl }) }];
const lbTarget = (key, name, args) => ({
  name,
  key,
  flags: args,
  start: () => startServoyLb({ backendUrl, dir, args }),
});
const planes = parsePlanes(values.plane);
for (const plane of planes) targets.push(lbTarget(`servoy-lb ${plane}`, `${PLANE_NAMES[plane]} (access log, metrics)`, planeArgs(plane)));
for (const v of values.variant) {
  const eq = v.indexOf('=');
  const label = v.slice(0, eq);
  targets.push(lbTarget(`servoy-lb ${label}`, `servoy-lb ${label} (${v.slice(eq + 1)})`, [...planeArgs(planes[0]), ...v.slice(eq + 1).split(' ').filter(Boolean)]));
}
targets.push({
  name: 'naive Node proxy on undici',
  key: 'naive',
  start: async () => {
    const port = await freePort();
    const child = await start(process.execPath, [join(ROOT, 'bench/naive-proxy.js'), String(port), backendUrl], { cpu: 0, ready: /listening/ });
    return { url: `http://127.0.0.1:${port}`, pid: child.pid, child };
  },
});
if (HAPROXY) {
  targets.push({
    name: 'HAProxy',
    key: 'haproxy',
    start: async () => {
      const port = await freePort();
      const cfg = join(dir, `haproxy-${port}.cfg`);
      writeFileSync(cfg, haproxyConfig(port, backendPort));
      const child = await start(HAPROXY, ['-db', '-f', cfg], { cpu: 0 });
      await waitForPort(port);
      return { url: `http://127.0.0.1:${port}`, pid: child.pid, child };
    },
  });
} else console.log('HAProxy not installed (apt-get install haproxy): skipped');
if (NGINX) {
  targets.push({
    name: 'nginx (request and response buffering off)',
    key: 'nginx',
    start: async () => {
      const port = await freePort();
      const cfg = join(dir, `nginx-${port}.conf`);
      writeFileSync(
        cfg,
        `daemon off;\nmaster_process off;\nworker_processes 1;\npid ${dir}/nginx-${port}.pid;\nerror_log /dev/null;\nevents { worker_connections 1024; }\nhttp {\n  access_log off;\n  client_body_temp_path ${dir};\n  proxy_temp_path ${dir};\n  fastcgi_temp_path ${dir};\n  uwsgi_temp_path ${dir};\n  scgi_temp_path ${dir};\n  client_max_body_size 0;\n  upstream be { server 127.0.0.1:${backendPort}; keepalive 8; }\n  server {\n    listen 127.0.0.1:${port};\n    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_request_buffering off; proxy_buffering off; }\n  }\n}\n`,
      );
      const child = await start(NGINX, ['-c', cfg, '-p', dir], { cpu: 0 });
      await waitForPort(port);
      return { url: `http://127.0.0.1:${port}`, pid: child.pid, child };
    },
  });
} else console.log('nginx not installed (apt-get install nginx-light): skipped');
const chosen = only === undefined ? targets : targets.filter((t) => only.some((o) => t.key === o || t.key.startsWith(`${o} `) || (o === 'servoy-lb' && t.key.startsWith('servoy-lb'))));


/** transfer runs one client (pinned to CPU 1) to the end or the timeout. */
function transfer(mode, url) {
  return runJsonClient([join(ROOT, 'bench/transfer-client.js'), mode, url, String(bytes)], timeoutMs);
}

const results = new Map(chosen.map((t) => [t.key, { upload: [], download: [] }]));
const deadline = Date.now() + 12 * 60_000;
for (let round = 0; round < rounds && Date.now() < deadline; round++) {
  for (const mode of ['download', 'upload']) {
    for (const target of chosen) {
      const proxy = await target.start();
      await new Promise((r) => setTimeout(r, 300));
      const startKiB = proxy.pid === undefined ? undefined : memoryKiB(proxy.pid).rss;
      const idleBefore = await waitQuiet();
      const before = proxy.pid === undefined ? undefined : procStat(proxy.pid);
      const r = await transfer(mode, proxy.url);
      const row = { ...r, idleBefore: Math.round(idleBefore * 100) / 100 };
      if (r.error === undefined) row.mibPerSecond = bytes / 1048576 / r.seconds;
      if (proxy.pid !== undefined) {
        const after = procStat(proxy.pid);
        const perGiB = 1073741824 / bytes;
        row.cpuSecondsPerGiB = ((after.userMicros + after.sysMicros - before.userMicros - before.sysMicros) / 1e6) * perGiB;
        row.sysSecondsPerGiB = ((after.sysMicros - before.sysMicros) / 1e6) * perGiB;
        row.minorFaultsPerGiB = Math.round((after.minorFaults - before.minorFaults) * perGiB);
        row.startRssMiB = startKiB / 1024;
        row.peakRssMiB = memoryKiB(proxy.pid).peak / 1024;
      }
      if (proxy.child !== undefined) await stop(proxy.child);
      results.get(target.key)[mode].push(row);
      if (r.error !== undefined) console.log(`${target.name} ${mode}: ${r.error}`);
    }
  }
}
await stop(backend);
rmSync(dir, { recursive: true, force: true });

const ok = (rows) => rows.filter((r) => r.error === undefined);
const med = (rows, k) => (ok(rows).length === 0 ? undefined : median(ok(rows).map((r) => r[k])));
const max = (rows, k) => (ok(rows).length === 0 ? undefined : Math.max(...ok(rows).map((r) => r[k])));
const summary = {
  mib: Number(values.mib),
  rounds,
  setup: 'proxy pinned to CPU 0; backend and client pinned to CPU 1; a fresh proxy process per transfer',
  targets: chosen.map((t) => {
    const r = results.get(t.key);
    const side = (rows) => ({
      mibPerSecond: med(rows, 'mibPerSecond'),
      cpuSecondsPerGiB: med(rows, 'cpuSecondsPerGiB'),
      sysSecondsPerGiB: med(rows, 'sysSecondsPerGiB'),
      minorFaultsPerGiB: med(rows, 'minorFaultsPerGiB'),
      startRssMiB: med(rows, 'startRssMiB'),
      peakRssMiB: med(rows, 'peakRssMiB'),
      maxPeakRssMiB: max(rows, 'peakRssMiB'),
      errors: rows.length - ok(rows).length,
      rounds: rows,
    });
    return { name: t.name, key: t.key, flags: t.flags, download: side(r.download), upload: side(r.upload) };
  }),
};
const haproxy = summary.targets.find((t) => t.key === 'haproxy');
for (const t of summary.targets) {
  for (const mode of ['download', 'upload']) {
    const base = haproxy?.[mode].mibPerSecond;
    if (base !== undefined && t[mode].mibPerSecond !== undefined) t[mode].vsHaproxy = Math.round((t[mode].mibPerSecond / base) * 100) / 100;
  }
}
writeResult(values.name, summary);
const f = (n, d = 0) => (n === undefined ? '–' : n.toFixed(d));
console.log(`${values.mib} MiB through each proxy, ${rounds} interleaved rounds (medians; peak RSS also as the worst round). Proxy on CPU 0, backend and client on CPU 1, a fresh proxy process per transfer; each transfer waits (up to 10 s) for the machine to be 85% idle. CPU: user+system seconds of the proxy per GiB moved (system part in brackets); page faults: minor faults of the proxy per GiB.\n`);
console.log('| target | download MiB/s | upload MiB/s | down, up / HAProxy | CPU s/GiB down (sys) | CPU s/GiB up (sys) | page faults/GiB down, up | RSS at start MiB | peak RSS down MiB (max) | peak RSS up MiB (max) | errors |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const t of summary.targets) {
  const d = t.download;
  const u = t.upload;
  const peak = (s) => (s.peakRssMiB === undefined ? '–' : `${f(s.peakRssMiB)} (${f(s.maxPeakRssMiB)})`);
  const cpu = (s) => (s.cpuSecondsPerGiB === undefined ? '–' : `${f(s.cpuSecondsPerGiB, 2)} (${f(s.sysSecondsPerGiB, 2)})`);
  const faults = d.minorFaultsPerGiB === undefined ? '–' : `${Math.round(d.minorFaultsPerGiB / 1000)}k, ${Math.round(u.minorFaultsPerGiB / 1000)}k`;
  const ratios = d.vsHaproxy === undefined && u.vsHaproxy === undefined ? '–' : `${f(d.vsHaproxy, 2)}x, ${f(u.vsHaproxy, 2)}x`;
  console.log(`| ${t.name} | ${f(d.mibPerSecond)} | ${f(u.mibPerSecond)} | ${ratios} | ${cpu(d)} | ${cpu(u)} | ${faults} | ${f(d.startRssMiB)} | ${peak(d)} | ${peak(u)} | ${d.errors + u.errors} |`);
}
