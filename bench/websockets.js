// Memory per idle WebSocket: open N WebSockets through servoy-lb to a plain ws backend,
// let them sit idle, and report the balancer's RSS growth per socket.
//   node bench/websockets.js [--count 1000]
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import { ROOT, freePort, memoryKiB, start, stop, writeResult } from './lib.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '1000' } } });
const count = Number(values.count);

const backendPort = await freePort();
const backend = new WebSocketServer({ host: '127.0.0.1', port: backendPort });
backend.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
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
    log: { level: 'warn', access: false },
  }),
);
const lb = await start(process.execPath, [join(ROOT, 'bin/servoy-lb'), 'start', '-c', configFile, '--log-level', 'info'], { ready: /listening/ });

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
const before = memoryKiB(lb.pid).rss;
const sockets = await open(count);
// Echo once on every socket (a real client says something), then let them idle.
await Promise.all(sockets.map((ws) => new Promise((resolve) => { ws.once('message', resolve); ws.send('ping'); })));
await new Promise((r) => setTimeout(r, 3000));
const after = memoryKiB(lb.pid).rss;
const perSocketKiB = Math.round(((after - before) / count) * 10) / 10;
for (const ws of [...warm, ...sockets]) ws.terminate();
await stop(lb);
backend.close();
writeResult(`websockets-${count}`, { count, rssBeforeKiB: before, rssAfterKiB: after, perSocketKiB });
console.log(`| open WebSockets | RSS before | RSS after | RSS per WebSocket |
| ---: | ---: | ---: | ---: |
| ${count} | ${before} KiB | ${after} KiB | ${perSocketKiB} KiB |`);
process.exit(0);
