// Access-log micro-benchmark: the per-request CPU cost of building one access-log line and
// handing it to a batched sonic-boom stream writing to /dev/null (the same batching as
// stdout and log.file: 4 KiB writes), in each format, next to what the proxy did before:
// a pino child logger's .info() with the same fields. Also the cost of X-Request-Id
// generation (a prefix and a counter) against crypto.randomUUID().
//   npm run build && node bench/access-log.js
import { randomUUID } from 'node:crypto';
import { openSync } from 'node:fs';
import { pino } from 'pino';
import { combinedLine, jsonLine } from '../dist/src/proxy/access-log.js';
import { nextRequestId } from '../dist/src/proxy/request-id.js';
import { writeResult } from './lib.js';

/**
 * CPU ns per call (user + system: the write syscalls count, time other processes take on a
 * busy machine does not); every 1000 calls the event loop turns, so the stream's writes
 * complete as in the proxy.
 */
async function timePerCall(fn, iterations) {
  for (let i = 0; i < 100_000; i++) fn(i); // warm up
  await new Promise(setImmediate);
  const start = process.cpuUsage();
  for (let i = 0; i < iterations; i++) {
    fn(i);
    if (i % 1000 === 999) await new Promise(setImmediate);
  }
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / iterations;
}

const sink = pino.destination({ dest: openSync('/dev/null', 'w'), sync: false, minLength: 4096 });
const entry = (i) => ({
  client: '10.1.2.3',
  method: 'GET',
  host: 'crm.example.com',
  path: '/servoy-service/rest_ws/crm/orders?limit=10',
  httpVersion: '1.1',
  status: 200,
  backend: 'servoy-a',
  route: 'affinity-cookie',
  ms: 12.34,
  bytesIn: 512,
  bytesOut: 4096 + (i & 1023),
  userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
  referer: 'https://crm.example.com/solutions/crm/index.html',
  requestId: 'Zk3pQ9aB-1a2b',
  outcome: 'ok',
  websocket: false,
});
const child = pino({ level: 'info', base: undefined }, sink).child({ log: 'access' });

const N = 1_000_000;
const rows = [
  { what: 'json, hand-built (build + write)', ns: await timePerCall((i) => sink.write(jsonLine(entry(i), Date.now())), N) },
  { what: 'combined, hand-built (build + write)', ns: await timePerCall((i) => sink.write(combinedLine(entry(i), Date.now())), N) },
  {
    what: 'json, pino child logger (the old way, same fields)',
    ns: await timePerCall((i) => {
      const e = entry(i);
      child.info({ client: e.client, method: e.method, host: e.host, path: e.path, status: e.status, backend: e.backend, route: e.route, ms: e.ms, bytesIn: e.bytesIn, bytes: e.bytesOut, ua: e.userAgent, referer: e.referer, requestId: e.requestId, outcome: e.outcome });
    }, N),
  },
  { what: 'json, build only', ns: await timePerCall((i) => jsonLine(entry(i), Date.now()), N) },
  { what: 'combined, build only', ns: await timePerCall((i) => combinedLine(entry(i), Date.now()), N) },
  { what: 'X-Request-Id: prefix + counter', ns: await timePerCall(() => nextRequestId(), N) },
  { what: 'X-Request-Id: crypto.randomUUID()', ns: await timePerCall(() => randomUUID(), N) },
].map((r) => ({ ...r, ns: Math.round(r.ns) }));
console.table(rows);
writeResult('access-log', { rows });
sink.flushSync();
