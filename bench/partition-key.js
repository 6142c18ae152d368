// Micro-benchmark of partition-key extraction (src/routing/partition-key.ts), the per-request
// cost of affinity.mode "partition". Reports nanoseconds per extraction for each source,
// with and without a pattern, on realistic Servoy requests, plus the naive URL /
// URLSearchParams equivalents for query and path as a yardstick. Pure CPU, no I/O.
//   npm run build && node bench/partition-key.js [--ms 300] [--rounds 5] [--save]
// --save writes bench/results/partition-key.json. Each case cycles through 64 requests
// (different tenants) so the JIT cannot specialise on one string; a sink keeps results live.
// Times are CPU time of this process (process.cpuUsage), so a busy machine inflates them less.
import { parseArgs } from 'node:util';
import { median, writeResult } from './lib.js';
import { compilePartitionKey } from '../dist/src/routing/partition-key.js';

const { values } = parseArgs({ options: { ms: { type: 'string', default: '300' }, rounds: { type: 'string', default: '5' }, save: { type: 'boolean', default: false } } });
const roundMs = Number(values.ms);
const rounds = Number(values.rounds);

const VARIANTS = 64;
const tenants = Array.from({ length: VARIANTS }, (_, i) => `tenant${String(i).padStart(3, '0')}`);

/** A request as the proxy would describe it: Node's lower-case headers, the raw URL. */
function request(tenant, i) {
  const cookieHeader = `_ga=GA1.2.${1000 + i}.1700000000; _gid=GA1.2.99.1700000000; tenant=${tenant}; JSESSIONID=0A1B2C3D4E5F60718293A4B5C6D7E8F9.servoy-a; SERVOYLB=c${i}.servoy-a.AbCdEfGhIjKlMnOpQrStUv`;
  return {
    host: `${tenant}.example.com:8443`, // browsers send the host lower-case
    url: `/${tenant}/servoy-ngclient/index.html?f=crm_app&tenant=${tenant}&s=${i}`,
    headers: {
      host: `${tenant}.example.com:8443`,
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
      accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
      'accept-language': 'en-GB,en;q=0.9,nl;q=0.8',
      'accept-encoding': 'gzip, deflate, br',
      connection: 'keep-alive',
      'x-tenant': tenant,
      'x-forwarded-for': `10.1.${i}.7`,
      cookie: cookieHeader,
    },
    cookieHeader,
    clientAddress: `::ffff:10.1.${i}.7`,
  };
}
const requests = tenants.map(request);
const mixedCase = requests.map((req) => ({ ...req, host: req.host.replace('example', 'Example') }));

const spec = (s) => compilePartitionKey({ required: false, ...s });
const cases = [
  ['baseline (loop + property read)', (req) => req.clientAddress],
  ['host', spec({ from: 'host' })],
  ['host + pattern ^([a-z0-9-]+)\\.', spec({ from: 'host', pattern: '^([a-z0-9-]+)\\.' })],
  ['host, mixed case (lower-cased copy)', spec({ from: 'host' }), mixedCase],
  ['header x-tenant', spec({ from: 'header', name: 'X-Tenant' })],
  ['header + pattern ^tenant(\\d+)$', spec({ from: 'header', name: 'X-Tenant', pattern: '^tenant(\\d+)$' })],
  ['cookie tenant (3rd of 5)', spec({ from: 'cookie', name: 'tenant' })],
  ['cookie SERVOYLB (last of 5)', spec({ from: 'cookie', name: 'SERVOYLB' })],
  ['cookie + pattern', spec({ from: 'cookie', name: 'tenant', pattern: '^tenant(\\d+)$' })],
  ['query tenant (2nd of 3)', spec({ from: 'query', name: 'tenant' })],
  ['query + pattern', spec({ from: 'query', name: 'tenant', pattern: '^tenant(\\d+)$' })],
  ['path segment 1', spec({ from: 'path', segment: 1 })],
  ['path segment 3', spec({ from: 'path', segment: 3 })],
  ['path + pattern', spec({ from: 'path', segment: 1, pattern: '^tenant(\\d+)$' })],
  ['ip (IPv4-mapped)', spec({ from: 'ip' })],
  ['ip + pattern /16', spec({ from: 'ip', pattern: '^(\\d+\\.\\d+)\\.' })],
  ['naive: new URL().searchParams.get', (req) => new URL(req.url, 'http://x').searchParams.get('tenant') ?? undefined],
  ['naive: new URL().pathname.split', (req) => new URL(req.url, 'http://x').pathname.split('/')[1] || undefined],
];

// Correctness guard: every case must find a key, or the numbers measure the wrong thing.
for (const [name, read, reqs = requests] of cases) {
  if (typeof read(reqs[5]) !== 'string') throw new Error(`${name}: no key for a sample request`);
}

let sink = 0;
/** cpuNs is this process's user+system CPU time: the machine may be shared, wall time is not ours. */
const cpuNs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
};
function measure(read, reqs) {
  // Batches of VARIANTS calls until roundMs of wall time elapsed; returns CPU ns per call.
  const deadline = performance.now() + roundMs;
  let calls = 0;
  const started = cpuNs();
  while (performance.now() < deadline) {
    for (let b = 0; b < 100; b++) {
      for (let i = 0; i < VARIANTS; i++) sink += read(reqs[i]).length;
    }
    calls += 100 * VARIANTS;
  }
  return (cpuNs() - started) / calls;
}

const results = {};
for (const [name, read, reqs = requests] of cases) {
  measure(read, reqs); // warm-up: tier up before timing
  const samples = [];
  for (let r = 0; r < rounds; r++) samples.push(measure(read, reqs));
  results[name] = { nsPerExtraction: Number(median(samples).toFixed(1)), min: Number(Math.min(...samples).toFixed(1)), max: Number(Math.max(...samples).toFixed(1)) };
}

const width = Math.max(...Object.keys(results).map((k) => k.length));
console.log(`partition-key extraction, node ${process.version}, ${rounds} rounds x ${roundMs} ms, median (min-max) CPU ns per extraction`);
for (const [name, r] of Object.entries(results)) console.log(`  ${name.padEnd(width)}  ${String(r.nsPerExtraction).padStart(7)}  (${r.min}-${r.max})`);
if (sink === 0) console.log('sink', sink);
if (values.save) writeResult('partition-key', { roundMs, rounds, results });
