// Backend-side micro-benchmark: CPU µs per request of the raw-socket upstream pool +
// exchange (src/proxy/upstream/) against undici's Pool (what the last release's node:http
// plane used, driven through dispatch() with a raw-header handler, as its HttpExchange
// did), in the same run, against the same raw `net` backend in a child process (its CPU is
// not counted). Each round sends the same requests (a Servoy-like GET, 100-byte answers)
// with the same concurrency; rounds alternate between the two and the medians are compared.
//   npm run build && node bench/upstream.js [--requests 20000] [--concurrency 32] [--rounds 5]
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Pool } from 'undici';
import { exchange } from '../dist/src/proxy/upstream/exchange.js';
import { UpstreamPool } from '../dist/src/proxy/upstream/pool.js';
import { median, writeResult } from './lib.js';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};

if (process.argv[2] === '--backend') {
  // The backend: every request head (no bodies here) gets the same 100-byte answer.
  const answer = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n\r\nhello from a fast backend\n');
  const server = createServer((s) => {
    s.setNoDelay(true);
    let tail = 0; // bytes of a possibly split CRLFCRLF seen at the end of the last read
    s.on('data', (d) => {
      let n = 0;
      let from = 0;
      if (tail > 0) {
        const need = '\r\n\r\n'.slice(tail);
        if (d.toString('latin1', 0, need.length) === need) {
          n++;
          from = need.length;
        }
      }
      for (let i = d.indexOf('\r\n\r\n', from); i >= 0; i = d.indexOf('\r\n\r\n', i + 4)) n++;
      tail = d.toString('latin1', Math.max(0, d.length - 3)).endsWith('\r\n\r') ? 3 : d.toString('latin1', d.length - 2) === '\r\n' ? 2 : d[d.length - 1] === 0x0d ? 1 : 0;
      if (n === 1) s.write(answer);
      else if (n > 1) s.write(Buffer.concat(Array(n).fill(answer)));
    });
    s.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
} else {
  await main();
}

async function main() {
  const REQUESTS = arg('requests', 20_000);
  const CONCURRENCY = arg('concurrency', 32);
  const ROUNDS = arg('rounds', 5);
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, '--backend'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  const headers = [
    'Host', 'apps.example.com',
    'User-Agent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
    'Accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
    'Accept-Language', 'en-US,en;q=0.9',
    'Cookie', 'JSESSIONID=8F2C1A9B7D3E4F5061728394A5B6C7D8.b2; servoy.lb=b2',
    'X-Forwarded-For', '10.1.2.3',
    'X-Forwarded-Proto', 'https',
    'X-Forwarded-Host', 'apps.example.com',
  ];
  const target = '/servoy-ngclient/solutions/crm/index.html?f=orders';

  // Ours: one pool, a sink object per request (what the proxy would have anyway).
  const ours = new UpstreamPool({ host: '127.0.0.1', port, connectTimeout: 5000, responseTimeout: 30_000, idleTimeout: 60_000 });
  const request = { method: 'GET', target, headers, body: { kind: 'none' } };
  function oursOne(done) {
    let bytes = 0;
    exchange(ours, request, {
      head() {},
      data(c) {
        bytes += c.length;
        return true;
      },
      end() {
        done(bytes);
      },
      upgrade() {},
      error(err) {
        throw err;
      },
    });
  }

  // undici: Pool.dispatch with the callback handler the proxy uses (raw header buffers).
  const undici = new Pool(`http://127.0.0.1:${port}`, { keepAliveTimeout: 60_000, pipelining: 1, connections: CONCURRENCY });
  const flatHeaders = [];
  for (let i = 0; i < headers.length; i += 2) flatHeaders.push(headers[i], headers[i + 1]);
  function undiciOne(done) {
    let bytes = 0;
    undici.dispatch(
      { method: 'GET', path: target, headers: flatHeaders },
      {
        onConnect() {},
        onHeaders() {
          return true;
        },
        onData(c) {
          bytes += c.length;
          return true;
        },
        onComplete() {
          done(bytes);
        },
        onError(err) {
          throw err;
        },
      },
    );
  }

  function round(one) {
    return new Promise((resolve) => {
      let started = 0;
      let completed = 0;
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const next = () => {
        completed++;
        if (started < REQUESTS) {
          started++;
          one(next);
        } else if (completed === REQUESTS) {
          const cpu = process.cpuUsage(cpu0);
          const ns = Number(process.hrtime.bigint() - t0);
          resolve({ cpuUs: (cpu.user + cpu.system) / REQUESTS, rps: Math.round(REQUESTS / (ns / 1e9)) });
        }
      };
      for (let i = 0; i < Math.min(CONCURRENCY, REQUESTS); i++) {
        started++;
        one(next);
      }
    });
  }

  // Warm-up, then alternate.
  await round(oursOne);
  await round(undiciOne);
  const results = { ours: [], undici: [] };
  for (let r = 0; r < ROUNDS; r++) {
    results.ours.push(await round(oursOne));
    results.undici.push(await round(undiciOne));
  }
  const row = (name, rs) => ({ client: name, 'CPU µs/request (median)': median(rs.map((x) => x.cpuUs)).toFixed(1), 'req/s (median)': median(rs.map((x) => x.rps)) });
  const rows = [row('upstream pool + exchange (raw net)', results.ours), row('undici Pool.dispatch', results.undici)];
  const ratio = median(results.ours.map((x) => x.cpuUs)) / median(results.undici.map((x) => x.cpuUs));
  console.table(rows);
  console.log(`CPU per request, ours / undici: ${ratio.toFixed(2)} (${REQUESTS} requests × ${ROUNDS} rounds, concurrency ${CONCURRENCY})`);
  writeResult('upstream', { requests: REQUESTS, concurrency: CONCURRENCY, rounds: ROUNDS, rows, ratio });
  await ours.destroy();
  await undici.destroy();
  child.kill();
}
