// npm run bench: every benchmark in turn, each a separate process, its markdown table on
// stdout and its JSON in bench/results/. Peers (HAProxy, nginx, wrk) are used when
// installed: apt-get install haproxy nginx-light wrk. Loopback only, bounded in time.
// servoy-lb runs as this checkout builds it (raw sockets) and as the last release built it
// (node:http, see proxies.js) in every table against a peer.
//   npm run bench            (about 22 minutes on an idle 2-core machine)
//   npm run bench -- --quick (about 4 minutes: shorter rounds, 256 MiB transfers, 1,000 WebSockets)
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './lib.js';

const quick = process.argv.includes('--quick');
const steps = [
  ['Proxy throughput and CPU per request (sticky and new sessions), against peers', 'throughput.js', quick ? ['--seconds', '3', '--rounds', '1'] : ['--seconds', '8', '--rounds', '3']],
  ["Latency at a fixed rate of half HAProxy's maximum, against peers", 'latency.js', quick ? ['--seconds', '3', '--rounds', '1'] : ['--seconds', '10', '--rounds', '3']],
  ['1 GiB upload and download: throughput, peak RSS, CPU per GiB', 'transfer.js', quick ? ['--mib', '256', '--rounds', '1'] : ['--mib', '1024', '--rounds', '3']],
  ['WebSocket relay: CPU per message, 1,000 WebSockets, against HAProxy', 'ws-relay.js', quick ? ['--seconds', '3', '--warmup', '2', '--rounds', '1'] : ['--seconds', '10', '--rounds', '3']],
  ['Memory per idle WebSocket (1,000)', 'websockets.js', ['--count', '1000']],
  ...(quick ? [] : [['Memory per idle WebSocket (10,000)', 'websockets.js', ['--count', '10000']]]),
  ['Routing decisions and key movement', 'routing.js', []],
  ['Partition key extraction', 'partition-key.js', []],
  ['Path rules per request', 'path-rules.js', []],
  ['Request-head codec against Node', 'codec.js', []],
  ['Backend side: raw-socket upstream pool against undici', 'upstream.js', quick ? ['--requests', '5000', '--rounds', '3'] : []],
  ['Access log and metrics per request, on and off', 'log-metrics.js', quick ? ['--requests', '50000', '--rounds', '3'] : []],
  ['Partition store at 100,000 partitions', 'partition-store.js', []],
  ['Sticky path in Redis mode against file mode: CPU per request, Redis commands', 'redis-mode.js', quick ? ['--seconds', '3', '--rounds', '1'] : ['--seconds', '5', '--rounds', '3']],
  ['CPU-bound scaling: start --workers 1 against 2', 'workers.js', quick ? ['--seconds', '3', '--rounds', '1'] : ['--seconds', '6', '--rounds', '3']],
];
let failed = 0;
for (const [title, file, args] of steps) {
  process.stdout.write(`\n## ${title}\n\n`);
  const result = spawnSync(process.execPath, [join(ROOT, 'bench', file), ...args], { stdio: 'inherit', timeout: 15 * 60_000 });
  if (result.status !== 0) {
    failed++;
    process.stdout.write(`(${file} failed: exit ${result.status ?? result.signal})\n`);
  }
}
process.exitCode = failed === 0 ? 0 : 1;
