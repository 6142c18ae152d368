// Soak: mixed HTTP and WebSocket traffic through servoy-lb for a bounded time, with a drain
// and undrain, a reload and a restart of one backend every minute. Reports the balancer's
// RSS, open file descriptors and error counts at the start and the end (flat = healthy).
//   npm run build && node bench/soak.js [--minutes 10] [--clients 50]
// Loopback only; every loop ends by itself.
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { WebSocket } from 'ws';
import { startServoySim } from '../dist/examples/servoy-sim.js';
import { ROOT, freePort, memoryKiB, servoyLbArgs, start, stop, writeResult } from './lib.js';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '10' }, clients: { type: 'string', default: '50' } } });
const minutes = Math.min(Number(values.minutes), 10);
const clientCount = Number(values.clients);
const endAt = Date.now() + minutes * 60_000;

const routes = ['servoy-a', 'servoy-b', 'servoy-c'];
const sims = new Map();
const ports = new Map();
for (const route of routes) {
  const sim = await startServoySim({ route, port: 0, sessionIdleMs: 120_000 });
  sims.set(route, sim);
  ports.set(route, sim.port);
}
const dir = mkdtempSync(join(tmpdir(), 'servoy-lb-soak-'));
const configFile = join(dir, 'lb.config.json');
const lbPort = await freePort();
const adminPort = await freePort();
const writeConfig = (weightA) =>
  writeFileSync(
    configFile,
    JSON.stringify({
      listen: { host: '127.0.0.1', port: lbPort },
      admin: { host: '127.0.0.1', port: adminPort },
      backends: routes.map((r) => ({ id: r, url: `http://127.0.0.1:${ports.get(r)}`, weight: r === 'servoy-a' ? weightA : 1 })),
      affinity: { sessionIdle: '1m' },
      healthCheck: { path: '/', interval: '1s', timeout: '1s', rise: 2, fall: 2 },
      state: { file: join(dir, 'state.json') },
      log: { level: 'warn', access: false },
    }),
  );
writeConfig(1);
const lb = await start(process.execPath, servoyLbArgs(['start', '-c', configFile, '--log-level', 'info']), { ready: /servoy-lb listening/ });
const base = `http://127.0.0.1:${lbPort}`;
const admin = `http://127.0.0.1:${adminPort}`;
const fds = () => readdirSync(`/proc/${lb.pid}/fd`).length;
const sample = () => ({ at: new Date().toISOString(), ...memoryKiB(lb.pid), fds: fds() });

const counts = { requests: 0, ok: 0, status5xx: 0, lost: 0, failed: 0, wsOpened: 0, wsMessages: 0, wsErrors: 0 };
const agent = new Agent({ connections: 4 });

async function client(i) {
  let cookie = '';
  while (Date.now() < endAt) {
    try {
      const res = await request(`${base}/api/whoami`, { headers: { cookie }, dispatcher: agent });
      const setCookie = res.headers['set-cookie'];
      if (setCookie) {
        const jar = new Map(cookie.split('; ').filter(Boolean).map((c) => c.split('=')));
        for (const c of [setCookie].flat()) {
          const [pair] = c.split(';');
          const [k, v] = pair.split('=');
          jar.set(k, v);
        }
        cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      }
      const body = await res.body.text();
      counts.requests++;
      if (res.statusCode >= 500) counts.status5xx++;
      else counts.ok++;
      if (res.headers['x-session-lost']) counts.lost++;
      if (i % 5 === 0 && res.statusCode === 200 && body.includes('"server"')) await websocket(cookie);
    } catch {
      counts.failed++;
    }
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
    if (Math.random() < 0.01) cookie = ''; // a browser closes: a new session
  }
}

function websocket(cookie) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/websocket/1/main/1`, { headers: { cookie, origin: base } });
    const timer = setTimeout(() => ws.terminate(), 3000);
    ws.on('open', () => {
      counts.wsOpened++;
      ws.send('hello');
    });
    ws.on('message', () => {
      counts.wsMessages++;
      if (counts.wsMessages % 2 === 0) ws.close();
    });
    ws.on('error', () => counts.wsErrors++);
    ws.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function post(path) {
  const res = await request(`${admin}${path}`, { method: 'POST', dispatcher: agent });
  await res.body.text();
  return res.statusCode;
}

async function operator() {
  let minute = 0;
  while (Date.now() < endAt) {
    await new Promise((r) => setTimeout(r, Math.min(60_000, Math.max(0, endAt - Date.now()))));
    if (Date.now() >= endAt) break;
    minute++;
    const victim = routes[minute % routes.length];
    // A rolling restart of one backend: drain, restart on the same port, undrain.
    await post(`/api/backends/${victim}/drain`);
    await sims.get(victim).close();
    const sim = await startServoySim({ route: victim, port: ports.get(victim), sessionIdleMs: 120_000 });
    sims.set(victim, sim);
    await post(`/api/backends/${victim}/undrain`);
    writeConfig(1 + (minute % 2));
    await post('/api/reload');
    samples.push(sample());
  }
}

await new Promise((r) => setTimeout(r, 1000));
const samples = [sample()];
await Promise.all([operator(), ...Array.from({ length: clientCount }, (_, i) => client(i))]);
await new Promise((r) => setTimeout(r, 2000));
samples.push(sample());
await stop(lb);
await agent.close();
for (const sim of sims.values()) await sim.close();

const first = samples[0];
const last = samples.at(-1);
writeResult('soak', { minutes, clients: clientCount, counts, samples });
console.log(`soak: ${minutes} min, ${clientCount} clients`);
console.log(`| | RSS KiB | peak KiB | open fds |\n| --- | ---: | ---: | ---: |\n| start | ${first.rss} | ${first.peak} | ${first.fds} |\n| end | ${last.rss} | ${last.peak} | ${last.fds} |`);
console.log(JSON.stringify(counts));
process.exit(0);
