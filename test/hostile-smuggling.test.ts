/**
 * Request smuggling shapes over raw sockets (SPEC "Proxying": malformed requests get 400
 * and the balancer keeps serving). Each ambiguous framing — Content-Length with
 * Transfer-Encoding, two Content-Lengths, bad chunk sizes, obs-fold, bare LF, odd
 * Transfer-Encoding lists, a request target with spaces or control characters — gets the
 * balancer's 400 (or a closed connection) and never reaches the backend: a counting
 * backend records every request head that arrives. The balancer's own codec
 * (src/proxy/codec/) refuses everything Node's strict llhttp refuses, and a little more: a
 * Transfer-Encoding that is not exactly `chunked` (RFC 9112 §6.1: a coding the server
 * does not implement; `identity` is no longer registered) is refused too, as nginx and
 * Squid do, though llhttp reads `identity, chunked` as chunked. These tests pin what the
 * balancer answers, so a more lenient parser would fail them.
 */
import t from 'tap';
import { lbConfig, startBalancer, waitFor } from './helpers/lb.js';
import { countingBackend, headerMap, probe } from './fixtures/hostile-net.js';

const H = 'Host: lb.test\r\n';

/** Shapes the balancer must refuse; each must get 400 (or a close) and reach no backend. */
const REFUSED: Record<string, string> = {
  // Content-Length and Transfer-Encoding together (CL.TE / TE.CL), with a request hidden in the body.
  'CL then TE': `POST /a HTTP/1.1\r\n${H}Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`,
  'TE then CL': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n0\r\n\r\n`,
  'CL with TE: identity': `POST /a HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: identity\r\n\r\nhello`,
  // Two Content-Lengths.
  'two different Content-Lengths': `POST /a HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 41\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n${H}\r\n`,
  'two equal Content-Lengths': `POST /a HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
  'Content-Length list "5, 41"': `POST /a HTTP/1.1\r\n${H}Content-Length: 5, 41\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n${H}\r\n`,
  'negative Content-Length': `POST /a HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`,
  'Content-Length "+5"': `POST /a HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`,
  'overflowing Content-Length': `POST /a HTTP/1.1\r\n${H}Content-Length: 184467440737095516160\r\n\r\nhello`,
  // Invalid chunk sizes.
  'chunk size "zz"': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
  'negative chunk size': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`,
  'overflowing chunk size': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1000000000000000005\r\nhello\r\n0\r\n\r\n`,
  'chunk size "0x5"': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`,
  'chunk size with a space': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n`,
  // obs-fold: a header line starting with a space or a tab.
  'obs-fold (space)': `GET /a HTTP/1.1\r\n${H}X-A: a\r\n folded\r\n\r\n`,
  'obs-fold (tab)': `GET /a HTTP/1.1\r\n${H}X-A: a\r\n\tfolded\r\n\r\n`,
  'obs-fold hiding Transfer-Encoding': `POST /a HTTP/1.1\r\n${H}Content-Length: 5\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n\r\nhello`,
  'obs-fold value of Transfer-Encoding': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`,
  // Bare LF / bare CR line endings.
  'bare LF everywhere': `GET /a HTTP/1.1\nHost: lb.test\n\n`,
  'bare LF inside the head': `GET /a HTTP/1.1\r\nHost: lb.test\nX-A: b\r\n\r\n`,
  'bare LF before Transfer-Encoding': `POST /a HTTP/1.1\r\n${H}Content-Length: 5\nTransfer-Encoding: chunked\r\n\r\nhello`,
  'bare CR inside the head': `GET /a HTTP/1.1\r\nHost: lb.test\rX-A: b\r\n\r\n`,
  // Transfer-Encoding variations where chunked is not (clearly) the final coding.
  'TE: chunked, identity': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
  'TE: xchunked': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
  'TE: gzip (unknown, not chunked)': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n`,
  // Codings before a final chunked: llhttp reads these as chunked; the balancer implements no coding but chunked.
  'TE: identity, chunked': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
  'TE: gzip, chunked': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
  'TE twice (chunked, then identity)': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`,
  'TE with a space before the colon': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello`,
  'TE with a vertical tab': `POST /a HTTP/1.1\r\n${H}Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n`,
  // Request line: spaces and control characters in the target.
  'space in the target': `GET /a b HTTP/1.1\r\n${H}\r\n`,
  'tab in the target': `GET /a\tb HTTP/1.1\r\n${H}\r\n`,
  'NUL in the target': `GET /a\x00b HTTP/1.1\r\n${H}\r\n`,
  'SOH in the target': `GET /a\x01b HTTP/1.1\r\n${H}\r\n`,
  'DEL in the target': `GET /a\x7fb HTTP/1.1\r\n${H}\r\n`,
  'CR in the target': `GET /a\rX-Injected: 1 HTTP/1.1\r\n${H}\r\n`,
  'LF in the target': `GET /a\nX-Injected: 1 HTTP/1.1\r\n${H}\r\n`,
  'raw byte 0xFF in the target': `GET /a\xffb HTTP/1.1\r\n${H}\r\n`,
  // Request lines without an HTTP/1.x version: llhttp reads them as HTTP/0.9 (and goes on
  // to parse headers after a bare-LF line end), so the "LF in the target" case above
  // would otherwise reach the backend with an injected header.
  'no version (HTTP/0.9 shape) followed by headers': `GET /a\r\n${H}\r\n`,
  'HTTP/0.9 with headers': `GET /a HTTP/0.9\r\n${H}\r\n`,
  'HTTP/2.0 on HTTP/1 framing': `GET /a HTTP/2.0\r\n${H}\r\n`,
  'version-less WebSocket upgrade': `GET /websocket/1/main/1\r\n${H}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  // Header syntax.
  'space in a header name': `GET /a HTTP/1.1\r\n${H}X A: b\r\n\r\n`,
  'NUL in a header value': `GET /a HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`,
  'control character in a header value': `GET /a HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n`,
};

t.test('ambiguous framings get 400 (or a close), reach no backend, and the next request is served', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { outlier: { consecutiveFailures: 1000 } }));
  let next = 0;
  // What the backend saw from here on must be exactly the /next-N requests: checked after
  // each one is served (a positive signal), so a request that slipped through late shows up
  // at the latest in the next case's check, with no sleep to tune.
  const from = backend.seen.length;
  const expected: string[] = [];
  for (const [name, bytes] of Object.entries(REFUSED)) {
    const res = await probe(lb.url, bytes, { timeoutMs: 5000 });
    t.ok(res.status === 400 || (res.status === undefined && res.closed), `${name}: 400 or closed (got ${res.status ?? 'nothing'}${res.closed ? ', closed' : ', left open'})`);
    if (res.status !== undefined) {
      t.match(res.raw, /<h1>400 /, `${name}: the balancer's own 400 page`);
      t.equal(res.raw.match(/HTTP\/1\.[01] \d{3}/g)?.length, 1, `${name}: exactly one response on the connection`);
    }
    t.ok(res.closed, `${name}: the connection is closed afterwards`);

    const path = `/next-${++next}`;
    const ok = await probe(lb.url, `GET ${path} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    t.equal(ok.status, 200, `${name}: the next normal request is served`);
    t.equal(backend.seen.at(-1)?.url, path, `${name}: and reaches the backend`);
    expected.push(`GET ${path}`);
    t.same(backend.seen.slice(from).map((r) => `${r.method} ${r.url}`), expected, `${name}: nothing else reached the backend`);
  }
  t.same(backend.seen.filter((r) => r.url.includes('smuggled')), [], 'no hidden request ever reached the backend');
  t.equal(lb.proc.exitCode, null, 'the balancer is still running');
});

t.test('legal Transfer-Encoding spellings are re-framed by the balancer, never passed through', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { outlier: { consecutiveFailures: 1000 } }));
  const spellings = ['chunked ', 'CHUNKED', 'Chunked'];
  for (const te of spellings) {
    backend.seen.length = 0;
    // The bytes after the last chunk are a second, pipelined request of the same client:
    // they must be treated as one, not glued onto the first request's body.
    const res = await probe(lb.url,
      `POST /first HTTP/1.1\r\n${H}Transfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n` +
      `GET /second HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    t.same(res.raw.match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 200', 'HTTP/1.1 200'], `TE "${JSON.stringify(te)}": two responses, both 200`);
    await waitFor(() => backend.seen.length >= 2, 5000, 'both requests at the backend');
    const [first, second] = backend.seen;
    t.equal(first?.url, '/first');
    t.equal(first?.body.toString('latin1'), 'hello', 'the first body is exactly the decoded chunk');
    t.ok(first?.completed, 'and complete');
    const headers = headerMap(first?.rawHeaders ?? []);
    const te2 = headers.get('transfer-encoding') ?? [];
    const cl = headers.get('content-length') ?? [];
    t.ok(te2.every((v) => v === 'chunked'), `upstream Transfer-Encoding is the balancer's own (${JSON.stringify(te2)})`);
    t.ok(te2.length + cl.length === 1, `exactly one framing header upstream (TE ${JSON.stringify(te2)}, CL ${JSON.stringify(cl)})`);
    t.equal(second?.url, '/second', 'the pipelined request arrives as its own request');
    t.equal(second?.body.length, 0);
    t.equal(backend.seen.length, 2, 'and nothing else');
  }
});

t.test('a body that turns malformed after its head went upstream never completes at the backend', async (t) => {
  const backend = await countingBackend(t);
  const lb = await startBalancer(t, await lbConfig([{ id: 'count', url: backend.url }], { outlier: { consecutiveFailures: 1000 } }));
  const tails = {
    'bad chunk size': 'zz\r\nGET /smuggled HTTP/1.1\r\nHost: lb.test\r\n\r\n',
    'missing CRLF after chunk data': '5\r\nworldXXGET /smuggled HTTP/1.1\r\nHost: lb.test\r\n\r\n',
    'overflowing chunk size': 'fffffffffffffffffff\r\nGET /smuggled HTTP/1.1\r\nHost: lb.test\r\n\r\n',
  };
  for (const [name, tail] of Object.entries(tails)) {
    backend.seen.length = 0;
    // Two pieces 400 ms apart: the head and a valid first chunk stream upstream at once
    // (bodies are never buffered whole), then the broken part arrives.
    const res = await probe(lb.url, `POST /upload HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n${tail}`, { pieces: 2, gapMs: 400 });
    t.ok(res.status === 400 || res.closed, `${name}: 400 or closed (got ${res.status ?? 'nothing'})`);
    t.ok(res.closed, `${name}: the connection is closed`);
    await waitFor(() => backend.seen.every((r) => r.completed || r.aborted), 5000, 'the upstream request to end');
    t.same(backend.seen.filter((r) => r.completed).map((r) => r.url), [], `${name}: no request completed at the backend (it saw ${backend.seen.length} head(s), all aborted)`);
    t.same(backend.seen.filter((r) => r.url.includes('smuggled')), [], `${name}: the hidden request never reached it`);
    const ok = await probe(lb.url, `GET /after HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    t.equal(ok.status, 200, `${name}: the balancer keeps serving`);
  }
});
