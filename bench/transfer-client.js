// The client side of bench/transfer.js: one upload or download of N bytes through a URL,
// then one JSON line {bytes, seconds} on stdout (exit 1 if the byte count is wrong).
//   node bench/transfer-client.js upload|download URL BYTES
import { request } from 'node:http';

const [mode, base, size] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const CHUNK = Buffer.alloc(64 * 1024, 'y');
const started = performance.now();
const done = (bytes) => {
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ bytes, seconds })}\n`);
  process.exitCode = bytes === size ? 0 : 1;
};
const fail = (err) => {
  process.stderr.write(`transfer-client: ${err.message}\n`);
  process.exit(1);
};

if (mode === 'upload') {
  const req = request(new URL('/upload', base), { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': size }, agent: false });
  req.on('error', fail);
  req.on('response', (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (text += c));
    res.on('end', () => (res.statusCode === 200 ? done(JSON.parse(text).bytes) : fail(new Error(`status ${res.statusCode}: ${text.slice(0, 200)}`))));
  });
  let left = size;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!req.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void req.once('drain', pump);
    }
    req.end();
  };
  pump();
} else {
  const req = request(new URL(`/download?bytes=${size}`, base), { agent: false });
  req.on('error', fail);
  req.on('response', (res) => {
    if (res.statusCode !== 200) fail(new Error(`status ${res.statusCode}`));
    let bytes = 0;
    res.on('data', (c) => (bytes += c.length));
    res.on('end', () => done(bytes));
    res.on('error', fail);
  });
  req.end();
}
