// Memory per idle WebSocket: open N WebSockets through servoy-lb to a plain ws backend,
// let them sit idle, and report the balancer's RSS growth per socket, on each data plane
// (this checkout's raw plane and the last release's node:http, see proxies.js; a fresh
// balancer for each; the issue's target: <= 16 KiB).
//   node bench/websockets.js [--count 1000] [--workers N] [--plane raw,release]
// Each tunnel holds two file descriptors in the balancer (client and backend side). When
// 2 x N does not fit this machine's hard limit (`ulimit -Hn`; 20,000 here), the balancer runs
// with enough --workers to hold them, and RSS is summed over its processes (primary included).
// The backend (bench/ws-echo-backend.js) runs in its own process for the same reason. BENCH_VERBOSE=1 shows the balancer's log.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { ROOT, freePort, memoryKiB, openFileHardLimit, start, stop, writeResult } from './lib.js';
import { PLANE_NAMES, parsePlanes, planeArgs, startServoyLb } from './proxies.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '1000' }, workers: { type: 'string' }, plane: { type: 'string' } } });
const count = Number(values.count);
const planes = parsePlanes(values.plane);
const hardLimit = openFileHardLimit();
const workers = values.workers !== undefined ? Number(values.workers) : Math.max(1, Math.ceil((2 * count + 500) / hardLimit));

const backendPort = await freePort();
const backend = await start(process.execPath, [join(ROOT, 'bench/ws-echo-backend.js'), String(backendPort)], { cpu: 1, ready: /listening/ });
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-bench-ws-'));
let lb;
// A failure below (a refused handshake rejects open()) must not leave anything running.
const bail = (err) => {
  lb?.child.kill('SIGKILL');
  backend.kill('SIGKILL');
  process.stderr.write(`websockets.js: ${err?.message ?? err}\n`);
  process.exit(1);
};
process.on('uncaughtException', bail);
process.on('unhandledRejection', bail);

/** RSS of the balancer: its primary plus every worker (KiB). */
function balancerRssKiB() {
  let children = [];
  try {
    children = execFileSync('pgrep', ['-P', String(lb.pid)]).toString().trim().split('\n').filter(Boolean).map(Number);
  } catch {
    // no children: one process
  }
  return [lb.pid, ...children].reduce((sum, pid) => sum + memoryKiB(pid).rss, 0);
}

async function open(n) {
  const sockets = [];
  for (let i = 0; i < n; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 100); j++) {
      batch.push(
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${lb.port}/websocket/${j}/main/1`);
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
      );
    }
    sockets.push(...(await Promise.all(batch)));
  }
  return sockets;
}

const rows = [];
for (const plane of planes) {
  lb = await startServoyLb({
    backendUrl: `http://127.0.0.1:${backendPort}`,
    dir,
    args: planeArgs(plane),
    config: {
      limits: { maxConnections: count + 100 },
      // The plain ws backend answers a health probe's GET with 426 Upgrade Required: healthy.
      healthCheck: { expectStatus: '426' },
      log: { level: 'warn', access: false },
    },
    cliArgs: ['--log-level', 'info', '--workers', String(workers)],
    quiet: !process.env.BENCH_VERBOSE,
  });
  if (process.env.BENCH_VERBOSE) lb.child.stdout.on('data', (c) => process.stderr.write(c));
  const warm = await open(20);
  await new Promise((r) => setTimeout(r, 1000));
  const before = balancerRssKiB();
  const sockets = await open(count);
  // Echo once on every socket (a real client says something), then let them idle.
  await Promise.all(sockets.map((ws) => new Promise((resolve) => { ws.once('message', resolve); ws.send('ping'); })));
  await new Promise((r) => setTimeout(r, 3000));
  const after = balancerRssKiB();
  rows.push({ plane, rssBeforeKiB: before, rssAfterKiB: after, perSocketKiB: Math.round(((after - before) / count) * 10) / 10 });
  for (const ws of [...warm, ...sockets]) ws.terminate();
  await stop(lb.child);
}
await stop(backend);
rmSync(dir, { recursive: true, force: true });
writeResult(`websockets-${count}`, { count, workers, planes: rows });
console.log('| data plane | open WebSockets | balancer processes | RSS before | RSS after | RSS per WebSocket |\n| --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${PLANE_NAMES[r.plane]} | ${count} | ${workers === 1 ? '1' : `${workers} workers + primary`} | ${r.rssBeforeKiB} KiB | ${r.rssAfterKiB} KiB | ${r.perSocketKiB} KiB |`);
process.exit(0);
