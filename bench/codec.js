// Request-head codec micro-benchmark: ns per parse of a typical Servoy request head (a GET
// of the NG client with cookies, about 600 bytes) by src/proxy/codec/request-head.ts,
// against Node's own parser (llhttp through node:_http_common's HTTPParser, an internal
// binding: skipped with a note when this Node does not expose it). Node's number includes
// its JS callback that builds the header array, which is what node:http pays per request.
// The codec is not on the request path yet: this is the budget for the raw-socket plane.
//   npm run build && node bench/codec.js
import { createRequire } from 'node:module';
import { ChunkedDecoder, CHUNK_DATA } from '../dist/src/proxy/codec/chunked.js';
import { parseRequestHead } from '../dist/src/proxy/codec/request-head.js';
import { writeResult } from './lib.js';

const head = Buffer.from(
  'GET /servoy-ngclient/solutions/crm/index.html?clientnr=3&f=orders HTTP/1.1\r\n' +
    'Host: apps.example.com\r\n' +
    'User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n' +
    'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n' +
    'Accept-Language: en-US,en;q=0.9,nl;q=0.8\r\n' +
    'Accept-Encoding: gzip, deflate, br\r\n' +
    'Cookie: JSESSIONID=8F2C1A9B7D3E4F5061728394A5B6C7D8; servoy.lb=b2; _ga=GA1.1.123456789.1700000000; theme=dark\r\n' +
    'Referer: https://apps.example.com/servoy-ngclient/solutions/crm/index.html\r\n' +
    'Connection: keep-alive\r\n' +
    '\r\n',
  'latin1',
);
const chunked = Buffer.from('2000\r\n' + 'x'.repeat(0x2000) + '\r\n'.repeat(1) + '0\r\n\r\n', 'latin1');

function timePerCall(fn, iterations) {
  for (let i = 0; i < 50_000; i++) fn(); // warm up
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - start) / iterations;
}

const N = 500_000;
const rows = [];
const ours = parseRequestHead(head, 0, 16384);
if (ours.kind !== 'head') throw new Error(`bench head not accepted: ${JSON.stringify(ours)}`);
rows.push({ parser: 'codec parseRequestHead', bytes: head.length, ns: Math.round(timePerCall(() => parseRequestHead(head, 0, 16384), N)) });

let HTTPParser;
try {
  ({ HTTPParser } = createRequire(import.meta.url)('_http_common'));
} catch {
  HTTPParser = undefined;
}
if (typeof HTTPParser === 'function') {
  const p = new HTTPParser();
  let seen = 0;
  p[HTTPParser.kOnHeadersComplete] = () => {
    seen++;
    return 0;
  };
  p[HTTPParser.kOnMessageComplete] = () => {};
  p.initialize(HTTPParser.REQUEST, {}, 16384, 0);
  // One parser fed the same request again and again: a keep-alive connection.
  const ns = timePerCall(() => p.execute(head), N);
  if (seen < N) throw new Error('Node parser did not parse every head');
  rows.push({ parser: "node HTTPParser (llhttp)", bytes: head.length, ns: Math.round(ns) });
} else {
  console.log("node:_http_common's HTTPParser is not reachable in this Node: no comparison");
}

const d = () => {
  const dec = new ChunkedDecoder();
  let p = 0;
  while (dec.step(chunked, p, chunked.length) === CHUNK_DATA) p = dec.pos;
};
rows.push({ parser: 'codec ChunkedDecoder (8 KiB chunk)', bytes: chunked.length, ns: Math.round(timePerCall(d, N)) });
console.table(rows);
writeResult('codec', { rows });
