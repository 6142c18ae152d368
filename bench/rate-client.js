// An open-loop, constant-rate HTTP/1.1 load generator (what wrk2 does; wrk2 is not packaged
// in Debian, and autocannon -R is not constant-rate: each connection sends back-to-back
// until it has made its share of the second, then waits for the next second, so it
// measures a burst every second). Requests are scheduled every 1/rate seconds, sent on
// the first idle keep-alive connection (queued when none is idle). A request that had to
// wait for a connection is timed from its *scheduled* time, so a stall of the proxy delays
// and counts every request behind it (no coordinated omission); one sent at once is timed
// from its send, so the generator's own timer lateness (1 ms ticks) is not counted.
// Prints one JSON line; `late` is the share of requests that waited for a connection.
//   node bench/rate-client.js URL RATE SECONDS [CONNECTIONS] [COOKIE]
import { connect } from 'node:net';

const [url, rate, seconds, connections = '64', cookie = ''] = process.argv.slice(2);
const target = new URL(url);
const perSecond = Number(rate);
const durationMs = Number(seconds) * 1000;
const request = Buffer.from(`GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUser-Agent: rate-client\r\n${cookie ? `Cookie: ${cookie}\r\n` : ''}\r\n`, 'latin1');
const CRLFCRLF = Buffer.from('\r\n\r\n');

const latencies = new Float64Array(Math.ceil((perSecond * durationMs) / 1000) + 16);
let recorded = 0;
let errors = 0;
let non2xx = 0;
const idle = [];
/** Scheduled times of requests waiting for an idle connection. */
const backlog = [];
let backlogHead = 0;

function open() {
  const socket = connect(Number(target.port || 80), target.hostname);
  socket.setNoDelay(true);
  const conn = { socket, scheduled: 0, buffer: Buffer.alloc(0), busy: false };
  socket.on('connect', () => release(conn));
  socket.on('data', (chunk) => {
    conn.buffer = conn.buffer.length === 0 ? chunk : Buffer.concat([conn.buffer, chunk]);
    for (;;) {
      const end = conn.buffer.indexOf(CRLFCRLF);
      if (end === -1) return;
      const head = conn.buffer.toString('latin1', 0, end);
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (conn.buffer.length < end + 4 + length) return;
      conn.buffer = conn.buffer.subarray(end + 4 + length);
      const status = Number(head.slice(9, 12));
      if (status < 200 || status > 299) non2xx++;
      if (recorded < latencies.length) latencies[recorded++] = performance.now() - conn.scheduled;
      release(conn);
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    if (conn.busy) errors++;
    if (!stopped) setTimeout(open, 10);
  });
}

function release(conn) {
  conn.busy = false;
  if (backlogHead < backlog.length) return send(conn, backlog[backlogHead++]);
  idle.push(conn);
}

function send(conn, scheduled) {
  conn.busy = true;
  conn.scheduled = scheduled;
  conn.socket.write(request);
}

let stopped = false;
for (let i = 0; i < Number(connections); i++) open();
// Let the connections open, then start the clock.
await new Promise((r) => setTimeout(r, 300));
const startedAt = performance.now();
const interval = 1000 / perSecond;
let sent = 0;
let queued = 0;
await new Promise((resolve) => {
  const tick = () => {
    const now = performance.now();
    const elapsed = now - startedAt;
    const due = Math.min(Math.floor(elapsed / interval) + 1, Math.floor(durationMs / interval));
    while (sent < due) {
      const scheduled = startedAt + sent * interval;
      sent++;
      const conn = idle.pop();
      if (conn !== undefined) send(conn, Math.max(scheduled, performance.now()));
      else {
        queued++;
        backlog.push(scheduled);
      }
    }
    if (elapsed >= durationMs) return resolve();
    setTimeout(tick, 1);
  };
  tick();
});
// Wait (bounded) for the answers still in flight.
const drainUntil = performance.now() + 5000;
while (recorded + errors < sent && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 10));
stopped = true;
const wallSeconds = (performance.now() - startedAt) / 1000;
const sorted = latencies.subarray(0, recorded).sort();
const pct = (p) => (recorded === 0 ? null : Math.round(sorted[Math.min(recorded - 1, Math.floor((p / 100) * recorded))] * 1000) / 1000);
process.stdout.write(
  `${JSON.stringify({ sent, completed: recorded, errors, non2xx, unanswered: sent - recorded - errors, late: Math.round((queued / Math.max(1, sent)) * 1000) / 1000, rate: Math.round(recorded / (durationMs / 1000)), wallSeconds, p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9), max: pct(100) })}\n`,
);
process.exit(0);
