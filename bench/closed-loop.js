// Closed-loop load (as fast as it goes) for bench/throughput.js and bench/latency.js: wrk
// when installed (lighter on the shared core), else autocannon, pinned to CPU 1.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, start } from './lib.js';
import { which } from './proxies.js';

const WRK = which('wrk');

/** loadGenerator names the closed-loop generator this machine has, for the tables. */
export const loadGenerator = WRK ? 'wrk -t1' : 'autocannon';

async function run(cmd, args) {
  const child = await start(cmd, args, { cpu: 1, quiet: false });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  await new Promise((resolve) => child.once('close', resolve));
  return out;
}

/**
 * closedLoad loads url for `seconds` over `connections` keep-alive connections, sending
 * `cookie` when given (none: every request starts a new session), and resolves with
 * { requests, rps, p50, p99 (ms), errors }. `dir` holds wrk's report script.
 */
export async function closedLoad({ url, cookie, seconds, connections, dir }) {
  if (WRK) {
    const script = join(dir, 'report.lua');
    writeFileSync(script, `done = function(summary, latency, requests)\n io.write(string.format("JSON{\\"requests\\":%d,\\"errors\\":%d,\\"p50\\":%f,\\"p99\\":%f,\\"seconds\\":%f}\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(50)/1000, latency:percentile(99)/1000, summary.duration/1e6))\nend\n`);
    const header = cookie === undefined ? [] : ['-H', `Cookie: ${cookie}`];
    const out = await run(WRK, ['-t1', `-c${connections}`, `-d${seconds}s`, ...header, '-s', script, url]);
    const json = JSON.parse(/JSON(\{.*\})/.exec(out)[1]);
    return { requests: json.requests, rps: Math.round(json.requests / json.seconds), p50: json.p50, p99: json.p99, errors: json.errors };
  }
  const header = cookie === undefined ? [] : ['-H', `cookie=${cookie}`];
  const out = await run(process.execPath, [join(ROOT, 'node_modules/autocannon/autocannon.js'), '-c', String(connections), '-d', String(seconds), '--json', ...header, url]);
  const json = JSON.parse(out.slice(out.indexOf('{')));
  return { requests: json.requests.total, rps: json.requests.average, p50: json.latency.p50, p99: json.latency.p99, errors: json.errors + json.non2xx };
}
