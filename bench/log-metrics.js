// What the access log and the metrics cost per request, on and off in one run: the work
// RequestPath.finished() (src/proxy/request-path.ts) does for them (one AccessEntry,
// AccessLog.write, the latency observation) against the same loop with both off, in
// interleaved rounds (medians).
// Lines go through the real sinks to /dev/null: log.file (AccessFile) and stdout (the
// service logger's stream). CPU time (user + system) per request, so the write syscalls
// count and other processes on a busy machine do not; the event loop turns every 100
// requests, so batches are written as in the proxy. "before" rows run the implementation
// this replaced (string lines handed to the stream one by one, prom-client's Histogram).
// What is left (--cpu-prof of the JSON line to a null sink, 2026-12-08): escaping and
// copying the strings ~35 % (jsonString, text, ascii), numbers ~11 %, GC ~14 % (the entry
// object and JSON.stringify's strings for long fields), the field walk ~11 %.
//   npm run build && node bench/log-metrics.js [--requests 100000] [--rounds 7]
import { openSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Histogram, Registry } from 'prom-client';
import { BalancerMetrics } from '../dist/src/admin/metrics.js';
import { AccessFile, stdoutSink } from '../dist/src/log-file.js';
import { AccessLog } from '../dist/src/proxy/access-log.js';
import { writeResult } from './lib.js';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '7' } } });
const N = Number(values.requests);
const ROUNDS = Number(values.rounds);

const logger = pino({ level: 'info', base: undefined }, pino.destination({ dest: openSync('/dev/null', 'w'), sync: false, minLength: 4096 }));
const file = new AccessFile('/dev/null', logger);
const logs = {
  'json, log.file': new AccessLog({ format: 'json', sink: file }),
  'combined, log.file': new AccessLog({ format: 'combined', sink: file }),
  'json, stdout': new AccessLog({ format: 'json', sink: stdoutSink(logger) }),
};
const metrics = new BalancerMetrics(() => []);
const BACKENDS = ['servoy-a', 'servoy-b', 'servoy-c'];
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36';

/** One request's entry, as RequestPath.finished() (src/proxy/request-path.ts) builds it. */
function entry(i) {
  return {
    client: '10.1.2.3',
    method: 'GET',
    host: 'crm.example.com',
    path: '/servoy-service/rest_ws/crm/orders?limit=10',
    httpVersion: '1.1',
    status: 200,
    backend: BACKENDS[i % 3],
    route: 'affinity-cookie',
    ms: Math.round((1 + (i & 255) / 7) * 100) / 100,
    bytesIn: 512,
    bytesOut: 4096 + (i & 1023),
    userAgent: UA,
    referer: 'https://crm.example.com/solutions/crm/index.html',
    requestId: `Zk3pQ9aB-${i.toString(36)}`,
    outcome: 'ok',
    websocket: false,
  };
}

/** CPU ns per request of fn (the event loop turns every 100 requests). */
async function timePerCall(fn) {
  await new Promise(setImmediate);
  const start = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    fn(i);
    if (i % 100 === 99) await new Promise(setImmediate);
  }
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / N;
}

/**
 * The implementation this replaced, for a "before" row in the same run: a line built from
 * template strings and JSON.stringify, handed to the sink per line; latency observed on
 * prom-client's Histogram (labelled child cached per backend).
 */
function beforeJsonLine(e, time) {
  let line = `{"level":30,"time":${time},"log":"access","client":${JSON.stringify(e.client)},"method":${JSON.stringify(e.method)}`;
  if (e.host !== undefined) line += `,"host":${JSON.stringify(e.host)}`;
  line += `,"path":${JSON.stringify(e.path)},"status":${e.status}`;
  if (e.backend !== undefined) line += `,"backend":${JSON.stringify(e.backend)}`;
  if (e.route !== undefined) line += `,"route":"${e.route}"`;
  line += `,"ms":${e.ms},"bytesIn":${e.bytesIn},"bytes":${e.bytesOut}`;
  if (e.userAgent !== undefined) line += `,"ua":${JSON.stringify(e.userAgent)}`;
  if (e.referer !== undefined) line += `,"referer":${JSON.stringify(e.referer)}`;
  if (e.requestId !== undefined) line += `,"requestId":${JSON.stringify(e.requestId)}`;
  if (e.outcome !== undefined) line += `,"outcome":"${e.outcome}"`;
  return `${line}}\n`;
}
const beforeHistogram = new Histogram({ name: 'before_seconds', help: 'h', labelNames: ['backend', 'outcome'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers: [new Registry()] });
const beforeChildren = new Map(BACKENDS.map((b) => [b, beforeHistogram.labels({ backend: b, outcome: 'ok' })]));

let sinkHole = 0;
const cases = {
  off: (i) => {
    sinkHole += i & 1; // the loop and the turns of the event loop, nothing logged or observed
  },
  'metrics only': (i) => metrics.observeRequest(BACKENDS[i % 3], (1 + (i & 255) / 7) / 1000, 'ok'),
};
cases['before: metrics only'] = (i) => beforeChildren.get(BACKENDS[i % 3]).observe((1 + (i & 255) / 7) / 1000);
cases['before: log (json, log.file) only'] = (i) => file.write(beforeJsonLine(entry(i), Date.now()));
cases['before: log (json, log.file) + metrics'] = (i) => {
  file.write(beforeJsonLine(entry(i), Date.now()));
  beforeChildren.get(BACKENDS[i % 3]).observe((1 + (i & 255) / 7) / 1000);
};
for (const [name, log] of Object.entries(logs)) {
  cases[`log (${name}) only`] = (i) => log.write(entry(i));
  cases[`log (${name}) + metrics`] = (i) => {
    log.write(entry(i));
    metrics.observeRequest(BACKENDS[i % 3], (1 + (i & 255) / 7) / 1000, 'ok');
  };
}

for (const fn of Object.values(cases)) await timePerCall(fn); // warm up every path
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) for (const [name, fn] of Object.entries(cases)) samples[name].push(await timePerCall(fn));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const off = median(samples.off);
const offMin = Math.min(...samples.off);
// The minimum over rounds is the least disturbed one (on a busy machine the median is not).
const rows = Object.entries(samples).map(([what, xs]) => ({
  what,
  'ns / request': Math.round(median(xs)),
  'ns over off': Math.round(median(xs) - off),
  'min ns over min off': Math.round(Math.min(...xs) - offMin),
}));
console.table(rows);
console.log(`(${N} requests per round, ${ROUNDS} rounds interleaved, medians and minima; load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')})`);
writeResult('log-metrics', { rows, requests: N, rounds: ROUNDS });
file.close();
if (sinkHole < 0) console.log(sinkHole);
