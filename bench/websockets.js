// Memory per idle WebSocket: open N WebSockets through servoy-lb to a plain ws backend,
// let them sit idle, and report the balancer's RSS growth per socket.
//   node bench/websockets.js [--count 1000] [--workers N]
// Each tunnel holds two file descriptors in the balancer (client and backend side). When
// 2 x N does not fit this machine's hard limit (`ulimit -Hn`; 20,000 here), the balancer runs
// with enough --workers to hold them, and RSS is summed over its processes (primary included).
// The backend runs in its own process for the same reason.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { ROOT, freePort, memoryKiB, servoyLbArgs, start, stop, writeResult } from './lib.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '1000' }, workers: { type: 'string' } } });
const count = Number(values.count);
const hardLimit = Number(/^Max open files\s+\d+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
const workers = values.workers !== undefined ? Number(values.workers) : Math.max(1, Math.ceil((2 * count + 500) / hardLimit));

const backendPort = await freePort();
const backend = await start(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `import { WebSocketServer } from ${JSON.stringify(join(ROOT, 'node_modules/ws/wrapper.mjs'))};
const wss = new WebSocketServer({ host: '127.0.0.1', port: ${backendPort} }, () => console.log('ready'));
wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));`,
  ],
  { ready: /ready/ },
);
const lbPort = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-bench-ws-'));
const configFile = join(dir, 'lb.config.json');
writeFileSync(
  configFile,
  JSON.stringify({
    listen: { host: '127.0.0.1', port: lbPort },
    admin: { port: await freePort() },
    backends: [{ id: 'ws', url: `http://127.0.0.1:${backendPort}` }],
    state: { file: join(dir, 'state.json') },
    limits: { maxConnections: count + 100 },
    // The plain ws backend answers a health probe's GET with 426 Upgrade Required: healthy.
    healthCheck: { expectStatus: '426' },
    log: { level: 'warn', access: false },
  }),
);
const lb = await start(process.execPath, servoyLbArgs(['start', '-c', configFile, '--log-level', 'info', '--workers', String(workers)]), { ready: /servoy-lb listening/, quiet: !process.env.BENCH_VERBOSE });
if (process.env.BENCH_VERBOSE) lb.stdout.on('data', (c) => process.stderr.write(c));
// A failure below (a refused handshake rejects open()) must not leave anything running.
const bail = (err) => {
  lb.kill('SIGKILL');
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
          const ws = new WebSocket(`ws://127.0.0.1:${lbPort}/websocket/${j}/main/1`);
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
      );
    }
    sockets.push(...(await Promise.all(batch)));
  }
  return sockets;
}

const warm = await open(20);
await new Promise((r) => setTimeout(r, 1000));
const before = balancerRssKiB();
const sockets = await open(count);
// Echo once on every socket (a real client says something), then let them idle.
await Promise.all(sockets.map((ws) => new Promise((resolve) => { ws.once('message', resolve); ws.send('ping'); })));
await new Promise((r) => setTimeout(r, 3000));
const after = balancerRssKiB();
const perSocketKiB = Math.round(((after - before) / count) * 10) / 10;
for (const ws of [...warm, ...sockets]) ws.terminate();
await stop(lb);
await stop(backend);
writeResult(`websockets-${count}`, { count, workers, rssBeforeKiB: before, rssAfterKiB: after, perSocketKiB });
console.log(`| open WebSockets | balancer processes | RSS before | RSS after | RSS per WebSocket |
| ---: | ---: | ---: | ---: | ---: |
| ${count} | ${workers === 1 ? '1' : `${workers} workers + primary`} | ${before} KiB | ${after} KiB | ${perSocketKiB} KiB |`);
process.exit(0);
