// The client side of bench/ws-relay.js: COUNT WebSockets to URL (opened 100 at a time), each
// sending a BYTES-byte message every INTERVAL ms (the sockets spread evenly over the interval)
// and timing the echo. After WARMUP seconds it measures for SECONDS: echoes received, their
// round trips, and the CPU time the proxy (PID) and the client itself spent meanwhile (the
// client's tells whether the load side kept up), then prints one JSON line. A socket that closes or fails during the run counts as an error.
//   node bench/ws-relay-client.js URL COUNT INTERVAL BYTES WARMUP SECONDS PID
import { WebSocket } from 'ws';
import { cpuMicros } from './lib.js';

const [url, count, intervalMs, bytes, warmup, seconds, pid] = process.argv.slice(2).map((a, i) => (i === 0 ? a : Number(a)));
const payload = Buffer.alloc(bytes, 'm');
let measuring = false;
let received = 0;
let sent = 0;
let errors = 0;
let stopping = false;
const rtts = [];

function open(i) {
  return new Promise((resolve, reject) => {
    // A zero mask: ws then skips masking, so the client spends its CPU (shared with the backend) on the relay's traffic.
    const ws = new WebSocket(`${url}/websocket/${i}/main/1`, { perMessageDeflate: false, generateMask: () => undefined });
    const sentAt = [];
    ws.once('open', () => resolve({ ws, sentAt }));
    ws.once('error', reject);
    ws.on('message', () => {
      const rtt = performance.now() - sentAt.shift();
      if (!measuring) return;
      received++;
      rtts.push(rtt);
    });
    ws.on('close', () => {
      if (!stopping) errors++;
    });
  });
}

const sockets = [];
for (let i = 0; i < count; i += 100) sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, j) => open(i + j)))));
const timers = sockets.map(({ ws, sentAt }, i) => {
  const send = () => {
    if (ws.readyState !== WebSocket.OPEN) return;
    sentAt.push(performance.now());
    if (measuring) sent++;
    ws.send(payload);
  };
  let interval;
  const first = setTimeout(() => {
    send();
    interval = setInterval(send, intervalMs);
  }, (i * intervalMs) / count);
  return () => {
    clearTimeout(first);
    clearInterval(interval);
  };
});
await new Promise((r) => setTimeout(r, warmup * 1000));
const cpuBefore = cpuMicros(pid);
const ownBefore = process.cpuUsage();
const startedAt = performance.now();
measuring = true;
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
const cpu = cpuMicros(pid) - cpuBefore;
const own = process.cpuUsage(ownBefore);
const wallSeconds = (performance.now() - startedAt) / 1000;
stopping = true;
for (const stop of timers) stop();
for (const { ws } of sockets) ws.terminate();
rtts.sort((a, b) => a - b);
const pct = (p) => (rtts.length === 0 ? null : Math.round(rtts[Math.min(rtts.length - 1, Math.floor((p / 100) * rtts.length))] * 1000) / 1000);
process.stdout.write(
  `${JSON.stringify({ sockets: sockets.length, sent, received, errors, wallSeconds, messagesPerSecond: Math.round(received / wallSeconds), cpuMicrosPerMessage: received === 0 ? null : cpu / received, clientCpuMicrosPerMessage: received === 0 ? null : (own.user + own.system) / received, p50: pct(50), p99: pct(99), max: pct(100) })}\n`,
);
process.exit(0);
