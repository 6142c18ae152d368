// A backend for bench/transfer.js that costs as little as possible, so the transfer
// numbers measure the proxy: POST/PUT /upload counts the body and answers
// {"bytes":N}; GET /download?bytes=N streams N bytes (one reused 64 KiB buffer, with
// backpressure); anything else gets a small 200 (health checks).
//   node bench/transfer-backend.js PORT
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 0);
const CHUNK = Buffer.alloc(64 * 1024, 'x');
const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if ((req.method === 'POST' || req.method === 'PUT') && url.pathname === '/upload') {
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => {
      const body = JSON.stringify({ bytes });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    return;
  }
  if (req.method === 'GET' && url.pathname === '/download') {
    const total = Number(url.searchParams.get('bytes') ?? 0);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    let left = total;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
    return;
  }
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
  res.end('ok\n');
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
